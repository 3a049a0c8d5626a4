//! Reading the audit log in the browser: entries filtered by case, actor, action and time
//! (admins and ethics reviewers all of it, supervisors their region's), the chain's
//! verification on demand with the newest signed checkpoint, and the break-glass grants with
//! who, when, why and what was opened while each lasted.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::form::{self, blank_none};
use super::view::Page;
use crate::domain::audit_view::{self, AuditFilter};
use crate::domain::cases;
use crate::domain::types::Role;
use crate::error::Error;
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[
    ("audit", include_str!("../../../templates/audit.hbs")),
    (
        "break_glass_review",
        include_str!("../../../templates/break_glass_review.hbs"),
    ),
];

const READERS: &[Role] = &[Role::Admin, Role::EthicsReviewer, Role::Supervisor];
const REVIEWERS: &[Role] = &[Role::EthicsReviewer, Role::Supervisor];
const PER_PAGE: i64 = 50;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit", get(list))
        .route("/ethics/break-glass", get(break_glass))
}

#[derive(Deserialize, Default)]
struct AuditQuery {
    case_id: Option<String>,
    actor_id: Option<String>,
    action: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    /// `1`: recompute the chain (a whole pass over the log, so only when asked).
    verify: Option<String>,
}

/// Display names of the accounts behind some entries, read once each.
async fn display_names<'a>(
    s: &AppState,
    ids: impl Iterator<Item = &'a str>,
) -> Result<HashMap<String, String>, Error> {
    let mut names = HashMap::new();
    for id in ids {
        if !names.contains_key(id) {
            let name = s.svc.store.user_by_id(id).await?.map(|u| u.display_name);
            names.insert(id.to_string(), name.unwrap_or_default());
        }
    }
    Ok(names)
}

async fn list(State(s): State<AppState>, page: Page, Query(q): Query<AuditQuery>) -> Response {
    let user = match page.staff(&s, READERS) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let now = s.now();
    let filter = AuditFilter {
        case_id: blank_none(&q.case_id),
        actor_id: blank_none(&q.actor_id),
        action: blank_none(&q.action),
        from: blank_none(&q.from),
        to: blank_none(&q.to),
        limit: Some(PER_PAGE),
        cursor: blank_none(&q.cursor),
    };
    let (code, items, next, errors) = match audit_view::list(&s.svc, &user.actor, filter, now).await
    {
        Ok(p) => (StatusCode::OK, p.items, p.next_cursor, Value::Null),
        Err(Error::Validation(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Vec::new(),
            None,
            form::errors(page.lang, &e),
        ),
        Err(Error::Conflict { .. }) => (
            StatusCode::CONFLICT,
            Vec::new(),
            None,
            json!({"page": page.t("audit-tampered")}),
        ),
        Err(e) => return page.error(&s, e),
    };
    let names = match display_names(&s, items.iter().filter_map(|i| i.actor_id.as_deref())).await {
        Ok(n) => n,
        Err(e) => return page.error(&s, e),
    };
    let items: Vec<Value> = items
        .iter()
        .map(|i| {
            let mut v = json!(i);
            v["actor_name"] = json!(i.actor_id.as_ref().and_then(|a| names.get(a)));
            v
        })
        .collect();
    let verification = if q.verify.as_deref() == Some("1") {
        match audit_view::verify(&s.svc, &user.actor, s.checkpoints.as_deref(), now).await {
            Ok(v) => Some(v),
            Err(e) => return page.error(&s, e),
        }
    } else {
        None
    };
    let checkpoint =
        match audit_view::latest_checkpoint(&s.svc, &user.actor, s.checkpoints.as_deref(), now)
            .await
        {
            Ok(c) => c,
            Err(e) => return page.error(&s, e),
        };
    let pairs = [
        ("case_id", &q.case_id),
        ("actor_id", &q.actor_id),
        ("action", &q.action),
        ("from", &q.from),
        ("to", &q.to),
    ];
    let href = |extra: &[(&str, &str)]| super::view::filtered_href("/audit", &pairs, extra);
    let next_href = next.map(|c| href(&[("cursor", &c)]));
    page.render(
        &s,
        code,
        "audit",
        json!({
            "title": "audit-title",
            "items": items,
            "next": next_href,
            "first_page": q.cursor.is_some(),
            "verify_href": href(&[("verify", "1")]),
            "verification": verification,
            "checkpoint": checkpoint,
            "values": {"case_id": q.case_id, "actor_id": q.actor_id, "action": q.action,
                       "from": q.from, "to": q.to},
            "errors": errors,
        }),
    )
}

#[derive(Deserialize, Default)]
struct GrantQuery {
    cursor: Option<String>,
}

/// Every break-glass grant, newest first: who, when, why, and a link to what they opened
/// while it lasted.
async fn break_glass(
    State(s): State<AppState>,
    page: Page,
    Query(q): Query<GrantQuery>,
) -> Response {
    let user = match page.staff(&s, REVIEWERS) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let now = s.now();
    let grants = match cases::list_break_glass(
        &s.svc,
        &user.actor,
        None,
        blank_none(&q.cursor).as_deref(),
        Some(PER_PAGE),
        now,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return page.error(&s, e),
    };
    let names = match display_names(&s, grants.items.iter().map(|g| g.user_id.as_str())).await {
        Ok(n) => n,
        Err(e) => return page.error(&s, e),
    };
    let items: Vec<Value> = grants
        .items
        .iter()
        .map(|g| {
            let opened = super::view::query_href("/audit")
                .append_pair("case_id", &g.case_id)
                .append_pair("actor_id", &g.user_id)
                .append_pair("from", &g.granted_at.to_rfc3339())
                .append_pair("to", &g.expires_at.to_rfc3339())
                .finish();
            let mut v = json!(g);
            v["user_name"] = json!(names.get(&g.user_id));
            v["opened_href"] = json!(opened);
            v
        })
        .collect();
    let next = grants
        .next_cursor
        .map(|c| format!("/ethics/break-glass?cursor={c}"));
    page.render(
        &s,
        StatusCode::OK,
        "break_glass_review",
        json!({
            "title": "break-glass-review-title",
            "items": items,
            "next": next,
            "first_page": q.cursor.is_some(),
        }),
    )
}
