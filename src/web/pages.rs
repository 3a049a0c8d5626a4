//! Server-rendered pages: the start page and the one-time first-admin setup page.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde_json::json;

use super::extract::ClientAddr;
use super::session::{self, MaybeUser, LOGIN_CSRF_COOKIE};
use super::templates::APP_CSS;
use super::AppState;
use crate::crypto::{random_token, SecretString};
use crate::domain::accounts::{self, LoginInput, NewUserInput};
use crate::domain::cases::{self, CaseFilter};
use crate::domain::family::{self, AcceptInput};
use crate::domain::outreach::{self, AttentionFilter};
use crate::domain::types::{Role, MIN_PASSWORD};
use crate::error::Error;

/// Messages needing attention shown on the home page (the rest through `GET /api/v1/outreach`).
const ATTENTION_ON_HOME: i64 = 20;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/static/app.css", get(css))
        .route("/setup/{token}", get(setup_form).post(setup_submit))
        .route("/login", get(login_form).post(login_submit))
        .route("/logout", post(logout))
        .route("/invite/{token}", get(invite_form).post(invite_submit))
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

#[derive(serde::Deserialize)]
struct HomeQuery {
    cursor: Option<String>,
}

/// The start page; signed in, a coordinator's or supervisor's cases (each view audited).
async fn home(
    State(s): State<AppState>,
    MaybeUser(user): MaybeUser,
    Query(q): Query<HomeQuery>,
) -> Response {
    let Some(user) = user else {
        return render(&s, StatusCode::OK, "home", json!({}));
    };
    let can_list = matches!(user.actor.role, Role::Coordinator | Role::Supervisor);
    let (cases, next) = if can_list {
        let filter = CaseFilter {
            cursor: q.cursor,
            limit: Some(50),
            ..Default::default()
        };
        match cases::list(&s.svc, &user.actor, filter, s.now()).await {
            Ok(page) => (page.items, page.next_cursor),
            Err(e) => return e.into_response(),
        }
    } else {
        (Vec::new(), None)
    };
    // Held, dead and failing messages of the same cases: what needs a person first.
    let attention = if can_list {
        let filter = AttentionFilter {
            status: Some("held,dead,failed".into()),
            limit: Some(ATTENTION_ON_HOME),
            cursor: None,
        };
        match outreach::attention(&s.svc, &user.actor, filter, s.now()).await {
            Ok(page) => page,
            Err(e) => return e.into_response(),
        }
    } else {
        crate::domain::Page {
            items: Vec::new(),
            next_cursor: None,
        }
    };
    render(
        &s,
        StatusCode::OK,
        "home",
        json!({
            "user": {"display_name": user.display_name, "role": user.actor.role},
            "csrf": user.csrf,
            "can_list": can_list,
            "cases": cases,
            "next": next,
            "attention": attention.items,
            "more_attention": attention.next_cursor.is_some(),
        }),
    )
}

fn login_page(s: &AppState, status: StatusCode, username: &str, error: Option<&str>) -> Response {
    let csrf = random_token();
    let mut resp = render(
        s,
        status,
        "login",
        json!({"csrf": csrf.expose(), "username": username, "error": error}),
    );
    resp.headers_mut().append(
        header::SET_COOKIE,
        session::set_cookie(
            LOGIN_CSRF_COOKIE,
            csrf.expose(),
            "/login",
            3600,
            s.secure_cookies,
        ),
    );
    resp
}

async fn login_form(State(s): State<AppState>, MaybeUser(user): MaybeUser) -> Response {
    if user.is_some() {
        return Redirect::to("/").into_response();
    }
    login_page(&s, StatusCode::OK, "", None)
}

