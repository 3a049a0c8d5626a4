use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use crate::domain::accounts::{
    self, LoginInput, LoginOutput, PasswordChange, TotpEnrolment, UserView,
};
use crate::error::{Error, Result};
use crate::web::error::ErrorBody;
use crate::web::extract::{ApiJson, Auth, ClientAddr, Token};
use crate::web::AppState;

/// Exchange a username and password (and TOTP code, once enrolled) for a bearer token.
/// Repeated failures per account and per address are throttled with 429 and `Retry-After`.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginInput,
    responses((status = 200, body = LoginOutput), (status = 401, body = ErrorBody),
              (status = 429, body = ErrorBody)))]
pub async fn login(
    State(s): State<AppState>,
    ClientAddr(client): ClientAddr,
    ApiJson(input): ApiJson<LoginInput>,
) -> Result<Json<LoginOutput>> {
    Ok(Json(
        accounts::login(&s.svc, input, client.as_deref(), s.now()).await?,
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

/// Change your own password; your other tokens and sessions are revoked.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "auth", request_body = PasswordChange,
    responses((status = 204), (status = 422, body = ErrorBody)), security(("bearer" = [])))]
pub async fn change_password(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Token(token): Token,
    ApiJson(input): ApiJson<PasswordChange>,
) -> Result<StatusCode> {
    accounts::change_password(
        &s.svc,
        &actor,
        &crate::crypto::token_hash(&token),
        input,
        s.now(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start TOTP enrolment: returns the secret to put in an authenticator app.
#[utoipa::path(post, path = "/api/v1/me/totp", tag = "auth",
    responses((status = 200, body = TotpEnrolment), (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn totp_begin(
    State(s): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<TotpEnrolment>> {
    Ok(Json(accounts::totp_begin(&s.svc, &actor, s.now()).await?))
}

fn code_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    crate::domain::schema::totp_code(false)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpCode {
    #[schema(schema_with = code_schema)]
    pub code: String,
}

/// Confirm TOTP enrolment with the app's current code; logins need a code from then on.
#[utoipa::path(post, path = "/api/v1/me/totp/confirm", tag = "auth", request_body = TotpCode,
    responses((status = 204), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn totp_confirm(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiJson(input): ApiJson<TotpCode>,
) -> Result<StatusCode> {
    accounts::totp_confirm(&s.svc, &actor, &input.code, s.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}
