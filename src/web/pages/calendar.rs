//! The calendar page: a secret, revocable `.ics` address of my visits and calls, and the feed
//! itself, which a phone's calendar fetches without signing in.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;

use super::form::FormData;
use super::view::{word, Page};
use crate::domain::feeds;
use crate::domain::types::Role;
use crate::error::Error;
use crate::web::{i18n, AppState};

pub const TEMPLATES: &[(&str, &str)] =
    &[("calendar", include_str!("../../../templates/calendar.hbs"))];

const STAFF: &[Role] = &[Role::Coordinator, Role::Supervisor, Role::Volunteer];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/calendar", get(show))
        .route("/calendar/token", post(issue))
        .route("/calendar/revoke", post(revoke))
        .route("/calendar/feed/{file}", get(feed))
}

fn feed_url(s: &AppState, token: &str) -> String {
    format!(
        "{}/calendar/feed/{token}.ics",
        s.public_url.trim_end_matches('/')
    )
}

async fn render(s: &AppState, page: &Page, new_url: Option<String>) -> Response {
    let Some(user) = &page.user else {
        return page.error(s, Error::Unauthenticated);
    };
    match feeds::status(&s.svc, &user.actor).await {
        Ok(since) => page.render(
            s,
            StatusCode::OK,
            "calendar",
            json!({"title": "calendar-title", "since": since, "new_url": new_url}),
        ),
        Err(e) => page.error(s, e),
    }
}

async fn show(State(s): State<AppState>, page: Page) -> Response {
    if let Err(r) = page.staff(&s, STAFF) {
        return r;
    }
    render(&s, &page, None).await
}

/// A new address, shown once on this answer: only its hash is kept, so it cannot be shown
/// again (a lost one is replaced, which ends the old).
async fn issue(State(s): State<AppState>, page: Page, f: FormData) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match feeds::issue(&s.svc, &user.actor, s.now()).await {
        Ok(token) => render(&s, &page, Some(feed_url(&s, token.expose()))).await,
        Err(e) => page.error(&s, e),
    }
}

async fn revoke(State(s): State<AppState>, page: Page, f: FormData) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match feeds::revoke(&s.svc, &user.actor, s.now()).await {
        Ok(_) => page.see_other(&s, "/calendar"),
        Err(e) => page.error(&s, e),
    }
}

async fn feed(State(s): State<AppState>, Path(file): Path<String>) -> Response {
    let Some(token) = file.strip_suffix(".ics") else {
        return Error::NotFound.into_response();
    };
    let now = s.now();
    match feeds::events(&s.svc, token, now).await {
        Ok(tasks) => {
            let lang = i18n::DEFAULT;
            let doc = feeds::ics(
                &tasks,
                &i18n::text(lang, "calendar-feed-name", &[]),
                |kind| word(lang, "task-kind", kind),
                |id| format!("{}/tasks/{id}", s.public_url.trim_end_matches('/')),
                now,
            );
            (
                [
                    (header::CONTENT_TYPE, "text/calendar; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                doc,
            )
                .into_response()
        }
        Err(e) => e.into_response(),
    }
}
