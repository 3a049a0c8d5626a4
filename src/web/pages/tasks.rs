//! A task's page: what it is, when, for whom, what happened to it, and the form that logs its
//! outcome. A volunteer sees only what the visit needs (the policy decides what `tasks::get`
//! returns to them; this page shows no more than that).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};

use super::form::{self, Blank, FormData, Kind};
use super::view::Page;
use crate::domain::from_json;
use crate::domain::tasks::{self, CompleteInput};
use crate::domain::types::Role;
use crate::error::Error;
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[(
    "task_show",
    include_str!("../../../templates/task_show.hbs"),
)];

/// Everyone who may hold a task.
const STAFF: &[Role] = &[Role::Coordinator, Role::Supervisor, Role::Volunteer];

/// The complete form's fields, by their API names.
const COMPLETE_FIELDS: &[(&str, Kind)] = &[("outcome", Kind::Text), ("note", Kind::Text)];

/// The preset outcomes a volunteer logs with one tap (catalogue keys `task-outcome-…`).
const PRESET_OUTCOMES: &[&str] = &["visited", "nobody-home", "come-back-later"];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/tasks/{id}", get(show))
        .route("/tasks/{id}/complete", post(complete))
}

async fn show(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    task_page(&s, &page, &id, StatusCode::OK, json!({}), Value::Null).await
}

/// The task page; `values` and `errors` are those of a refused complete form.
async fn task_page(
    s: &AppState,
    page: &Page,
    id: &str,
    status: StatusCode,
    values: Value,
    errors: Value,
) -> Response {
    let user = match page.staff(s, STAFF) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let task = match tasks::get(&s.svc, &user.actor, id, s.now()).await {
        Ok(t) => t,
        Err(e) => return page.error(s, e),
    };
    let volunteer = user.actor.role == Role::Volunteer;
    let presets: Vec<Value> = PRESET_OUTCOMES
        .iter()
        .map(|k| json!({"key": format!("task-outcome-{k}"), "value": page.t(&format!("task-outcome-{k}"))}))
        .collect();
    page.render(
        s,
        status,
        "task_show",
        json!({
            "title": "task-show-title",
            "task": task,
            "scheduled": task.status == "scheduled",
            "volunteer": volunteer,
            "presets": presets,
            "values": values,
            "errors": errors,
        }),
    )
}

async fn complete(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let done = match from_json::<CompleteInput>(f.json(COMPLETE_FIELDS, Blank::Omit)) {
        Ok(input) => tasks::complete(&s.svc, &user.actor, &id, input, s.now()).await,
        Err(e) => Err(e),
    };
    match done {
        Ok(t) => page.see_other(&s, &format!("/tasks/{}", t.id)),
        Err(Error::Validation(e)) => {
            task_page(
                &s,
                &page,
                &id,
                StatusCode::UNPROCESSABLE_ENTITY,
                f.values(),
                form::errors(page.lang, &e),
            )
            .await
        }
        Err(e) => page.error(&s, e),
    }
}
