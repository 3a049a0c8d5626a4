use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use crate::domain::tasks::{
    self, CancelInput, CompleteInput, Digest, RescheduleInput, TaskFilter, TaskInput, TaskView,
};
use crate::domain::Page;
use crate::error::Result;
use crate::web::error::ErrorBody;
use crate::web::extract::{ApiJson, ApiQuery, Auth};
use crate::web::AppState;

/// Tasks in the caller's scope, in due order: a volunteer's own visits, a coordinator's cases,
/// a supervisor's region.
#[utoipa::path(get, path = "/api/v1/tasks", tag = "tasks", params(TaskFilter),
    responses((status = 200, body = Page<TaskView>), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_tasks(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<TaskFilter>,
) -> Result<Json<Page<TaskView>>> {
    Ok(Json(tasks::list(&s.svc, &actor, f, s.now()).await?))
}

/// Schedule a visit, call or outreach by hand.
#[utoipa::path(post, path = "/api/v1/cases/{id}/tasks", tag = "tasks", request_body = TaskInput,
    params(("id" = String, Path)),
    responses((status = 201, body = TaskView), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_task(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<TaskInput>,
) -> Result<(StatusCode, Json<TaskView>)> {
    let t = tasks::create(&s.svc, &actor, &id, input, s.now()).await?;
    Ok((StatusCode::CREATED, Json(t)))
}

/// One task with the contact it concerns and its outcome.
#[utoipa::path(get, path = "/api/v1/tasks/{id}", tag = "tasks", params(("id" = String, Path)),
    responses((status = 200, body = TaskView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_task(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<TaskView>> {
    Ok(Json(tasks::get(&s.svc, &actor, &id, s.now()).await?))
}

/// Record the outcome of a visit or call.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/complete", tag = "tasks", request_body = CompleteInput,
    params(("id" = String, Path)),
    responses((status = 200, body = TaskView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn complete_task(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<CompleteInput>,
) -> Result<Json<TaskView>> {
    Ok(Json(
        tasks::complete(&s.svc, &actor, &id, input, s.now()).await?,
    ))
}

/// Move a scheduled task (and its pending messages), with a reason.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/reschedule", tag = "tasks", request_body = RescheduleInput,
    params(("id" = String, Path)),
    responses((status = 200, body = TaskView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reschedule_task(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<RescheduleInput>,
) -> Result<Json<TaskView>> {
    Ok(Json(
        tasks::reschedule(&s.svc, &actor, &id, input, s.now()).await?,
    ))
}

/// Cancel a scheduled task and its pending messages, with a reason.
#[utoipa::path(post, path = "/api/v1/tasks/{id}/cancel", tag = "tasks", request_body = CancelInput,
    params(("id" = String, Path)),
    responses((status = 200, body = TaskView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel_task(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<CancelInput>,
) -> Result<Json<TaskView>> {
    Ok(Json(
        tasks::cancel(&s.svc, &actor, &id, input, s.now()).await?,
    ))
}

/// The caller's digest: visits and calls overdue and due today in their cases.
#[utoipa::path(get, path = "/api/v1/tasks/digest", tag = "tasks",
    responses((status = 200, body = Digest), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn digest(State(s): State<AppState>, Auth(actor): Auth) -> Result<Json<Digest>> {
    Ok(Json(tasks::digest(&s.svc, &actor, s.now()).await?))
}
