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

pub const TEMPLATES: &[(&str, &str)] = &[
    (
        "task_show",
        include_str!("../../../templates/task_show.hbs"),
    ),
    (
        "tasks_list",
        include_str!("../../../templates/tasks_list.hbs"),
    ),
    ("task_new", include_str!("../../../templates/task_new.hbs")),
    (
        "task_change",
        include_str!("../../../templates/task_change.hbs"),
    ),
];

/// Who plans tasks.
const CARE: &[Role] = &[Role::Coordinator, Role::Supervisor];
/// Tasks on one page of the list.
const PER_PAGE: i64 = 30;
/// A visit or call given a day and no time is at this local hour.
const DEFAULT_HOUR: u32 = 10;

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
        .route("/tasks", get(list))
        .route("/cases/{id}/tasks/new", get(new_form).post(create))
        .route(
            "/tasks/{id}/reschedule",
            get(reschedule_form).post(reschedule),
        )
        .route("/tasks/{id}/cancel", get(cancel_form).post(cancel))
}

#[derive(serde::Deserialize)]
struct ListQuery {
    status: Option<String>,
    cursor: Option<String>,
}

/// My tasks, soonest first, by status.
async fn list(
    State(s): State<AppState>,
    page: Page,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> Response {
    let user = match page.staff(&s, STAFF) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let status = q
        .status
        .clone()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "scheduled".into());
    let filter = tasks::TaskFilter {
        status: Some(status.clone()),
        limit: Some(PER_PAGE),
        cursor: q.cursor.clone().filter(|c| !c.is_empty()),
        ..Default::default()
    };
    let (code, items, next, errors) = match tasks::list(&s.svc, &user.actor, filter, s.now()).await
    {
        Ok(p) => (StatusCode::OK, p.items, p.next_cursor, Value::Null),
        Err(Error::Validation(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Vec::new(),
            None,
            form::errors(page.lang, &e),
        ),
        Err(e) => return page.error(&s, e),
    };
    let mut items = json!(items);
    if let Err(e) = super::view::name_donors(&s, &user.actor, &mut [&mut items]).await {
        return page.error(&s, e);
    }
    let next = next.map(|c| {
        super::view::query_href("/tasks")
            .append_pair("status", &status)
            .append_pair("cursor", &c)
            .finish()
    });
    page.render(
        &s,
        code,
        "tasks_list",
        json!({
            "title": "tasks-title",
            "tasks": items,
            "next": next,
            "first_page": q.cursor.is_some(),
            "status": status,
            "values": {"status": status},
            "errors": errors,
            "options": {"status": super::cases::options("task-status", tasks::STATUSES)},
        }),
    )
}

const TASK_FIELDS: &[(&str, Kind)] = &[
    ("kind", Kind::Text),
    ("due_at", Kind::Text),
    ("contact_id", Kind::Text),
    ("assignee_id", Kind::Text),
    ("template", Kind::Text),
    ("channel", Kind::Text),
];

/// The form's `due_at` (a day) and `due_time` (an optional time) as the API's `due_at`: a day
/// with a time is that local time in the service's zone; a visit or call given only a day is at
/// 10:00 there; an outreach given only a day keeps the day (the domain takes the recipient's
/// waking hours).
fn due_of(s: &AppState, f: &FormData) -> Option<String> {
    let day = f.text("due_at")?;
    let Ok(date) = chrono::NaiveDate::parse_from_str(&day, "%Y-%m-%d") else {
        return Some(day);
    };
    let time = match f.text("due_time") {
        Some(t) => chrono::NaiveTime::parse_from_str(&t, "%H:%M").ok()?,
        None if f.get("kind") == Some("outreach") => return Some(day),
        None => chrono::NaiveTime::from_hms_opt(DEFAULT_HOUR, 0, 0)?,
    };
    Some(crate::schedule::calendar::local_instant(s.zone(), date, time).to_rfc3339())
}

/// A time the form could not read is the `due_time` field's fault, not the day's: the domain
/// saw a day and a time it could not join and named `due_at`.
fn blame_time(f: &FormData, mut e: crate::error::FieldErrors) -> crate::error::FieldErrors {
    let bad_time = f
        .text("due_time")
        .is_some_and(|t| chrono::NaiveTime::parse_from_str(&t, "%H:%M").is_err());
    if bad_time {
        let day_ok = f
            .text("due_at")
            .is_some_and(|d| chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d").is_ok());
        if day_ok {
            e.remove("due_at");
        }
        e.insert("due_time".into(), "must be HH:MM".into());
    }
    e
}

async fn new_task_page(
    s: &AppState,
    page: &Page,
    case_id: &str,
    status: StatusCode,
    values: Value,
    errors: Value,
    preview: Value,
) -> Response {
    let Some(user) = &page.user else {
        return page.error(s, Error::Unauthenticated);
    };
    let case = match crate::domain::cases::get(&s.svc, &user.actor, case_id, s.now()).await {
        Ok(c) => c,
        Err(e) => return page.error(s, e),
    };
    let mut people: Vec<Value> = case
        .contacts
        .iter()
        .flatten()
        .map(|c| json!({"value": c.id, "text": c.full_name}))
        .collect();
    if let Some(d) = case.donor.as_ref().filter(|d| !d.deceased) {
        people.insert(0, json!({"value": "donor", "text": d.full_name}));
    }
    let assignees: Vec<Value> = crate::domain::accounts::assignees(&s.svc, &user.actor)
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|(id, name)| json!({"value": id, "text": name}))
        .collect();
    let templates: Vec<&str> = crate::schedule::plan::TEMPLATES.to_vec();
    let channels: Vec<&str> = crate::schedule::plan::CHANNELS
        .iter()
        .copied()
        .filter(|c| *c != "file")
        .collect();
    page.render(
        s,
        status,
        "task_new",
        json!({
            "title": "task-new-title",
            "case": case,
            "values": values,
            "errors": errors,
            "preview": preview,
            "options": {
                "kind": super::cases::options("task-kind", &["visit", "call", "outreach"]),
                "people": people,
                "assignees": assignees,
                "template": super::cases::options("template", &templates),
                "channel": super::cases::options("channel", &channels),
            },
        }),
    )
}

async fn new_form(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    if let Err(r) = page.staff(&s, CARE) {
        return r;
    }
    new_task_page(
        &s,
        &page,
        &id,
        StatusCode::OK,
        json!({"kind": "visit"}),
        Value::Null,
        Value::Null,
    )
    .await
}

/// Plan a task; with `preview`, show the message as it will read and when it will go, and save
/// nothing.
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
    let mut body = f.json(TASK_FIELDS, Blank::Omit);
    if let Some(due) = due_of(&s, &f) {
        body["due_at"] = json!(due);
    } else if f.text("due_at").is_some() {
        body["due_at"] = json!(format!(
            "{} {}",
            f.get("due_at").unwrap_or(""),
            f.get("due_time").unwrap_or("")
        ));
    }
    let refused = |e: crate::error::FieldErrors| {
        let errors = form::errors(page.lang, &blame_time(&f, e));
        (f.values(), errors)
    };
    if f.get("preview").is_some() {
        let who = f.text("contact_id").unwrap_or_else(|| "donor".into());
        let template = f.text("template").unwrap_or_default();
        let due = body["due_at"].as_str().unwrap_or("").to_string();
        return match crate::domain::outreach::draft(
            &s.svc,
            &user.actor,
            &id,
            &who,
            &template,
            &due,
            s.now(),
        )
        .await
        {
            Ok((r, at)) => {
                let day = crate::schedule::calendar::local_date(s.zone(), at);
                let preview = json!({"subject": r.subject, "body": r.body, "language": r.language,
                                     "at": at, "day": day.to_string()});
                new_task_page(
                    &s,
                    &page,
                    &id,
                    StatusCode::OK,
                    f.values(),
                    Value::Null,
                    preview,
                )
                .await
            }
            Err(Error::Validation(e)) => {
                let (values, errors) = refused(e);
                new_task_page(
                    &s,
                    &page,
                    &id,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    values,
                    errors,
                    Value::Null,
                )
                .await
            }
            Err(e) => page.error(&s, e),
        };
    }
    let made = match from_json::<tasks::TaskInput>(body) {
        Ok(input) => tasks::create(&s.svc, &user.actor, &id, input, s.now()).await,
        Err(e) => Err(e),
    };
    match made {
        Ok(t) => page.see_other(&s, &format!("/tasks/{}", t.id)),
        Err(Error::Validation(e)) => {
            let (values, errors) = refused(e);
            new_task_page(
                &s,
                &page,
                &id,
                StatusCode::UNPROCESSABLE_ENTITY,
                values,
                errors,
                Value::Null,
            )
            .await
        }
        Err(e) => page.error(&s, e),
    }
}

