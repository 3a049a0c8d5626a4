//! The outreach queue: the messages that need a person (held, dead, failed) in the caller's
//! cases, through the domain's `attention`, which decides scope and validates the filter.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::form;
use super::view::Page;
use crate::domain::outreach::{self, AttentionFilter};
use crate::domain::types::Role;
use crate::error::Error;
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[(
    "outreach_queue",
    include_str!("../../../templates/outreach_queue.hbs"),
)];

const CARE: &[Role] = &[Role::Coordinator, Role::Supervisor];
const PER_PAGE: i64 = 50;

pub fn routes() -> Router<AppState> {
    Router::new().route("/outreach", get(queue))
}

#[derive(Deserialize, Default)]
struct QueueQuery {
    status: Option<String>,
    cursor: Option<String>,
}

fn blank_none(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
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
    let next_href = next.map(|c| {
        let mut ser = form_urlencoded::Serializer::new(String::from("/outreach?"));
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
