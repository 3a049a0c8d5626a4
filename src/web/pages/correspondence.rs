//! Letters between donor families and recipients in the browser: the queue across one's cases,
//! recording a letter and the correspondents it is exchanged with, a letter's review (the
//! original beside the proposed redaction, the version to pass on, release and withholding),
//! the printable sheet of a released letter to the recipient, and the family's own letters.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::cases::options;
use super::form::{self, blank_none, Blank, FormData, Kind};
use super::view::{filtered_href, Page};
use crate::domain::correspondence::{self, CasePageFilter, LetterFilter, LetterView};
use crate::domain::from_json;
use crate::domain::types::Role;
use crate::error::{Error, FieldErrors};
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "correspondence_queue",
        include_str!("../../../templates/correspondence_queue.hbs"),
    ),
    (
        "correspondence_new",
        include_str!("../../../templates/correspondence_new.hbs"),
    ),
    (
        "correspondence_show",
        include_str!("../../../templates/correspondence_show.hbs"),
    ),
    (
        "correspondent_edit",
        include_str!("../../../templates/correspondent_edit.hbs"),
    ),
    (
        "correspondence_print",
        include_str!("../../../templates/correspondence_print.hbs"),
    ),
    (
        "me_letters",
        include_str!("../../../templates/me_letters.hbs"),
    ),
    (
        "me_letter_new",
        include_str!("../../../templates/me_letter_new.hbs"),
    ),
];

/// Who relays letters: the case's own staff.
const CARE: &[Role] = &[Role::Coordinator, Role::Supervisor];
/// Who reads the queue (ethics reviewers: metadata only).
const READERS: &[Role] = &[Role::Coordinator, Role::Supervisor, Role::EthicsReviewer];
const PER_PAGE: i64 = 25;
/// Letters on the case page (newest first; the queue pages through the rest).
const ON_CASE_PAGE: i64 = 20;
/// Correspondents on the recording page: a case has a handful.
const CORRESPONDENTS: i64 = 50;

const LETTER_FIELDS: &[(&str, Kind)] = &[
    ("correspondent_id", Kind::Text),
    ("direction", Kind::Text),
    ("author", Kind::Text),
    ("addressee", Kind::Text),
    ("received_on", Kind::Text),
    ("text", Kind::Text),
];
const CORRESPONDENT_FIELDS: &[(&str, Kind)] = &[
    ("label", Kind::Text),
    ("role", Kind::Text),
    ("reference", Kind::Text),
    ("consented_on", Kind::Text),
    ("consent_withdrawn_on", Kind::Text),
];
const CONSENT_FIELDS: &[(&str, Kind)] = &[
    ("reference", Kind::Text),
    ("consented_on", Kind::Text),
    ("consent_withdrawn_on", Kind::Text),
];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/correspondence", get(queue))
        .route("/cases/{id}/correspondence/new", get(new_form).post(record))
        .route("/cases/{id}/correspondents/new", post(add_correspondent))
        .route(
            "/correspondents/{id}/edit",
            get(edit_correspondent).post(update_correspondent),
        )
        .route("/correspondence/{id}", get(show).post(redact))
        .route("/correspondence/{id}/release", post(release))
        .route("/correspondence/{id}/withhold", post(withhold))
        .route("/correspondence/{id}/print", get(print))
        .route("/me/letters", get(family_letters))
        .route("/me/letters/new", get(family_new).post(family_write))
}

#[derive(serde::Deserialize, Default)]
struct QueueQuery {
    status: Option<String>,
    cursor: Option<String>,
}

/// The letters of the viewer's cases, newest first, by status.
async fn queue(State(s): State<AppState>, page: Page, Query(q): Query<QueueQuery>) -> Response {
    let user = match page.staff(&s, READERS) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let filter = LetterFilter {
        status: blank_none(&q.status),
        direction: None,
        limit: Some(PER_PAGE),
        cursor: blank_none(&q.cursor),
    };
    let (code, items, next, errors) =
        match correspondence::list(&s.svc, &user.actor, filter, s.now()).await {
            Ok(p) => (StatusCode::OK, p.items, p.next_cursor, Value::Null),
            Err(Error::Validation(e)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Vec::new(),
                None,
                form::errors(page.lang, &e),
            ),
            Err(e) => return page.error(&s, e),
        };
    let filters = [("status", &q.status)];
    let mut statuses = vec![json!({"value": "", "key": "corr-filter-any"})];
    if let Value::Array(o) = options("corr-status", correspondence::STATUSES) {
        statuses.extend(o);
    }
    page.render(
        &s,
        code,
        "correspondence_queue",
        json!({
            "title": "corr-queue-title",
            "items": items,
            "next": next.map(|c| filtered_href("/correspondence", &filters, &[("cursor", &c)])),
            "first": q.cursor.is_some().then(|| filtered_href("/correspondence", &filters, &[])),
            "opens": user.actor.role != Role::EthicsReviewer,
            // Ethics reviewers follow a release to the consent that covered it.
            "oversight": user.actor.role == Role::EthicsReviewer,
            "values": {"status": q.status},
            "errors": errors,
            "options": {"status": statuses},
        }),
    )
}

