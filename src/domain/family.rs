//! Families: invitation links that turn a contact into a family account, and the family's own
//! view of who opened their file.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::accounts::{self, NewUserInput, UserView};
use super::cases::{self, Authorized};
use super::{page_limit, Page, Services};
use crate::audit::AuditEntry;
use crate::crypto::{random_token, token_hash, SecretString};
use crate::error::{Error, Result};
use crate::policy::{Action, Actor, Resource};
use crate::store::InviteRow;

/// How long an invitation link works.
pub const INVITE_DAYS: i64 = 14;

#[derive(Debug, Serialize, ToSchema)]
pub struct Invitation {
    /// The one-time link; its last path segment is the token.
    pub invite_url: String,
    pub expires_at: DateTime<Utc>,
}

/// Issue a one-time invitation for a contact (staff who may manage the case's contacts).
pub async fn invite(
    svc: &Services,
    actor: &Actor,
    contact_id: &str,
    base_url: &str,
    now: DateTime<Utc>,
) -> Result<Invitation> {
    let contact = svc
        .store
        .contact_by_id(contact_id)
        .await?
        .ok_or(Error::NotFound)?;
    let Authorized { break_glass, .. } =
        cases::load_authorized(svc, actor, &contact.case_id, Action::InviteContact, now).await?;
    let token = random_token();
    let expires_at = now + Duration::days(INVITE_DAYS);
    let audit = svc
        .entry(actor, Action::InviteContact, "contact", now)
        .target(contact_id)
        .case(&contact.case_id)
        .break_glass(break_glass);
    svc.store
        .insert_invite(
            &token_hash(token.expose()),
            &InviteRow {
                contact_id: contact_id.to_string(),
                created_by: actor.user_id.clone(),
                created_at: now,
                expires_at,
                used_at: None,
            },
            &[audit],
        )
        .await?;
    Ok(Invitation {
        invite_url: format!(
            "{}/invite/{}",
            base_url.trim_end_matches('/'),
            token.expose()
        ),
        expires_at,
    })
}

/// Whether an invitation link can still be used.
pub async fn invite_valid(svc: &Services, token: &str, now: DateTime<Utc>) -> Result<bool> {
    Ok(svc
        .store
        .invite(&token_hash(token))
        .await?
        .is_some_and(|i| i.used_at.is_none() && i.expires_at > now))
}

fn accept_username() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::token(super::types::USERNAME, false)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptInput {
    #[schema(schema_with = accept_username, required = true)]
    pub username: Option<String>,
    #[schema(schema_with = super::schema::password, required = true)]
    pub password: Option<SecretString>,
}

/// Use an invitation: creates the family account of the contact. The link then stops working.
pub async fn accept(
    svc: &Services,
    token: &str,
    input: AcceptInput,
    now: DateTime<Utc>,
) -> Result<UserView> {
    let hash = token_hash(token);
    let invite = match svc.store.invite(&hash).await? {
        Some(i) if i.used_at.is_none() && i.expires_at > now => i,
        _ => return Err(Error::NotFound),
    };
    if input.password.is_none() {
        return Err(Error::field("password", "is required"));
    }
    let username = input.username.clone();
    let fields = NewUserInput {
        email: None,
        // The display name stays the username: the contact's real name lives sealed in the case.
        display_name: username.clone(),
        username,
        role: Some("family".into()),
        region: None,
        password: input.password,
    };
    let mut row = tokio::task::spawn_blocking(move || accounts::new_user(&fields, now))
        .await
        .map_err(|e| anyhow::anyhow!("creating account: {e}"))??;
    row.contact_id = Some(invite.contact_id.clone());
    let case_id = svc
        .store
        .contact_by_id(&invite.contact_id)
        .await?
        .map(|c| c.case_id)
        .ok_or(Error::NotFound)?;
    let audit = AuditEntry::new(None, "user.create", "user", now)
        .target(&row.id)
        .case(&case_id)
        .reason("invitation");
    if !svc.store.accept_invite(&hash, now, &row, &[audit]).await? {
        return Err(Error::NotFound);
    }
    tracing::info!(user_id = %row.id, contact_id = %invite.contact_id, "family account created");
    UserView::try_from(&row)
}

/// The family's case, through their contact.
pub async fn own_case(svc: &Services, actor: &Actor, now: DateTime<Utc>) -> Result<String> {
    svc.authorize(
        actor,
        Action::FamilyPortal,
        Resource::System,
        svc.entry(actor, Action::FamilyPortal, "contact", now),
    )
    .await?;
    let contact_id = actor.contact_id.as_deref().ok_or(Error::Forbidden)?;
    Ok(svc
        .store
        .contact_by_id(contact_id)
        .await?
        .ok_or(Error::NotFound)?
        .case_id)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccessEntry {
    pub at: DateTime<Utc>,
    /// The staff member's role and display name.
    pub staff_role: Option<String>,
    pub staff_name: Option<String>,
    /// What was done: `case.view`, `case.update`, `contact.write`, `case.break_glass`, …
    pub action: String,
    /// Opened through break-glass rather than an assignment.
    pub break_glass: bool,
}

/// Who opened the family's file, newest first.
pub async fn access_log(
    svc: &Services,
    actor: &Actor,
    cursor: Option<&str>,
    limit: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Page<AccessEntry>> {
    let case_id = own_case(svc, actor, now).await?;
    let limit = page_limit(limit)?;
    let before = match cursor {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| Error::field("cursor", "is not a cursor of this listing"))?,
        ),
    };
    let listed = svc.store.case_access_log(&case_id, before, limit + 1).await;
    let tampered = "your access log cannot be shown: a record in it was changed outside \
         donorcare; please tell the office";
    let rows = crate::audit::listed(listed, "access-log", tampered)?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = if more {
        rows.last().map(|r| r.seq.to_string())
    } else {
        None
    };
    Ok(Page {
        items: rows
            .into_iter()
            .map(|r| AccessEntry {
                at: r.at,
                staff_role: r.actor_role,
                staff_name: r.display_name,
                action: r.action,
                break_glass: r.break_glass,
            })
            .collect(),
        next_cursor,
    })
}
