//! Reading the audit log in the browser: entries filtered by case, actor, action and time
//! (admins and ethics reviewers all of it, supervisors their region's), the chain's
//! verification on demand with the newest signed checkpoint, and the break-glass grants with
//! who, when, why and what was opened while each lasted.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::form::{self, blank_none, Blank, FormData, Kind};
use super::view::Page;
use crate::domain::audit_view::{self, AuditFilter};
use crate::domain::break_glass::{self, BreakGlassReviewInput};
use crate::domain::cases::{self, BreakGlassView};
use crate::domain::from_json;
use crate::domain::types::Role;
use crate::error::Error;
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[
    ("audit", include_str!("../../../templates/audit.hbs")),
    (
        "break_glass_review",
        include_str!("../../../templates/break_glass_review.hbs"),
    ),
    (
        "break_glass_grant",
        include_str!("../../../templates/break_glass_grant.hbs"),
    ),
];

const READERS: &[Role] = &[Role::Admin, Role::EthicsReviewer, Role::Supervisor];
const REVIEWERS: &[Role] = &[Role::EthicsReviewer, Role::Supervisor];
const PER_PAGE: i64 = 50;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/audit", get(list))
        .route("/ethics/break-glass", get(break_glass))
        .route("/ethics/break-glass/{id}", get(grant_page))
        .route("/ethics/break-glass/{id}/review", post(review_grant))
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
    /// `1`: only the uses still waiting for a reviewer's word.
    unreviewed: Option<String>,
}

/// A grant as the pages show it: the person's name, what they opened while it lasted (a link
/// to the audit entries), and the newest review in words.
fn grant_item(g: &BreakGlassView, names: &HashMap<String, String>) -> Value {
    let opened = super::view::query_href("/audit")
        .append_pair("case_id", &g.case_id)
        .append_pair("actor_id", &g.user_id)
        .append_pair("from", &g.granted_at.to_rfc3339())
        .append_pair("to", &g.expires_at.to_rfc3339())
        .finish();
    let mut v = json!(g);
    v["user_name"] = json!(names.get(&g.user_id));
    v["opened_href"] = json!(opened);
    v["latest"] = json!(g.reviews.last());
    v
}

/// Every break-glass grant, newest first: who, when, why, what they opened while it lasted,
/// and what reviewers said; `unreviewed=1` keeps those waiting for a reviewer.
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
    let unreviewed = q.unreviewed.as_deref() == Some("1");
    let grants = match cases::list_break_glass(
        &s.svc,
        &user.actor,
        None,
        unreviewed,
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
    let items: Vec<Value> = grants.items.iter().map(|g| grant_item(g, &names)).collect();
    let here = |cursor: Option<&str>| {
        let mut href = super::view::query_href("/ethics/break-glass");
        if unreviewed {
            href.append_pair("unreviewed", "1");
        }
        if let Some(c) = cursor {
            href.append_pair("cursor", c);
        }
        href.finish()
    };
    page.render(
        &s,
        StatusCode::OK,
        "break_glass_review",
        json!({
            "title": "break-glass-review-title",
            "items": items,
            "unreviewed": unreviewed,
            "next": grants.next_cursor.as_deref().map(|c| here(Some(c))),
            "first": q.cursor.is_some().then(|| here(None)),
        }),
    )
}

/// The review form's fields, by their API names.
const GRANT_REVIEW_FIELDS: &[(&str, Kind)] = &[("decision", Kind::Text), ("note", Kind::Text)];

async fn grant_page(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    show_grant(&s, &page, &id, StatusCode::OK, Value::Null, Value::Null).await
}

/// One break-glass use: who, when, why, what was opened, every review, and (for ethics
/// reviewers) the form to acknowledge it or raise a concern.
async fn show_grant(
    s: &AppState,
    page: &Page,
    id: &str,
    status: StatusCode,
    values: Value,
    errors: Value,
) -> Response {
    let user = match page.staff(s, REVIEWERS) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let g = match cases::get_break_glass(&s.svc, &user.actor, id, s.now()).await {
        Ok(g) => g,
        Err(e) => return page.error(s, e),
    };
    let names = match display_names(s, std::iter::once(g.user_id.as_str())).await {
        Ok(n) => n,
        Err(e) => return page.error(s, e),
    };
    page.render(
        s,
        status,
        "break_glass_grant",
        json!({
            "title": "break-glass-grant-title",
            "g": grant_item(&g, &names),
            "can_review": user.actor.role == Role::EthicsReviewer,
            "options": {"decision": super::cases::options("break-glass-decision", break_glass::DECISIONS)},
            "values": values,
            "errors": errors,
        }),
    )
}

async fn review_grant(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let done = match from_json::<BreakGlassReviewInput>(f.json(GRANT_REVIEW_FIELDS, Blank::Omit)) {
        Ok(input) => break_glass::review(&s.svc, &user.actor, &id, input, s.now()).await,
        Err(e) => Err(e),
    };
    match done {
        Ok(_) => page.see_other(&s, &format!("/ethics/break-glass/{id}")),
        Err(Error::Validation(e)) => {
            let errors = form::errors(page.lang, &e);
            let code = StatusCode::UNPROCESSABLE_ENTITY;
            show_grant(&s, &page, &id, code, f.values(), errors).await
        }
        Err(e) => page.error(&s, e),
    }
}
