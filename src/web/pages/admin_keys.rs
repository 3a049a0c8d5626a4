//! The admin's keyring page: data-key versions with the case keys each wraps, the recipients
//! (the server's own, and whether an offline recovery key exists), the last rotation, and
//! rotation. A rotation re-wraps case keys in the background; the page says how many of how
//! many are done each time it is loaded.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::form::{self, FormData};
use super::super::view::Page;
use super::{admin, admin_post, conflict};
use crate::domain::{accounts, keys};
use crate::error::Error;
use crate::web::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/keys", get(keys_page))
        .route("/admin/keys/rotate", post(rotate))
}

#[derive(Deserialize, Default)]
struct KeysQuery {
    rotated: Option<String>,
}

async fn show(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    errors: Value,
    rotated: Option<String>,
) -> Response {
    let user = match admin(s, page) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let now = s.now();
    let view = match keys::status(&s.svc, &user.actor, now).await {
        Ok(v) => v,
        Err(e) => return page.error(s, e),
    };
    // An admin with TOTP gives a fresh code to rotate.
    let totp = match accounts::totp_state(&s.svc, &user.actor).await {
        Ok(st) => matches!(st, accounts::TotpState::Enrolled(_)),
        Err(e) => return page.error(s, e),
    };
    let percent = if view.progress.total == 0 {
        100
    } else {
        view.progress.done * 100 / view.progress.total
    };
    page.render(
        s,
        status,
        "admin_keys",
        json!({
            "title": "admin-keys-title",
            "k": view,
            "percent": percent,
            "b": s.backups.view(now),
            "needs_totp": totp,
            "rotated": rotated.filter(|v| v.chars().all(|c| c.is_ascii_digit())),
            "values": {},
            "errors": errors,
        }),
    )
}

async fn keys_page(State(s): State<AppState>, page: Page, Query(q): Query<KeysQuery>) -> Response {
    show(&s, &page, StatusCode::OK, json!({}), q.rotated).await
}

/// Rotate: a new version for new case keys, the older ones re-wrapped in the background.
async fn rotate(State(s): State<AppState>, page: Page, f: FormData) -> Response {
    let user = match admin_post(&s, &page, &f) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let code = f.text("totp");
    match keys::rotate(&s.svc, &user.actor, code.as_deref(), s.now()).await {
        Ok(v) => page.see_other(&s, &format!("/admin/keys?rotated={v}")),
        Err(Error::Validation(e)) => {
            let errors = form::errors(page.lang, &e);
            show(&s, &page, StatusCode::UNPROCESSABLE_ENTITY, errors, None).await
        }
        Err(Error::Conflict { field, message }) => {
            let errors = conflict(page.lang, field, &message, "rotate");
            show(&s, &page, StatusCode::CONFLICT, errors, None).await
        }
        Err(e) => page.error(&s, e),
    }
}
