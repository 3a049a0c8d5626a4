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
use crate::crypto::{self, random_token, token_hash, Place, Sealed, SecretString};
use crate::domain::throttle::{self, Noted};
use crate::error::{Error, Result, Validator};
use crate::policy::{Action, Actor, Resource};
use crate::store::{Store, UserRow};
use zeroize::Zeroizing;

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
    /// Where the daily digest goes (staff).
    pub email: Option<String>,
    pub disabled: bool,
    /// Whether the account has confirmed a TOTP enrolment (codes are asked at sign-in).
    pub totp_enrolled: bool,
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
            email: u.email.clone(),
            disabled: u.disabled,
            totp_enrolled: u.totp_enabled_at.is_some(),
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
        contact_id: u.contact_id.clone(),
        must_enrol: false,
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

/// A successful sign-in: the account and the audit entry that records it.
pub struct SignedIn {
    pub user: UserRow,
    pub audit: AuditEntry,
}

/// Check a username and password (and TOTP code, once enrolled), throttled per account and
/// per address (`client`). The caller records the returned entry with what it issues.
pub async fn check_credentials(
    svc: &Services,
    input: &LoginInput,
    client: Option<&str>,
    now: DateTime<Utc>,
) -> Result<SignedIn> {
    let username = input.username.trim().to_lowercase();
    let keys = throttle::login_keys(&username, client);
    if let Some(wait) = svc.throttle.retry_after(&keys, now) {
        return Err(Error::TooManyRequests { retry_after: wait });
    }
    let user = svc.store.user_by_username(&username).await?;
    let password = input.password.clone();
    let hash = user.as_ref().and_then(|u| u.password_hash.clone());
    // argon2 takes tens of milliseconds: keep it off the async workers. Unknown users are
    // checked against a dummy hash, so both failures take as long.
    let ok = tokio::task::spawn_blocking(move || verify(password.expose(), hash.as_deref()))
        .await
        .map_err(|e| anyhow::anyhow!("password check: {e}"))?;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        other => {
            login_failed(svc, other.as_ref(), &keys, "bad_credentials", now).await?;
            return Err(Error::InvalidCredentials);
        }
    };
    if user.totp_enabled_at.is_some() {
        let Some(code) = input.totp.as_deref() else {
            return Err(Error::TotpRequired);
        };
        if !check_totp(svc, &user, code, now).await? {
            login_failed(svc, Some(&user), &keys, "bad_totp", now).await?;
            return Err(Error::InvalidCredentials);
        }
    }
    let earlier_failures = svc.throttle.succeeded(&keys[0].0);
    let mut audit =
        AuditEntry::new(Some(&actor_of(&user)?), "auth.login", "user", now).target(&user.id);
    if earlier_failures > 0 {
        audit = audit.reason(&format!("after_failures:{earlier_failures}"));
    }
    Ok(SignedIn { user, audit })
}

