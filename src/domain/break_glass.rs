//! Ethics reviewers' word on break-glass uses: every time someone opened a case outside their
//! assignment is listed for review (`cases::list_break_glass`); a reviewer acknowledges it or
//! raises a concern, saying what the concern is. A use may be reviewed again (a concern that was
//! looked into and later acknowledged); the newest review counts.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cases::case_key;
use super::{new_id, Services};
use crate::crypto::{self, Place, SecretKey};
use crate::error::{Error, Result, Validator};
use crate::policy::{Action, Actor, Resource};
use crate::store::{BreakGlassReviewRow, BreakGlassRow};

/// What a reviewer may say of a use.
pub const DECISIONS: &[&str] = &["acknowledged", "concern"];
/// A concern says what it is: at least this many characters.
pub const MIN_CONCERN: usize = 10;
pub const MAX_NOTE: usize = super::ethics::MAX_NOTE;

fn decision_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(DECISIONS, false)
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BreakGlassReviewInput {
    /// `acknowledged`, or `concern` (which needs a `note` saying what it is).
    #[schema(schema_with = decision_schema)]
    pub decision: String,
    #[schema(schema_with = super::ethics::note_schema)]
    pub note: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BreakGlassReviewView {
    pub id: String,
    pub grant_id: String,
    pub decision: String,
    /// The reviewer's display name.
    pub reviewer: String,
    /// Absent when none was written, or once the case is erased.
    pub note: Option<String>,
    pub reviewed_at: DateTime<Utc>,
}

fn note_place(id: &str) -> Place<'_> {
    Place::new("break_glass_review", "note", id)
}

/// The input checked: the decision, and the note (required, and not a word or two, for a
/// concern).
fn validate(input: &BreakGlassReviewInput) -> Result<(String, Option<String>)> {
    let mut v = Validator::new();
    let decision = input.decision.trim();
    if decision.is_empty() {
        v.add("decision", "is required");
    } else if !DECISIONS.contains(&decision) {
        v.add(
            "decision",
            format!("must be one of {}", DECISIONS.join(", ")),
        );
    }
    let note = match input.note.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(n) => v.check("note", super::types::text(n, MAX_NOTE)),
    };
    if decision == "concern" && !v.has("note") {
        match &note {
            None => v.add("note", "is required for a concern: say what the concern is"),
            Some(n) if n.chars().count() < MIN_CONCERN => v.add(
                "note",
                format!("must say what the concern is, in at least {MIN_CONCERN} characters"),
            ),
            Some(_) => {}
        }
    }
    v.finish()?;
    Ok((decision.to_string(), note))
}

/// An ethics reviewer acknowledges a break-glass use or raises a concern about it.
pub async fn review(
    svc: &Services,
    actor: &Actor,
    grant_id: &str,
    input: BreakGlassReviewInput,
    now: DateTime<Utc>,
) -> Result<BreakGlassReviewView> {
    svc.authorize(
        actor,
        Action::AcknowledgeBreakGlass,
        Resource::System,
        svc.entry(actor, Action::AcknowledgeBreakGlass, "break_glass", now)
            .target(grant_id),
    )
    .await?;
    let grant = svc
        .store
        .break_glass_by_id(grant_id)
        .await?
        .ok_or(Error::NotFound)?;
    let (decision, note) = validate(&input)?;
    let case = svc
        .store
        .case_by_id(&grant.case_id)
        .await?
        .ok_or(Error::NotFound)?;
    let id = new_id();
    let sealed = match (&note, case_key(svc, &case).await?) {
        (Some(n), Some(k)) => Some(crypto::seal(&k, note_place(&id), n.as_bytes()).into_bytes()),
        (Some(_), None) => {
            return Err(Error::field(
                "note",
                "cannot be kept: this case's personal data was erased",
            ))
        }
        (None, _) => None,
    };
    let audit = svc
        .entry(actor, Action::AcknowledgeBreakGlass, "break_glass", now)
        .target(grant_id)
        .case(&grant.case_id)
        .reason(&decision);
    svc.store
        .insert_break_glass_review(
            &BreakGlassReviewRow {
                id: id.clone(),
                grant_id: grant_id.to_string(),
                reviewer_id: actor.user_id.clone(),
                decision: decision.clone(),
                note: sealed,
                reviewed_at: now,
            },
            &[audit],
        )
        .await?;
    tracing::info!(grant = %grant_id, reviewer = %actor.user_id, %decision, "break-glass use reviewed");
    let reviewer = svc
        .store
        .user_by_id(&actor.user_id)
        .await?
        .map_or_else(|| actor.user_id.clone(), |u| u.display_name);
    Ok(BreakGlassReviewView {
        id,
        grant_id: grant_id.to_string(),
        decision,
        reviewer,
        note,
        reviewed_at: now,
    })
}

