use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::domain::accounts::{self, LoginInput, LoginOutput, UserView};
use crate::error::{Error, Result};
use crate::web::error::ErrorBody;
use crate::web::extract::{ApiJson, Auth, Token};
use crate::web::AppState;

/// Exchange a username and password for a bearer token.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginInput,
    responses((status = 200, body = LoginOutput), (status = 401, body = ErrorBody)))]
pub async fn login(
    State(s): State<AppState>,
    ApiJson(input): ApiJson<LoginInput>,
) -> Result<Json<LoginOutput>> {
    Ok(Json(
        accounts::login(s.svc.store.as_ref(), input, s.now()).await?,
    ))
}

/// Revoke the bearer token of this request.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn logout(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Token(token): Token,
) -> Result<StatusCode> {
    accounts::logout(s.svc.store.as_ref(), &actor, &token, s.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own account.
#[utoipa::path(get, path = "/api/v1/me", tag = "auth",
    responses((status = 200, body = UserView), (status = 401, body = ErrorBody)), security(("bearer" = [])))]
pub async fn me(State(s): State<AppState>, Auth(actor): Auth) -> Result<Json<UserView>> {
    let u = s
        .svc
        .store
        .user_by_id(&actor.user_id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    Ok(Json(UserView::try_from(&u)?))
}
