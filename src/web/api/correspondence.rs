//! Letters between donor families and recipients or patients: correspondents and letters
//! recorded on a case, redacted, released or withheld by the case's staff, listed across
//! one's scope, and read by the family once released to it.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;

use crate::domain::correspondence::{
    self, CasePageFilter, CorrespondentInput, CorrespondentView, FamilyCorrespondent, FamilyLetter,
    FamilyLetterInput, LetterFilter, LetterInput, LetterView, RedactInput, WithholdInput,
};
use crate::domain::Page;
use crate::error::Result;
use crate::web::error::ErrorBody;
use crate::web::extract::{ApiJson, ApiQuery, Auth};
use crate::web::AppState;

/// Add a correspondent to a case: the recipient or patient, known to the family by a
/// pseudonymous `label`; `reference` (the centre's or registry's) is sealed and staff-only.
#[utoipa::path(post, path = "/api/v1/cases/{id}/correspondents", tag = "correspondence",
    request_body = CorrespondentInput, params(("id" = String, Path)),
    responses((status = 201, body = CorrespondentView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn add_correspondent(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<CorrespondentInput>,
) -> Result<(StatusCode, Json<CorrespondentView>)> {
    let c = correspondence::add_correspondent(&s.svc, &actor, &id, input, s.now()).await?;
    Ok((StatusCode::CREATED, Json(c)))
}

/// A case's correspondents, newest first.
#[utoipa::path(get, path = "/api/v1/cases/{id}/correspondents", tag = "correspondence",
    params(("id" = String, Path), CasePageFilter),
    responses((status = 200, body = Page<CorrespondentView>), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn case_correspondents(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiQuery(f): ApiQuery<CasePageFilter>,
) -> Result<Json<Page<CorrespondentView>>> {
    Ok(Json(
        correspondence::list_correspondents(&s.svc, &actor, &id, f, s.now()).await?,
    ))
}

/// Change a correspondent (JSON merge patch of `reference`, `consented_on`,
/// `consent_withdrawn_on`); a withdrawal date stops every pending release.
#[utoipa::path(patch, path = "/api/v1/correspondents/{id}", tag = "correspondence",
    request_body = CorrespondentInput, params(("id" = String, Path)),
    responses((status = 200, body = CorrespondentView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_correspondent(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<serde_json::Value>,
) -> Result<Json<CorrespondentView>> {
    Ok(Json(
        correspondence::update_correspondent(&s.svc, &actor, &id, patch, s.now()).await?,
    ))
}

/// Record a letter as received: `author` for a letter to the recipient, `addressee` for one
/// to the family (`donor` or a contact id of the case). The text is sealed.
#[utoipa::path(post, path = "/api/v1/cases/{id}/correspondence", tag = "correspondence",
    request_body = LetterInput, params(("id" = String, Path)),
    responses((status = 201, body = LetterView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn record_letter(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<LetterInput>,
) -> Result<(StatusCode, Json<LetterView>)> {
    let l = correspondence::record(&s.svc, &actor, &id, input, s.now()).await?;
    Ok((StatusCode::CREATED, Json(l)))
}

/// A case's letters, newest recorded first (ethics reviewers see no texts).
#[utoipa::path(get, path = "/api/v1/cases/{id}/correspondence", tag = "correspondence",
    params(("id" = String, Path), CasePageFilter),
    responses((status = 200, body = Page<LetterView>), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn case_letters(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiQuery(f): ApiQuery<CasePageFilter>,
) -> Result<Json<Page<LetterView>>> {
    Ok(Json(
        correspondence::list_for_case(&s.svc, &actor, &id, f, s.now()).await?,
    ))
}

/// Letters across the cases of the caller's scope, newest first, by status and direction;
/// metadata only.
#[utoipa::path(get, path = "/api/v1/correspondence", tag = "correspondence",
    params(LetterFilter),
    responses((status = 200, body = Page<LetterView>), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_letters(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<LetterFilter>,
) -> Result<Json<Page<LetterView>>> {
    Ok(Json(
        correspondence::list(&s.svc, &actor, f, s.now()).await?,
    ))
}

/// One letter: for the case's staff with the original, the redacted text, the proposed
/// redaction and what stops its release; for ethics reviewers its metadata.
#[utoipa::path(get, path = "/api/v1/correspondence/{id}", tag = "correspondence",
    params(("id" = String, Path)),
    responses((status = 200, body = LetterView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_letter(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<LetterView>> {
    Ok(Json(
        correspondence::get(&s.svc, &actor, &id, s.now()).await?,
    ))
}

/// Save the redacted text of a letter under review.
#[utoipa::path(patch, path = "/api/v1/correspondence/{id}", tag = "correspondence",
    request_body = RedactInput, params(("id" = String, Path)),
    responses((status = 200, body = LetterView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn redact_letter(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<RedactInput>,
) -> Result<Json<LetterView>> {
    Ok(Json(
        correspondence::redact(&s.svc, &actor, &id, input, s.now()).await?,
    ))
}

/// Pass a redacted letter on. 422 naming each reason: `redacted_text` (none saved, or it
/// still holds what identifies the family side), `consent` (the family side's correspondence
/// consent is not in force), `correspondent` (theirs is not recorded, or withdrawn).
#[utoipa::path(post, path = "/api/v1/correspondence/{id}/release", tag = "correspondence",
    params(("id" = String, Path)),
    responses((status = 200, body = LetterView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn release_letter(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<LetterView>> {
    Ok(Json(
        correspondence::release(&s.svc, &actor, &id, s.now()).await?,
    ))
}

/// Withhold a letter under review, with a reason code.
#[utoipa::path(post, path = "/api/v1/correspondence/{id}/withhold", tag = "correspondence",
    request_body = WithholdInput, params(("id" = String, Path)),
    responses((status = 200, body = LetterView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn withhold_letter(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<WithholdInput>,
) -> Result<Json<LetterView>> {
    Ok(Json(
        correspondence::withhold(&s.svc, &actor, &id, input, s.now()).await?,
    ))
}

/// The family's released letters addressed to it: the redacted text and the writer's
/// pseudonymous label only.
#[utoipa::path(get, path = "/api/v1/me/correspondence", tag = "correspondence",
    params(CasePageFilter),
    responses((status = 200, body = Page<FamilyLetter>), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn family_letters(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<CasePageFilter>,
) -> Result<Json<Page<FamilyLetter>>> {
    Ok(Json(
        correspondence::family_letters(&s.svc, &actor, f, s.now()).await?,
    ))
}

/// A family member writes to the recipient: recorded for a coordinator to review and hold
/// back what identifies; 422 naming `consent` while their correspondence consent is not in
/// force, or `correspondent_id` for someone who did not agree to write.
#[utoipa::path(post, path = "/api/v1/me/correspondence", tag = "correspondence",
    request_body = FamilyLetterInput,
    responses((status = 201, body = FamilyLetter), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn family_write(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiJson(input): ApiJson<FamilyLetterInput>,
) -> Result<(StatusCode, Json<FamilyLetter>)> {
    let l = correspondence::family_write(&s.svc, &actor, input, s.now()).await?;
    Ok((StatusCode::CREATED, Json(l)))
}

/// Whom the family may write to (labels only); empty while its correspondence consent is not
/// in force.
#[utoipa::path(get, path = "/api/v1/me/correspondents", tag = "correspondence",
    params(CasePageFilter),
    responses((status = 200, body = Page<FamilyCorrespondent>), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn family_correspondents(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<CasePageFilter>,
) -> Result<Json<Page<FamilyCorrespondent>>> {
    Ok(Json(
        correspondence::family_correspondents(&s.svc, &actor, f, s.now()).await?,
    ))
}
