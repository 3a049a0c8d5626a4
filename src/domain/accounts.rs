//! Accounts, passwords, bearer tokens and the first-admin setup link.
//!
//! Passwords are hashed with argon2id. An unknown username is checked against a dummy hash so
//! that it takes as long, and answers the same, as a wrong password. Tokens and one-time links
//! are random 256-bit values of which the database keeps only a SHA-256.

use std::sync::OnceLock;

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::types::{self, Role};
use super::{new_id, page_limit, paginate, Page, Services};
use crate::audit::AuditEntry;
use crate::crypto::{random_token, token_hash, SecretString};
use crate::error::{Error, Result, Validator};
use crate::policy::{Action, Actor, Resource};
use crate::store::{Store, UserRow};

/// How long a bearer token lives.
pub const TOKEN_LIFETIME_HOURS: i64 = 12;
/// How long the first-admin link printed at start stays valid.
pub const SETUP_LINK_HOURS: i64 = 24;

pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))?
        .to_string())
}

fn dummy_hash() -> &'static str {
    static H: OnceLock<String> = OnceLock::new();
    H.get_or_init(|| hash_password("not a password of anyone").unwrap_or_default())
}

fn verify(password: &str, hash: Option<&str>) -> bool {
    let (hash, real) = match hash {
        Some(h) => (h, true),
        None => (dummy_hash(), false),
    };
    let ok = PasswordHash::new(hash)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false);
    ok && real
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub region: Option<String>,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl TryFrom<&UserRow> for UserView {
    type Error = Error;
    fn try_from(u: &UserRow) -> Result<Self> {
        Ok(UserView {
            id: u.id.clone(),
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            role: Role::parse(&u.role).map_err(|e| anyhow::anyhow!("stored role: {e}"))?,
            region: u.region.clone(),
            disabled: u.disabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
        })
    }
}

