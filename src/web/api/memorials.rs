//! Memorial events: planned by a region's care team, families invited through outreach, their
//! replies (from the family portal or recorded by a coordinator), and the names put forward for
//! the published list, exported for the engraver only with publicity consent in force.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use crate::domain::memorials::{
    self, EventFilter, FamilyInvitation, GuestFilter, InvitationView, InviteInput, InviteResult,
    MemorialEventInput, MemorialEventView, NameEntry, NameInput, ReplyInput,
};
use crate::domain::Page;
use crate::error::Result;
use crate::web::error::ErrorBody;
use crate::web::extract::{ApiJson, ApiQuery, Auth};
use crate::web::AppState;

/// Plan a memorial event in the caller's region (coordinators, supervisors).
#[utoipa::path(post, path = "/api/v1/memorial-events", tag = "memorials",
    request_body = MemorialEventInput,
    responses((status = 201, body = MemorialEventView), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiJson(input): ApiJson<MemorialEventInput>,
) -> Result<(StatusCode, Json<MemorialEventView>)> {
    let e = memorials::create_event(&s.svc, &actor, input, s.now()).await?;
    Ok((StatusCode::CREATED, Json(e)))
}

/// The region's events, soonest first, with the head count in the caller's cases.
#[utoipa::path(get, path = "/api/v1/memorial-events", tag = "memorials",
    params(EventFilter),
    responses((status = 200, body = Page<MemorialEventView>), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<EventFilter>,
) -> Result<Json<Page<MemorialEventView>>> {
    Ok(Json(
        memorials::list_events(&s.svc, &actor, f, s.now()).await?,
    ))
}

/// One event with its head count.
#[utoipa::path(get, path = "/api/v1/memorial-events/{id}", tag = "memorials",
    params(("id" = String, Path)),
    responses((status = 200, body = MemorialEventView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<MemorialEventView>> {
    Ok(Json(
        memorials::get_event(&s.svc, &actor, &id, s.now()).await?,
    ))
}

/// Change a planned event (JSON merge patch); its time and programme are fixed once families
/// are invited (409).
#[utoipa::path(patch, path = "/api/v1/memorial-events/{id}", tag = "memorials",
    request_body = MemorialEventInput, params(("id" = String, Path)),
    responses((status = 200, body = MemorialEventView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<serde_json::Value>,
) -> Result<Json<MemorialEventView>> {
    Ok(Json(
        memorials::update_event(&s.svc, &actor, &id, patch, s.now()).await?,
    ))
}

/// Cancel an event: invitations and reminders not yet sent are cancelled.
#[utoipa::path(post, path = "/api/v1/memorial-events/{id}/cancel", tag = "memorials",
    params(("id" = String, Path)),
    responses((status = 200, body = MemorialEventView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<MemorialEventView>> {
    Ok(Json(
        memorials::cancel_event(&s.svc, &actor, &id, s.now()).await?,
    ))
}

/// Invite families: the cases named, or every open case of the caller's scope in the event's
/// region and programme. Each invitation is an outreach message (and a reminder before the
/// event), sent only if consent, pause and the family's cap allow it.
#[utoipa::path(post, path = "/api/v1/memorial-events/{id}/invitations", tag = "memorials",
    request_body = InviteInput, params(("id" = String, Path)),
    responses((status = 200, body = InviteResult), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn invite(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<InviteInput>,
) -> Result<Json<InviteResult>> {
    Ok(Json(
        memorials::invite(&s.svc, &actor, &id, input, s.now()).await?,
    ))
}

/// The event's invitations in the caller's cases: replies, party sizes, needs and how each
/// message stands. Audited as case views.
#[utoipa::path(get, path = "/api/v1/memorial-events/{id}/invitations", tag = "memorials",
    params(("id" = String, Path), GuestFilter),
    responses((status = 200, body = Page<InvitationView>), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn guests(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiQuery(f): ApiQuery<GuestFilter>,
) -> Result<Json<Page<InvitationView>>> {
    Ok(Json(
        memorials::guests(&s.svc, &actor, &id, f, s.now()).await?,
    ))
}

/// Record a family's reply as their coordinator heard it; a decline cancels the reminder.
#[utoipa::path(post, path = "/api/v1/memorial-invitations/{id}/reply", tag = "memorials",
    request_body = ReplyInput, params(("id" = String, Path)),
    responses((status = 200, body = InvitationView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reply(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ReplyInput>,
) -> Result<Json<InvitationView>> {
    Ok(Json(
        memorials::record_reply(&s.svc, &actor, &id, input, s.now()).await?,
    ))
}

/// The names put forward for the event's list, in the caller's cases; a name shows only while
/// a publicity consent about the donor is in force.
#[utoipa::path(get, path = "/api/v1/memorial-events/{id}/names", tag = "memorials",
    params(("id" = String, Path)),
    responses((status = 200, body = Vec<NameEntry>), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn names(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<Vec<NameEntry>>> {
    Ok(Json(memorials::names(&s.svc, &actor, &id, s.now()).await?))
}

/// Put a donor's name forward for the event's list.
#[utoipa::path(post, path = "/api/v1/memorial-events/{id}/names", tag = "memorials",
    request_body = NameInput, params(("id" = String, Path)),
    responses((status = 201, body = NameEntry), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_name(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<NameInput>,
) -> Result<(StatusCode, Json<NameEntry>)> {
    let n = memorials::add_name(&s.svc, &actor, &id, input, s.now()).await?;
    Ok((StatusCode::CREATED, Json(n)))
}

/// Take a name off the event's list.
#[utoipa::path(delete, path = "/api/v1/memorial-events/{id}/names/{case_id}", tag = "memorials",
    params(("id" = String, Path), ("case_id" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn remove_name(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path((id, case_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    memorials::remove_name(&s.svc, &actor, &id, &case_id, s.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The engraver's list as CSV (`full_name,program,donation_year`): the region's names with a
/// publicity consent in force, and nothing else. The region's supervisor; audited.
#[utoipa::path(get, path = "/api/v1/memorial-events/{id}/names.csv", tag = "memorials",
    params(("id" = String, Path)),
    responses((status = 200, body = String, content_type = "text/csv"),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn names_csv(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<axum::response::Response> {
    let (event, names) = memorials::engraver_list(&s.svc, &actor, &id, s.now()).await?;
    Ok(super::consents::csv_download(
        memorials::engraver_csv(&names),
        &format!(
            "memorial-names-{}.csv",
            event.starts_local.get(..10).unwrap_or("")
        ),
    ))
}

/// The family's invitations.
#[utoipa::path(get, path = "/api/v1/me/memorial-invitations", tag = "family",
    responses((status = 200, body = Vec<FamilyInvitation>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn family_list(
    State(s): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<Vec<FamilyInvitation>>> {
    Ok(Json(
        memorials::family_invitations(&s.svc, &actor, s.now()).await?,
    ))
}

/// The family answers its invitation: coming or not, how many, what they need.
#[utoipa::path(post, path = "/api/v1/me/memorial-invitations/{id}/reply", tag = "family",
    request_body = ReplyInput, params(("id" = String, Path)),
    responses((status = 200, body = FamilyInvitation), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn family_reply(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ReplyInput>,
) -> Result<Json<FamilyInvitation>> {
    Ok(Json(
        memorials::family_reply(&s.svc, &actor, &id, input, s.now()).await?,
    ))
}
