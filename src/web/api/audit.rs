use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use crate::audit::Verification;
use crate::domain::audit_view::{self, AuditFilter, AuditView};
use crate::domain::break_glass::{self, BreakGlassReviewInput, BreakGlassReviewView};
use crate::domain::cases::{self, BreakGlassView};
use crate::domain::Page;
use crate::error::Result;
use crate::web::error::ErrorBody;
use crate::web::extract::{ApiJson, ApiQuery, Auth};
use crate::web::AppState;

/// One break-glass use with its reviews (ethics reviewers; supervisors for their region).
#[utoipa::path(get, path = "/api/v1/break-glass/{id}", tag = "audit", params(("id" = String, Path)),
    responses((status = 200, body = BreakGlassView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_break_glass(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<BreakGlassView>> {
    Ok(Json(
        cases::get_break_glass(&s.svc, &actor, &id, s.now()).await?,
    ))
}

/// An ethics reviewer acknowledges a break-glass use, or raises a concern (with a note).
#[utoipa::path(post, path = "/api/v1/break-glass/{id}/reviews", tag = "audit",
    request_body = BreakGlassReviewInput, params(("id" = String, Path)),
    responses((status = 201, body = BreakGlassReviewView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn review_break_glass(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<BreakGlassReviewInput>,
) -> Result<(StatusCode, Json<BreakGlassReviewView>)> {
    let r = break_glass::review(&s.svc, &actor, &id, input, s.now()).await?;
    Ok((StatusCode::CREATED, Json(r)))
}

/// Audit entries, newest first (admin, ethics reviewer; supervisors see their region's cases).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditFilter),
    responses((status = 200, body = Page<AuditView>), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody, description = "an entry in the page was changed outside donorcare"),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_audit(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<AuditFilter>,
) -> Result<Json<Page<AuditView>>> {
    Ok(Json(audit_view::list(&s.svc, &actor, f, s.now()).await?))
}

/// Recompute the hash chain and check the signed checkpoints; names the first bad entry.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit",
    responses((status = 200, body = Verification), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn verify_audit(
    State(s): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<Verification>> {
    Ok(Json(
        audit_view::verify(&s.svc, &actor, s.checkpoints.as_deref(), s.now()).await?,
    ))
}

fn reason_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    crate::domain::schema::required_text(
        crate::domain::cases::MIN_BREAK_GLASS_REASON,
        crate::domain::cases::MAX_REASON,
    )
}

fn totp_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    crate::domain::schema::totp_code(true)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassInput {
    /// Why the case must be opened now (at least 20 characters).
    #[schema(schema_with = reason_schema)]
    pub reason: String,
    /// A current TOTP code, required when the account has TOTP enrolled.
    #[schema(schema_with = totp_schema)]
    pub totp: Option<String>,
}

/// Open a case you are not assigned to for a limited time (coordinators); audited and flagged.
#[utoipa::path(post, path = "/api/v1/cases/{id}/break-glass", tag = "cases",
    request_body = BreakGlassInput, params(("id" = String, Path)),
    responses((status = 200, body = BreakGlassView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn break_glass(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<BreakGlassInput>,
) -> Result<Json<BreakGlassView>> {
    Ok(Json(
        cases::break_glass(
            &s.svc,
            &actor,
            &id,
            &input.reason,
            input.totp.as_deref(),
            s.now(),
        )
        .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassFilter {
    pub case_id: Option<String>,
    /// `true`: only the uses no ethics reviewer has acknowledged or raised a concern about
    /// (`false`, empty or absent: every use).
    #[param(schema_with = flag_param)]
    pub unreviewed: Option<bool>,
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A yes/no query parameter: `true` or `false`; an empty value is no value, as everywhere in
/// a query.
fn flag_param() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    crate::domain::schema::one_of(&["true", "false", ""], true)
}

/// Break-glass grants, newest first (ethics reviewers; supervisors for their region).
#[utoipa::path(get, path = "/api/v1/break-glass", tag = "audit", params(BreakGlassFilter),
    responses((status = 200, body = Page<BreakGlassView>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_break_glass(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<BreakGlassFilter>,
) -> Result<Json<Page<BreakGlassView>>> {
    Ok(Json(
        cases::list_break_glass(
            &s.svc,
            &actor,
            f.case_id.as_deref(),
            f.unreviewed.unwrap_or(false),
            f.cursor.as_deref(),
            f.limit,
            s.now(),
        )
        .await?,
    ))
}
