use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::Json;
use serde::Deserialize;

use crate::domain::cases::{self, CaseFilter, CaseInput, CaseView};
use crate::domain::contacts::{self, ContactInput, ContactView};
use crate::domain::Page;
use crate::error::Result;
use crate::web::error::ErrorBody;
use crate::web::extract::{self, ApiJson, ApiQuery, Auth, Token};
use crate::web::AppState;

/// Open a case (coordinator, supervisor). A coordinator who creates a case is assigned to it.
#[utoipa::path(post, path = "/api/v1/cases", tag = "cases", request_body = CaseInput,
    responses((status = 201, body = CaseView), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_case(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiJson(input): ApiJson<CaseInput>,
) -> Result<(StatusCode, Json<CaseView>)> {
    let c = cases::create(&s.svc, &actor, input, s.now()).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// Cases in the caller's scope, oldest first; exact-match search by phone, national ID or name.
#[utoipa::path(get, path = "/api/v1/cases", tag = "cases", params(CaseFilter),
    responses((status = 200, body = Page<CaseView>), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_cases(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<CaseFilter>,
) -> Result<Json<Page<CaseView>>> {
    Ok(Json(cases::list(&s.svc, &actor, f, s.now()).await?))
}

/// A case with its donor, donation, notes, assignments and contacts.
#[utoipa::path(get, path = "/api/v1/cases/{id}", tag = "cases", params(("id" = String, Path)),
    responses((status = 200, body = CaseView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_case(
    State(s): State<AppState>,
    Token(token): Token,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Json<CaseView>> {
    let now = s.now();
    // The most frequent read: first from the reads kept in memory, which answer only while
    // nothing they hold has changed; otherwise as every other endpoint.
    if let Some((actor, view)) = cases::get_cached(&s.svc, &token, &id, now).await? {
        tracing::Span::current().record("user_id", actor.user_id.as_str());
        return Ok(Json(view));
    }
    let actor = extract::authenticate(&s, &token, uri.path()).await?;
    Ok(Json(cases::get(&s.svc, &actor, &id, now).await?))
}

/// Change a case (JSON merge patch: `null` clears a field). `program` and `coordinator_id`
/// cannot be patched.
#[utoipa::path(patch, path = "/api/v1/cases/{id}", tag = "cases", request_body = CaseInput,
    params(("id" = String, Path)),
    responses((status = 200, body = CaseView), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_case(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<serde_json::Value>,
) -> Result<Json<CaseView>> {
    Ok(Json(
        cases::update(&s.svc, &actor, &id, patch, s.now()).await?,
    ))
}

fn id_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    crate::domain::schema::required_text(1, crate::domain::MAX_ID)
}

fn assign_kind_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    crate::domain::schema::one_of(ASSIGN_KINDS, true)
}

/// How a coordinator is assigned.
const ASSIGN_KINDS: &[&str] = &["primary", "team"];

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignInput {
    #[schema(schema_with = id_schema)]
    pub coordinator_id: String,
    /// `primary` (default: replaces the current primary coordinator) or `team` (adds a
    /// coordinator who shares the case).
    #[schema(schema_with = assign_kind_schema)]
    pub kind: Option<String>,
}

/// Make a coordinator the case's primary (supervisor).
#[utoipa::path(post, path = "/api/v1/cases/{id}/assign", tag = "cases", request_body = AssignInput,
    params(("id" = String, Path)),
    responses((status = 200, body = CaseView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn assign_case(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<AssignInput>,
) -> Result<Json<CaseView>> {
    let team = match input.kind.as_deref() {
        None | Some("primary") => false,
        Some("team") => true,
        Some(_) => {
            return Err(crate::error::Error::field(
                "kind",
                format!("must be one of {}", ASSIGN_KINDS.join(", ")),
            ))
        }
    };
    Ok(Json(
        cases::assign(&s.svc, &actor, &id, &input.coordinator_id, team, s.now()).await?,
    ))
}

/// Add a family member or next of kin to a case.
#[utoipa::path(post, path = "/api/v1/cases/{id}/contacts", tag = "contacts", request_body = ContactInput,
    params(("id" = String, Path)),
    responses((status = 201, body = ContactView), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_contact(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<ContactInput>,
) -> Result<(StatusCode, Json<ContactView>)> {
    let c = contacts::create(&s.svc, &actor, &id, input, &s.default_timezone, s.now()).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// Change a contact (JSON merge patch), e.g. `opted_out`, `do_not_contact_until`,
/// `preferred_channel`.
#[utoipa::path(patch, path = "/api/v1/contacts/{id}", tag = "contacts", request_body = ContactInput,
    params(("id" = String, Path)),
    responses((status = 200, body = ContactView), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_contact(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<serde_json::Value>,
) -> Result<Json<ContactView>> {
    Ok(Json(
        contacts::update(&s.svc, &actor, &id, patch, &s.default_timezone, s.now()).await?,
    ))
}
