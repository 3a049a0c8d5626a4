use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use crate::domain::accounts::UserView;
use crate::domain::erasure::{self, ErasureFilter, ErasureView};
use crate::domain::family::{self, AcceptInput, AccessEntry, Invitation};
use crate::domain::Page;
use crate::error::Result;
use crate::web::api::users::PageParams;
use crate::web::error::ErrorBody;
use crate::web::extract::{ApiJson, ApiQuery, Auth};
use crate::web::AppState;

/// Invite a contact to the family portal: a one-time link that expires in 14 days.
#[utoipa::path(post, path = "/api/v1/contacts/{id}/invite", tag = "family",
    params(("id" = String, Path)),
    responses((status = 200, body = Invitation), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn invite(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<Invitation>> {
    Ok(Json(
        family::invite(&s.svc, &actor, &id, &s.public_url, s.now()).await?,
    ))
}

/// Accept an invitation: creates the family account (no bearer token needed).
#[utoipa::path(post, path = "/api/v1/invites/{token}/accept", tag = "family",
    request_body = AcceptInput, params(("token" = String, Path)),
    responses((status = 201, body = UserView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn accept(
    State(s): State<AppState>,
    Path(token): Path<String>,
    ApiJson(input): ApiJson<AcceptInput>,
) -> Result<(StatusCode, Json<UserView>)> {
    let u = family::accept(&s.svc, &token, input, s.now()).await?;
    Ok((StatusCode::CREATED, Json(u)))
}

/// Which staff member opened the family's file, when, and whether through break-glass.
#[utoipa::path(get, path = "/api/v1/me/access-log", tag = "family", params(PageParams),
    responses((status = 200, body = Page<AccessEntry>), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "a record in the page was changed outside donorcare")),
    security(("bearer" = [])))]
pub async fn access_log(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<Page<AccessEntry>>> {
    Ok(Json(
        family::access_log(&s.svc, &actor, p.cursor.as_deref(), p.limit, s.now()).await?,
    ))
}

/// A family asks for its personal data to be erased; an ethics reviewer decides.
#[utoipa::path(post, path = "/api/v1/me/erasure-request", tag = "family",
    responses((status = 201, body = ErasureView), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn family_erasure(
    State(s): State<AppState>,
    Auth(actor): Auth,
) -> Result<(StatusCode, Json<ErasureView>)> {
    let r = erasure::family_request(&s.svc, &actor, s.now()).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// Ask for a case's personal data to be erased (supervisor for their region, admin).
#[utoipa::path(post, path = "/api/v1/cases/{id}/erasure-requests", tag = "erasure",
    params(("id" = String, Path)),
    responses((status = 201, body = ErasureView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn request_erasure(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<ErasureView>)> {
    let r = erasure::request(&s.svc, &actor, &id, s.now()).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// Erasure requests (ethics reviewers and admins; supervisors for their region).
#[utoipa::path(get, path = "/api/v1/erasure-requests", tag = "erasure", params(ErasureFilter),
    responses((status = 200, body = Page<ErasureView>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_erasure(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<ErasureFilter>,
) -> Result<Json<Page<ErasureView>>> {
    Ok(Json(erasure::list(&s.svc, &actor, f, s.now()).await?))
}

/// Approve an erasure request (ethics reviewer): the case key is destroyed.
#[utoipa::path(post, path = "/api/v1/erasure-requests/{id}/approve", tag = "erasure",
    params(("id" = String, Path)),
    responses((status = 200, body = ErasureView), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn approve_erasure(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<ErasureView>> {
    Ok(Json(
        erasure::decide(&s.svc, &actor, &id, true, s.now()).await?,
    ))
}

/// Reject an erasure request (ethics reviewer).
#[utoipa::path(post, path = "/api/v1/erasure-requests/{id}/reject", tag = "erasure",
    params(("id" = String, Path)),
    responses((status = 200, body = ErasureView), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reject_erasure(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<ErasureView>> {
    Ok(Json(
        erasure::decide(&s.svc, &actor, &id, false, s.now()).await?,
    ))
}
