//! Browser sessions for the pages: a random id in an HttpOnly, SameSite=Strict cookie (Secure
//! when the service is reached over HTTPS), stored hashed on the server with its CSRF token;
//! idle timeout and maximum age; a new id at every login.

use axum::extract::FromRequestParts;
use axum::http::{header, request::Parts, HeaderMap, HeaderValue};
use chrono::{DateTime, Duration, Utc};

use super::AppState;
use crate::crypto::{random_token, token_hash};
use crate::domain::accounts::{self, SignedIn};
use crate::domain::types::Role;
use crate::error::{Error, Result};
use crate::policy::Actor;
use crate::store::SessionRow;

pub const SESSION_COOKIE: &str = "dc_session";
/// Carries the CSRF token of the login form, before there is a session.
pub const LOGIN_CSRF_COOKIE: &str = "dc_login_csrf";

/// Staff sessions end after this much inactivity, and after at most `STAFF_MAX`.
pub const STAFF_IDLE_MINUTES: i64 = 30;
pub const STAFF_MAX_HOURS: i64 = 12;
/// Families sign in rarely; their sessions last longer.
pub const FAMILY_IDLE_DAYS: i64 = 7;
pub const FAMILY_MAX_DAYS: i64 = 30;

fn idle_limit(role: Role) -> Duration {
    match role {
        Role::Family => Duration::days(FAMILY_IDLE_DAYS),
        _ => Duration::minutes(STAFF_IDLE_MINUTES),
    }
}

fn max_age(role: Role) -> Duration {
    match role {
        Role::Family => Duration::days(FAMILY_MAX_DAYS),
        _ => Duration::hours(STAFF_MAX_HOURS),
    }
}

/// The value of cookie `name`, if the request carries it.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value with the attributes every cookie here carries.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age_secs: i64,
    secure: bool,
) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Strict{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Compare two tokens in time independent of where they differ.
pub fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A signed-in page user with the session's CSRF token.
pub struct PageUser {
    pub actor: Actor,
    pub display_name: String,
    pub csrf: String,
    id_hash: Vec<u8>,
}

impl PageUser {
    /// The hash the session is stored under.
    pub fn session_hash(&self) -> &[u8] {
        &self.id_hash
    }

    /// Reject a form post whose CSRF token does not match the session's.
    pub fn check_csrf(&self, submitted: Option<&str>) -> Result<()> {
        match submitted {
            Some(t) if same_token(t, &self.csrf) => Ok(()),
            _ => Err(Error::Forbidden),
        }
    }
}

/// `Some` when the request carries a live session.
pub struct MaybeUser(pub Option<PageUser>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = Error;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(id) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Ok(MaybeUser(None));
        };
        let now = state.now();
        let id_hash = token_hash(id);
        let Some(s) = state.svc.store.session(&id_hash).await? else {
            return Ok(MaybeUser(None));
        };
        let Some(user) = state.svc.store.user_by_id(&s.user_id).await? else {
            return Ok(MaybeUser(None));
        };
        if user.disabled {
            return Ok(MaybeUser(None));
        }
        // `actor_with`: a role that must enrol TOTP and has not is marked, so the pages can
        // hold it to enrolment as the API does.
        let actor = accounts::actor_with(&state.svc, &user)?;
        if now >= s.expires_at || now - s.last_seen_at > idle_limit(actor.role) {
            state.svc.store.delete_session(&id_hash, &[]).await?;
            return Ok(MaybeUser(None));
        }
        // Record activity at most once a minute.
        if now - s.last_seen_at > Duration::minutes(1) {
            state.svc.store.touch_session(&id_hash, now).await?;
        }
        tracing::Span::current().record("user_id", actor.user_id.as_str());
        Ok(MaybeUser(Some(PageUser {
            actor,
            display_name: user.display_name,
            csrf: s.csrf,
            id_hash,
        })))
    }
}

/// Start a session for a signed-in account; returns the cookie to set. The id is always new.
pub async fn start(state: &AppState, signed: SignedIn, now: DateTime<Utc>) -> Result<HeaderValue> {
    let role = Role::parse(&signed.user.role).map_err(|e| anyhow::anyhow!("stored role: {e}"))?;
    let id = random_token();
    let row = SessionRow {
        user_id: signed.user.id.clone(),
        csrf: random_token().expose().to_string(),
        created_at: now,
        last_seen_at: now,
        expires_at: now + max_age(role),
    };
    let audit = signed.audit.reason("session");
    state
        .svc
        .store
        .insert_session(&token_hash(id.expose()), &row, &[audit])
        .await?;
    Ok(set_cookie(
        SESSION_COOKIE,
        id.expose(),
        "/",
        max_age(role).num_seconds(),
        state.secure_cookies,
    ))
}

/// End a session; returns the cookie that clears it.
pub async fn end(state: &AppState, user: &PageUser, now: DateTime<Utc>) -> Result<HeaderValue> {
    let audit = crate::audit::AuditEntry::new(Some(&user.actor), "auth.logout", "user", now)
        .target(&user.actor.user_id)
        .reason("session");
    state
        .svc
        .store
        .delete_session(&user.id_hash, &[audit])
        .await?;
    Ok(set_cookie(SESSION_COOKIE, "", "/", 0, state.secure_cookies))
}
