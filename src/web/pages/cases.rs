//! Cases: the list with exact search, the case page with one timeline of everything, its
//! printable summary, creating and editing a case and its contacts, and break-glass.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::form::{self, blank_none, Blank, FormData, Kind};
use super::view::{word, Page};
use crate::domain::cases::{self, CaseFilter, CaseView};
use crate::domain::consents::{self, ConsentFilter};
use crate::domain::contacts;
use crate::domain::findings::{self, FindingFilter};
use crate::domain::outreach::{self, OutreachFilter};
use crate::domain::tasks::{self, TaskFilter};
use crate::domain::types::{self, Channel, Language, Program, Relationship, Role, Sex};
use crate::domain::{audit_view, from_json};
use crate::error::{Error, Result};
use crate::web::i18n;
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "cases_list",
        include_str!("../../../templates/cases_list.hbs"),
    ),
    (
        "case_show",
        include_str!("../../../templates/case_show.hbs"),
    ),
    (
        "case_summary",
        include_str!("../../../templates/case_summary.hbs"),
    ),
    (
        "case_form",
        include_str!("../../../templates/case_form.hbs"),
    ),
    (
        "contact_form",
        include_str!("../../../templates/contact_form.hbs"),
    ),
    (
        "break_glass",
        include_str!("../../../templates/break_glass.hbs"),
    ),
];

/// Who works with cases in the browser.
const CARE: &[Role] = &[Role::Coordinator, Role::Supervisor];
/// Cases on one page of the list.
const PER_PAGE: i64 = 25;
/// Items of each kind on the case page (newest first; the API pages through the rest).
const ON_CASE_PAGE: i64 = 100;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/cases", get(list))
        .route("/cases/new", get(new_form).post(create))
        .route("/cases/{id}", get(show))
        .route("/cases/{id}/summary", get(summary))
        .route("/cases/{id}/edit", get(edit_form).post(update))
        .route("/cases/{id}/break-glass", post(break_glass))
        .route(
            "/cases/{id}/contacts/new",
            get(new_contact_form).post(create_contact),
        )
        .route(
            "/contacts/{id}/edit",
            get(edit_contact_form).post(update_contact),
        )
}

/// `[{value, key}]` for a select whose words are `prefix-value` in the catalogue.
pub fn options(prefix: &str, values: &[&str]) -> Value {
    values
        .iter()
        .map(|v| json!({"value": v, "key": format!("{prefix}-{}", v.replace('_', "-"))}))
        .collect()
}

fn case_options() -> Value {
    let kinds: Vec<&str> = Program::ALL
        .iter()
        .flat_map(|p| p.donation_kinds().iter().copied())
        .collect();
    json!({
        "program": options("program", &Program::ALL.iter().map(|p| p.as_str()).collect::<Vec<_>>()),
        "sex": options("sex", &Sex::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>()),
        "kind": options("donation-kind", &kinds),
        "language": options("language", &Language::ALL.iter().map(|l| l.as_str()).collect::<Vec<_>>()),
        "status": options("case-status", &["open", "closed"]),
        "relationship": options("relationship", &Relationship::ALL.iter().map(|r| r.as_str()).collect::<Vec<_>>()),
        "channel": options("channel", &Channel::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>()),
    })
}

#[derive(serde::Deserialize, Default)]
struct ListQuery {
    q: Option<String>,
    program: Option<String>,
    status: Option<String>,
    phone: Option<String>,
    national_id: Option<String>,
    name: Option<String>,
    cursor: Option<String>,
}

/// What a single search box holds: a phone number, a national ID or a name, each searched
/// exactly (the store keeps blind indexes, never the values).
fn classify(q: &str) -> (&'static str, String) {
    let digits = types::normalise_phone(q);
    let compact: String = q.chars().filter(|c| !c.is_whitespace()).collect();
    let id_like = compact.len() == 18
        && compact[..17].chars().all(|c| c.is_ascii_digit())
        && compact[17..]
            .chars()
            .all(|c| c.is_ascii_digit() || c == 'x' || c == 'X');
    if id_like {
        ("national_id", compact)
    } else if digits.len() >= 5 && q.chars().all(|c| c.is_ascii_digit() || " +-()".contains(c)) {
        ("phone", q.trim().to_string())
    } else {
        ("name", q.trim().to_string())
    }
}