/// Sign in with the form: CSRF (double-submit cookie), then the same checks and throttling as
/// the API, then a new session.
async fn login_submit(
    State(s): State<AppState>,
    ClientAddr(client): ClientAddr,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let username = field("username");
    let expected = session::cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if expected.is_empty() || !session::same_token(expected, &field("csrf")) {
        return login_page(
            &s,
            StatusCode::FORBIDDEN,
            &username,
            Some("The form expired. Please try again."),
        );
    }
    let input = LoginInput {
        username: username.clone(),
        password: SecretString::new(field("password")),
        totp: Some(field("totp")).filter(|t| !t.trim().is_empty()),
    };
    let now = s.now();
    match accounts::check_credentials(&s.svc, &input, client.as_deref(), now).await {
        Ok(signed) => match session::start(&s, signed, now).await {
            Ok(cookie) => {
                let mut resp = Redirect::to("/").into_response();
                resp.headers_mut().append(header::SET_COOKIE, cookie);
                resp.headers_mut().append(
                    header::SET_COOKIE,
                    session::set_cookie(LOGIN_CSRF_COOKIE, "", "/login", 0, s.secure_cookies),
                );
                resp
            }
            Err(e) => e.into_response(),
        },
        Err(Error::TotpRequired) => login_page(
            &s,
            StatusCode::UNAUTHORIZED,
            &username,
            Some("Enter the code from your authenticator app."),
        ),
        Err(Error::TooManyRequests { retry_after }) => login_page(
            &s,
            StatusCode::TOO_MANY_REQUESTS,
            &username,
            Some(&format!(
                "Too many attempts. Try again in {retry_after} seconds."
            )),
        ),
        Err(Error::InvalidCredentials) => login_page(
            &s,
            StatusCode::UNAUTHORIZED,
            &username,
            Some("Username or password is wrong."),
        ),
        Err(e) => e.into_response(),
    }
}

async fn logout(
    State(s): State<AppState>,
    MaybeUser(user): MaybeUser,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let Some(user) = user else {
        return Redirect::to("/login").into_response();
    };
    if user
        .check_csrf(form.get("csrf").map(String::as_str))
        .is_err()
    {
        return message(
            &s,
            StatusCode::FORBIDDEN,
            "Not signed out",
            "The form expired. Please try again.",
        );
    }
    match session::end(&s, &user, s.now()).await {
        Ok(cookie) => {
            let mut resp = Redirect::to("/login").into_response();
            resp.headers_mut().append(header::SET_COOKIE, cookie);
            resp
        }
        Err(e) => e.into_response(),
    }
}

fn invite_gone(s: &AppState) -> Response {
    message(
        s,
        StatusCode::NOT_FOUND,
        "This link no longer works",
        "Invitation links work once and expire after two weeks. Please ask your coordinator for a new one.",
    )
}

async fn invite_form(State(s): State<AppState>, Path(token): Path<String>) -> Response {
    match family::invite_valid(&s.svc, &token, s.now()).await {
        Ok(true) => render(
            &s,
            StatusCode::OK,
            "invite",
            json!({"token": token, "min_password": MIN_PASSWORD}),
        ),
        Ok(false) => invite_gone(&s),
        Err(e) => e.into_response(),
    }
}

async fn invite_submit(
    State(s): State<AppState>,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let username = field("username");
    let again = |errors: serde_json::Value| {
        render(
            &s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "invite",
            json!({"token": token, "min_password": MIN_PASSWORD, "errors": errors, "username": username}),
        )
    };
    if field("password") != field("password_confirm") {
        return again(json!({"password_confirm": "does not match the password"}));
    }
    let input = AcceptInput {
        username: Some(username.clone()),
        password: Some(SecretString::new(field("password"))),
    };
    match family::accept(&s.svc, &token, input, s.now()).await {
        Ok(_) => Redirect::to("/login").into_response(),
        Err(Error::Validation(f)) => again(json!(f)),
        Err(Error::Conflict { field, message }) => {
            again(json!({ field.unwrap_or_else(|| "username".into()): message }))
        }
        Err(Error::NotFound) => invite_gone(&s),
        Err(e) => e.into_response(),
    }
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
        email: None,
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
