//! The keyring as an admin sees and turns it: data-key versions and the case keys each wraps,
//! the recipients the keyring is sealed to (and whether one of them is an offline recovery
//! key), and rotation. A rotation adds a version and re-wraps every older case key in the
//! background; how far it got is read from the database, so any instance's page shows it.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::Services;
use crate::audit::AuditEntry;
use crate::crypto::keyring::VersionStatus;
use crate::error::{Error, Result};
use crate::policy::{Action, Actor, Resource};

/// Case keys re-wrapped per transaction by the background job: small enough that the keys page
/// shows progress on a large registry, large enough not to spend its time committing.
const REWRAP_BATCH: i64 = 200;

#[derive(Debug, Clone, Serialize)]
pub struct RecipientView {
    pub recipient: String,
    /// The server's own identity; every other recipient is an offline recovery key.
    pub server: bool,
}

/// How far the re-wrap to the current version is.
#[derive(Debug, Clone, Serialize)]
pub struct RewrapProgress {
    /// Case keys wrapped by the current version.
    pub done: i64,
    /// Every case key.
    pub total: i64,
    /// Some case key is still wrapped by an older version.
    pub running: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeysView {
    pub current: i64,
    /// Newest first.
    pub versions: Vec<VersionStatus>,
    pub recipients: Vec<RecipientView>,
    /// At least one recipient besides the server's own: the keyring survives losing the server's
    /// identity.
    pub recovery: bool,
    /// When the current version was made, if it came from a rotation (not the first keyring).
    pub last_rotation: Option<DateTime<Utc>>,
    /// A live version sealed to another recipient list than the current one.
    pub reseal_needed: bool,
    pub progress: RewrapProgress,
}

async fn allow(svc: &Services, actor: &Actor, now: DateTime<Utc>) -> Result<()> {
    svc.authorize(
        actor,
        Action::ManageKeys,
        Resource::System,
        svc.entry(actor, Action::ManageKeys, "keyring", now),
    )
    .await
}

/// The keyring's state (admin).
pub async fn status(svc: &Services, actor: &Actor, now: DateTime<Utc>) -> Result<KeysView> {
    allow(svc, actor, now).await?;
    let st = svc.keys.status().await.map_err(Error::Internal)?;
    let total: i64 = st.versions.iter().map(|v| v.case_keys).sum();
    let done = st
        .versions
        .iter()
        .find(|v| v.version == st.current)
        .map_or(0, |v| v.case_keys);
    let last_rotation = st
        .versions
        .iter()
        .find(|v| v.version == st.current && v.version > 1)
        .map(|v| v.created_at);
    let reseal_needed = st
        .versions
        .iter()
        .any(|v| v.retired_at.is_none() && v.recipients != st.recipients);
    let recipients: Vec<RecipientView> = st
        .recipients
        .iter()
        .map(|r| RecipientView {
            recipient: r.clone(),
            server: *r == st.server_recipient,
        })
        .collect();
    let mut versions = st.versions;
    versions.sort_by_key(|v| std::cmp::Reverse(v.version));
    Ok(KeysView {
        current: st.current,
        recovery: recipients.iter().any(|r| !r.server),
        recipients,
        versions,
        last_rotation,
        reseal_needed,
        progress: RewrapProgress {
            done,
            total,
            running: done < total,
        },
    })
}

/// Rotate (admin): a new data-key version wraps every new case key at once, and a background
/// job re-wraps the older ones. An admin with TOTP gives a fresh code. A rotation whose
/// re-wrap is still running is a conflict: one at a time.
pub async fn rotate(
    svc: &Services,
    actor: &Actor,
    totp: Option<&str>,
    now: DateTime<Utc>,
) -> Result<i64> {
    allow(svc, actor, now).await?;
    super::accounts::require_fresh_totp(svc, actor, totp, now).await?;
    let current = svc.keys.ring().current;
    let behind = svc
        .store
        .case_key_counts()
        .await?
        .iter()
        .any(|c| c.key_version != current && c.count > 0);
    if behind {
        return Err(Error::Conflict {
            field: None,
            message: "the previous rotation is still re-wrapping case keys".into(),
        });
    }
    let version = svc
        .keys
        .rotate_by(Some(actor), now)
        .await
        .map_err(Error::Internal)?;
    tracing::info!(version, actor = %actor.user_id, "keyring rotated");
    let (keys, store, actor) = (svc.keys.clone(), svc.store.clone(), actor.clone());
    tokio::spawn(async move {
        let mut moved = 0usize;
        loop {
            match keys.rewrap_batch(REWRAP_BATCH).await {
                Ok(0) => break,
                Ok(n) => {
                    moved += n;
                    tracing::info!(rewrapped = moved, version, "re-wrapping case keys");
                }
                Err(e) => {
                    // The server's key maintenance picks it up again within seconds.
                    tracing::warn!(error = %format!("{e:#}"), version, "re-wrapping case keys");
                    return;
                }
            }
        }
        let entry = AuditEntry::new(Some(&actor), "keys.rewrap", "keyring", Utc::now())
            .target(&version.to_string())
            .reason(&format!("{moved} case keys"));
        if let Err(e) = store.append_audit(&[entry]).await {
            tracing::warn!(error = %e, version, "recording the re-wrap");
        }
    });
    Ok(version)
}