/// The family side's parties of a case as options: the living donor, then each contact.
fn parties(case: &crate::domain::cases::CaseView) -> Value {
    let mut out = vec![json!({"value": "", "key": "corr-party-none"})];
    if case.donor.as_ref().is_some_and(|d| !d.deceased) {
        out.push(json!({"value": "donor", "key": "corr-party-donor"}));
    }
    for c in case.contacts.iter().flatten() {
        out.push(json!({"value": c.id, "text": c.full_name}));
    }
    Value::Array(out)
}

/// The recording page: the letter form, the correspondents with their agreement, and the form
/// that adds one.
async fn new_page(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    case_id: &str,
    values: Value,
    errors: Value,
) -> Response {
    let user = match page.staff(s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let case = match crate::domain::cases::get(&s.svc, &user.actor, case_id, s.now()).await {
        Ok(c) => c,
        Err(e) => return page.error(s, e),
    };
    let people = match correspondence::list_correspondents(
        &s.svc,
        &user.actor,
        case_id,
        CasePageFilter {
            limit: Some(CORRESPONDENTS),
            cursor: None,
        },
        s.now(),
    )
    .await
    {
        Ok(p) => p.items,
        Err(e) => return page.error(s, e),
    };
    let mut choose = vec![json!({"value": "", "key": "corr-correspondent-choose"})];
    choose.extend(
        people
            .iter()
            .map(|p| json!({"value": p.id, "text": p.label})),
    );
    page.render(
        s,
        status,
        "correspondence_new",
        json!({
            "title": "corr-new-title",
            "case_id": case_id,
            "correspondents": people,
            "values": values,
            "errors": errors,
            "options": {
                "correspondent_id": choose,
                "direction": options("corr-direction", correspondence::DIRECTIONS),
                "party": parties(&case),
                "role": options("corr-role", correspondence::ROLES),
            },
        }),
    )
}

async fn new_form(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    let today = crate::schedule::calendar::local_date(s.svc.schedule.default_tz, s.now());
    let values = json!({"received_on": today.to_string()});
    new_page(&s, &page, StatusCode::OK, &id, values, Value::Null).await
}

async fn record(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let result = match from_json(f.json(LETTER_FIELDS, Blank::Omit)) {
        Ok(input) => correspondence::record(&s.svc, &user.actor, &id, input, s.now())
            .await
            .map(|l| format!("/correspondence/{}", l.id)),
        Err(e) => Err(e),
    };
    after_new(&s, &page, &id, &f, result).await
}

async fn add_correspondent(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let result = match from_json(f.json(CORRESPONDENT_FIELDS, Blank::Omit)) {
        Ok(input) => correspondence::add_correspondent(&s.svc, &user.actor, &id, input, s.now())
            .await
            .map(|_| format!("/cases/{id}/correspondence/new#correspondents")),
        Err(e) => Err(e),
    };
    after_new(&s, &page, &id, &f, result).await
}

/// After a form of the recording page: 303 to the page `result` names, or the recording page
/// again with the refused values and their messages.
async fn after_new(
    s: &AppState,
    page: &Page,
    case_id: &str,
    f: &FormData,
    result: crate::error::Result<String>,
) -> Response {
    match result {
        Ok(to) => page.see_other(s, &to),
        Err(Error::Validation(e)) => {
            let errors = form::errors(page.lang, &e);
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            new_page(s, page, status, case_id, f.values(), errors).await
        }
        Err(e) => page.error(s, e),
    }
}

async fn edit_page(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    id: &str,
    values: Option<Value>,
    errors: Value,
) -> Response {
    let user = match page.staff(s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let c = match correspondence::get_correspondent(&s.svc, &user.actor, id, s.now()).await {
        Ok(c) => c,
        Err(e) => return page.error(s, e),
    };
    page.render(
        s,
        status,
        "correspondent_edit",
        json!({
            "title": "corr-edit-title",
            "c": c,
            "values": values.unwrap_or_else(|| form::flatten(&json!(c))),
            "errors": errors,
        }),
    )
}

async fn edit_correspondent(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
) -> Response {
    edit_page(&s, &page, StatusCode::OK, &id, None, Value::Null).await
}

async fn update_correspondent(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let patch = f.json(CONSENT_FIELDS, Blank::Null);
    match correspondence::update_correspondent(&s.svc, &user.actor, &id, patch, s.now()).await {
        Ok(c) => page.see_other(
            &s,
            &format!("/cases/{}/correspondence/new#correspondents", c.case_id),
        ),
        Err(Error::Validation(e)) => {
            let errors = form::errors(page.lang, &e);
            edit_page(
                &s,
                &page,
                StatusCode::UNPROCESSABLE_ENTITY,
                &id,
                Some(f.values()),
                errors,
            )
            .await
        }
        Err(e) => page.error(&s, e),
    }
}

/// The family side's names by party (`donor`, contact ids), for the staff's page.
fn party_names(case: &crate::domain::cases::CaseView) -> serde_json::Map<String, Value> {
    let mut names = serde_json::Map::new();
    if let Some(d) = &case.donor {
        names.insert("donor".into(), json!(d.full_name));
    }
    for c in case.contacts.iter().flatten() {
        names.insert(c.id.clone(), json!(c.full_name));
    }
    names
}

/// A letter's review page; `values` and `errors` are those of a refused form.
async fn show_page(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    id: &str,
    values: Option<Value>,
    errors: Option<&FieldErrors>,
) -> Response {
    let user = match page.staff(s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let l: LetterView = match correspondence::get(&s.svc, &user.actor, id, s.now()).await {
        Ok(l) => l,
        Err(e) => return page.error(s, e),
    };
    let case = match crate::domain::cases::get(&s.svc, &user.actor, &l.case_id, s.now()).await {
        Ok(c) => c,
        Err(e) => return page.error(s, e),
    };
    let names = party_names(&case);
    let party = l.author.as_ref().or(l.addressee.as_ref());
    let party_name = party.and_then(|p| names.get(p).cloned());
    let original = l.original_text.clone().unwrap_or_default();
    let spans = l
        .proposed_redaction
        .as_ref()
        .map(|p| p.spans.clone())
        .unwrap_or_default();
    let segments: Vec<Value> = correspondence::segments(&original, &spans)
        .into_iter()
        .map(|(text, kind)| {
            let key = kind.map(|k| {
                if k.contains('.') {
                    "corr-kind-known".to_string()
                } else {
                    format!("corr-kind-{}", k.replace('_', "-"))
                }
            });
            json!({"text": text, "kind": key})
        })
        .collect();
    let problems: Vec<Value> = l
        .release_problems
        .iter()
        .flatten()
        .map(|(field, why)| json!({"field": field, "why": crate::web::i18n::field_message(page.lang, why)}))
        .collect();
    let family_consent = !l
        .release_problems
        .as_ref()
        .is_some_and(|p| p.contains_key("consent"));
    let correspondent =
        match correspondence::get_correspondent(&s.svc, &user.actor, &l.correspondent_id, s.now())
            .await
        {
            Ok(c) => c,
            Err(e) => return page.error(s, e),
        };
    let pending = matches!(l.status.as_str(), "received" | "redacted");
    let values = values.unwrap_or_else(|| {
        json!({
            "redacted_text": l.redacted_text.clone().or_else(|| l.proposed_redaction.as_ref().map(|p| p.text.clone())),
        })
    });
    page.render(
        s,
        status,
        "correspondence_show",
        json!({
            "title": "corr-show-title",
            "letter": l,
            "party_name": party_name,
            "segments": segments,
            "found": spans.len(),
            "proposal": l.proposed_redaction.as_ref().map(|p| p.text.clone()),
            "problems": problems,
            "family_consent": family_consent,
            "correspondent": correspondent,
            "pending": pending,
            "printable": l.status == "released" && l.direction == "to_recipient",
            "values": values,
            "errors": errors.map(|e| form::errors(page.lang, e)).unwrap_or(Value::Null),
            "options": {"reason": options("corr-withheld-reason", correspondence::WITHHELD_REASONS)},
        }),
    )
}

async fn show(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    show_page(&s, &page, StatusCode::OK, &id, None, None).await
}

/// After one of the review forms: 303 back to the letter, or the page again with the refusal.
async fn after(
    s: &AppState,
    page: &Page,
    id: &str,
    f: &FormData,
    result: crate::error::Result<LetterView>,
) -> Response {
    match result {
        Ok(_) => page.see_other(s, &format!("/correspondence/{id}")),
        Err(Error::Validation(e)) => {
            let mut values = f.values();
            if values.get("redacted_text").is_none() {
                values = Value::Null;
            }
            let values = (!values.is_null()).then_some(values);
            show_page(
                s,
                page,
                StatusCode::UNPROCESSABLE_ENTITY,
                id,
                values,
                Some(&e),
            )
            .await
        }
        Err(e) => page.error(s, e),
    }
}

async fn redact(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let result = match from_json(f.json(&[("redacted_text", Kind::Text)], Blank::Omit)) {
        Ok(input) => correspondence::redact(&s.svc, &user.actor, &id, input, s.now()).await,
        Err(e) => Err(e),
    };
    after(&s, &page, &id, &f, result).await
}

async fn release(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let result = correspondence::release(&s.svc, &user.actor, &id, s.now()).await;
    after(&s, &page, &id, &f, result).await
}

async fn withhold(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let result = match from_json(f.json(&[("reason", Kind::Text)], Blank::Omit)) {
        Ok(input) => correspondence::withhold(&s.svc, &user.actor, &id, input, s.now()).await,
        Err(e) => Err(e),
    };
    after(&s, &page, &id, &f, result).await
}

/// The printable sheet of a released letter to the recipient: label and text only.
async fn print(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    let user = match page.staff(&s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match correspondence::printable(&s.svc, &user.actor, &id, s.now()).await {
        Ok(p) => page.render(
            &s,
            StatusCode::OK,
            "correspondence_print",
            json!({"title": "corr-print-title", "sheet": p}),
        ),
        Err(e) => page.error(&s, e),
    }
}

#[derive(serde::Deserialize, Default)]
struct FamilyQuery {
    cursor: Option<String>,
    /// Set after the family's own letter was recorded.
    sent: Option<String>,
}

/// The family's letters: passed on to them, redacted, under the writer's label.
async fn family_letters(
    State(s): State<AppState>,
    page: Page,
    Query(q): Query<FamilyQuery>,
) -> Response {
    let user = match page.user() {
        Ok(u) => u,
        Err(r) => return r,
    };
    let filter = CasePageFilter {
        limit: Some(PER_PAGE),
        cursor: blank_none(&q.cursor),
    };
    match correspondence::family_letters(&s.svc, &user.actor, filter, s.now()).await {
        Ok(p) => page.render(
            &s,
            StatusCode::OK,
            "me_letters",
            json!({
                "title": "me-letters-title",
                "items": p.items,
                // A cursor is one of our ids (the domain refuses anything else): nothing to escape.
                "next": p.next_cursor.map(|c| format!("/me/letters?cursor={c}")),
                "first": q.cursor.is_some().then_some("/me/letters"),
                "sent": q.sent.is_some(),
            }),
        ),
        Err(e) => page.error(&s, e),
    }
}

/// The family's letter form: whom they may write to (labels only) and the text; with no one
/// to write to, a plain word on why.
async fn family_page(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    values: Value,
    errors: Value,
) -> Response {
    let user = match page.user() {
        Ok(u) => u,
        Err(r) => return r,
    };
    let filter = CasePageFilter {
        limit: Some(crate::domain::MAX_PAGE),
        cursor: None,
    };
    let to = match correspondence::family_correspondents(&s.svc, &user.actor, filter, s.now()).await
    {
        Ok(p) => p.items,
        Err(e) => return page.error(s, e),
    };
    let options: Vec<Value> = to
        .iter()
        .map(|p| json!({"value": p.id, "text": p.label}))
        .collect();
    page.render(
        s,
        status,
        "me_letter_new",
        json!({
            "title": "me-letter-new-title",
            "can_write": !to.is_empty(),
            "values": values,
            "errors": errors,
            "options": {"correspondent_id": options},
        }),
    )
}

async fn family_new(State(s): State<AppState>, page: Page) -> Response {
    family_page(&s, &page, StatusCode::OK, Value::Null, Value::Null).await
}

async fn family_write(State(s): State<AppState>, page: Page, f: FormData) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let fields = [("correspondent_id", Kind::Text), ("text", Kind::Text)];
    let result = match from_json(f.json(&fields, Blank::Omit)) {
        Ok(input) => correspondence::family_write(&s.svc, &user.actor, input, s.now()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => page.see_other(&s, "/me/letters?sent=1"),
        Err(Error::Validation(e)) => {
            let errors = form::errors(page.lang, &e);
            family_page(
                &s,
                &page,
                StatusCode::UNPROCESSABLE_ENTITY,
                f.values(),
                errors,
            )
            .await
        }
        Err(e) => page.error(&s, e),
    }
}

/// What the case page shows of its letters: the newest, with a link to record one.
pub async fn case_section(
    s: &AppState,
    actor: &crate::policy::Actor,
    case_id: &str,
) -> crate::error::Result<Value> {
    let letters = correspondence::list_for_case(
        &s.svc,
        actor,
        case_id,
        CasePageFilter {
            limit: Some(ON_CASE_PAGE),
            cursor: None,
        },
        s.now(),
    )
    .await?;
    Ok(json!({
        "letters": letters.items,
        "more": letters.next_cursor.is_some(),
    }))
}
