//! The ethics reviewers' pages: the findings queue, one finding with its decision, and one
//! consent with the exact document version it was given on, its signed scan and its history,
//! with the review form. Scope is the domain's: reviewers see every case's consents, supervisors
//! their region's, coordinators their own; only reviewers decide and review.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use chrono::Duration;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::cases::options;
use super::form::{self, blank_none, Blank, FormData, Kind};
use super::view::{format_date, word, Page};
use crate::domain::findings::{self, Decision, FindingFilter, FindingView};
use crate::domain::register::{self, RegisterFilter};
use crate::domain::types::{Program, Role};
use crate::domain::{attachments, consents, documents, ethics, from_json};
use crate::error::Error;
use crate::web::i18n;
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "ethics_findings",
        include_str!("../../../templates/ethics_findings.hbs"),
    ),
    (
        "ethics_finding",
        include_str!("../../../templates/ethics_finding.hbs"),
    ),
    (
        "ethics_consent",
        include_str!("../../../templates/ethics_consent.hbs"),
    ),
    (
        "ethics_register",
        include_str!("../../../templates/ethics_register.hbs"),
    ),
];

/// Who reads consents and their findings.
const READERS: &[Role] = &[Role::EthicsReviewer, Role::Supervisor, Role::Coordinator];
const PER_PAGE: i64 = 50;
/// The ages a reviewer filters by: findings waiting longer than this many days.
const AGES: &[&str] = &["7", "30", "90"];
/// The review and decision forms' fields, by their API names.
const REVIEW_FIELDS: &[(&str, Kind)] = &[("finding", Kind::Text), ("note", Kind::Text)];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ethics/findings", get(queue))
        .route("/ethics/findings/{id}", get(finding_page))
        .route("/ethics/findings/{id}/decision", post(decide))
        .route("/ethics/consents/{id}", get(consent_page))
        .route("/ethics/consents/{id}/review", post(review))
        .route("/consents/{id}/attachment", get(attachment))
        .route("/ethics/register", get(register_page))
        .route("/ethics/register.csv", get(register_csv))
}

#[derive(Deserialize, Default)]
struct QueueQuery {
    status: Option<String>,
    rule: Option<String>,
    program: Option<String>,
    age: Option<String>,
    cursor: Option<String>,
}

fn queue_options() -> Value {
    let programs: Vec<&str> = Program::ALL.iter().map(|p| p.as_str()).collect();
    let ages: Vec<Value> = AGES
        .iter()
        .map(|a| json!({"value": a, "key": format!("findings-age-{a}")}))
        .collect();
    json!({
        "status": options("finding-status", findings::STATUSES),
        "rule": options("rule", findings::RULES),
        "program": options("program", &programs),
        "age": ages,
    })
}

#[derive(Deserialize, Default)]
struct RegisterQuery {
    program: Option<String>,
    missing: Option<String>,
    cursor: Option<String>,
}

impl RegisterQuery {
    fn filter(&self, limit: Option<i64>) -> RegisterFilter {
        RegisterFilter {
            program: blank_none(&self.program),
            missing: blank_none(&self.missing),
            limit,
            cursor: blank_none(&self.cursor),
        }
    }
}

