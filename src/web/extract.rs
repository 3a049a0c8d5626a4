//! Extractors that turn every malformed request into the JSON error of the contract: 400 for
//! unreadable JSON, 413 past the body limit, 422 naming the field of a wrong value, 401 without
//! a valid token.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, StatusCode};
use serde::de::DeserializeOwned;

use super::AppState;
use crate::domain::{accounts, from_json};
use crate::error::Error;
use crate::policy::Actor;

/// A JSON body, read under the body limit and deserialized with the failing field named.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Error;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        if !json_type {
            return Err(Error::BadRequest(
                "expected Content-Type: application/json".into(),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                Error::PayloadTooLarge
            } else {
                Error::BadRequest("could not read the request body".into())
            }
        })?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::BadRequest(format!("malformed JSON: {e}")))?;
        Ok(ApiJson(from_json(value)?))
    }
}

/// Query parameters, deserialized with the failing parameter named. A parameter given with an
/// empty value (`?phone=&program=organ`, as a search form with an empty field sends it) is the
/// same as one not given.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let given: Vec<(String, String)> = form_urlencoded_parse(q)
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let encoded = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&given)
            .finish();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded_parse(&encoded));
        serde_path_to_error::deserialize(de)
            .map(ApiQuery)
            .map_err(|e| {
                let path = e.path().to_string();
                let inner = e.into_inner().to_string();
                if let Some(rest) = inner.strip_prefix("unknown field `") {
                    let name = rest.split('`').next().unwrap_or("").to_string();
                    Error::field(name, "is not a known parameter")
                } else {
                    let field = if path == "." {
                        "query".to_string()
                    } else {
                        path
                    };
                    Error::field(field, inner)
                }
            })
    }
}

fn form_urlencoded_parse(q: &str) -> form_urlencoded::Parse<'_> {
    form_urlencoded::parse(q.as_bytes())
}

/// What an account that must enrol TOTP may still call.
const ENROL_PATHS: &[&str] = &[
    "/api/v1/me",
    "/api/v1/me/totp",
    "/api/v1/me/totp/confirm",
    "/api/v1/me/password",
    "/api/v1/auth/logout",
];

/// The caller's network address, for throttling (`None` when not served over TCP).
pub struct ClientAddr(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let addr = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip().to_string());
        Ok(ClientAddr(addr))
    }
}

/// The caller, from `Authorization: Bearer <token>`.
pub struct Auth(pub Actor);

/// The raw bearer token of the request, for logout.
pub fn bearer(parts: &Parts) -> Option<&str> {
    parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(Error::Unauthenticated)?;
        Ok(Auth(authenticate(state, token, parts.uri.path()).await?))
    }
}

/// The account behind a bearer token, for a request to `path`, as `Auth` extracts it.
pub async fn authenticate(state: &AppState, token: &str, path: &str) -> Result<Actor, Error> {
    let actor = accounts::authenticate(&state.svc, token, state.now()).await?;
    tracing::Span::current().record("user_id", actor.user_id.as_str());
    // A role that must enrol TOTP and has not can do nothing else until it has.
    if actor.must_enrol && !ENROL_PATHS.contains(&path) {
        return Err(Error::TotpEnrolmentRequired);
    }
    Ok(actor)
}

/// The bearer token itself (for logout).
pub struct Token(pub String);

impl<S: Send + Sync> FromRequestParts<S> for Token {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        bearer(parts)
            .map(|t| Token(t.to_string()))
            .ok_or(Error::Unauthenticated)
    }
}
