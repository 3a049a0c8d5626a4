//! Today's letters as a print-ready batch: A4, one letter per page, the address block first.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::form;
use super::view::Page;
use crate::domain::outreach;
use crate::domain::types::Role;
use crate::error::Error;
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[(
    "letters_batch",
    include_str!("../../../templates/letters_batch.hbs"),
)];

const CARE: &[Role] = &[Role::Coordinator, Role::Supervisor];

pub fn routes() -> Router<AppState> {
    Router::new().route("/letters", get(batch))
}

#[derive(serde::Deserialize)]
struct LettersQuery {
    date: Option<String>,
}

async fn batch(State(s): State<AppState>, page: Page, Query(q): Query<LettersQuery>) -> Response {
    let user = match page.staff(&s, CARE) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let now = s.now();
    let today = s.today().to_string();
    let date = q.date.filter(|d| !d.trim().is_empty()).unwrap_or(today);
    let (status, letters, errors) = match outreach::letters(&s.svc, &user.actor, &date, now).await {
        Ok(l) => (StatusCode::OK, l, Value::Null),
        Err(Error::Validation(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Vec::new(),
            form::errors(page.lang, &e),
        ),
        Err(e) => return page.error(&s, e),
    };
    page.render(
        &s,
        status,
        "letters_batch",
        json!({"title": "letters-title", "letters": letters, "count": letters.len(),
               "date": date, "values": {"date": date}, "errors": errors}),
    )
}
