//! Server-rendered pages: the start page and the one-time first-admin setup page.

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Form, Router};
use serde_json::json;

use super::templates::APP_CSS;
use super::AppState;
use crate::crypto::SecretString;
use crate::domain::accounts::{self, NewUserInput};
use crate::domain::types::MIN_PASSWORD;
use crate::error::Error;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/static/app.css", get(css))
        .route("/setup/{token}", get(setup_form).post(setup_submit))
}

fn render(s: &AppState, status: StatusCode, name: &str, data: serde_json::Value) -> Response {
    match s.templates.render(name, &data) {
        Ok(html) => (status, [(header::CACHE_CONTROL, "no-store")], Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "rendering a page");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "page could not be rendered",
            )
                .into_response()
        }
    }
}

fn message(s: &AppState, status: StatusCode, title: &str, message: &str) -> Response {
    render(
        s,
        status,
        "message",
        json!({"title": title, "message": message}),
    )
}

pub fn not_found_page(s: &AppState) -> Response {
    message(
        s,
        StatusCode::NOT_FOUND,
        "Not found",
        "There is no page at this address.",
    )
}

async fn home(State(s): State<AppState>) -> Response {
    render(&s, StatusCode::OK, "home", json!({}))
}

async fn css() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS)
}

fn link_gone(s: &AppState) -> Response {
    message(
        s,
        StatusCode::NOT_FOUND,
        "This link no longer works",
        "Setup links work once and expire after a day. Restart the service to print a new one \
         if no administrator exists yet.",
    )
}

async fn setup_form(State(s): State<AppState>, Path(token): Path<String>) -> Response {
    match accounts::setup_link_valid(s.svc.store.as_ref(), &token, s.now()).await {
        Ok(true) => render(
            &s,
            StatusCode::OK,
            "setup",
            json!({"token": token, "min_password": MIN_PASSWORD}),
        ),
        Ok(false) => link_gone(&s),
        Err(e) => e.into_response(),
    }
}

async fn setup_submit(
    State(s): State<AppState>,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let (username, display_name) = (field("username"), field("display_name"));
    let again = |errors: serde_json::Value| {
        render(
            &s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "setup",
            json!({"token": token, "min_password": MIN_PASSWORD, "errors": errors,
                   "username": username, "display_name": display_name}),
        )
    };
    if field("password") != field("password_confirm") {
        return again(json!({"password_confirm": "does not match the password"}));
    }
    let input = NewUserInput {
        username: Some(username.clone()),
        display_name: (!display_name.trim().is_empty()).then(|| display_name.clone()),
        role: None,
        region: None,
        password: Some(SecretString::new(field("password"))),
    };
    match accounts::complete_setup(s.svc.store.as_ref(), &token, input, s.now()).await {
        Ok(user) => render(
            &s,
            StatusCode::OK,
            "setup_done",
            json!({"username": user.username}),
        ),
        Err(Error::Validation(f)) => again(json!(f)),
        Err(Error::Conflict { field, message }) => {
            again(json!({ field.unwrap_or_else(|| "username".into()): message }))
        }
        Err(Error::NotFound) => link_gone(&s),
        Err(e) => e.into_response(),
    }
}
