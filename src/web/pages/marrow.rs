//! Marrow donors' adverse events in the browser: the form that records or changes one (from
//! the case page), and the list across one's cases with its filters and the registry's CSV.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::cases::options;
use super::form::{self, blank_none, Blank, FormData, Kind};
use super::view::{filtered_href, Page};
use crate::domain::adverse_events::{self, AdverseEventFilter, ExportFilter};
use crate::domain::from_json;
use crate::domain::types::Role;
use crate::error::Error;
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "adverse_event_form",
        include_str!("../../../templates/adverse_event_form.hbs"),
    ),
    (
        "adverse_events",
        include_str!("../../../templates/adverse_events.hbs"),
    ),
];

/// Who records adverse events: the case's own staff.
const CARE: &[Role] = &[Role::Coordinator, Role::Supervisor];
/// Who reads the list across cases.
const READERS: &[Role] = &[Role::Coordinator, Role::Supervisor, Role::EthicsReviewer];
/// Events on one page of the list.
const PER_PAGE: i64 = 25;
/// Events on the case page (newest first; the list and the API page through the rest).
const ON_CASE_PAGE: i64 = 50;

/// The form's fields, named as the API's.
const FIELDS: &[(&str, Kind)] = &[
    ("occurred_on", Kind::Text),
    ("category", Kind::Text),
    ("grade", Kind::Int),
    ("relation", Kind::Text),
    ("outcome", Kind::Text),
    ("reported_on", Kind::Text),
    ("description", Kind::Text),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cases/{id}/adverse-events/new", get(new_form).post(create))
        .route("/adverse-events/{id}/edit", get(edit_form).post(update))
        .route("/adverse-events", get(list))
        .route("/adverse-events.csv", get(csv))
}

/// The grades as radio options, each with its number and label ("1 · mild" … "5 · death").
fn grade_options() -> Value {
    adverse_events::GRADE_LABELS
        .iter()
        .enumerate()
        .map(|(i, _)| json!({"value": (i + 1).to_string(), "key": format!("ae-grade-option-{}", i + 1)}))
        .collect()
}

fn form_options() -> Value {
    json!({
        "category": options("ae-category", adverse_events::CATEGORIES),
        "grade": grade_options(),
        "relation": options("ae-relation", adverse_events::RELATIONS),
        "outcome": options("ae-outcome", adverse_events::OUTCOMES),
    })
}

fn event_form(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    case_id: &str,
    event_id: Option<&str>,
    values: Value,
    errors: Value,
) -> Response {
    let action = match event_id {
        Some(e) => format!("/adverse-events/{e}/edit"),
        None => format!("/cases/{case_id}/adverse-events/new"),
    };
    page.render(
        s,
        status,
        "adverse_event_form",
        json!({
            "title": if event_id.is_some() { "ae-edit-title" } else { "ae-new-title" },
            "case_id": case_id,
            "action": action,
            "values": values,
            "errors": errors,
            "options": form_options(),
        }),
    )
}