/// Sign in through the API: check the credentials and issue a bearer token.
pub async fn login(
    svc: &Services,
    input: LoginInput,
    client: Option<&str>,
    now: DateTime<Utc>,
) -> Result<LoginOutput> {
    let SignedIn { user, audit } = check_credentials(svc, &input, client, now).await?;
    let token = random_token();
    let expires_at = now + Duration::hours(TOKEN_LIFETIME_HOURS);
    svc.store
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

/// Count a failed login; the audit log gets the first failure of a window and one line when
/// back-off starts, not one line per guess.
async fn login_failed(
    svc: &Services,
    user: Option<&UserRow>,
    keys: &[throttle::Key],
    why: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let noted = svc.throttle.failed(keys, now);
    tracing::info!(
        user_id = user.map(|u| u.id.as_str()).unwrap_or("-"),
        "login failed"
    );
    let entry = |reason: String| {
        let e = AuditEntry::new(None, "auth.login_failed", "user", now).denied(&reason);
        match user {
            Some(u) => e.target(&u.id),
            None => e,
        }
    };
    match noted {
        Noted::First => svc.audit.record(vec![entry(why.to_string())]).await,
        Noted::Locked(secs) if secs <= 2 => {
            svc.audit
                .record(vec![entry(format!(
                    "throttled_after:{}",
                    throttle::FREE_FAILURES + 1
                ))])
                .await
        }
        _ => Ok(()),
    }
}

/// Accounts are the admin's: refuse (and record) anyone else.
async fn authorize_admin(svc: &Services, actor: &Actor, now: DateTime<Utc>) -> Result<()> {
    svc.authorize(
        actor,
        Action::ManageAccounts,
        Resource::System,
        svc.entry(actor, Action::ManageAccounts, "user", now),
    )
    .await
}

/// The actor behind a user row.
pub(crate) fn actor_with(svc: &Services, u: &UserRow) -> Result<Actor> {
    let mut a = actor_of(u)?;
    a.must_enrol = u.totp_enabled_at.is_none() && svc.require_totp.contains(&a.role);
    Ok(a)
}

/// The account behind a bearer token, if the token is live and the account active.
pub async fn authenticate(svc: &Services, token: &str, now: DateTime<Utc>) -> Result<Actor> {
    let user = svc
        .store
        .user_for_token(&token_hash(token), now)
        .await?
        .ok_or(Error::Unauthenticated)?;
    actor_with(svc, &user)
}

/// TOTP (RFC 6238, SHA-1, 6 digits, 30 s) for a stored secret.
fn totp_for(secret: &[u8], account: &str) -> totp_rs::TOTP {
    totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        secret.to_vec(),
        Some("donorcare".into()),
        account.to_string(),
    )
}

fn totp_place(user_id: &str) -> Place<'_> {
    Place::new("users", "totp_secret", user_id)
}

