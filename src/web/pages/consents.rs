//! Recording a consent in the browser: the API's fields (`kind`, `subject`, `given_by`,
//! `method`, `document`, `signed_at`, `expires_at`, `witness`, `scope.channels`,
//! `scope.organs`, `refusal`) and the signed scan as the file field `attachment`, sent as one
//! multipart form. The fields and the file are checked together by the domain
//! (`consents::record_with_form`), so a wrong file refuses the whole form and nothing is saved.

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use super::cases::options;
use super::form::{self, Blank, Kind, MultipartForm, UPLOAD_LIMIT};
use super::view::{word, Page};
use crate::domain::cases::{self, CaseView};
use crate::domain::consents::{self, KINDS, METHODS};
use crate::domain::documents;
use crate::domain::from_json;
use crate::domain::types::{Channel, Role};
use crate::error::Error;
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[(
    "consent_form",
    include_str!("../../../templates/consent_form.hbs"),
)];

const CARE: &[Role] = &[Role::Coordinator, Role::Supervisor];

/// A form with a 10 MiB scan and its fields; anything larger is refused before it is read.
const FORM_LIMIT: usize = UPLOAD_LIMIT + 256 * 1024;

const FIELDS: &[(&str, Kind)] = &[
    ("kind", Kind::Text),
    ("subject", Kind::Text),
    ("given_by", Kind::Text),
    ("method", Kind::Text),
    ("document", Kind::Text),
    ("witness", Kind::Text),
    ("signed_at", Kind::Text),
    ("expires_at", Kind::Text),
    ("scope.channels", Kind::List),
    ("scope.organs", Kind::List),
    ("refusal", Kind::Bool),
];

pub fn routes() -> Router<AppState> {
    Router::new().route(
        "/cases/{id}/consents/new",
        get(new_form)
            .post(create)
            .layer(DefaultBodyLimit::max(FORM_LIMIT)),
    )
}

/// The people a consent can be about or given by: the donor and the case's contacts.
fn people(lang: &str, case: &CaseView) -> Value {
    let donor = case
        .donor
        .as_ref()
        .map(|d| format!("{} · {}", d.full_name, word(lang, "case", "donor")))
        .unwrap_or_else(|| word(lang, "case", "donor"));
    let mut out = vec![json!({"value": "donor", "text": donor})];
    for c in case.contacts.iter().flatten() {
        out.push(json!({
            "value": c.id,
            "text": format!("{} · {}", c.full_name, word(lang, "relationship", c.relationship.as_str())),
        }));
    }
    Value::Array(out)
}

/// Every document version, named by its kind, language and version.
fn document_options(lang: &str) -> Value {
    documents::all()
        .iter()
        .map(|d| {
            json!({
                "value": d.id,
                "text": format!(
                    "{} · {} · v{}",
                    word(lang, "consent-kind", &d.kind),
                    word(lang, "language", &d.language),
                    d.version
                ),
            })
        })
        .collect()
}

async fn form_page(
    s: &AppState,
    page: &Page,
    status: StatusCode,
    case_id: &str,
    values: Value,
    errors: Value,
    file_again: bool,
) -> Response {
    let user = match page.staff(s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let case = match cases::get(&s.svc, &user.actor, case_id, s.now()).await {
        Ok(c) => c,
        Err(e) => return page.error(s, e),
    };
    let channels: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
    page.render(
        s,
        status,
        "consent_form",
        json!({
            "title": "consent-new-title",
            "case_id": case_id,
            "values": values,
            "errors": errors,
            "file_again": file_again,
            "hint_args": {"mb": UPLOAD_LIMIT / (1024 * 1024)},
            "options": {
                "kind": options("consent-kind", KINDS),
                "method": options("consent-method", METHODS),
                "people": people(page.lang, &case),
                "document": document_options(page.lang),
                "channels": options("channel", &channels),
                "organs": options("donation-kind", case.program.donation_kinds()),
            },
        }),
    )
}

async fn new_form(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    let values = json!({"signed_at": s.today().to_string(), "method": "written"});
    form_page(&s, &page, StatusCode::OK, &id, values, Value::Null, false).await
}

/// The API's body from the form: a scope only for the kinds that take one, and only when
/// something is ticked (nothing ticked is no limit, as in the API). The form's dates are days
/// where the office is: a consent signed today in Shanghai is signed today, even while it is
/// still yesterday in UTC (the API's bare date is a UTC day).
fn body(s: &AppState, f: &form::FormData) -> Value {
    let mut body = f.json(FIELDS, Blank::Omit);
    for field in ["signed_at", "expires_at"] {
        if let Some(v) = body.get_mut(field) {
            if let Some(day) = v
                .as_str()
                .and_then(|d| chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d").ok())
            {
                let start = chrono::NaiveTime::MIN;
                *v = json!(
                    crate::schedule::calendar::local_instant(s.zone(), day, start).to_rfc3339()
                );
            }
        }
    }
    let kind = f.text("kind").unwrap_or_default();
    if let Some(obj) = body.as_object_mut() {
        let mut scope = obj
            .remove("scope")
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        let keep = match kind.as_str() {
            "contact" => Some("channels"),
            "donation" | "body_donation" => Some("organs"),
            _ => None,
        };
        let mut kept = Map::new();
        if let Some(k) = keep {
            if let Some(v) = scope
                .remove(k)
                .filter(|v| v.as_array().is_some_and(|a| !a.is_empty()))
            {
                kept.insert(k.to_string(), v);
            }
        }
        if !kept.is_empty() {
            obj.insert("scope".into(), Value::Object(kept));
        }
        if !matches!(kind.as_str(), "donation" | "body_donation") {
            obj.remove("refusal");
        }
    }
    body
}

async fn create(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    mf: MultipartForm,
) -> Response {
    let f = &mf.form;
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let result = match from_json(body(&s, f)) {
        Ok(input) => {
            consents::record_with_form(
                &s.svc,
                &user.actor,
                &id,
                input,
                mf.file("attachment"),
                s.now(),
            )
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => page.see_other(&s, &format!("/cases/{id}#consents")),
        Err(Error::Validation(e)) => {
            let mut errors = form::errors(page.lang, &e);
            // The API names the scope; the form has one field for each kind of scope.
            if let Some(m) = errors.as_object_mut() {
                if let Some(msg) = m.remove("scope") {
                    let field = if f.text("kind").as_deref() == Some("contact") {
                        "scope.channels"
                    } else {
                        "scope.organs"
                    };
                    m.insert(field.into(), msg);
                }
            }
            // A browser never fills a file field again; say so when one was sent.
            let file_again = mf.file("attachment").is_some();
            form_page(
                &s,
                &page,
                StatusCode::UNPROCESSABLE_ENTITY,
                &id,
                f.values(),
                errors,
                file_again,
            )
            .await
        }
        Err(e) => page.error(&s, e),
    }
}