async fn new_form(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    let user = match page.staff(&s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    // The case must be one the viewer may open, and a marrow case.
    match crate::domain::cases::get(&s.svc, &user.actor, &id, s.now()).await {
        Ok(c) if c.program.as_str() == "marrow" => {}
        Ok(_) => {
            return page.message(
                &s,
                StatusCode::UNPROCESSABLE_ENTITY,
                "ae-not-marrow-title",
                "ae-not-marrow-body",
            )
        }
        Err(e) => return page.error(&s, e),
    }
    let today = crate::schedule::calendar::local_date(s.svc.schedule.default_tz, s.now());
    let values = json!({"occurred_on": today.to_string()});
    event_form(&s, &page, StatusCode::OK, &id, None, values, Value::Null)
}

async fn create(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let result = match from_json(f.json(FIELDS, Blank::Omit)) {
        Ok(input) => adverse_events::create(&s.svc, &user.actor, &id, input, s.now()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => page.see_other(&s, &format!("/cases/{id}#adverse-events")),
        Err(Error::Validation(e)) if !e.contains_key("program") => event_form(
            &s,
            &page,
            StatusCode::UNPROCESSABLE_ENTITY,
            &id,
            None,
            f.values(),
            form::errors(page.lang, &e),
        ),
        Err(Error::Validation(_)) => page.message(
            &s,
            StatusCode::UNPROCESSABLE_ENTITY,
            "ae-not-marrow-title",
            "ae-not-marrow-body",
        ),
        Err(e) => page.error(&s, e),
    }
}

async fn edit_form(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    let user = match page.staff(&s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match adverse_events::get(&s.svc, &user.actor, &id, s.now()).await {
        Ok(e) => {
            let values = form::flatten(&json!(e));
            event_form(
                &s,
                &page,
                StatusCode::OK,
                &e.case_id,
                Some(&id),
                values,
                Value::Null,
            )
        }
        Err(e) => page.error(&s, e),
    }
}

async fn update(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let patch = f.json(FIELDS, Blank::Null);
    match adverse_events::update(&s.svc, &user.actor, &id, patch, s.now()).await {
        Ok(e) => page.see_other(&s, &format!("/cases/{}#adverse-events", e.case_id)),
        Err(Error::Validation(errors)) => {
            let case_id = match adverse_events::get(&s.svc, &user.actor, &id, s.now()).await {
                Ok(e) => e.case_id,
                Err(e) => return page.error(&s, e),
            };
            event_form(
                &s,
                &page,
                StatusCode::UNPROCESSABLE_ENTITY,
                &case_id,
                Some(&id),
                f.values(),
                form::errors(page.lang, &errors),
            )
        }
        Err(e) => page.error(&s, e),
    }
}

#[derive(serde::Deserialize, Default)]
struct ListQuery {
    from: Option<String>,
    to: Option<String>,
    grade: Option<String>,
    cursor: Option<String>,
}

/// The events across the viewer's cases, newest recorded first, with the registry's CSV of
/// the same dates for those who may export.
async fn list(State(s): State<AppState>, page: Page, Query(q): Query<ListQuery>) -> Response {
    let user = match page.staff(&s, READERS) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let mut errors = serde_json::Map::new();
    let grade = match blank_none(&q.grade) {
        None => None,
        Some(g) => match g.parse::<i64>() {
            Ok(n) => Some(n),
            Err(_) => {
                errors.insert(
                    "grade".into(),
                    json!(crate::web::i18n::field_message(
                        page.lang,
                        "must be a whole number"
                    )),
                );
                None
            }
        },
    };
    let filter = AdverseEventFilter {
        from: blank_none(&q.from),
        to: blank_none(&q.to),
        grade,
        limit: Some(PER_PAGE),
        cursor: blank_none(&q.cursor),
    };
    let listed = if errors.is_empty() {
        adverse_events::list(&s.svc, &user.actor, filter, s.now()).await
    } else {
        Err(Error::Validation(Default::default()))
    };
    let (code, items, next) = match listed {
        Ok(p) => (StatusCode::OK, p.items, p.next_cursor),
        Err(Error::Validation(e)) => {
            if let Value::Object(m) = form::errors(page.lang, &e) {
                errors.extend(m);
            }
            (StatusCode::UNPROCESSABLE_ENTITY, Vec::new(), None)
        }
        Err(e) => return page.error(&s, e),
    };
    let filters = [("from", &q.from), ("to", &q.to), ("grade", &q.grade)];
    let dates = [("from", &q.from), ("to", &q.to)];
    let exports = crate::policy::authorize(
        &user.actor,
        crate::policy::Action::ExportAdverseEvents,
        crate::policy::Resource::System,
    )
    .is_ok();
    let mut grades = vec![json!({"value": "", "key": "ae-grade-any"})];
    if let Value::Array(g) = grade_options() {
        grades.extend(g);
    }
    page.render(
        &s,
        code,
        "adverse_events",
        json!({
            "title": "ae-list-title",
            "items": items,
            "next": next.map(|c| filtered_href("/adverse-events", &filters, &[("cursor", &c)])),
            "first": q.cursor.is_some().then(|| filtered_href("/adverse-events", &filters, &[])),
            "csv": exports.then(|| filtered_href("/adverse-events.csv", &dates, &[])),
            "links_cases": user.actor.role != Role::EthicsReviewer,
            "values": {"from": q.from, "to": q.to, "grade": q.grade},
            "errors": errors,
            "options": {"grade": grades},
        }),
    )
}

/// The registry's report of the chosen dates, as a CSV download.
async fn csv(State(s): State<AppState>, page: Page, Query(q): Query<ListQuery>) -> Response {
    let user = match page.staff(&s, READERS) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let filter = ExportFilter {
        from: blank_none(&q.from),
        to: blank_none(&q.to),
    };
    match adverse_events::export(&s.svc, &user.actor, filter, "csv", s.now()).await {
        Ok(rows) => crate::web::api::marrow::csv_response(adverse_events::csv(&rows)),
        Err(Error::Validation(_)) => list(State(s), page, Query(q)).await,
        Err(e) => page.error(&s, e),
    }
}

/// What the case page shows of a marrow case: the dates after the collection and its adverse
/// events; `null` for other programmes and erased cases.
pub async fn case_section(
    s: &AppState,
    actor: &crate::policy::Actor,
    case: &crate::domain::cases::CaseView,
) -> crate::error::Result<Value> {
    use crate::schedule::marrow;
    let Some(donation) = case
        .donation
        .as_ref()
        .filter(|_| case.program.as_str() == "marrow")
    else {
        return Ok(Value::Null);
    };
    let events = adverse_events::list_for_case(
        &s.svc,
        actor,
        &case.id,
        adverse_events::CasePageFilter {
            limit: Some(ON_CASE_PAGE),
            cursor: None,
        },
        s.now(),
    )
    .await?;
    Ok(json!({
        "blood_until": marrow::blood_until(&donation.kind, donation.date),
        "second_window_until": marrow::second_window_closes(&donation.kind, donation.date),
        "events": events.items,
        "more": events.next_cursor.is_some(),
    }))
}
