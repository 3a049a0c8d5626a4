//! How errors reach a client: one JSON shape, one status per variant. Internal causes are
//! logged here with the request's ids and never sent.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{Error, FieldErrors};

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `validation_failed`.
    pub code: &'static str,
    pub message: String,
    /// Field → why its value was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<FieldErrors>,
}

impl Error {
    pub fn status(&self) -> StatusCode {
        match self {
            Error::BadRequest(_) => StatusCode::BAD_REQUEST,
            Error::Unauthenticated | Error::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Error::Forbidden => StatusCode::FORBIDDEN,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Error::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::TotpRequired => StatusCode::UNAUTHORIZED,
            Error::TotpEnrolmentRequired => StatusCode::FORBIDDEN,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn body(self) -> ErrorDetail {
        let (code, message, fields) = match self {
            Error::BadRequest(m) => ("bad_request", m, None),
            Error::Unauthenticated => (
                "unauthorized",
                "a valid bearer token is required".into(),
                None,
            ),
            Error::InvalidCredentials => (
                "invalid_credentials",
                "username or password is wrong".into(),
                None,
            ),
            Error::Forbidden => ("forbidden", "your role may not do this".into(), None),
            Error::NotFound => ("not_found", "no such record".into(), None),
            Error::MethodNotAllowed => {
                ("method_not_allowed", "method not allowed here".into(), None)
            }
            Error::Conflict { field, message } => {
                let fields = field.map(|f| FieldErrors::from([(f, message.clone())]));
                ("conflict", message, fields)
            }
            Error::PayloadTooLarge => ("payload_too_large", "request body too large".into(), None),
            Error::Validation(f) => {
                let message = format!(
                    "invalid {}",
                    f.keys().cloned().collect::<Vec<_>>().join(", ")
                );
                ("validation_failed", message, Some(f))
            }
            Error::TooManyRequests { retry_after } => (
                "too_many_requests",
                format!("too many attempts; try again in {retry_after} s"),
                None,
            ),
            Error::TotpRequired => (
                "totp_required",
                "this account needs its TOTP code (field totp)".into(),
                None,
            ),
            Error::TotpEnrolmentRequired => (
                "totp_enrolment_required",
                "enrol TOTP first: POST /api/v1/me/totp, then /api/v1/me/totp/confirm".into(),
                None,
            ),
            Error::Internal(e) => {
                tracing::error!(error = %format!("{e:#}"), "internal error");
                (
                    "internal",
                    "internal error; it has been logged".into(),
                    None,
                )
            }
        };
        ErrorDetail {
            code,
            message,
            fields,
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        let unauthenticated = matches!(self, Error::Unauthenticated | Error::InvalidCredentials);
        let retry = match &self {
            Error::TooManyRequests { retry_after } => Some(*retry_after),
            _ => None,
        };
        let mut resp = (status, axum::Json(ErrorBody { error: self.body() })).into_response();
        if let Some(secs) = retry {
            if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if unauthenticated {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
