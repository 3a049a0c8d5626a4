//! Marrow donors' adverse events: recorded and changed on a case, listed per case and across
//! one's scope, and exported pseudonymously for the registry's report (JSON and CSV).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use crate::domain::adverse_events::{
    self, AdverseEventFilter, AdverseEventInput, AdverseEventView, CasePageFilter, Export,
    ExportFilter,
};
use crate::domain::Page;
use crate::error::Result;
use crate::web::error::ErrorBody;
use crate::web::extract::{ApiJson, ApiQuery, Auth};
use crate::web::AppState;

/// Record an adverse event on a marrow case (its coordinator, the region's supervisor); 422
/// naming `program` for a case of another programme. The description is sealed.
#[utoipa::path(post, path = "/api/v1/cases/{id}/adverse-events", tag = "marrow",
    request_body = AdverseEventInput, params(("id" = String, Path)),
    responses((status = 201, body = AdverseEventView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_event(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<AdverseEventInput>,
) -> Result<(StatusCode, Json<AdverseEventView>)> {
    let e = adverse_events::create(&s.svc, &actor, &id, input, s.now()).await?;
    Ok((StatusCode::CREATED, Json(e)))
}

/// A case's adverse events, newest recorded first (ethics reviewers see no descriptions).
#[utoipa::path(get, path = "/api/v1/cases/{id}/adverse-events", tag = "marrow",
    params(("id" = String, Path), CasePageFilter),
    responses((status = 200, body = Page<AdverseEventView>), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn case_events(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiQuery(f): ApiQuery<CasePageFilter>,
) -> Result<Json<Page<AdverseEventView>>> {
    Ok(Json(
        adverse_events::list_for_case(&s.svc, &actor, &id, f, s.now()).await?,
    ))
}

/// Adverse events across the cases in the caller's scope, newest recorded first, filtered by
/// when they occurred and by grade; no descriptions.
#[utoipa::path(get, path = "/api/v1/adverse-events", tag = "marrow",
    params(AdverseEventFilter),
    responses((status = 200, body = Page<AdverseEventView>), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_events(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<AdverseEventFilter>,
) -> Result<Json<Page<AdverseEventView>>> {
    Ok(Json(
        adverse_events::list(&s.svc, &actor, f, s.now()).await?,
    ))
}

/// One adverse event.
#[utoipa::path(get, path = "/api/v1/adverse-events/{id}", tag = "marrow",
    params(("id" = String, Path)),
    responses((status = 200, body = AdverseEventView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_event(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<AdverseEventView>> {
    Ok(Json(
        adverse_events::get(&s.svc, &actor, &id, s.now()).await?,
    ))
}

/// Change an adverse event (JSON merge patch): its outcome, when it was reported, …
#[utoipa::path(patch, path = "/api/v1/adverse-events/{id}", tag = "marrow",
    request_body = AdverseEventInput, params(("id" = String, Path)),
    responses((status = 200, body = AdverseEventView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_event(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<serde_json::Value>,
) -> Result<Json<AdverseEventView>> {
    Ok(Json(
        adverse_events::update(&s.svc, &actor, &id, patch, s.now()).await?,
    ))
}

/// The registry's report of adverse events that occurred in a date range, oldest first:
/// pseudonymous (a case reference, the donation kind, days after collection, category, grade,
/// relation, outcome, reported date). Supervisors (their region), ethics reviewers. Audited.
#[utoipa::path(get, path = "/api/v1/registry/adverse-events", tag = "marrow",
    params(ExportFilter),
    responses((status = 200, body = Export), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<ExportFilter>,
) -> Result<Json<Export>> {
    Ok(Json(Export {
        items: adverse_events::export(&s.svc, &actor, f, "json", s.now()).await?,
    }))
}

/// The registry's report as CSV: `reference,donation_kind,days_after_collection,category,grade,
/// relation,outcome,reported_on`.
#[utoipa::path(get, path = "/api/v1/registry/adverse-events.csv", tag = "marrow",
    params(ExportFilter),
    responses((status = 200, body = String, content_type = "text/csv"),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn export_csv(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<ExportFilter>,
) -> Result<axum::response::Response> {
    let rows = adverse_events::export(&s.svc, &actor, f, "csv", s.now()).await?;
    Ok(csv_response(adverse_events::csv(&rows)))
}

/// A CSV download of the registry's report, never cached.
pub fn csv_response(body: String) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"adverse-events.csv\"",
            ),
        ],
        body,
    )
        .into_response()
}
