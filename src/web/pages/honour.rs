//! `/honour-roll` (the year's roll, paginated; its print layout and the engraver's CSV) and
//! `/cases/{id}/certificate` (a printable certificate for the donor or the family).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::Datelike;
use serde::Deserialize;
use serde_json::{json, Value};

use super::cases::options;
use super::form::{self, blank_none};
use super::view::{filtered_href, format_date, Page};
use crate::domain::honour::{self, RollEntry, RollFilter, WholeRollFilter};
use crate::domain::types::{Program, Role};
use crate::error::Error;
use crate::schedule::calendar;
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "honour_roll",
        include_str!("../../../templates/honour_roll.hbs"),
    ),
    (
        "honour_roll_print",
        include_str!("../../../templates/honour_roll_print.hbs"),
    ),
    (
        "certificate",
        include_str!("../../../templates/certificate.hbs"),
    ),
];

const CARE: &[Role] = &[Role::Coordinator, Role::Supervisor];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/honour-roll", get(roll_page))
        .route("/honour-roll/print", get(print_page))
        .route("/honour-roll.csv", get(roll_csv))
        .route("/cases/{id}/certificate", get(certificate_page))
}

#[derive(Deserialize, Default)]
struct RollQuery {
    year: Option<String>,
    program: Option<String>,
    cursor: Option<String>,
}

impl RollQuery {
    fn whole(&self) -> WholeRollFilter {
        WholeRollFilter {
            year: blank_none(&self.year),
            program: blank_none(&self.program),
        }
    }
}

fn shown(lang: &str, entries: &[RollEntry]) -> Value {
    entries
        .iter()
        .map(|e| {
            json!({
                "case_id": e.case_id,
                "full_name": e.full_name,
                "program": e.program,
                "region": e.region,
                "date": format_date(lang, e.donation_date),
                "deceased": e.deceased,
            })
        })
        .collect()
}

/// The year's honour roll: names with a publicity consent in force only.
async fn roll_page(State(s): State<AppState>, page: Page, Query(q): Query<RollQuery>) -> Response {
    let user = match page.staff(&s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let f = RollFilter {
        year: blank_none(&q.year),
        program: blank_none(&q.program),
        limit: Some(100),
        cursor: blank_none(&q.cursor),
    };
    let (code, roll, errors) = match honour::roll(&s.svc, &user.actor, f, s.now()).await {
        Ok(r) => (StatusCode::OK, Some(r), Value::Null),
        Err(Error::Validation(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            form::errors(page.lang, &e),
        ),
        Err(e) => return page.error(&s, e),
    };
    let year = roll.as_ref().map(|r| r.year.to_string());
    let keep = [("year", &year), ("program", &q.program)];
    let programs: Vec<&str> = Program::ALL.iter().map(|p| p.as_str()).collect();
    page.render(
        &s,
        code,
        "honour_roll",
        json!({
            "title": "honour-title",
            "year": year,
            "entries": roll.as_ref().map(|r| shown(page.lang, &r.entries.items)),
            "next": roll.as_ref().and_then(|r| r.entries.next_cursor.as_ref())
                .map(|c| filtered_href("/honour-roll", &keep, &[("cursor", c)])),
            "first": q.cursor.is_some().then(|| filtered_href("/honour-roll", &keep, &[])),
            "print": filtered_href("/honour-roll/print", &keep, &[]),
            "csv": filtered_href("/honour-roll.csv", &keep, &[]),
            "values": {"year": blank_none(&q.year).or(year.clone()), "program": q.program},
            "errors": errors,
            "options": {"program": options("program", &programs)},
        }),
    )
}

/// The whole roll in its print layout, by donation date.
async fn print_page(State(s): State<AppState>, page: Page, Query(q): Query<RollQuery>) -> Response {
    let user = match page.staff(&s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match honour::whole_roll(&s.svc, &user.actor, q.whole(), s.now()).await {
        Ok((year, entries)) => page.render(
            &s,
            StatusCode::OK,
            "honour_roll_print",
            json!({
                "title": "honour-title",
                "year": year,
                "count": entries.len(),
                "entries": shown(page.lang, &entries),
                "back": filtered_href("/honour-roll", &[("year", &Some(year.to_string())), ("program", &q.program)], &[]),
            }),
        ),
        Err(Error::Validation(_)) => roll_page(State(s), page, Query(q)).await,
        Err(e) => page.error(&s, e),
    }
}

async fn roll_csv(State(s): State<AppState>, page: Page, Query(q): Query<RollQuery>) -> Response {
    let user = match page.staff(&s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match honour::whole_roll(&s.svc, &user.actor, q.whole(), s.now()).await {
        Ok((year, entries)) => crate::web::api::consents::csv_download(
            honour::to_csv(&entries),
            &format!("honour-roll-{year}.csv"),
        ),
        Err(Error::Validation(_)) => roll_page(State(s), page, Query(q)).await,
        Err(e) => page.error(&s, e),
    }
}

/// A certificate to print and hand to the donor or the family.
async fn certificate_page(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
) -> Response {
    let user = match page.staff(&s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let now = s.now();
    match honour::certificate(&s.svc, &user.actor, &id, now).await {
        Ok(c) => {
            let today = calendar::local_date(s.svc.schedule.default_tz, now);
            let wording = match (c.program.as_str(), c.deceased) {
                ("marrow", _) => "certificate-body-marrow",
                ("body", _) => "certificate-body-body",
                _ => "certificate-body-organ",
            };
            page.render(
                &s,
                StatusCode::OK,
                "certificate",
                json!({
                    "title": "certificate-title",
                    "certificate": c,
                    "wording": wording,
                    "date": format_date(page.lang, c.donation_date),
                    "issued": format_date(page.lang, today),
                    "year": today.year(),
                }),
            )
        }
        Err(e) => page.error(&s, e),
    }
}