/// Check a TOTP code (one step of clock skew either way) and spend its time step, so the same
/// code never works twice.
async fn check_totp(
    svc: &Services,
    user: &UserRow,
    code: &str,
    now: DateTime<Utc>,
) -> Result<bool> {
    let Some(sealed) = &user.totp_secret else {
        return Ok(false);
    };
    let secret = crypto::open(
        &svc.secrets_key(),
        totp_place(&user.id),
        &Sealed::from_bytes(sealed.clone()),
    )?;
    let totp = totp_for(&secret, &user.username);
    let step = now.timestamp() / 30;
    for s in [step - 1, step, step + 1] {
        if totp.generate((s * 30) as u64) == code.trim() {
            return svc.store.use_totp_step(&user.id, s).await;
        }
    }
    Ok(false)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolment {
    /// The shared secret, base32, for manual entry.
    pub secret: String,
    /// `otpauth://` URL for authenticator apps.
    pub otpauth_url: String,
}

/// The caller's account, which must not have TOTP enrolled yet.
async fn not_yet_enrolled(svc: &Services, actor: &Actor) -> Result<UserRow> {
    let user = svc
        .store
        .user_by_id(&actor.user_id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    if user.totp_enabled_at.is_some() {
        return Err(Error::Conflict {
            field: None,
            message: "TOTP is already enrolled for this account".into(),
        });
    }
    Ok(user)
}

/// Start TOTP enrolment: a new secret, stored pending until a code confirms it.
pub async fn totp_begin(
    svc: &Services,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<TotpEnrolment> {
    let user = not_yet_enrolled(svc, actor).await?;
    let mut secret = Zeroizing::new([0u8; 20]);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, secret.as_mut());
    let sealed = crypto::seal(&svc.secrets_key(), totp_place(&user.id), secret.as_ref());
    let audit = AuditEntry::new(Some(actor), "auth.totp_begin", "user", now).target(&user.id);
    svc.store
        .set_totp(&user.id, Some(sealed.as_bytes()), None, &[audit])
        .await?;
    let totp = totp_for(secret.as_ref(), &user.username);
    Ok(TotpEnrolment {
        secret: totp.get_secret_base32(),
        otpauth_url: totp.get_url(),
    })
}

/// Confirm TOTP enrolment with a first code.
pub async fn totp_confirm(
    svc: &Services,
    actor: &Actor,
    code: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let user = not_yet_enrolled(svc, actor).await?;
    if user.totp_secret.is_none() {
        return Err(Error::Conflict {
            field: None,
            message: "start enrolment first (POST /api/v1/me/totp)".into(),
        });
    }
    if !check_totp(svc, &user, code, now).await? {
        return Err(Error::field("code", "is not the current code"));
    }
    let audit = AuditEntry::new(Some(actor), "auth.totp_enrolled", "user", now).target(&user.id);
    svc.store
        .set_totp(&user.id, user.totp_secret.as_deref(), Some(now), &[audit])
        .await
}

/// For staff with TOTP enrolled, a valid fresh code; others pass.
pub async fn require_fresh_totp(
    svc: &Services,
    actor: &Actor,
    code: Option<&str>,
    now: DateTime<Utc>,
) -> Result<()> {
    let user = svc
        .store
        .user_by_id(&actor.user_id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    if user.totp_enabled_at.is_none() {
        return Ok(());
    }
    match code {
        None => Err(Error::field("totp", "is required: your account uses TOTP")),
        Some(c) if check_totp(svc, &user, c, now).await? => Ok(()),
        Some(_) => Err(Error::field("totp", "is not the current code")),
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    #[schema(value_type = String)]
    pub current_password: SecretString,
    #[schema(schema_with = super::schema::password)]
    pub new_password: SecretString,
}

/// Change one's own password; every other token and session of the account is revoked, all
/// but the one whose hash is `keep` (the API token or page session the change came through).
pub async fn change_password(
    svc: &Services,
    actor: &Actor,
    keep: &[u8],
    input: PasswordChange,
    now: DateTime<Utc>,
) -> Result<()> {
    let user = svc
        .store
        .user_by_id(&actor.user_id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    types::password(input.new_password.expose()).map_err(|e| Error::field("new_password", e))?;
    let current = input.current_password.clone();
    let hash = user.password_hash.clone();
    let ok = tokio::task::spawn_blocking(move || verify(current.expose(), hash.as_deref()))
        .await
        .map_err(|e| anyhow::anyhow!("password check: {e}"))?;
    if !ok {
        return Err(Error::field(
            "current_password",
            "is not your current password",
        ));
    }
    let new = input.new_password.clone();
    let new_hash = tokio::task::spawn_blocking(move || hash_password(new.expose()))
        .await
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))??;
    let audit = AuditEntry::new(Some(actor), "auth.password_changed", "user", now).target(&user.id);
    svc.store
        .change_password(&user.id, &new_hash, keep, now, &[audit])
        .await
}

/// Who a coordinator or supervisor may give a visit or call to: the active volunteers and
/// coordinators of their region, by display name (for the planning form's choice).
pub async fn assignees(svc: &Services, actor: &Actor) -> Result<Vec<(String, String)>> {
    if !matches!(actor.role, Role::Coordinator | Role::Supervisor) {
        return Err(Error::Forbidden);
    }
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let rows = svc.store.list_users(after.as_deref(), 500).await?;
        let last = rows.last().map(|r| r.id.clone());
        for r in &rows {
            let role_fits = r.role == "volunteer" || r.role == "coordinator";
            if role_fits && !r.disabled && r.region == actor.region {
                out.push((r.id.clone(), r.display_name.clone()));
            }
        }
        if rows.len() < 500 || out.len() > 2000 {
            break;
        }
        after = last;
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// The staff languages a page may be read in.
pub const LANGUAGES: &[&str] = &["zh-CN", "en"];

/// The caller's page language, if they chose one.
pub async fn language(svc: &Services, actor: &Actor) -> Result<Option<String>> {
    svc.store.account_language(&actor.user_id).await
}

/// Choose the language one's pages are read in.
pub async fn set_language(
    svc: &Services,
    actor: &Actor,
    language: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    if !LANGUAGES.contains(&language) {
        return Err(Error::field(
            "language",
            format!("must be one of {}", LANGUAGES.join(", ")),
        ));
    }
    let audit = AuditEntry::new(Some(actor), "user.language", "user", now)
        .target(&actor.user_id)
        .reason(language);
    svc.store
        .set_account_language(&actor.user_id, language, &[audit])
        .await
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

fn user_name() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::token(types::USERNAME, false)
}

fn user_display_name() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::nonempty_text(1, MAX_DISPLAY_NAME)
}

fn user_role() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(&super::schema::names(Role::ALL, Role::as_str), false)
}

fn user_region() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::token(types::REGION, true)
}

fn user_email() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::email(true)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserInput {
    #[schema(schema_with = user_name, required = true)]
    pub username: Option<String>,
    #[schema(schema_with = user_display_name)]
    pub display_name: Option<String>,
    #[schema(schema_with = user_role, required = true)]
    pub role: Option<String>,
    #[schema(schema_with = user_region)]
    pub region: Option<String>,
    /// Where the daily digest goes (coordinators).
    #[schema(schema_with = user_email)]
    pub email: Option<String>,
    #[schema(schema_with = super::schema::optional_password)]
    pub password: Option<SecretString>,
}

/// Validate and build a new account row (used by the API, the command line and the setup page).
/// The longest display name of an account.
pub const MAX_DISPLAY_NAME: usize = 100;

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
        Some(d) => v.check("display_name", types::required_text(d, MAX_DISPLAY_NAME)),
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
    let email = input
        .email
        .as_deref()
        .and_then(|e| v.check("email", types::email(e)));
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
        totp_secret: None,
        totp_enabled_at: None,
        totp_last_step: 0,
        contact_id: None,
        email,
    })
}

