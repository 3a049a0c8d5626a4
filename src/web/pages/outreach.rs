//! The outreach queue: the messages that need a person (held, dead, failed) in the caller's
//! cases, through the domain's `attention`, which decides scope and validates the filter; and
//! one message's page: its text as it would go out now, why it waits, and the two things a
//! person can do about it (send it after all, or cancel it for good).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::form::{self, blank_none, FormData};
use super::view::Page;
use crate::domain::outreach::{self, AttentionFilter};
use crate::domain::types::Role;
use crate::error::Error;
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "outreach_queue",
        include_str!("../../../templates/outreach_queue.hbs"),
    ),
    (
        "outreach_show",
        include_str!("../../../templates/outreach_show.hbs"),
    ),
];

const CARE: &[Role] = &[Role::Coordinator, Role::Supervisor];
const PER_PAGE: i64 = 50;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/outreach", get(queue))
        .route("/outreach/{id}", get(show))
        .route("/outreach/{id}/release", post(release))
        .route("/outreach/{id}/cancel", post(cancel))
}

#[derive(Deserialize, Default)]
struct QueueQuery {
    status: Option<String>,
    cursor: Option<String>,
}

async fn queue(State(s): State<AppState>, page: Page, Query(q): Query<QueueQuery>) -> Response {
    let user = match page.staff(&s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let status = blank_none(&q.status);
    let filter = AttentionFilter {
        status: Some(status.clone().unwrap_or_else(|| "held,dead,failed".into())),
        limit: Some(PER_PAGE),
        cursor: blank_none(&q.cursor),
    };
    let (code, items, next, errors) =
        match outreach::attention(&s.svc, &user.actor, filter, s.now()).await {
            Ok(p) => (StatusCode::OK, p.items, p.next_cursor, Value::Null),
            Err(Error::Validation(e)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Vec::new(),
                None,
                form::errors(page.lang, &e),
            ),
            Err(e) => return page.error(&s, e),
        };
    // Each message is named by its donor, so the queue says whom it is for.
    let mut items = json!(items);
    if let Err(e) = super::view::name_donors(&s, &user.actor, &mut [&mut items]).await {
        return page.error(&s, e);
    }
    let next_href = next.map(|c| {
        let mut ser = super::view::query_href("/outreach");
        if let Some(st) = &status {
            ser.append_pair("status", st);
        }
        ser.append_pair("cursor", &c);
        ser.finish()
    });
    page.render(
        &s,
        code,
        "outreach_queue",
        json!({
            "title": "outreach-title",
            "items": items,
            "status": status,
            "next": next_href,
            "errors": errors,
        }),
    )
}

async fn show(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    message_page(&s, &page, &id, StatusCode::OK, None).await
}

/// One message; `notice` is a catalogue key saying why the last action was refused.
async fn message_page(
    s: &AppState,
    page: &Page,
    id: &str,
    status: StatusCode,
    notice: Option<&str>,
) -> Response {
    let user = match page.staff(s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let shown = match outreach::show(&s.svc, &user.actor, id, s.now()).await {
        Ok(m) => m,
        Err(e) => return page.error(s, e),
    };
    let st = shown.outreach.status.as_str();
    page.render(
        s,
        status,
        "outreach_show",
        json!({
            "title": "outreach-show-title",
            "m": shown,
            "can_release": matches!(st, "held" | "dead"),
            "dead": st == "dead",
            "notice": notice,
        }),
    )
}

/// Where an action goes back to: the queue it was taken from, or the message's page.
fn back(f: &FormData, id: &str) -> String {
    match f.get("return") {
        Some("queue") => "/outreach".to_string(),
        _ => format!("/outreach/{id}"),
    }
}

async fn release(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    act(&s, &page, &id, &f, Act::Release).await
}

async fn cancel(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    act(&s, &page, &id, &f, Act::Cancel).await
}

enum Act {
    Release,
    Cancel,
}

/// Release or cancel a waiting message; a message no longer waiting (a colleague was quicker)
/// shows its page as it now is, with why nothing was done.
async fn act(s: &AppState, page: &Page, id: &str, f: &FormData, what: Act) -> Response {
    let user = match page.check_csrf(s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let done = match what {
        Act::Release => outreach::release(&s.svc, &user.actor, id, s.now()).await,
        Act::Cancel => outreach::cancel(&s.svc, &user.actor, id, s.now()).await,
    };
    match done {
        Ok(_) => page.see_other(s, &back(f, id)),
        Err(Error::Conflict { .. }) => {
            message_page(
                s,
                page,
                id,
                StatusCode::CONFLICT,
                Some("outreach-not-waiting"),
            )
            .await
        }
        Err(e) => page.error(s, e),
    }
}