/// The reviews of `grants`, by grant id, oldest first; notes opened with the case keys in
/// `keys` (by case id; `None` for an erased case).
pub(crate) async fn reviews_of(
    svc: &Services,
    grants: &[BreakGlassRow],
    keys: &HashMap<String, Option<SecretKey>>,
) -> Result<HashMap<String, Vec<BreakGlassReviewView>>> {
    let ids: Vec<String> = grants.iter().map(|g| g.id.clone()).collect();
    let rows = svc.store.break_glass_reviews(&ids).await?;
    let case_of: HashMap<&str, &str> = grants
        .iter()
        .map(|g| (g.id.as_str(), g.case_id.as_str()))
        .collect();
    let mut names: HashMap<String, String> = HashMap::new();
    let mut out: HashMap<String, Vec<BreakGlassReviewView>> = HashMap::new();
    for r in rows {
        if !names.contains_key(&r.reviewer_id) {
            let name = svc
                .store
                .user_by_id(&r.reviewer_id)
                .await?
                .map_or_else(|| r.reviewer_id.clone(), |u| u.display_name);
            names.insert(r.reviewer_id.clone(), name);
        }
        let key = case_of
            .get(r.grant_id.as_str())
            .and_then(|c| keys.get(*c))
            .and_then(Option::as_ref);
        let note = match (&r.note, key) {
            (Some(sealed), Some(k)) => Some(
                String::from_utf8(
                    crypto::open(
                        k,
                        note_place(&r.id),
                        &crypto::Sealed::from_bytes(sealed.clone()),
                    )?
                    .to_vec(),
                )
                .map_err(|_| crypto::CryptoError::Malformed)?,
            ),
            _ => None,
        };
        out.entry(r.grant_id.clone())
            .or_default()
            .push(BreakGlassReviewView {
                reviewer: names[&r.reviewer_id].clone(),
                id: r.id,
                grant_id: r.grant_id,
                decision: r.decision,
                note,
                reviewed_at: r.reviewed_at,
            });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(decision: &str, note: Option<&str>) -> BreakGlassReviewInput {
        BreakGlassReviewInput {
            decision: decision.into(),
            note: note.map(Into::into),
        }
    }

    fn refused(i: &BreakGlassReviewInput) -> Vec<(String, String)> {
        match validate(i) {
            Err(Error::Validation(fields)) => fields.into_iter().collect(),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[test]
    fn a_concern_says_what_it_is_and_an_acknowledgement_need_not() {
        assert_eq!(
            validate(&input("acknowledged", None)).expect("valid"),
            ("acknowledged".into(), None)
        );
        assert_eq!(
            validate(&input("acknowledged", Some("  "))).expect("valid"),
            ("acknowledged".into(), None)
        );
        let (d, n) = validate(&input("concern", Some("no call was logged that day"))).expect("ok");
        assert_eq!(
            (d.as_str(), n.as_deref()),
            ("concern", Some("no call was logged that day"))
        );
        let why = refused(&input("concern", None));
        assert_eq!(why.len(), 1);
        assert_eq!(why[0].0, "note");
        assert!(why[0].1.contains("required"), "{why:?}");
        assert_eq!(refused(&input("concern", Some("odd")))[0].0, "note");
        assert_eq!(refused(&input("fine", None))[0].0, "decision");
        assert_eq!(refused(&input("", None))[0].1, "is required");
    }
}
