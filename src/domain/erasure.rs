//! Erasure by crypto-shredding, with four eyes: a supervisor, an admin or the family asks; an
//! ethics reviewer decides. Approval destroys the case key and the case's blind-index terms, so
//! every sealed field of the case (donor, donation, notes, contacts, break-glass reasons) becomes
//! unreadable; the audit chain, which holds ids only, still verifies.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cases::{self};
use super::types::Role;
use super::{family, new_id, page_limit, Page, Services};
use crate::error::{Error, Result};
use crate::policy::{Action, Actor, Resource};
use crate::store::ErasureRow;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErasureView {
    pub id: String,
    pub case_id: String,
    pub requested_by: String,
    pub requested_at: DateTime<Utc>,
    /// `pending`, `approved` or `rejected`.
    pub status: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}

impl From<ErasureRow> for ErasureView {
    fn from(r: ErasureRow) -> Self {
        ErasureView {
            id: r.id,
            case_id: r.case_id,
            requested_by: r.requested_by,
            requested_at: r.requested_at,
            status: r.status,
            decided_by: r.decided_by,
            decided_at: r.decided_at,
        }
    }
}

async fn file(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    now: DateTime<Utc>,
) -> Result<ErasureView> {
    let row = ErasureRow {
        id: new_id(),
        case_id: case_id.to_string(),
        requested_by: actor.user_id.clone(),
        requested_at: now,
        status: "pending".into(),
        decided_by: None,
        decided_at: None,
    };
    let audit = svc
        .entry(actor, Action::RequestErasure, "erasure_request", now)
        .target(&row.id)
        .case(case_id);
    svc.store.insert_erasure_request(&row, &[audit]).await?;
    Ok(row.into())
}

/// A supervisor (their region) or an admin asks for a case to be erased.
pub async fn request(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    now: DateTime<Utc>,
) -> Result<ErasureView> {
    cases::load_authorized(svc, actor, case_id, Action::RequestErasure, now).await?;
    file(svc, actor, case_id, now).await
}

/// A family asks for its case to be erased (PIPL art. 49).
pub async fn family_request(
    svc: &Services,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<ErasureView> {
    let case_id = family::own_case(svc, actor, now).await?;
    file(svc, actor, &case_id, now).await
}

/// Where an erasure request stands.
pub const STATUSES: &[&str] = &["pending", "approved", "rejected"];

fn status_param() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(STATUSES, true)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ErasureFilter {
    /// `pending`, `approved` or `rejected`.
    #[param(schema_with = status_param)]
    pub status: Option<String>,
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

pub async fn list(
    svc: &Services,
    actor: &Actor,
    f: ErasureFilter,
    now: DateTime<Utc>,
) -> Result<Page<ErasureView>> {
    svc.authorize(
        actor,
        Action::ListErasure,
        Resource::System,
        svc.entry(actor, Action::ListErasure, "erasure_request", now),
    )
    .await?;
    if let Some(s) = &f.status {
        if !STATUSES.contains(&s.as_str()) {
            return Err(Error::field(
                "status",
                format!("must be one of {}", STATUSES.join(", ")),
            ));
        }
    }
    let limit = page_limit(f.limit)?;
    let mut rows = svc
        .store
        .list_erasure_requests(f.status.as_deref(), f.cursor.as_deref(), limit + 1)
        .await?;
    if actor.role == Role::Supervisor {
        // Supervisors see the requests about their region's cases.
        let mut mine = Vec::new();
        for r in rows {
            if let Some(c) = svc.store.case_by_id(&r.case_id).await? {
                if actor.region.as_deref() == Some(c.region.as_str()) {
                    mine.push(r);
                }
            }
        }
        rows = mine;
    }
    let more = rows.len() as i64 > limit;
    let items: Vec<ErasureView> = rows
        .into_iter()
        .take(limit as usize)
        .map(Into::into)
        .collect();
    let next_cursor = if more {
        items.last().map(|i| i.id.clone())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// An ethics reviewer approves (erases) or rejects a pending request.
pub async fn decide(
    svc: &Services,
    actor: &Actor,
    id: &str,
    approve: bool,
    now: DateTime<Utc>,
) -> Result<ErasureView> {
    svc.authorize(
        actor,
        Action::DecideErasure,
        Resource::System,
        svc.entry(actor, Action::DecideErasure, "erasure_request", now),
    )
    .await?;
    let req = svc
        .store
        .erasure_request(id)
        .await?
        .ok_or(Error::NotFound)?;
    if req.requested_by == actor.user_id {
        return Err(Error::Forbidden);
    }
    let audit = svc
        .entry(actor, Action::DecideErasure, "erasure_request", now)
        .target(id)
        .case(&req.case_id)
        .reason(if approve { "approved" } else { "rejected" });
    if !svc
        .store
        .decide_erasure(id, approve, &actor.user_id, now, &[audit])
        .await?
    {
        return Err(Error::Conflict {
            field: None,
            message: "this request has already been decided".into(),
        });
    }
    if approve {
        // The ledger beside the keyring outlives the database: a restore of an older backup
        // reads it and erases the case again. The erasure itself is done; a ledger that cannot
        // be written is an operator's alarm, not the requester's error.
        let entry = crate::backup::Erasure {
            case_id: req.case_id.clone(),
            request_id: Some(id.to_string()),
            erased_at: now,
        };
        let ledger = svc.keys.paths().erasures();
        if let Err(e) =
            tokio::task::spawn_blocking(move || crate::backup::record_erasure(&ledger, &entry))
                .await
                .map_err(anyhow::Error::from)
                .and_then(|r| r)
        {
            tracing::error!(case_id = %req.case_id, error = %format!("{e:#}"),
                "the erasure ledger was not written: a restore of an older backup would bring this case back; add it by hand");
        }
        super::attachments::remove_case_files(svc, &req.case_id).await;
        svc.store
            .cancel_case_schedule(&req.case_id, "case_erased", now)
            .await?;
        tracing::warn!(case_id = %req.case_id, request = %id, actor = %actor.user_id, "case erased");
    }
    Ok(svc
        .store
        .erasure_request(id)
        .await?
        .ok_or(Error::NotFound)?
        .into())
}