/// Move or cancel a task, with the reason.
async fn change_page(
    s: &AppState,
    page: &Page,
    id: &str,
    action: &str,
    status: StatusCode,
    values: Value,
    errors: Value,
) -> Response {
    let Some(user) = &page.user else {
        return page.error(s, Error::Unauthenticated);
    };
    match tasks::get(&s.svc, &user.actor, id, s.now()).await {
        Ok(task) => page.render(
            s,
            status,
            "task_change",
            json!({"title": format!("task-{action}-title"), "task": task, "action": action,
                   "reschedule": action == "reschedule", "values": values, "errors": errors}),
        ),
        Err(e) => page.error(s, e),
    }
}

async fn reschedule_form(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = page.staff(&s, CARE) {
        return r;
    }
    change_page(
        &s,
        &page,
        &id,
        "reschedule",
        StatusCode::OK,
        json!({}),
        Value::Null,
    )
    .await
}

async fn cancel_form(State(s): State<AppState>, page: Page, Path(id): Path<String>) -> Response {
    if let Err(r) = page.staff(&s, CARE) {
        return r;
    }
    change_page(
        &s,
        &page,
        &id,
        "cancel",
        StatusCode::OK,
        json!({}),
        Value::Null,
    )
    .await
}

async fn reschedule(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let mut body = f.json(&[("reason", Kind::Text)], Blank::Omit);
    if let Some(due) = due_of(&s, &f) {
        body["due_at"] = json!(due);
    }
    let done = match from_json::<tasks::RescheduleInput>(body) {
        Ok(input) => tasks::reschedule(&s.svc, &user.actor, &id, input, s.now()).await,
        Err(e) => Err(e),
    };
    match done {
        Ok(t) => page.see_other(&s, &format!("/tasks/{}", t.id)),
        Err(Error::Validation(e)) => {
            change_page(
                &s,
                &page,
                &id,
                "reschedule",
                StatusCode::UNPROCESSABLE_ENTITY,
                f.values(),
                form::errors(page.lang, &blame_time(&f, e)),
            )
            .await
        }
        Err(e) => page.error(&s, e),
    }
}

async fn cancel(
    State(s): State<AppState>,
    page: Page,
    Path(id): Path<String>,
    f: FormData,
) -> Response {
    let user = match page.check_csrf(&s, f.csrf()) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let done = match from_json::<tasks::CancelInput>(f.json(&[("reason", Kind::Text)], Blank::Omit))
    {
        Ok(input) => tasks::cancel(&s.svc, &user.actor, &id, input, s.now()).await,
        Err(e) => Err(e),
    };
    match done {
        Ok(t) => page.see_other(&s, &format!("/tasks/{}", t.id)),
        Err(Error::Validation(e)) => {
            change_page(
                &s,
                &page,
                &id,
                "cancel",
                StatusCode::UNPROCESSABLE_ENTITY,
                f.values(),
                form::errors(page.lang, &e),
            )
            .await
        }
        Err(e) => page.error(&s, e),
    }
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
