use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use crate::domain::accounts::{self, NewUserInput, UserPatch, UserView};
use crate::domain::Page;
use crate::error::Result;
use crate::web::error::ErrorBody;
use crate::web::extract::{ApiJson, ApiQuery, Auth};
use crate::web::AppState;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageParams {
    /// 1–200, default 50.
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Create an account (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUserInput,
    responses((status = 201, body = UserView), (status = 403, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn create_user(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiJson(input): ApiJson<NewUserInput>,
) -> Result<(StatusCode, Json<UserView>)> {
    let u = accounts::create_user(&s.svc, &actor, input, s.now()).await?;
    Ok((StatusCode::CREATED, Json(u)))
}

/// List accounts (admin), oldest first.
#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(PageParams),
    responses((status = 200, body = Page<UserView>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_users(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(p): ApiQuery<PageParams>,
) -> Result<Json<Page<UserView>>> {
    Ok(Json(
        accounts::list_users(&s.svc, &actor, p.cursor, p.limit, s.now()).await?,
    ))
}

/// Change an account's role, region, display name, password or disabled flag (admin).
/// Disabling revokes the account's tokens at once.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserPatch,
    params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_user(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(patch): ApiJson<UserPatch>,
) -> Result<Json<UserView>> {
    Ok(Json(
        accounts::update_user(&s.svc, &actor, &id, patch, s.now()).await?,
    ))
}

/// Remove an account's TOTP enrolment, e.g. after a lost phone (admin): sign-in asks for no
/// code until the person enrols again. Audited as `user.totp_reset`.
#[utoipa::path(post, path = "/api/v1/users/{id}/totp-reset", tag = "users",
    params(("id" = String, Path)),
    responses((status = 200, body = UserView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn reset_totp(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<UserView>> {
    Ok(Json(
        accounts::reset_totp(&s.svc, &actor, &id, s.now()).await?,
    ))
}