async fn list(State(s): State<AppState>, page: Page, Query(q): Query<ListQuery>) -> Response {
    let user = match page.staff(&s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let mut filter = CaseFilter {
        program: blank_none(&q.program),
        status: blank_none(&q.status),
        phone: blank_none(&q.phone),
        national_id: blank_none(&q.national_id),
        name: blank_none(&q.name),
        limit: Some(PER_PAGE),
        cursor: blank_none(&q.cursor),
    };
    if let Some(term) = blank_none(&q.q) {
        match classify(&term) {
            ("national_id", v) => filter.national_id = Some(v),
            ("phone", v) => filter.phone = Some(v),
            (_, v) => filter.name = Some(v),
        }
    }
    let values = json!({
        "q": q.q, "program": q.program, "status": q.status, "phone": q.phone,
        "national_id": q.national_id, "name": q.name,
    });
    let searched = filter.phone.is_some() || filter.national_id.is_some() || filter.name.is_some();
    let (status, cases, next, errors) =
        match cases::list(&s.svc, &user.actor, filter, s.now()).await {
            Ok(p) => (StatusCode::OK, p.items, p.next_cursor, Value::Null),
            Err(Error::Validation(e)) => {
                // A search box error belongs to the box the person typed in.
                let mut e = e;
                if q.q.is_some() {
                    for k in ["phone", "national_id", "name"] {
                        if let Some(m) = e.remove(k) {
                            e.insert("q".into(), m);
                        }
                    }
                }
                (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Vec::new(),
                    None,
                    form::errors(page.lang, &e),
                )
            }
            Err(e) => return page.error(&s, e),
        };
    let filters = [
        ("q", &q.q),
        ("program", &q.program),
        ("status", &q.status),
        ("phone", &q.phone),
        ("national_id", &q.national_id),
        ("name", &q.name),
    ];
    let next_href = next.map(|c| super::view::filtered_href("/cases", &filters, &[("cursor", &c)]));
    page.render(
        &s,
        status,
        "cases_list",
        json!({
            "title": "cases-title",
            "cases": cases,
            "next": next_href,
            "first_page": q.cursor.is_some(),
            "searched": searched,
            "values": values,
            "errors": errors,
            "options": case_options(),
            "can_create": true,
        }),
    )
}

const CASE_FIELDS: &[(&str, Kind)] = &[
    ("program", Kind::Text),
    ("region", Kind::Text),
    ("donor.full_name", Kind::Text),
    ("donor.sex", Kind::Text),
    ("donor.birth_date", Kind::Text),
    ("donor.national_id", Kind::Text),
    ("donor.phone", Kind::Text),
    ("donor.email", Kind::Text),
    ("donor.address", Kind::Text),
    ("donor.deceased", Kind::Bool),
    ("donor.death_date", Kind::Text),
    ("donor.language", Kind::Text),
    ("donor.timezone", Kind::Text),
    ("donation.date", Kind::Text),
    ("donation.kind", Kind::Text),
    ("donation.hospital", Kind::Text),
    ("notes", Kind::Text),
];

/// Editing: the programme is fixed once a case exists; the status can change.
const CASE_EDIT_FIELDS: &[(&str, Kind)] = &[
    ("status", Kind::Text),
    ("donor.full_name", Kind::Text),
    ("donor.sex", Kind::Text),
    ("donor.birth_date", Kind::Text),
    ("donor.national_id", Kind::Text),
    ("donor.phone", Kind::Text),
    ("donor.email", Kind::Text),
    ("donor.address", Kind::Text),
    ("donor.deceased", Kind::Bool),
    ("donor.death_date", Kind::Text),
    ("donor.language", Kind::Text),
    ("donor.timezone", Kind::Text),
    ("donation.date", Kind::Text),
    ("donation.kind", Kind::Text),
    ("donation.hospital", Kind::Text),
    ("notes", Kind::Text),
];

fn case_form(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    case: Option<&CaseView>,
    values: Value,
    errors: Value,
) -> Response {
    // Supervisors choose the region; so does a coordinator whose account has none.
    let is_supervisor = page
        .user
        .as_ref()
        .is_some_and(|u| u.actor.role == Role::Supervisor || u.actor.region.is_none());
    page.render(
        s,
        status,
        "case_form",
        json!({
            "title": if case.is_some() { "case-edit-title" } else { "case-new-title" },
            "case": case,
            "action": case.map(|c| format!("/cases/{}/edit", c.id)).unwrap_or_else(|| "/cases/new".into()),
            "values": values,
            "errors": errors,
            "options": case_options(),
            "ask_region": is_supervisor && case.is_none(),
        }),
    )
}

async fn new_form(State(s): State<AppState>, page: Page) -> Response {
    if let Err(r) = page.staff(&s, CARE) {
        return r;
    }
    case_form(&s, &page, StatusCode::OK, None, json!({}), Value::Null)
}

async fn create(State(s): State<AppState>, page: Page, f: FormData) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let body = f.json(CASE_FIELDS, Blank::Omit);
    let result = match from_json(body) {
        Ok(input) => cases::create(&s.svc, &user.actor, input, s.now()).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(c) => page.see_other(&s, &format!("/cases/{}", c.id)),
        Err(Error::Validation(e)) => case_form(
            &s,
            &page,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            f.values(),
            form::errors(page.lang, &e),
        ),
        Err(e) => page.error(&s, e),
    }
}

