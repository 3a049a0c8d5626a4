//! The ethics reviewers' tools beyond the findings queue: reviews of consent records, revealing
//! a donor's identity with a stated reason, and the consent register exported encrypted to the
//! reviewer's own age key.

use std::io::Write;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cases::{self, case_key, Authorized, Donor};
use super::consents::{self, ConsentView};
use super::{new_id, Services};
use crate::crypto::{self, Place};
use crate::error::{Error, Result};
use crate::policy::{Action, Actor, Resource};
use crate::store::{ConsentQuery, ConsentScope, ReviewRow};

/// Minimum length of a stated reason.
pub const MIN_REASON: usize = 20;

/// What a reviewer finds of a consent or a finding.
pub const FINDINGS: &[&str] = &["verified", "concern"];
/// The longest note of a review or decision.
pub const MAX_NOTE: usize = 5000;

pub(crate) fn finding_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(FINDINGS, false)
}

pub(crate) fn note_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::text(MAX_NOTE)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewInput {
    /// `verified` or `concern`.
    #[schema(schema_with = finding_schema)]
    pub finding: String,
    #[schema(schema_with = note_schema)]
    pub note: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewView {
    pub id: String,
    pub consent_id: String,
    pub finding: String,
    pub note: Option<String>,
    pub reviewed_at: DateTime<Utc>,
}

/// An ethics reviewer records `verified` or `concern` on a consent record.
pub async fn review(
    svc: &Services,
    actor: &Actor,
    consent_id: &str,
    input: ReviewInput,
    now: DateTime<Utc>,
) -> Result<ReviewView> {
    svc.authorize(
        actor,
        Action::ReviewConsent,
        Resource::System,
        svc.entry(actor, Action::ReviewConsent, "consent", now),
    )
    .await?;
    if !FINDINGS.contains(&input.finding.as_str()) {
        return Err(Error::field(
            "finding",
            format!("must be one of {}", FINDINGS.join(", ")),
        ));
    }
    let note = match &input.note {
        Some(n) => Some(super::types::text(n, MAX_NOTE).map_err(|e| Error::field("note", e))?),
        None => None,
    };
    let consent = svc
        .store
        .consent_by_id(consent_id)
        .await?
        .ok_or(Error::NotFound)?;
    let case = svc
        .store
        .case_by_id(&consent.case_id)
        .await?
        .ok_or(Error::NotFound)?;
    let id = new_id();
    let sealed = match (&note, case_key(svc, &case).await?) {
        (Some(n), Some(k)) => Some(crypto::seal(&k, review_place(&id), n.as_bytes()).into_bytes()),
        _ => None,
    };
    let audit = svc
        .entry(actor, Action::ReviewConsent, "consent", now)
        .target(consent_id)
        .case(&consent.case_id)
        .reason(&input.finding);
    svc.store
        .insert_review(
            &ReviewRow {
                id: id.clone(),
                consent_id: consent_id.to_string(),
                reviewer_id: actor.user_id.clone(),
                finding: input.finding.clone(),
                note: sealed,
                reviewed_at: now,
            },
            &[audit],
        )
        .await?;
    Ok(ReviewView {
        id,
        consent_id: consent_id.to_string(),
        finding: input.finding,
        note,
        reviewed_at: now,
    })
}

/// A review as its consent's page shows it: who (display name), when, what, and the note.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReviewEntry {
    pub id: String,
    pub reviewer: String,
    pub finding: String,
    pub note: Option<String>,
    pub reviewed_at: DateTime<Utc>,
}

fn review_place(id: &str) -> Place<'_> {
    Place::new("consent_reviews", "note", id)
}

/// The reviews of a consent record, oldest first, for anyone who may read the consent; the
/// notes are opened under the case key and their reading is audited.
pub async fn reviews(
    svc: &Services,
    actor: &Actor,
    consent_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<ReviewEntry>> {
    let consent = svc
        .store
        .consent_by_id(consent_id)
        .await?
        .ok_or(Error::NotFound)?;
    let Authorized {
        row: case,
        break_glass,
        ..
    } = cases::load_authorized(svc, actor, &consent.case_id, Action::ReadConsent, now).await?;
    let rows = svc.store.reviews_of_consent(consent_id).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let key = case_key(svc, &case).await?;
    let mut names = std::collections::HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if !names.contains_key(&r.reviewer_id) {
            let name = svc
                .store
                .user_by_id(&r.reviewer_id)
                .await?
                .map(|u| u.display_name)
                .unwrap_or_default();
            names.insert(r.reviewer_id.clone(), name);
        }
        let note = match (&r.note, &key) {
            (Some(n), Some(k)) => Some(
                String::from_utf8(
                    crypto::open(
                        k,
                        review_place(&r.id),
                        &crypto::Sealed::from_bytes(n.clone()),
                    )?
                    .to_vec(),
                )
                .map_err(|_| crypto::CryptoError::Malformed)?,
            ),
            _ => None,
        };
        out.push(ReviewEntry {
            reviewer: names[&r.reviewer_id].clone(),
            id: r.id,
            finding: r.finding,
            note,
            reviewed_at: r.reviewed_at,
        });
    }
    svc.audit
        .record(vec![svc
            .entry(actor, Action::ReadConsent, "consent_review", now)
            .target(consent_id)
            .case(&consent.case_id)
            .break_glass(break_glass)])
        .await?;
    Ok(out)
}

/// The relationship of each of a case's contacts to the donor, by contact id: metadata, so a
/// consent's page can say "given by the spouse" to a reviewer who may not see names.
pub async fn relationships(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    now: DateTime<Utc>,
) -> Result<std::collections::HashMap<String, String>> {
    cases::load_authorized(svc, actor, case_id, Action::ReadConsent, now).await?;
    Ok(svc
        .store
        .contacts_for_case(case_id)
        .await?
        .into_iter()
        .map(|c| (c.id, c.relationship))
        .collect())
}