pub async fn create_user(
    svc: &Services,
    actor: &Actor,
    input: NewUserInput,
    now: DateTime<Utc>,
) -> Result<UserView> {
    authorize_admin(svc, actor, now).await?;
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
    authorize_admin(svc, actor, now).await?;
    let limit = page_limit(limit)?;
    let rows = svc.store.list_users(cursor.as_deref(), limit + 1).await?;
    paginate(rows, limit, |r| r.id.clone(), |r| UserView::try_from(&r))
}

fn patch_display_name() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::nonempty_text(1, MAX_DISPLAY_NAME)
}

fn patch_role() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(&super::schema::names(Role::ALL, Role::as_str), true)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    #[schema(schema_with = patch_display_name)]
    pub display_name: Option<String>,
    #[schema(schema_with = patch_role)]
    pub role: Option<String>,
    /// A region, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = user_region)]
    pub region: Option<Option<String>>,
    pub disabled: Option<bool>,
    #[schema(schema_with = super::schema::optional_password)]
    pub password: Option<SecretString>,
    /// An email address for the daily digest, or null to clear it.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = user_email)]
    pub email: Option<Option<String>>,
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
    authorize_admin(svc, actor, now).await?;
    let mut u = svc.store.user_by_id(id).await?.ok_or(Error::NotFound)?;
    let mut v = Validator::new();
    if let Some(d) = &patch.display_name {
        if let Some(d) = v.check("display_name", types::required_text(d, MAX_DISPLAY_NAME)) {
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
    if let Some(e) = &patch.email {
        u.email = match e {
            None => None,
            Some(e) => v.check("email", types::email(e)),
        };
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

/// How long a setup link an admin issues for an account stays valid.
pub const USER_SETUP_LINK_HOURS: i64 = 72;

/// Issue a one-time link through which the account's person sets their own password (a new
/// account, or a forgotten password); any earlier link of theirs stops working. Returns the
/// token, shown once to the admin and never stored.
pub async fn issue_user_setup_link(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<SecretString> {
    authorize_admin(svc, actor, now).await?;
    let user = svc.store.user_by_id(id).await?.ok_or(Error::NotFound)?;
    if user.disabled {
        return Err(Error::Conflict {
            field: Some("disabled".into()),
            message: "the account is disabled; enable it first".into(),
        });
    }
    let token = random_token();
    let audit = AuditEntry::new(Some(actor), "user.setup_link", "user", now).target(&user.id);
    svc.store
        .replace_user_setup_token(
            &user.id,
            &token_hash(token.expose()),
            now,
            now + Duration::hours(USER_SETUP_LINK_HOURS),
            &[audit],
        )
        .await?;
    tracing::info!(user_id = %user.id, actor = %actor.user_id, "setup link issued");
    Ok(token)
}

/// The account a setup link belongs to, while the link is unused and unexpired.
pub async fn user_setup_link(
    store: &dyn Store,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<UserView>> {
    store
        .user_setup_token(&token_hash(token), now)
        .await?
        .as_ref()
        .map(UserView::try_from)
        .transpose()
}

/// Set an account's password through its setup link; every session and token of the account
/// ends. The link works once.
pub async fn complete_user_setup(
    store: &dyn Store,
    token: &str,
    password: Option<SecretString>,
    now: DateTime<Utc>,
) -> Result<UserView> {
    let Some(user) = store.user_setup_token(&token_hash(token), now).await? else {
        return Err(Error::NotFound);
    };
    let Some(password) = password else {
        return Err(Error::field("password", "is required"));
    };
    types::password(password.expose()).map_err(|e| Error::field("password", e))?;
    let hash = tokio::task::spawn_blocking(move || hash_password(password.expose()))
        .await
        .map_err(|e| anyhow::anyhow!("hashing password: {e}"))??;
    let audit = AuditEntry::new(None, "auth.password_set", "user", now)
        .target(&user.id)
        .reason("setup_link");
    if store
        .consume_user_setup_token(&token_hash(token), now, &hash, &[audit])
        .await?
        .is_none()
    {
        return Err(Error::NotFound);
    }
    tracing::info!(user_id = %user.id, "password set through a setup link");
    UserView::try_from(&user)
}

/// Remove an account's TOTP enrolment (a lost phone): sign-in asks for no code until the person
/// enrols again. Audited; an account without TOTP is left as it is.
pub async fn reset_totp(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<UserView> {
    authorize_admin(svc, actor, now).await?;
    let mut user = svc.store.user_by_id(id).await?.ok_or(Error::NotFound)?;
    let audit = AuditEntry::new(Some(actor), "user.totp_reset", "user", now).target(&user.id);
    svc.store.set_totp(&user.id, None, None, &[audit]).await?;
    tracing::info!(user_id = %user.id, actor = %actor.user_id, "TOTP reset");
    user.totp_secret = None;
    user.totp_enabled_at = None;
    UserView::try_from(&user)
}

/// What the admin's account list asks for: a search in usernames and display names, a role.
#[derive(Debug, Default, Clone)]
pub struct UserFilter {
    pub q: Option<String>,
    pub role: Option<String>,
    pub cursor: Option<String>,
    pub limit: Option<i64>,
}

/// Accounts matching `filter` (admin), in id order. The search is a case-insensitive part of
/// the username or the display name (accounts are not encrypted: staff names are no case data).
pub async fn search_users(
    svc: &Services,
    actor: &Actor,
    filter: UserFilter,
    now: DateTime<Utc>,
) -> Result<Page<UserView>> {
    authorize_admin(svc, actor, now).await?;
    let limit = page_limit(filter.limit)?;
    let role = match filter.role.as_deref() {
        None => None,
        Some(r) => Some(Role::parse(r).map_err(|e| Error::field("role", e))?),
    };
    let q = filter.q.as_deref().map(|q| q.trim().to_lowercase());
    let fits = |r: &UserRow| {
        role.is_none_or(|role| r.role == role.as_str())
            && q.as_deref().is_none_or(|q| {
                r.username.to_lowercase().contains(q) || r.display_name.to_lowercase().contains(q)
            })
    };
    const BATCH: i64 = 500;
    let mut found = Vec::new();
    let mut after = filter.cursor.clone();
    loop {
        let rows = svc.store.list_users(after.as_deref(), BATCH).await?;
        let full = rows.len() as i64 == BATCH;
        after = rows.last().map(|r| r.id.clone());
        found.extend(rows.into_iter().filter(|r| fits(r)));
        if !full || found.len() as i64 > limit {
            break;
        }
    }
    paginate(found, limit, |r| r.id.clone(), |r| UserView::try_from(&r))
}

/// One account (admin).
pub async fn get_user(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<UserView> {
    authorize_admin(svc, actor, now).await?;
    let user = svc.store.user_by_id(id).await?.ok_or(Error::NotFound)?;
    UserView::try_from(&user)
}

/// How many accounts there are by role, and how many are disabled or have TOTP (the admin's
/// home). Reads at most `cap` accounts.
#[derive(Debug, Default, Serialize)]
pub struct AccountCounts {
    pub total: i64,
    pub disabled: i64,
    pub totp: i64,
    pub by_role: Vec<(String, i64)>,
}

pub async fn account_counts(
    svc: &Services,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<AccountCounts> {
    authorize_admin(svc, actor, now).await?;
    let mut out = AccountCounts::default();
    let mut by_role: std::collections::BTreeMap<String, i64> = Role::ALL
        .iter()
        .map(|r| (r.as_str().to_string(), 0))
        .collect();
    let mut after: Option<String> = None;
    loop {
        let rows = svc.store.list_users(after.as_deref(), 500).await?;
        after = rows.last().map(|r| r.id.clone());
        for r in &rows {
            out.total += 1;
            out.disabled += i64::from(r.disabled);
            out.totp += i64::from(r.totp_enabled_at.is_some());
            *by_role.entry(r.role.clone()).or_default() += 1;
        }
        if rows.len() < 500 {
            break;
        }
    }
    out.by_role = by_role.into_iter().collect();
    Ok(out)
}

/// Where the caller's TOTP stands: enrolled (since when), pending (the secret begun and not
/// yet confirmed, shown again so the enrolment page survives a reload or a mistyped code), or
/// not begun.
pub enum TotpState {
    Enrolled(DateTime<Utc>),
    Pending(TotpEnrolment),
    None,
}

pub async fn totp_state(svc: &Services, actor: &Actor) -> Result<TotpState> {
    let user = svc
        .store
        .user_by_id(&actor.user_id)
        .await?
        .ok_or(Error::Unauthenticated)?;
    if let Some(at) = user.totp_enabled_at {
        return Ok(TotpState::Enrolled(at));
    }
    let Some(sealed) = &user.totp_secret else {
        return Ok(TotpState::None);
    };
    let secret = crypto::open(
        &svc.secrets_key(),
        totp_place(&user.id),
        &Sealed::from_bytes(sealed.clone()),
    )?;
    let totp = totp_for(&secret, &user.username);
    Ok(TotpState::Pending(TotpEnrolment {
        secret: totp.get_secret_base32(),
        otpauth_url: totp.get_url(),
    }))
}

/// Sign out on every device: end every browser session and API token of the caller's own
/// account, this one included; how many ended. Audited like the other account changes.
pub async fn end_all_sessions(svc: &Services, actor: &Actor, now: DateTime<Utc>) -> Result<u64> {
    let audit = AuditEntry::new(Some(actor), "auth.sessions_ended", "user", now)
        .target(&actor.user_id)
        .reason("every device");
    let ended = svc.store.end_sessions(&actor.user_id, &[audit]).await?;
    tracing::info!(user_id = %actor.user_id, ended, "signed out on every device");
    Ok(ended)
}
