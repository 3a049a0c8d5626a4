//! Reading the audit log: listings for admins, ethics reviewers and (their region) supervisors,
//! and the verification of the chain.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{page_limit, Page, Services};
use crate::audit::{self, Checkpoints, Outcome, Verification};
use crate::domain::types::{self, Role};
use crate::error::{Error, Result, Validator};
use crate::policy::{Action, Actor, Resource};
use crate::store::{AuditQuery, AuditRow};

fn when_param() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::instant_or_date(true)
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    pub case_id: Option<String>,
    pub actor_id: Option<String>,
    /// e.g. `case.view`, `case.break_glass`, `auth.login`.
    pub action: Option<String>,
    /// From this date (YYYY-MM-DD) or time (RFC 3339), inclusive.
    #[param(schema_with = when_param)]
    pub from: Option<String>,
    /// Before this date or time.
    #[param(schema_with = when_param)]
    pub to: Option<String>,
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditView {
    pub seq: i64,
    pub id: String,
    pub at: DateTime<Utc>,
    pub actor_id: Option<String>,
    pub actor_role: Option<String>,
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub case_id: Option<String>,
    pub outcome: Outcome,
    pub break_glass: bool,
    pub reason: Option<String>,
}

impl AuditView {
    fn from_row(r: AuditRow) -> Result<Self> {
        let e = r.entry()?;
        Ok(AuditView {
            seq: r.seq,
            id: e.id,
            at: e.at,
            actor_id: e.actor_id,
            actor_role: e.actor_role,
            action: e.action,
            target_type: e.target_type,
            target_id: e.target_id,
            case_id: e.case_id,
            outcome: e.outcome,
            break_glass: e.break_glass,
            reason: e.reason,
        })
    }
}

async fn allow(svc: &Services, actor: &Actor, now: DateTime<Utc>) -> Result<()> {
    svc.authorize(
        actor,
        Action::ReadAudit,
        Resource::System,
        svc.entry(actor, Action::ReadAudit, "audit", now),
    )
    .await
}

/// The answer to a listing whose page holds an entry changed outside donorcare.
const TAMPERED: &str = "an entry of the audit log in this page cannot be read: it was changed \
     outside donorcare; GET /api/v1/audit/verify names the first entry that does not match";

pub async fn list(
    svc: &Services,
    actor: &Actor,
    f: AuditFilter,
    now: DateTime<Utc>,
) -> Result<Page<AuditView>> {
    allow(svc, actor, now).await?;
    let mut v = Validator::new();
    let from = f
        .from
        .as_deref()
        .and_then(|s| v.check("from", types::parse_instant_or_date(s)));
    let to =
        f.to.as_deref()
            .and_then(|s| v.check("to", types::parse_instant_or_date(s)));
    let before = f.cursor.as_deref().and_then(|c| {
        v.check(
            "cursor",
            c.parse::<i64>()
                .map_err(|_| "is not a cursor of this listing".into()),
        )
    });
    let limit = page_limit(f.limit)?;
    v.finish()?;
    let region = match actor.role {
        Role::Supervisor => Some(actor.region.clone().unwrap_or_default()),
        _ => None,
    };
    let listed = svc
        .store
        .list_audit(&AuditQuery {
            case_id: f.case_id,
            actor_id: f.actor_id,
            action: f.action,
            from,
            to,
            region,
            before,
            limit: limit + 1,
        })
        .await;
    let rows = audit::listed(listed, "audit", TAMPERED)?;
    let more = rows.len() as i64 > limit;
    let items = rows
        .into_iter()
        .take(limit as usize)
        .map(AuditView::from_row)
        .collect::<Result<Vec<_>>>()?;
    let next_cursor = if more {
        items.last().map(|i| i.seq.to_string())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// Verify the chain (and the signed checkpoints, when given) for an API caller.
pub async fn verify(
    svc: &Services,
    actor: &Actor,
    checkpoints: Option<&Checkpoints>,
    now: DateTime<Utc>,
) -> Result<Verification> {
    allow(svc, actor, now).await?;
    // The chain spans every region; verifying it reveals only counts and hashes, so
    // supervisors may run it too.
    audit::verify(svc.store.as_ref(), checkpoints)
        .await
        .map_err(|e| match e {
            Error::Internal(e) => Error::Internal(e.context("verifying the audit log")),
            other => other,
        })
}

/// The newest signed checkpoint of the log's head, for the audit page; `None` without a
/// checkpoint file or before the first checkpoint.
pub async fn latest_checkpoint(
    svc: &Services,
    actor: &Actor,
    checkpoints: Option<&Checkpoints>,
    now: DateTime<Utc>,
) -> Result<Option<audit::Checkpoint>> {
    allow(svc, actor, now).await?;
    match checkpoints {
        Some(c) => c.last(),
        None => Ok(None),
    }
}