fn reason_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::required_text(MIN_REASON, super::cases::MAX_REASON)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevealInput {
    /// Why the identity is needed (at least 20 characters).
    #[schema(schema_with = reason_schema)]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revealed {
    pub case_id: String,
    pub donor: Option<Donor>,
}

/// An ethics reviewer sees a donor's identity after stating why; recorded and shown to the
/// family in its access log.
pub async fn reveal(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Revealed> {
    let reason = super::types::required_text(reason, super::cases::MAX_REASON)
        .map_err(|e| Error::field("reason", e))?;
    if reason.chars().count() < MIN_REASON {
        return Err(Error::field(
            "reason",
            format!("state why in at least {MIN_REASON} characters"),
        ));
    }
    let Authorized { row, .. } =
        cases::load_authorized(svc, actor, case_id, Action::RevealIdentity, now).await?;
    let key = case_key(svc, &row).await?;
    let donor = key
        .as_ref()
        .map(|k| cases::open_row(k, &row))
        .transpose()?
        .map(|o| o.donor);
    let id = new_id();
    let sealed = match &key {
        Some(k) => {
            crypto::seal(k, Place::new("reveals", "reason", &id), reason.as_bytes()).into_bytes()
        }
        None => Vec::new(),
    };
    let audit = svc
        .entry(actor, Action::RevealIdentity, "case", now)
        .target(case_id)
        .case(case_id)
        .reason("stated");
    svc.store
        .insert_reveal(&id, case_id, &actor.user_id, &sealed, now, &[audit])
        .await?;
    tracing::warn!(case_id = %case_id, actor = %actor.user_id, "donor identity revealed");
    Ok(Revealed {
        case_id: case_id.to_string(),
        donor,
    })
}

/// Export formats of the consent register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Json,
}

impl Format {
    pub const NAMES: &'static [&'static str] = &["csv", "json"];

    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        match s {
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            _ => Err("must be csv or json".into()),
        }
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The whole consent register, rendered (CSV or JSON) and encrypted with age to `recipient`.
/// `actor` is `None` for the command line, which runs with the operator's access to the keys.
pub async fn export(
    svc: &Services,
    actor: Option<&Actor>,
    recipient: &str,
    format: Format,
    now: DateTime<Utc>,
) -> Result<Vec<u8>> {
    if let Some(a) = actor {
        svc.authorize(
            a,
            Action::ReviewConsent,
            Resource::System,
            svc.entry(a, Action::ReviewConsent, "consent", now),
        )
        .await?;
    }
    let to = crate::crypto::keyring::parse_recipient(recipient)
        .map_err(|e| Error::field("recipient", e.to_string()))?;
    let mut rows: Vec<ConsentView> = Vec::new();
    let mut after = None;
    let mut keys: std::collections::HashMap<String, Option<crypto::SecretKey>> = Default::default();
    loop {
        let page = svc
            .store
            .list_consents(&ConsentQuery {
                scope: ConsentScope::All,
                case_id: None,
                kind: None,
                after: after.clone(),
                limit: 1000,
            })
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        for r in &page {
            if !keys.contains_key(&r.case_id) {
                let k = match svc.store.case_by_id(&r.case_id).await? {
                    Some(c) => case_key(svc, &c).await?,
                    None => None,
                };
                keys.insert(r.case_id.clone(), k);
            }
            rows.push(consents::view(
                r,
                keys.get(&r.case_id).and_then(Option::as_ref),
                now,
            )?);
        }
    }
    let plain = zeroize::Zeroizing::new(match format {
        Format::Json => serde_json::to_vec_pretty(&rows).map_err(anyhow::Error::from)?,
        Format::Csv => {
            let mut out = String::from(
                "id,case_id,kind,subject,given_by,method,document,document_sha256,signed_at,expires_at,status,withdraws,witness,organs,channels\n",
            );
            for r in &rows {
                let organs = r
                    .scope
                    .as_ref()
                    .and_then(|s| s.organs.clone())
                    .unwrap_or_default()
                    .join(" ");
                let channels = r
                    .scope
                    .as_ref()
                    .and_then(|s| s.channels.clone())
                    .unwrap_or_default()
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
                let fields = [
                    r.id.clone(),
                    r.case_id.clone(),
                    r.kind.clone(),
                    r.subject.clone(),
                    r.given_by.clone(),
                    r.method.clone(),
                    r.document.clone(),
                    r.document_sha256.clone(),
                    r.signed_at.to_rfc3339(),
                    r.expires_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
                    r.status.clone(),
                    r.withdraws.clone().unwrap_or_default(),
                    r.witness.clone().unwrap_or_default(),
                    organs,
                    channels,
                ];
                out.push_str(
                    &fields
                        .iter()
                        .map(|f| csv_field(f))
                        .collect::<Vec<_>>()
                        .join(","),
                );
                out.push('\n');
            }
            out.into_bytes()
        }
    });
    let enc = age::Encryptor::with_recipients(std::iter::once(&to as &dyn age::Recipient))
        .map_err(|e| anyhow::anyhow!("age: {e}"))?;
    let mut out = Vec::new();
    let mut w = enc.wrap_output(&mut out).map_err(anyhow::Error::from)?;
    w.write_all(&plain).map_err(anyhow::Error::from)?;
    w.finish().map_err(anyhow::Error::from)?;
    let kind = match format {
        Format::Csv => "csv",
        Format::Json => "json",
    };
    let audit = crate::audit::AuditEntry::new(actor, "consent.export", "consent", now)
        .reason(&format!("{kind}:{}", rows.len()));
    svc.audit.record(vec![audit]).await?;
    Ok(out)
}
