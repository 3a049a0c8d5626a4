//! Planned publicity and research uses of a person's data: a name to be engraved or published,
//! a story to be told, records to be given to a study. Each is checked by the validity rules
//! against the consents of its kind; withdrawing that consent cancels the planned uses it
//! covered, in the same transaction.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cases::{self, case_key, Authorized};
use super::consents;
use super::types;
use super::{new_id, Services};
use crate::crypto::{self, Place};
use crate::error::{Error, Result, Validator};
use crate::policy::{Action, Actor};
use crate::store::{ConsentQuery, ConsentScope, UseRow};

fn use_kind() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(USE_KINDS, false)
}

fn use_subject() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::nonempty_text(1, super::MAX_ID)
}

fn use_description() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::required_text(1, MAX_DESCRIPTION)
}

fn use_planned() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::date(false)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UseInput {
    /// `publicity` or `research`.
    #[schema(schema_with = use_kind, required = true)]
    pub kind: Option<String>,
    /// Whose data: `donor` (default) or a contact id of the case.
    #[schema(schema_with = use_subject)]
    pub subject: Option<String>,
    /// What is planned (sealed): "name engraved on the memorial wall", …
    #[schema(schema_with = use_description, required = true)]
    pub description: Option<String>,
    /// When (YYYY-MM-DD).
    #[schema(schema_with = use_planned, required = true)]
    pub planned_on: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UseView {
    pub id: String,
    pub case_id: String,
    pub kind: String,
    pub subject: String,
    pub planned_on: NaiveDate,
    /// `planned` or `cancelled`.
    pub status: String,
    /// Why it was cancelled (`consent_withdrawn`).
    pub reason: Option<String>,
    pub description: Option<String>,
    /// An active consent of this kind from this person covers it now.
    pub covered: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    description: String,
}

fn place(id: &str) -> Place<'_> {
    Place::new("consent_uses", "sealed", id)
}

async fn covered_subjects(
    svc: &Services,
    case_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<(String, String)>> {
    Ok(svc
        .store
        .list_consents(&ConsentQuery {
            scope: ConsentScope::All,
            case_id: Some(case_id.to_string()),
            kind: None,
            after: None,
            limit: 1000,
        })
        .await?
        .iter()
        .filter(|r| consents::status(r, now) == "active")
        .map(|r| (r.kind.clone(), r.subject.clone()))
        .collect())
}

fn view(
    r: &UseRow,
    key: Option<&crypto::SecretKey>,
    covered: &[(String, String)],
) -> Result<UseView> {
    let description = match key {
        Some(k) => Some(
            crypto::open_json::<Sealed>(
                k,
                place(&r.id),
                &crypto::Sealed::from_bytes(r.sealed.clone()),
            )?
            .description,
        ),
        None => None,
    };
    Ok(UseView {
        id: r.id.clone(),
        case_id: r.case_id.clone(),
        kind: r.kind.clone(),
        subject: r.subject.clone(),
        planned_on: r.planned_on,
        status: r.status.clone(),
        reason: r.reason.clone(),
        description,
        covered: covered.iter().any(|(k, s)| *k == r.kind && *s == r.subject),
        created_at: r.created_at,
    })
}

/// What a planned use may be.
pub const USE_KINDS: &[&str] = &["publicity", "research"];
/// The longest description of a planned use.
pub const MAX_DESCRIPTION: usize = 2000;

/// Record a planned use (coordinator of the case, supervisor of the region).
pub async fn record(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    input: UseInput,
    now: DateTime<Utc>,
) -> Result<UseView> {
    let Authorized {
        row: case,
        break_glass,
        ..
    } = cases::load_authorized(svc, actor, case_id, Action::RecordConsent, now).await?;
    let key = case_key(svc, &case).await?.ok_or_else(|| Error::Conflict {
        field: None,
        message: "this case has been erased".into(),
    })?;
    let mut v = Validator::new();
    let kind = match input.kind.as_deref() {
        Some(k) if USE_KINDS.contains(&k) => Some(k.to_string()),
        Some(_) => {
            v.add("kind", format!("must be one of {}", USE_KINDS.join(", ")));
            None
        }
        None => {
            v.add("kind", "is required");
            None
        }
    };
    let subject = input.subject.clone().unwrap_or_else(|| "donor".into());
    if subject != "donor" {
        let ok = svc
            .store
            .contact_by_id(&subject)
            .await?
            .is_some_and(|c| c.case_id == case_id);
        if !ok {
            v.add("subject", "must be donor or a contact of this case");
        }
    }
    let description = match input.description.as_deref() {
        Some(d) => v.check("description", types::required_text(d, MAX_DESCRIPTION)),
        None => {
            v.add("description", "is required");
            None
        }
    };
    let planned_on = match input.planned_on.as_deref() {
        Some(d) => v.check("planned_on", types::parse_date(d)),
        None => {
            v.add("planned_on", "is required");
            None
        }
    };
    v.finish()?;
    let (Some(kind), Some(description), Some(planned_on)) = (kind, description, planned_on) else {
        return Err(Error::Internal(anyhow::anyhow!(
            "validation let a required field through"
        )));
    };
    let id = new_id();
    let row = UseRow {
        sealed: crypto::seal_json(&key, place(&id), &Sealed { description }).into_bytes(),
        id,
        case_id: case_id.into(),
        kind,
        subject,
        planned_on,
        status: "planned".into(),
        reason: None,
        created_by: actor.user_id.clone(),
        created_at: now,
    };
    let audit = svc
        .entry(actor, Action::RecordConsent, "consent_use", now)
        .target(&row.id)
        .case(case_id)
        .break_glass(break_glass)
        .reason(&row.kind);
    svc.store.insert_use(&row, &[audit]).await?;
    super::findings::refresh(svc, case_id, now).await;
    let covered = covered_subjects(svc, case_id, now).await?;
    view(&row, Some(&key), &covered)
}

/// A case's planned uses, with whether a consent covers each (ethics reviewers included).
pub async fn list(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<UseView>> {
    let Authorized { row: case, .. } =
        cases::load_authorized(svc, actor, case_id, Action::ReadConsent, now).await?;
    let key = case_key(svc, &case).await?;
    let covered = covered_subjects(svc, case_id, now).await?;
    let uses = svc
        .store
        .uses_for_case(case_id)
        .await?
        .iter()
        .map(|r| view(r, key.as_ref(), &covered))
        .collect::<Result<Vec<_>>>()?;
    // The descriptions are personal data: the reading is audited like a consent's.
    svc.audit
        .record(vec![svc
            .entry(actor, Action::ReadConsent, "consent_use", now)
            .case(case_id)])
        .await?;
    Ok(uses)
}