async fn edit_form(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    let user = match page.staff(&s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match cases::get(&s.svc, &user.actor, &id, s.now()).await {
        Ok(c) => {
            let values = form::flatten(&json!({
                "status": c.status, "donor": c.donor, "donation": c.donation, "notes": c.notes,
            }));
            case_form(&s, &page, StatusCode::OK, Some(&c), values, Value::Null)
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
    let patch = f.json(CASE_EDIT_FIELDS, Blank::Null);
    match cases::update(&s.svc, &user.actor, &id, patch, s.now()).await {
        Ok(c) => page.see_other(&s, &format!("/cases/{}", c.id)),
        Err(Error::Validation(e)) => {
            let case = cases::get(&s.svc, &user.actor, &id, s.now()).await.ok();
            case_form(
                &s,
                &page,
                StatusCode::UNPROCESSABLE_ENTITY,
                case.as_ref(),
                f.values(),
                form::errors(page.lang, &e),
            )
        }
        Err(e) => page.error(&s, e),
    }
}

/// Everything the case page shows, read with the viewer's own rights.
struct CaseBundle {
    case: CaseView,
    consents: Vec<consents::ConsentView>,
    tasks: Vec<tasks::TaskView>,
    outreach: Vec<outreach::OutreachView>,
    findings: Vec<findings::FindingView>,
    /// Views of the case with the viewer's display name.
    opened_by: Vec<(audit_view::AuditView, String)>,
}

/// A listing the role may not see is an empty one on this page (the API says why).
fn or_empty<T>(r: Result<crate::domain::Page<T>>) -> Result<Vec<T>> {
    match r {
        Ok(p) => Ok(p.items),
        Err(Error::Forbidden) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

async fn bundle(s: &AppState, page: &Page, id: &str) -> Result<CaseBundle> {
    let actor = &page.user.as_ref().ok_or(Error::Unauthenticated)?.actor;
    let now = s.now();
    let case = cases::get(&s.svc, actor, id, now).await?;
    let consents = or_empty(
        consents::list(
            &s.svc,
            actor,
            ConsentFilter {
                case_id: Some(id.into()),
                limit: Some(ON_CASE_PAGE),
                ..Default::default()
            },
            now,
        )
        .await,
    )?;
    let tasks = or_empty(
        tasks::list(
            &s.svc,
            actor,
            TaskFilter {
                case_id: Some(id.into()),
                limit: Some(ON_CASE_PAGE),
                ..Default::default()
            },
            now,
        )
        .await,
    )?;
    let outreach = or_empty(
        outreach::case_outreach(
            &s.svc,
            actor,
            id,
            OutreachFilter {
                limit: Some(ON_CASE_PAGE),
                cursor: None,
            },
            now,
        )
        .await,
    )?;
    let findings = or_empty(
        findings::list(
            &s.svc,
            actor,
            FindingFilter {
                case_id: Some(id.into()),
                limit: Some(ON_CASE_PAGE),
                ..Default::default()
            },
            now,
        )
        .await,
    )?;
    // Supervisors also see who opened the case.
    let opened_by = if actor.role == Role::Supervisor {
        or_empty(
            audit_view::list(
                &s.svc,
                actor,
                audit_view::AuditFilter {
                    case_id: Some(id.into()),
                    action: Some("case.view".into()),
                    limit: Some(ON_CASE_PAGE),
                    ..Default::default()
                },
                now,
            )
            .await,
        )?
    } else {
        Vec::new()
    };
    let mut named = Vec::with_capacity(opened_by.len());
    let mut known: std::collections::HashMap<String, String> = Default::default();
    for a in opened_by {
        let id = a.actor_id.clone().unwrap_or_default();
        if !known.contains_key(&id) {
            let name = match s.svc.store.user_by_id(&id).await? {
                Some(u) => u.display_name,
                None => String::new(),
            };
            known.insert(id.clone(), name);
        }
        named.push((a, known[&id].clone()));
    }
    let opened_by = named;
    Ok(CaseBundle {
        case,
        consents,
        tasks,
        outreach,
        findings,
        opened_by,
    })
}

/// One line of the timeline, its words in the page's language.
fn entry(
    lang: &str,
    at: DateTime<Utc>,
    key: &str,
    args: &[(&str, Value)],
    href: Option<String>,
) -> Value {
    json!({"at": at, "text": i18n::text(lang, key, args), "href": href})
}

/// One timeline of the case, newest first: the case, consents, tasks, messages, findings and
/// (for supervisors) who opened it.
fn timeline(lang: &str, b: &CaseBundle, names: &serde_json::Map<String, Value>) -> Vec<Value> {
    let who = |id: &str| {
        let name = names.get(id).and_then(Value::as_str).unwrap_or(id);
        json!(name)
    };
    let w = |prefix: &str, v: &str| json!(word(lang, prefix, v));
    let mut items = vec![entry(
        lang,
        b.case.created_at,
        "timeline-case-opened",
        &[],
        None,
    )];
    for c in &b.consents {
        let key = if c.status == "withdrawal" {
            "timeline-consent-withdrawn"
        } else {
            "timeline-consent-given"
        };
        items.push(entry(
            lang,
            c.signed_at,
            key,
            &[
                ("kind", w("consent-kind", &c.kind)),
                ("who", who(&c.given_by)),
            ],
            None,
        ));
    }
    for t in &b.tasks {
        let (at, key) = match (t.status.as_str(), t.completed_at) {
            ("done", Some(at)) => (at, "timeline-task-done"),
            ("cancelled", _) => (t.due_at, "timeline-task-cancelled"),
            _ => (t.due_at, "timeline-task-due"),
        };
        let outcome = t
            .outcome
            .as_deref()
            .map(|o| w("outcome", o))
            .unwrap_or(json!(""));
        items.push(entry(
            lang,
            at,
            key,
            &[("kind", w("task-kind", &t.kind)), ("outcome", outcome)],
            Some(format!("/tasks/{}", t.id)),
        ));
    }
    for m in &b.outreach {
        items.push(entry(
            lang,
            m.sent_at.unwrap_or(m.due_at),
            "timeline-message",
            &[
                ("template", w("template", &m.template)),
                ("status", w("message-status", &m.status)),
                ("who", who(&m.recipient)),
            ],
            Some(format!("/outreach/{}", m.id)),
        ));
    }
    for f in &b.findings {
        let rule = w("rule", &f.rule);
        items.push(entry(
            lang,
            f.opened_at,
            "timeline-finding-opened",
            &[("rule", rule.clone())],
            None,
        ));
        if let Some(at) = f.closed_at {
            items.push(entry(
                lang,
                at,
                "timeline-finding-closed",
                &[("rule", rule)],
                None,
            ));
        }
    }
    for (a, name) in &b.opened_by {
        let key = if a.break_glass {
            "timeline-opened-by-break-glass"
        } else {
            "timeline-opened-by"
        };
        let role = w("role", a.actor_role.as_deref().unwrap_or(""));
        items.push(entry(
            lang,
            a.at,
            key,
            &[("who", json!(name)), ("role", role)],
            None,
        ));
    }
    items.sort_by(|a, b| b["at"].as_str().cmp(&a["at"].as_str()));
    items
}

fn names_of(case: &CaseView) -> serde_json::Map<String, Value> {
    let mut names = serde_json::Map::new();
    if let Some(d) = &case.donor {
        names.insert("donor".into(), json!(d.full_name));
    }
    for c in case.contacts.iter().flatten() {
        names.insert(c.id.clone(), json!(c.full_name));
    }
    names
}

/// The viewer's live break-glass grant on the case: minutes left.
async fn break_glass_left(s: &AppState, page: &Page, id: &str) -> Option<i64> {
    let user = page.user.as_ref()?;
    let now = s.now();
    let grants = s
        .svc
        .store
        .list_break_glass(None, Some(id), false, None, 20)
        .await
        .ok()?;
    grants
        .iter()
        .filter(|g| g.user_id == user.actor.user_id && g.expires_at > now)
        .map(|g| (g.expires_at - now).num_minutes().max(1))
        .max()
}

fn break_glass_form(
    s: &AppState,
    page: &Page,
    id: &str,
    status: StatusCode,
    values: Value,
    errors: Value,
) -> Response {
    page.render(
        s,
        status,
        "break_glass",
        json!({"title": "break-glass-title", "case_id": id, "values": values, "errors": errors}),
    )
}

async fn show(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    let user = match page.staff(&s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let b = match bundle(&s, &page, &id).await {
        Ok(b) => b,
        // A coordinator may open a case outside their assignments by stating why.
        Err(Error::NotFound)
            if user.actor.role == Role::Coordinator && crate::domain::is_id(&id) =>
        {
            return break_glass_form(
                &s,
                &page,
                &id,
                StatusCode::NOT_FOUND,
                json!({}),
                Value::Null,
            )
        }
        Err(e) => return page.error(&s, e),
    };
    let names = names_of(&b.case);
    let timeline = timeline(page.lang, &b, &names);
    let upcoming: Vec<&tasks::TaskView> =
        b.tasks.iter().filter(|t| t.status == "scheduled").collect();
    let open_findings: Vec<&findings::FindingView> =
        b.findings.iter().filter(|f| f.status == "open").collect();
    let outreach: Vec<Value> = b
        .outreach
        .iter()
        .map(|m| {
            let mut v = json!(m);
            v["recipient_name"] = json!(names
                .get(&m.recipient)
                .cloned()
                .unwrap_or(json!(m.recipient)));
            v
        })
        .collect();
    let consents: Vec<Value> = b
        .consents
        .iter()
        .map(|c| {
            let mut v = json!(c);
            v["given_by_name"] =
                json!(names.get(&c.given_by).cloned().unwrap_or(json!(c.given_by)));
            v
        })
        .collect();
    let left = break_glass_left(&s, &page, &id).await;
    let marrow = match super::marrow::case_section(&s, &user.actor, &b.case).await {
        Ok(m) => m,
        Err(e) => return page.error(&s, e),
    };
    let memorials = match super::memorials::case_section(&s, &user.actor, &b.case.id).await {
        Ok(m) => m,
        Err(e) => return page.error(&s, e),
    };
    let correspondence =
        match super::correspondence::case_section(&s, &user.actor, &b.case.id).await {
            Ok(c) => c,
            Err(e) => return page.error(&s, e),
        };
    page.render(
        &s,
        StatusCode::OK,
        "case_show",
        json!({
            "title": "case-title",
            "case": b.case,
            "consents": consents,
            "tasks": upcoming,
            "all_tasks": b.tasks.len(),
            "outreach": outreach,
            "findings": open_findings,
            "timeline": timeline,
            "break_glass_minutes": left,
            "is_supervisor": user.actor.role == Role::Supervisor,
            "marrow": marrow,
            "memorials": memorials,
            "correspondence": correspondence,
        }),
    )
}

async fn summary(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    if let Err(r) = page.staff(&s, CARE) {
        return r;
    }
    let b = match bundle(&s, &page, &id).await {
        Ok(b) => b,
        Err(e) => return page.error(&s, e),
    };
    let upcoming: Vec<&tasks::TaskView> =
        b.tasks.iter().filter(|t| t.status == "scheduled").collect();
    let active: Vec<&consents::ConsentView> =
        b.consents.iter().filter(|c| c.status == "active").collect();
    page.render(
        &s,
        StatusCode::OK,
        "case_summary",
        json!({"title": "summary-title", "case": b.case, "tasks": upcoming, "consents": active,
               "printed_at": s.now()}),
    )
}

async fn break_glass(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let reason = f.get("reason").unwrap_or_default();
    match cases::break_glass(
        &s.svc,
        &user.actor,
        &id,
        reason,
        f.text("totp").as_deref(),
        s.now(),
    )
    .await
    {
        Ok(_) => page.see_other(&s, &format!("/cases/{id}")),
        Err(Error::Validation(e)) => break_glass_form(
            &s,
            &page,
            &id,
            StatusCode::UNPROCESSABLE_ENTITY,
            f.values(),
            form::errors(page.lang, &e),
        ),
        Err(Error::Conflict { .. }) => page.see_other(&s, &format!("/cases/{id}")),
        Err(e) => page.error(&s, e),
    }
}

const CONTACT_FIELDS: &[(&str, Kind)] = &[
    ("full_name", Kind::Text),
    ("relationship", Kind::Text),
    ("phone", Kind::Text),
    ("email", Kind::Text),
    ("wechat_id", Kind::Text),
    ("address", Kind::Text),
    ("language", Kind::Text),
    ("timezone", Kind::Text),
    ("preferred_channel", Kind::Text),
    ("opted_out", Kind::Bool),
    ("do_not_contact_until", Kind::Text),
    ("minor", Kind::Bool),
    ("deceased", Kind::Bool),
];

#[allow(clippy::too_many_arguments)]
fn contact_form(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    case_id: &str,
    contact_id: Option<&str>,
    values: Value,
    errors: Value,
) -> Response {
    let action = match contact_id {
        Some(c) => format!("/contacts/{c}/edit"),
        None => format!("/cases/{case_id}/contacts/new"),
    };
    page.render(
        s,
        status,
        "contact_form",
        json!({
            "title": if contact_id.is_some() { "contact-edit-title" } else { "contact-new-title" },
            "case_id": case_id,
            "action": action,
            "values": values,
            "errors": errors,
            "options": case_options(),
            "default_timezone": s.default_timezone.as_ref(),
        }),
    )
}

async fn new_contact_form(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
) -> Response {
    let user = match page.staff(&s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    // The case must be one the viewer may open.
    if let Err(e) = cases::get(&s.svc, &user.actor, &id, s.now()).await {
        return page.error(&s, e);
    }
    let values = json!({"language": "zh-CN", "preferred_channel": "letter",
                        "timezone": s.default_timezone.as_ref()});
    contact_form(&s, &page, StatusCode::OK, &id, None, values, Value::Null)
}

async fn create_contact(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let body = f.json(CONTACT_FIELDS, Blank::Omit);
    let result = match from_json(body) {
        Ok(input) => {
            contacts::create(
                &s.svc,
                &user.actor,
                &id,
                input,
                &s.default_timezone,
                s.now(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => page.see_other(&s, &format!("/cases/{id}#contacts")),
        Err(Error::Validation(e)) => contact_form(
            &s,
            &page,
            StatusCode::UNPROCESSABLE_ENTITY,
            &id,
            None,
            f.values(),
            form::errors(page.lang, &e),
        ),
        Err(e) => page.error(&s, e),
    }
}

/// The contact and its case, if the viewer may open the case.
async fn contact_of(s: &AppState, page: &Page, contact_id: &str) -> Result<contacts::ContactView> {
    let actor = &page.user.as_ref().ok_or(Error::Unauthenticated)?.actor;
    let row = s
        .svc
        .store
        .contact_by_id(contact_id)
        .await?
        .ok_or(Error::NotFound)?;
    let case = cases::get(&s.svc, actor, &row.case_id, s.now()).await?;
    case.contacts
        .into_iter()
        .flatten()
        .find(|c| c.id == contact_id)
        .ok_or(Error::NotFound)
}

async fn edit_contact_form(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = page.staff(&s, CARE) {
        return r;
    }
    match contact_of(&s, &page, &id).await {
        Ok(c) => {
            let values = form::flatten(&json!(c));
            contact_form(
                &s,
                &page,
                StatusCode::OK,
                &c.case_id,
                Some(&id),
                values,
                Value::Null,
            )
        }
        Err(e) => page.error(&s, e),
    }
}

async fn update_contact(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let patch = f.json(CONTACT_FIELDS, Blank::Null);
    match contacts::update(
        &s.svc,
        &user.actor,
        &id,
        patch,
        &s.default_timezone,
        s.now(),
    )
    .await
    {
        Ok(c) => page.see_other(&s, &format!("/cases/{}#contacts", c.case_id)),
        Err(Error::Validation(e)) => {
            let case_id = match contact_of(&s, &page, &id).await {
                Ok(c) => c.case_id,
                Err(e) => return page.error(&s, e),
            };
            contact_form(
                &s,
                &page,
                StatusCode::UNPROCESSABLE_ENTITY,
                &case_id,
                Some(&id),
                f.values(),
                form::errors(page.lang, &e),
            )
        }
        Err(e) => page.error(&s, e),
    }
}

#[cfg(test)]
mod tests {
    use super::classify;

    #[test]
    fn one_search_box_finds_phone_national_id_or_name() {
        assert_eq!(classify("138 0013 8000").0, "phone");
        assert_eq!(classify("11010519491231002X").0, "national_id");
        assert_eq!(classify("王芳").0, "name");
        assert_eq!(classify("Wang 2").0, "name");
    }
}