/// The consent register: coverage by programme (every required kind, with a meter) and the
/// open cases lacking a required consent, filtered by programme and by the kind they lack;
/// a CSV of the same. Reviewers see case numbers only; the case's staff get a link.
async fn register_page(
    State(s): State<AppState>,
    page: Page,
    Query(q): Query<RegisterQuery>,
) -> Response {
    let user = match page.staff(&s, READERS) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let listed = register::register(&s.svc, &user.actor, q.filter(Some(PER_PAGE)), s.now()).await;
    let (code, reg, errors) = match listed {
        Ok(r) => (StatusCode::OK, Some(r), Value::Null),
        Err(Error::Validation(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            form::errors(page.lang, &e),
        ),
        Err(e) => return page.error(&s, e),
    };
    let filters = [("program", &q.program), ("missing", &q.missing)];
    let programs: Vec<&str> = Program::ALL.iter().map(|p| p.as_str()).collect();
    let (coverage, gaps, total, next) = match &reg {
        Some(r) => (
            json!(r.coverage),
            json!(r.gaps.items),
            r.total_gaps,
            r.gaps.next_cursor.as_ref().map(|c| {
                super::view::filtered_href("/ethics/register", &filters, &[("cursor", c)])
            }),
        ),
        None => (json!([]), json!([]), 0, None),
    };
    page.render(
        &s,
        code,
        "ethics_register",
        json!({
            "title": "register-title",
            "coverage": coverage,
            "gaps": gaps,
            "total": total,
            "next": next,
            "first": q.cursor.is_some().then(|| super::view::filtered_href("/ethics/register", &filters, &[])),
            "csv": super::view::filtered_href("/ethics/register.csv", &filters, &[]),
            "links_cases": user.actor.role != Role::EthicsReviewer,
            "values": {"program": q.program, "missing": q.missing},
            "errors": errors,
            "options": {
                "program": options("program", &programs),
                "missing": options("consent-kind", register::REQUIRED_KINDS),
            },
        }),
    )
}

/// The register's gaps as a CSV download (the same filter; every matching case).
async fn register_csv(
    State(s): State<AppState>,
    page: Page,
    Query(q): Query<RegisterQuery>,
) -> Response {
    let user = match page.staff(&s, READERS) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match register::csv(
        &s.svc,
        &user.actor,
        register::RegisterCsvFilter {
            program: blank_none(&q.program),
            missing: blank_none(&q.missing),
        },
        s.now(),
    )
    .await
    {
        Ok(body) => crate::web::api::consents::register_csv_response(body),
        Err(Error::Validation(_)) => register_page(State(s), page, Query(q)).await,
        Err(e) => page.error(&s, e),
    }
}

/// The findings queue: open ones first by default, filtered by rule, programme and age.
async fn queue(State(s): State<AppState>, page: Page, Query(q): Query<QueueQuery>) -> Response {
    let user = match page.staff(&s, READERS) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let now = s.now();
    // The queue is of open findings unless the reader asks for the closed ones.
    let status = blank_none(&q.status).or_else(|| q.status.is_none().then(|| "open".into()));
    let age = blank_none(&q.age);
    let mut errors = serde_json::Map::new();
    let opened_before = match age.as_deref() {
        None => None,
        Some(a) if AGES.contains(&a) => {
            let days: i64 = a.parse().unwrap_or(0);
            Some((now - Duration::days(days)).to_rfc3339())
        }
        Some(_) => {
            errors.insert(
                "age".into(),
                json!(i18n::text(page.lang, "findings-age-invalid", &[])),
            );
            None
        }
    };
    let filter = FindingFilter {
        status: status.clone(),
        rule: blank_none(&q.rule),
        program: blank_none(&q.program),
        opened_before,
        limit: Some(PER_PAGE),
        cursor: blank_none(&q.cursor),
        ..Default::default()
    };
    let listed = if errors.is_empty() {
        findings::list(&s.svc, &user.actor, filter, now).await
    } else {
        Ok(crate::domain::Page {
            items: Vec::new(),
            next_cursor: None,
        })
    };
    let (code, items, next) = match listed {
        Ok(p) if errors.is_empty() => (StatusCode::OK, p.items, p.next_cursor),
        Ok(_) => (StatusCode::UNPROCESSABLE_ENTITY, Vec::new(), None),
        Err(Error::Validation(e)) => {
            if let Value::Object(m) = form::errors(page.lang, &e) {
                errors.extend(m);
            }
            (StatusCode::UNPROCESSABLE_ENTITY, Vec::new(), None)
        }
        Err(e) => return page.error(&s, e),
    };
    let items: Vec<Value> = items.iter().map(|f| item(page.lang, f, now)).collect();
    let filters = [
        ("status", &status),
        ("rule", &q.rule),
        ("program", &q.program),
        ("age", &q.age),
    ];
    let next_href =
        next.map(|c| super::view::filtered_href("/ethics/findings", &filters, &[("cursor", &c)]));
    page.render(
        &s,
        code,
        "ethics_findings",
        json!({
            "title": "findings-title",
            "items": items,
            "next": next_href,
            "first_page": q.cursor.is_some(),
            "values": {"status": status.unwrap_or_default(), "rule": q.rule, "program": q.program, "age": q.age},
            "errors": errors,
            "options": queue_options(),
        }),
    )
}

/// A finding as a list item or page shows it: the finding, what it means in plain words, and
/// how long it has waited.
fn item(lang: &str, f: &FindingView, now: chrono::DateTime<chrono::Utc>) -> Value {
    let mut v = json!(f);
    v["explain"] = json!(explain(lang, f));
    v["days_open"] = json!((now - f.opened_at).num_days().max(0));
    v
}

/// What a finding means, in the reader's words: which consent, whose, on which channel, and
/// which relatives' consent is missing.
pub fn explain(lang: &str, f: &FindingView) -> String {
    let d = findings::detail(&f.rule, &f.message);
    let kind = d
        .kind
        .as_deref()
        .map(|k| word(lang, "consent-kind", k))
        .unwrap_or_default();
    let who = match d.who.as_deref() {
        Some("donor") => i18n::text(lang, "finding-who-donor", &[]),
        _ => i18n::text(lang, "finding-who-family", &[]),
    };
    let channel = d
        .channel
        .as_deref()
        .map(|c| word(lang, "channel", c))
        .unwrap_or_default();
    let day = |s: &Option<String>| {
        s.as_deref()
            .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .map(|d| format_date(lang, d))
            .unwrap_or_default()
    };
    let sep = if lang == "en" { ", " } else { "、" };
    let missing = d
        .missing
        .iter()
        .map(|(rel, _)| word(lang, "relationship", rel))
        .collect::<Vec<_>>()
        .join(sep);
    let rule = f.rule.replace('_', "-");
    let key = match f.rule.as_str() {
        "deceased_donation_consent" if d.missing.is_empty() => {
            format!("finding-explain-{rule}-none")
        }
        "use_without_consent" | "outreach_without_consent" if d.withdrawn => {
            format!("finding-explain-{rule}-withdrawn")
        }
        _ => format!("finding-explain-{rule}"),
    };
    let text = i18n::text(
        lang,
        &key,
        &[
            ("kind", json!(kind)),
            ("who", json!(who)),
            ("channel", json!(channel)),
            ("signed", json!(day(&d.signed_on))),
            ("donated", json!(day(&d.donated_on))),
            ("missing", json!(missing)),
        ],
    );
    // A rule without its own words is named by its title.
    if text == key {
        word(lang, "rule", &f.rule)
    } else {
        text
    }
}

async fn finding_page(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    show_finding(
        &s,
        &page,
        &id,
        StatusCode::OK,
        Value::Null,
        Value::Null,
        None,
    )
    .await
}

/// One finding with the decision form (reviewers, while it is open); `notice` says why the
/// last decision was not taken.
async fn show_finding(
    s: &AppState,
    page: &Page,
    id: &str,
    status: StatusCode,
    values: Value,
    errors: Value,
    notice: Option<&str>,
) -> Response {
    let user = match page.staff(s, READERS) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let now = s.now();
    let f = match findings::get(&s.svc, &user.actor, id, now).await {
        Ok(f) => f,
        Err(e) => return page.error(s, e),
    };
    let can_decide = user.actor.role == Role::EthicsReviewer && f.status == "open";
    page.render(
        s,
        status,
        "ethics_finding",
        json!({
            "title": "finding-title",
            "f": item(page.lang, &f, now),
            "can_decide": can_decide,
            "options": {"finding": options("review-finding", ethics::FINDINGS)},
            "values": values,
            "errors": errors,
            "notice": notice,
        }),
    )
}

async fn decide(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let done = match from_json::<Decision>(f.json(REVIEW_FIELDS, Blank::Omit)) {
        Ok(d) => findings::decide(&s.svc, &user.actor, &id, d, s.now()).await,
        Err(e) => Err(e),
    };
    match done {
        Ok(()) => page.see_other(&s, &format!("/ethics/findings/{id}")),
        Err(Error::Validation(e)) => {
            let errors = form::errors(page.lang, &e);
            let code = StatusCode::UNPROCESSABLE_ENTITY;
            show_finding(&s, &page, &id, code, f.values(), errors, None).await
        }
        Err(Error::Conflict { .. }) => {
            let code = StatusCode::CONFLICT;
            let notice = Some("finding-already-closed");
            show_finding(&s, &page, &id, code, f.values(), Value::Null, notice).await
        }
        Err(e) => page.error(&s, e),
    }
}

async fn consent_page(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    show_consent(&s, &page, &id, StatusCode::OK, Value::Null, Value::Null).await
}

/// Whom a consent concerns or was given by, in words: the donor, or a relative by relationship.
fn person(lang: &str, who: &str, relationships: &HashMap<String, String>) -> String {
    match (who, relationships.get(who)) {
        ("donor", _) => i18n::text(lang, "finding-who-donor", &[]),
        (_, Some(rel)) => word(lang, "relationship", rel),
        _ => i18n::text(lang, "finding-who-family", &[]),
    }
}

/// One consent: the record, the document text of its exact version with the hash it was
/// signed under (and whether the text still matches it), the signed scan, the record it
/// withdraws or was withdrawn by, the reviews, and the review form for reviewers.
async fn show_consent(
    s: &AppState,
    page: &Page,
    id: &str,
    status: StatusCode,
    values: Value,
    errors: Value,
) -> Response {
    let user = match page.staff(s, READERS) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let now = s.now();
    let c = match consents::get(&s.svc, &user.actor, id, now).await {
        Ok(c) => c,
        Err(e) => return page.error(s, e),
    };
    let (reviews, relationships) = match tokio::try_join!(
        ethics::reviews(&s.svc, &user.actor, id, now),
        ethics::relationships(&s.svc, &user.actor, &c.case_id, now),
    ) {
        Ok(r) => r,
        Err(e) => return page.error(s, e),
    };
    let text_matches = c
        .document_text
        .as_deref()
        .map(|t| hex::encode(Sha256::digest(t.as_bytes())) == c.document_sha256);
    let document = documents::find(&c.document);
    let scan = c.attachment.as_ref().map(|a| {
        json!({
            "image": a.media_type.starts_with("image/"),
            "pdf": a.media_type == "application/pdf",
            "kib": (a.size + 1023) / 1024,
            "uploaded_at": a.uploaded_at,
        })
    });
    let mut v = json!(c);
    v["subject_name"] = json!(person(page.lang, &c.subject, &relationships));
    v["given_by_name"] = json!(person(page.lang, &c.given_by, &relationships));
    page.render(
        s,
        status,
        "ethics_consent",
        json!({
            "title": "consent-page-title",
            "c": v,
            "document": document.map(|d| json!({"kind": d.kind, "version": d.version, "language": d.language})),
            "text_matches": text_matches,
            "scan": scan,
            "reviews": reviews,
            "can_review": user.actor.role == Role::EthicsReviewer,
            "options": {"finding": options("review-finding", ethics::FINDINGS)},
            "values": values,
            "errors": errors,
        }),
    )
}

async fn review(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let done = match from_json::<ethics::ReviewInput>(f.json(REVIEW_FIELDS, Blank::Omit)) {
        Ok(input) => ethics::review(&s.svc, &user.actor, &id, input, s.now()).await,
        Err(e) => Err(e),
    };
    match done {
        Ok(_) => page.see_other(&s, &format!("/ethics/consents/{id}#reviews")),
        Err(Error::Validation(e)) => {
            let errors = form::errors(page.lang, &e);
            let code = StatusCode::UNPROCESSABLE_ENTITY;
            show_consent(&s, &page, &id, code, f.values(), errors).await
        }
        Err(e) => page.error(&s, e),
    }
}

/// The signed scan of a consent, for the page that shows it inline; the domain decides who may
/// read it and records the reading.
async fn attachment(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    let user = match page.user() {
        Ok(u) => u,
        Err(r) => return r,
    };
    match attachments::download(&s.svc, &user.actor, &id, s.now()).await {
        Ok((media_type, bytes)) => {
            let ext = match media_type.as_str() {
                "application/pdf" => "pdf",
                "image/png" => "png",
                _ => "jpg",
            };
            let mut resp = bytes.into_response();
            let h = resp.headers_mut();
            if let Ok(v) = HeaderValue::from_str(&media_type) {
                h.insert(header::CONTENT_TYPE, v);
            }
            if let Ok(v) = HeaderValue::from_str(&format!("inline; filename=\"consent.{ext}\"")) {
                h.insert(header::CONTENT_DISPOSITION, v);
            }
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            resp
        }
        Err(e) => page.error(&s, e),
    }
}