pub fn actor_of(u: &UserRow) -> Result<Actor> {
    Ok(Actor {
        user_id: u.id.clone(),
        username: u.username.clone(),
        role: Role::parse(&u.role).map_err(|e| anyhow::anyhow!("stored role: {e}"))?,
        region: u.region.clone(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginInput {
    pub username: String,
    #[schema(value_type = String)]
    pub password: SecretString,
    /// Reserved for TOTP.
    pub totp: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginUser {
    pub id: String,
    pub username: String,
    pub role: Role,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginOutput {
    pub token: String,
    pub expires_at: DateTime<Utc>,
    pub user: LoginUser,
}

/// Check a username and password and issue a bearer token.
pub async fn login(
    store: &dyn Store,
    input: LoginInput,
    now: DateTime<Utc>,
) -> Result<LoginOutput> {
    let user = store.user_by_username(input.username.trim()).await?;
    let password = input.password.clone();
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    // argon2 takes tens of milliseconds: keep it off the async workers.
    let ok = tokio::task::spawn_blocking(move || verify(password.expose(), hash.as_deref()))
        .await
        .map_err(|e| anyhow::anyhow!("password check: {e}"))?;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        _ => {
            tracing::info!("login failed");
            return Err(Error::InvalidCredentials);
        }
    };
    let token = random_token();
    let expires_at = now + Duration::hours(TOKEN_LIFETIME_HOURS);
    let audit =
        AuditEntry::new(Some(&actor_of(&user)?), "auth.login", "user", now).target(&user.id);
    store
        .insert_token(
            &token_hash(token.expose()),
            &user.id,
            now,
            expires_at,
            &[audit],
        )
        .await?;
    tracing::info!(user_id = %user.id, "login");
    Ok(LoginOutput {
        token: token.expose().to_string(),
        expires_at,
        user: LoginUser {
            id: user.id.clone(),
            username: user.username.clone(),
            role: Role::parse(&user.role).map_err(|e| anyhow::anyhow!("stored role: {e}"))?,
        },
    })
}

/// The account behind a bearer token, if the token is live and the account active.
pub async fn authenticate(store: &dyn Store, token: &str, now: DateTime<Utc>) -> Result<Actor> {
    let user = store
        .user_for_token(&token_hash(token), now)
        .await?
        .ok_or(Error::Unauthenticated)?;
    actor_of(&user)
}

pub async fn logout(
    store: &dyn Store,
    actor: &Actor,
    token: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let audit = AuditEntry::new(Some(actor), "auth.logout", "user", now).target(&actor.user_id);
    store.revoke_token(&token_hash(token), &[audit]).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserInput {
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub role: Option<String>,
    pub region: Option<String>,
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
}

/// Validate and build a new account row (used by the API, the command line and the setup page).
pub fn new_user(input: &NewUserInput, now: DateTime<Utc>) -> Result<UserRow> {
    let mut v = Validator::new();
    let username = match &input.username {
        None => {
            v.add("username", "is required");
            None
        }
        Some(u) => v.check("username", types::username(u)),
    };
    let display_name = match &input.display_name {
        None => username.clone(),
        Some(d) => v.check("display_name", types::required_text(d, 100)),
    };
    let role = match &input.role {
        None => {
            v.add("role", "is required");
            None
        }
        Some(r) => v.check("role", Role::parse(r)),
    };
    let region = input
        .region
        .as_deref()
        .and_then(|r| v.check("region", types::region(r)));
    if role == Some(Role::Supervisor) && region.is_none() && !v.has("region") {
        v.add("region", "is required for a supervisor");
    }
    if let Some(p) = &input.password {
        v.check("password", types::password(p.expose()));
    }
    v.finish()?;
    let (Some(username), Some(display_name), Some(role)) = (username, display_name, role) else {
        return Err(Error::Internal(anyhow::anyhow!(
            "validation let a required field through"
        )));
    };
    let password_hash = input
        .password
        .as_ref()
        .map(|p| hash_password(p.expose()))
        .transpose()?;
    Ok(UserRow {
        id: new_id(),
        username,
        display_name,
        role: role.as_str().into(),
        region,
        password_hash,
        disabled: false,
        created_at: now,
        updated_at: now,
    })
}

pub async fn create_user(
    svc: &Services,
    actor: &Actor,
    input: NewUserInput,
    now: DateTime<Utc>,
) -> Result<UserView> {
    svc.authorize(
        actor,
        Action::ManageAccounts,
        Resource::System,
        svc.entry(actor, Action::ManageAccounts, "user", now),
    )
    .await?;
    let row = tokio::task::spawn_blocking(move || new_user(&input, now))
        .await
        .map_err(|e| anyhow::anyhow!("creating account: {e}"))??;
    let audit = AuditEntry::new(Some(actor), "user.create", "user", now).target(&row.id);
    svc.store.insert_user(&row, &[audit]).await?;
    tracing::info!(user_id = %row.id, actor = %actor.user_id, role = %row.role, "account created");
    UserView::try_from(&row)
}

pub async fn list_users(
    svc: &Services,
    actor: &Actor,
    cursor: Option<String>,
    limit: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Page<UserView>> {
    svc.authorize(
        actor,
        Action::ManageAccounts,
        Resource::System,
        svc.entry(actor, Action::ManageAccounts, "user", now),
    )
    .await?;
    let limit = page_limit(limit)?;
    let rows = svc.store.list_users(cursor.as_deref(), limit + 1).await?;
    paginate(rows, limit, |r| r.id.clone(), |r| UserView::try_from(&r))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub display_name: Option<String>,
    pub role: Option<String>,
    /// A region, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub region: Option<Option<String>>,
    pub disabled: Option<bool>,
    #[schema(value_type = Option<String>)]
    pub password: Option<SecretString>,
}

fn double_option<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<Option<String>>, D::Error> {
    Ok(Some(Option::deserialize(d)?))
}

pub async fn update_user(
    svc: &Services,
    actor: &Actor,
    id: &str,
    patch: UserPatch,
    now: DateTime<Utc>,
) -> Result<UserView> {
    svc.authorize(
        actor,
        Action::ManageAccounts,
        Resource::System,
        svc.entry(actor, Action::ManageAccounts, "user", now),
    )
    .await?;
    let mut u = svc.store.user_by_id(id).await?.ok_or(Error::NotFound)?;
    let mut v = Validator::new();
    if let Some(d) = &patch.display_name {
        if let Some(d) = v.check("display_name", types::required_text(d, 100)) {
            u.display_name = d;
        }
    }
    let was_active_admin = u.role == "admin" && !u.disabled;
    if let Some(r) = &patch.role {
        if let Some(r) = v.check("role", Role::parse(r)) {
            u.role = r.as_str().into();
        }
    }
    if let Some(r) = &patch.region {
        u.region = match r {
            None => None,
            Some(r) => v.check("region", types::region(r)),
        };
    }
    if u.role == "supervisor" && u.region.is_none() && !v.has("region") {
        v.add("region", "is required for a supervisor");
    }
    if let Some(d) = patch.disabled {
        u.disabled = d;
    }
    if let Some(p) = &patch.password {
        if v.check("password", types::password(p.expose())).is_some() {
            u.password_hash = Some(hash_password(p.expose())?);
        }
    }
    v.finish()?;
    let still_active_admin = u.role == "admin" && !u.disabled;
    if was_active_admin && !still_active_admin && svc.store.count_active_admins().await? <= 1 {
        return Err(Error::Conflict {
            field: Some(if u.disabled { "disabled" } else { "role" }.into()),
            message: "this is the last active admin".into(),
        });
    }
    u.updated_at = now;
    let reason = if patch.disabled == Some(true) {
        "disabled"
    } else {
        "changed"
    };
    let audit = AuditEntry::new(Some(actor), "user.update", "user", now)
        .target(&u.id)
        .reason(reason);
    svc.store.update_user(&u, &[audit]).await?;
    tracing::info!(user_id = %u.id, actor = %actor.user_id, disabled = u.disabled, "account updated");
    UserView::try_from(&u)
}

/// Issue a fresh first-admin link if there is no account yet; returns its token.
pub async fn issue_setup_link(
    store: &dyn Store,
    now: DateTime<Utc>,
) -> Result<Option<SecretString>> {
    if store.count_users().await? > 0 {
        return Ok(None);
    }
    let token = random_token();
    store
        .replace_setup_token(
            &token_hash(token.expose()),
            now,
            now + Duration::hours(SETUP_LINK_HOURS),
        )
        .await?;
    Ok(Some(token))
}

pub async fn setup_link_valid(store: &dyn Store, token: &str, now: DateTime<Utc>) -> Result<bool> {
    store.setup_token_valid(&token_hash(token), now).await
}

/// Create the first admin through the one-time link.
pub async fn complete_setup(
    store: &dyn Store,
    token: &str,
    input: NewUserInput,
    now: DateTime<Utc>,
) -> Result<UserView> {
    if !setup_link_valid(store, token, now).await? {
        return Err(Error::NotFound);
    }
    if input.password.is_none() {
        return Err(Error::field("password", "is required"));
    }
    let input = NewUserInput {
        role: Some("admin".into()),
        ..input
    };
    let row = tokio::task::spawn_blocking(move || new_user(&input, now))
        .await
        .map_err(|e| anyhow::anyhow!("creating account: {e}"))??;
    let audit = AuditEntry::new(None, "user.create", "user", now)
        .target(&row.id)
        .reason("setup_link");
    if !store
        .consume_setup_token(&token_hash(token), now, &row, &[audit])
        .await?
    {
        return Err(Error::NotFound);
    }
    tracing::info!(user_id = %row.id, "first admin created through the setup link");
    UserView::try_from(&row)
}
