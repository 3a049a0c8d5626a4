//! The consent validity rules and the ethics reviewers' findings queue.
//!
//! The rules are a pure function of a case's facts ([`rules`]), tested as a table; they run
//! again after every change to a case's consents, contacts or donation ([`evaluate`]), so a
//! finding closes by itself when the gap is filled, or by a reviewer's decision.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cases::{self, case_key};
use super::consents;
use super::types::{Program, Role};
use super::{page_limit, Page, Services};
use crate::crypto::{self, Place};
use crate::error::{Error, Result, Validator};
use crate::policy::{Action, Actor, Resource};
use crate::store::{ConsentQuery, ConsentScope, FindingQuery, Found};

/// What the rules need of a contact.
#[derive(Debug, Clone)]
pub struct Relative {
    pub id: String,
    pub relationship: String,
    pub minor: bool,
    pub deceased: bool,
}

/// What the rules need of a consent record.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: String,
    pub kind: String,
    pub given_by: String,
    pub method: String,
    pub witnessed: bool,
    pub signed_on: NaiveDate,
    /// `active`, `withdrawn`, `expired` or `withdrawal`.
    pub status: String,
    pub refusal: bool,
    /// A signed form is attached.
    pub signed_form: bool,
    /// Whose data it concerns (`donor` or a contact id).
    pub subject: String,
    /// For `contact` consents: the channels covered (`None`: all).
    pub channels: Option<Vec<String>>,
}

/// A planned publicity or research use, as the rules need it.
#[derive(Debug, Clone)]
pub struct Use {
    pub id: String,
    /// `publicity` or `research`.
    pub kind: String,
    pub subject: String,
}

/// A message still to be sent, as the rules need it.
#[derive(Debug, Clone)]
pub struct Pending {
    pub id: String,
    /// `donor` or a contact id.
    pub recipient: String,
    /// The channel it would go out on.
    pub channel: String,
}

/// The facts of a case the rules look at.
#[derive(Debug, Clone)]
pub struct Facts {
    pub program: Program,
    pub donation_date: NaiveDate,
    pub death_date: Option<NaiveDate>,
    pub relatives: Vec<Relative>,
    pub records: Vec<Record>,
    /// Outreach scheduled and not yet settled.
    pub pending: Vec<Pending>,
    /// Planned publicity and research uses.
    pub uses: Vec<Use>,
}

fn found(rule: &str, consent: &str, message: String) -> Found {
    (rule.to_string(), consent.to_string(), message)
}

/// Every finding the rules make for these facts.
pub fn rules(f: &Facts) -> Vec<Found> {
    let mut out = Vec::new();
    for r in f.records.iter().filter(|r| r.status != "withdrawal") {
        if r.method == "verbal" && !r.witnessed {
            out.push(found(
                "verbal_without_witness",
                &r.id,
                format!("verbal {} consent {} has no witness", r.kind, r.id),
            ));
        }
        if matches!(r.kind.as_str(), "donation" | "body_donation")
            && !r.refusal
            && r.signed_on > f.donation_date
        {
            out.push(found(
                "signed_after_donation",
                &r.id,
                format!(
                    "{} consent {} was signed on {}, after the donation on {}",
                    r.kind, r.id, r.signed_on, f.donation_date
                ),
            ));
        }
        if r.method == "written" && !r.signed_form {
            out.push(found(
                "written_without_form",
                &r.id,
                format!(
                    "written {} consent {} has no signed form attached",
                    r.kind, r.id
                ),
            ));
        }
        if r.status == "expired" {
            out.push(found(
                "expired",
                &r.id,
                format!("{} consent {} has expired", r.kind, r.id),
            ));
        }
    }
    if let Some(d) = deceased_donation(f) {
        out.push(d);
    }
    out.extend(outreach_without_consent(f));
    out.extend(use_without_consent(f));
    out
}

/// A planned publicity or research use needs an active consent of its kind from the person
/// whose data it uses.
fn use_without_consent(f: &Facts) -> Vec<Found> {
    let mut out = Vec::new();
    for u in &f.uses {
        let of_kind = |status: &str| {
            f.records
                .iter()
                .find(|r| r.kind == u.kind && r.subject == u.subject && r.status == status)
        };
        if of_kind("active").is_some() {
            continue;
        }
        let who = if u.subject == "donor" {
            "the donor".to_string()
        } else {
            format!("contact {}", u.subject)
        };
        out.push(match of_kind("withdrawn") {
            Some(r) => found(
                "use_without_consent",
                &r.id,
                format!(
                    "planned {} use {} of {who}'s data rests on consent {}, which has been withdrawn",
                    u.kind, u.id, r.id
                ),
            ),
            None => found(
                "use_without_consent",
                "",
                format!("planned {} use {} of {who}'s data has no active {} consent", u.kind, u.id, u.kind),
            ),
        });
    }
    out
}

/// Outreach scheduled to someone on a channel no active contact consent of theirs covers
/// (never given, or withdrawn since). The send-time gate holds such a message; the finding
/// shows the gap to the reviewers before then.
fn outreach_without_consent(f: &Facts) -> Vec<Found> {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for p in &f.pending {
        let covered = f.records.iter().any(|r| {
            r.kind == "contact"
                && r.status == "active"
                && r.subject == p.recipient
                && r.channels.as_ref().is_none_or(|c| c.contains(&p.channel))
        });
        if covered || !seen.insert((p.recipient.clone(), p.channel.clone())) {
            continue;
        }
        let withdrawn = f
            .records
            .iter()
            .find(|r| r.kind == "contact" && r.status == "withdrawn" && r.subject == p.recipient);
        let who = if p.recipient == "donor" {
            "the donor".to_string()
        } else {
            format!("contact {}", p.recipient)
        };
        out.push(found(
            "outreach_without_consent",
            withdrawn.map(|r| r.id.as_str()).unwrap_or(""),
            match withdrawn {
                Some(r) => format!(
                    "outreach to {who} is scheduled by {} under contact consent {}, which has been withdrawn",
                    p.channel, r.id
                ),
                None => format!(
                    "outreach to {who} is scheduled by {} with no active contact consent covering it",
                    p.channel
                ),
            },
        ));
    }
    out
}

/// Civil Code art. 1006: a deceased donation needs the donor's own consent, or, where the donor
/// did not refuse, the joint written consent of spouse, adult children and parents.
fn deceased_donation(f: &Facts) -> Option<Found> {
    let kind = match f.program {
        Program::Organ => "donation",
        Program::Body => "body_donation",
        Program::Marrow => return None,
    };
    let live: Vec<&Record> = f
        .records
        .iter()
        .filter(|r| r.kind == kind && r.status == "active")
        .collect();
    if let Some(refusal) = live.iter().find(|r| r.refusal && r.given_by == "donor") {
        return Some(found(
            "donor_refused",
            &refusal.id,
            format!("the donor's recorded refusal ({}) rules out the donation; the family's consent cannot override it", refusal.id),
        ));
    }
    let own = live.iter().any(|r| {
        r.given_by == "donor"
            && !r.refusal
            && r.method != "verbal"
            && f.death_date.is_none_or(|d| r.signed_on <= d)
    });
    if own {
        return None;
    }
    let required: Vec<&Relative> = f
        .relatives
        .iter()
        .filter(|c| !c.deceased)
        .filter(|c| match c.relationship.as_str() {
            "spouse" | "parent" => true,
            "child" => !c.minor,
            _ => false,
        })
        .collect();
    if required.is_empty() {
        return Some(found(
            "deceased_donation_consent",
            "",
            "no consent for the donation: neither the donor's own nor any spouse, adult child or parent is recorded".into(),
        ));
    }
    let order = |r: &str| match r {
        "spouse" => 0,
        "child" => 1,
        _ => 2,
    };
    let mut missing: Vec<&&Relative> = required
        .iter()
        .filter(|c| {
            !live
                .iter()
                .any(|r| r.given_by == c.id && !r.refusal && r.method == "written")
        })
        .collect();
    if missing.is_empty() {
        return None;
    }
    missing.sort_by_key(|c| (order(&c.relationship), c.id.clone()));
    let names: Vec<String> = missing
        .iter()
        .map(|c| format!("{} (contact {})", c.relationship, c.id))
        .collect();
    Some(found(
        "deceased_donation_consent",
        "",
        format!(
            "the joint written consent of spouse, adult children and parents is missing from: {}",
            names.join(", ")
        ),
    ))
}

/// What a finding's message says, taken apart so a page can say it in the reader's language:
/// the consent kind, whom it is about (`donor` or a contact id), the channel, the dates, whether
/// a withdrawn consent is the cause, and the relatives whose consent is missing. The messages
/// are written by [`rules`] above; a test takes apart every form it writes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Detail {
    pub kind: Option<String>,
    pub who: Option<String>,
    pub channel: Option<String>,
    pub signed_on: Option<String>,
    pub donated_on: Option<String>,
    pub withdrawn: bool,
    /// `(relationship, contact id)` of each relative whose written consent is missing.
    pub missing: Vec<(String, String)>,
}

/// The subject of "to {who}" or "of {who}'s data": `donor` or the contact's id.
fn who_of(text: &str) -> Option<String> {
    let t = text.trim().trim_end_matches("'s data");
    if t == "the donor" {
        Some("donor".into())
    } else {
        t.strip_prefix("contact ").map(|c| c.trim().to_string())
    }
}

/// Take a finding's message apart (see [`Detail`]); what it cannot read stays empty.
pub fn detail(rule: &str, message: &str) -> Detail {
    let words: Vec<&str> = message.split_whitespace().collect();
    let mut d = Detail {
        withdrawn: message.contains("has been withdrawn"),
        ..Detail::default()
    };
    match rule {
        "verbal_without_witness" | "written_without_form" => {
            d.kind = words.get(1).map(|w| w.to_string());
        }
        "expired" => d.kind = words.first().map(|w| w.to_string()),
        "signed_after_donation" => {
            d.kind = words.first().map(|w| w.to_string());
            let dates: Vec<&str> = words
                .iter()
                .map(|w| w.trim_end_matches(','))
                .filter(|w| NaiveDate::parse_from_str(w, "%Y-%m-%d").is_ok())
                .collect();
            d.signed_on = dates.first().map(|s| s.to_string());
            d.donated_on = dates.get(1).map(|s| s.to_string());
        }
        "use_without_consent" => {
            d.kind = words.get(1).map(|w| w.to_string());
            d.who = message
                .split_once(" of ")
                .and_then(|(_, rest)| rest.split_once("'s data"))
                .and_then(|(who, _)| who_of(who));
        }
        "outreach_without_consent" => {
            if let Some((who, rest)) = message
                .strip_prefix("outreach to ")
                .and_then(|m| m.split_once(" is scheduled by "))
            {
                d.who = who_of(who);
                d.channel = rest.split_whitespace().next().map(str::to_string);
            }
        }
        "deceased_donation_consent" => {
            if let Some((_, list)) = message.split_once("missing from: ") {
                for part in list.split(", ") {
                    if let Some((rel, rest)) = part.split_once(" (contact ") {
                        d.missing
                            .push((rel.trim().into(), rest.trim_end_matches(')').into()));
                    }
                }
            }
        }
        _ => {}
    }
    d
}

/// [`evaluate`] after a change that has already been committed: a failure is logged, and the
/// next change (or a reviewer) brings the findings up to date.
pub async fn refresh(svc: &Services, case_id: &str, now: DateTime<Utc>) {
    if let Err(e) = evaluate(svc, case_id, now).await {
        tracing::warn!(case_id = %case_id, error = %e, "evaluating consent rules");
    }
}

/// Gather a case's facts (decrypting what the rules need) and bring its findings up to date.
pub async fn evaluate(svc: &Services, case_id: &str, now: DateTime<Utc>) -> Result<()> {
    let Some(case) = svc.store.case_by_id(case_id).await? else {
        return Ok(());
    };
    let Some(key) = case_key(svc, &case).await? else {
        // Erased: nothing left to judge.
        return Ok(());
    };
    let opened = cases::open_row(&key, &case)?;
    let contacts = super::contacts::views_for_case(svc, &key, case_id).await?;
    let preferred: std::collections::HashMap<String, String> = contacts
        .iter()
        .map(|c| (c.id.clone(), c.preferred_channel.as_str().to_string()))
        .collect();
    let donor_channel = if opened.donor.email.is_some() {
        "email"
    } else {
        "sms"
    };
    let pending = svc
        .store
        .list_outreach(case_id, None, None, 1000)
        .await?
        .into_iter()
        .filter(|m| matches!(m.status.as_str(), "scheduled" | "failed"))
        .map(|m| Pending {
            channel: m.channel.clone().unwrap_or_else(|| {
                preferred
                    .get(&m.recipient)
                    .cloned()
                    .unwrap_or_else(|| donor_channel.to_string())
            }),
            id: m.id,
            recipient: m.recipient,
        })
        .collect();
    let relatives = contacts
        .into_iter()
        .map(|c| Relative {
            id: c.id,
            relationship: c.relationship.as_str().to_string(),
            minor: c.minor,
            deceased: c.deceased,
        })
        .collect();
    let attached = svc.store.attached_consents(case_id).await?;
    let mut records = Vec::new();
    let mut after = None;
    loop {
        let rows = svc
            .store
            .list_consents(&ConsentQuery {
                scope: ConsentScope::All,
                case_id: Some(case_id.to_string()),
                kind: None,
                after: after.clone(),
                limit: 500,
            })
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id.clone());
        for r in &rows {
            let v = consents::view(r, Some(&key), now)?;
            records.push(Record {
                id: r.id.clone(),
                kind: r.kind.clone(),
                given_by: r.given_by.clone(),
                method: r.method.clone(),
                witnessed: v.witness.is_some(),
                signed_on: r.signed_at.date_naive(),
                status: v.status.clone(),
                refusal: v.refusal,
                signed_form: attached.contains(&r.id),
                subject: r.subject.clone(),
                channels: v
                    .scope
                    .as_ref()
                    .and_then(|s| s.channels.as_ref())
                    .map(|c| c.iter().map(|c| c.as_str().to_string()).collect()),
            });
        }
    }
    let facts = Facts {
        program: Program::parse(&case.program)
            .map_err(|e| anyhow::anyhow!("stored program: {e}"))?,
        donation_date: opened.donation.date,
        death_date: opened.donor.death_date,
        relatives,
        records,
        pending,
        uses: svc
            .store
            .uses_for_case(case_id)
            .await?
            .into_iter()
            .filter(|u| u.status == "planned")
            .map(|u| Use {
                id: u.id,
                kind: u.kind,
                subject: u.subject,
            })
            .collect(),
    };
    let (o, c) = svc
        .store
        .sync_findings(case_id, &rules(&facts), now)
        .await?;
    if o + c > 0 {
        tracing::info!(case_id = %case_id, opened = o, closed = c, "consent findings updated");
    }
    Ok(())
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FindingView {
    pub id: String,
    pub case_id: String,
    pub rule: String,
    pub message: String,
    pub consent_id: Option<String>,
    /// The document version of that consent (e.g. `donation.zh-CN.v1`).
    pub document: Option<String>,
    /// `open` or `closed`.
    pub status: String,
    /// The case's programme.
    pub program: String,
    pub opened_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// `resolved` (the gap was filled), `verified` or `concern` (a reviewer's decision).
    pub decision: Option<String>,
    pub closed_by: Option<String>,
    pub note: Option<String>,
}

/// A finding is `open` until the gap is filled or a reviewer decides.
pub const STATUSES: &[&str] = &["open", "closed"];

/// Every rule [`rules`] applies, by the name its findings carry.
pub const RULES: &[&str] = &[
    "deceased_donation_consent",
    "donor_refused",
    "signed_after_donation",
    "verbal_without_witness",
    "written_without_form",
    "expired",
    "outreach_without_consent",
    "use_without_consent",
];

fn status_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(STATUSES, true)
}

fn rule_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(RULES, true)
}

fn program_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    let all: Vec<&str> = Program::ALL.iter().map(|p| p.as_str()).collect();
    super::schema::one_of(&all, true)
}

fn before_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::instant_or_date(true)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FindingFilter {
    pub case_id: Option<String>,
    /// `open` or `closed`.
    #[param(schema_with = status_schema)]
    pub status: Option<String>,
    /// The rule that found it, e.g. `deceased_donation_consent`.
    #[param(schema_with = rule_schema)]
    pub rule: Option<String>,
    /// The case's programme.
    #[param(schema_with = program_schema)]
    pub program: Option<String>,
    /// Opened before this date (YYYY-MM-DD, the start of that day in UTC) or time (RFC 3339):
    /// the findings that have waited longest.
    #[param(schema_with = before_schema)]
    pub opened_before: Option<String>,
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

fn note_place(id: &str) -> Place<'_> {
    Place::new("findings", "note", id)
}

/// The findings queue: all for ethics reviewers, the region for supervisors, assigned cases for
/// coordinators.
pub async fn list(
    svc: &Services,
    actor: &Actor,
    f: FindingFilter,
    now: DateTime<Utc>,
) -> Result<Page<FindingView>> {
    svc.authorize(
        actor,
        Action::ListConsents,
        Resource::System,
        svc.entry(actor, Action::ListConsents, "finding", now),
    )
    .await?;
    let mut v = Validator::new();
    let one_of = |field: &str, value: &Option<String>, allowed: &[&str], v: &mut Validator| {
        if let Some(x) = value {
            if !allowed.contains(&x.as_str()) {
                v.add(field, format!("must be one of {}", allowed.join(", ")));
            }
        }
    };
    one_of("status", &f.status, STATUSES, &mut v);
    one_of("rule", &f.rule, RULES, &mut v);
    let programs: Vec<&str> = Program::ALL.iter().map(|p| p.as_str()).collect();
    one_of("program", &f.program, &programs, &mut v);
    let opened_before = f
        .opened_before
        .as_deref()
        .and_then(|t| v.check("opened_before", super::types::parse_instant_or_date(t)));
    let limit = page_limit(f.limit)?;
    v.finish()?;
    let (region, assigned_to) = match actor.role {
        // A supervisor without a region sees nothing, not everything.
        Role::Supervisor => (Some(actor.region.clone().unwrap_or_default()), None),
        Role::Coordinator => (None, Some(actor.user_id.clone())),
        _ => (None, None),
    };
    let rows = svc
        .store
        .list_findings(&FindingQuery {
            region,
            assigned_to,
            case_id: f.case_id,
            status: f.status,
            rule: f.rule,
            program: f.program,
            opened_before,
            after: f.cursor,
            limit: limit + 1,
        })
        .await?;
    let more = rows.len() as i64 > limit;
    let mut items = Vec::new();
    for r in rows.into_iter().take(limit as usize) {
        items.push(view_of(svc, r).await?);
    }
    let next_cursor = if more {
        items.last().map(|i| i.id.clone())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// A finding as the API shows it: the reviewer's note opened under the case key, and the
/// document version of the consent it is about.
async fn view_of(svc: &Services, r: crate::store::FindingRow) -> Result<FindingView> {
    let note = match &r.note {
        None => None,
        Some(n) => {
            let key = match svc.store.case_by_id(&r.case_id).await? {
                Some(c) => case_key(svc, &c).await?,
                None => None,
            };
            match key {
                Some(k) => Some(
                    String::from_utf8(
                        crypto::open(
                            &k,
                            note_place(&r.id),
                            &crypto::Sealed::from_bytes(n.clone()),
                        )?
                        .to_vec(),
                    )
                    .map_err(|_| crypto::CryptoError::Malformed)?,
                ),
                None => None,
            }
        }
    };
    let document = match r.consent_key.as_str() {
        "" => None,
        id => svc.store.consent_by_id(id).await?.map(|c| c.document_id),
    };
    Ok(FindingView {
        consent_id: (!r.consent_key.is_empty()).then(|| r.consent_key.clone()),
        document,
        id: r.id,
        case_id: r.case_id,
        rule: r.rule,
        message: r.message,
        status: r.status,
        program: r.program,
        opened_at: r.opened_at,
        closed_at: r.closed_at,
        decision: r.decision,
        closed_by: r.closed_by,
        note,
    })
}

/// One finding, for whoever may read the consents of its case (out of scope: not found).
pub async fn get(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<FindingView> {
    let row = svc.store.finding_by_id(id).await?.ok_or(Error::NotFound)?;
    let a = cases::load_authorized(svc, actor, &row.case_id, Action::ReadConsent, now).await?;
    svc.audit
        .record(vec![svc
            .entry(actor, Action::ReadConsent, "finding", now)
            .target(id)
            .case(&row.case_id)
            .break_glass(a.break_glass)])
        .await?;
    view_of(svc, row).await
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// `verified` or `concern`.
    #[schema(schema_with = super::ethics::finding_schema)]
    pub finding: String,
    #[schema(schema_with = super::ethics::note_schema)]
    pub note: Option<String>,
}

/// An ethics reviewer closes a finding with a decision.
pub async fn decide(
    svc: &Services,
    actor: &Actor,
    id: &str,
    d: Decision,
    now: DateTime<Utc>,
) -> Result<()> {
    svc.authorize(
        actor,
        Action::ReviewConsent,
        Resource::System,
        svc.entry(actor, Action::ReviewConsent, "finding", now),
    )
    .await?;
    let mut v = crate::error::Validator::new();
    if !super::ethics::FINDINGS.contains(&d.finding.as_str()) {
        v.add(
            "finding",
            format!("must be one of {}", super::ethics::FINDINGS.join(", ")),
        );
    }
    let note = match d.note.as_deref() {
        Some(n) => v.check("note", super::types::text(n, super::ethics::MAX_NOTE)),
        None => None,
    }
    .filter(|n| !n.is_empty());
    v.finish()?;
    let row = svc.store.finding_by_id(id).await?.ok_or(Error::NotFound)?;
    let case = svc
        .store
        .case_by_id(&row.case_id)
        .await?
        .ok_or(Error::NotFound)?;
    let note = match (&note, case_key(svc, &case).await?) {
        (Some(n), Some(k)) => Some(crypto::seal(&k, note_place(id), n.as_bytes()).into_bytes()),
        _ => None,
    };
    let audit = svc
        .entry(actor, Action::ReviewConsent, "finding", now)
        .target(id)
        .case(&row.case_id)
        .reason(&d.finding);
    if !svc
        .store
        .close_finding(
            id,
            &actor.user_id,
            &d.finding,
            note.as_deref(),
            now,
            &[audit],
        )
        .await?
    {
        return Err(Error::Conflict {
            field: None,
            message: "this finding is already closed".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_the_rules_write_can_be_taken_apart() {
        let mut f = facts(vec![rel("c1", "spouse"), rel("c2", "parent")], Vec::new());
        let mut verbal = rec("k1", "c2");
        verbal.method = "verbal".into();
        verbal.witnessed = false;
        verbal.signed_on = date("2025-03-20");
        let mut unsigned = rec("k2", "c1");
        unsigned.signed_form = false;
        unsigned.kind = "publicity".into();
        unsigned.status = "expired".into();
        let mut contact = rec("k3", "c1");
        contact.kind = "contact".into();
        contact.subject = "c1".into();
        contact.status = "withdrawn".into();
        f.records = vec![verbal, unsigned, contact];
        f.pending = vec![Pending {
            id: "m1".into(),
            recipient: "c1".into(),
            channel: "sms".into(),
        }];
        f.uses = vec![Use {
            id: "u1".into(),
            kind: "research".into(),
            subject: "donor".into(),
        }];
        let found = rules(&f);
        let of = |rule: &str| {
            let (r, _, m) = found
                .iter()
                .find(|(r, _, _)| r == rule)
                .unwrap_or_else(|| panic!("no {rule} in {found:?}"));
            detail(r, m)
        };
        assert_eq!(
            of("verbal_without_witness").kind.as_deref(),
            Some("donation")
        );
        let late = of("signed_after_donation");
        assert_eq!(late.kind.as_deref(), Some("donation"));
        assert_eq!(late.signed_on.as_deref(), Some("2025-03-20"));
        assert_eq!(
            late.donated_on.as_deref(),
            Some(f.donation_date.to_string().as_str())
        );
        assert_eq!(
            of("written_without_form").kind.as_deref(),
            Some("publicity")
        );
        assert_eq!(of("expired").kind.as_deref(), Some("publicity"));
        let outreach = of("outreach_without_consent");
        assert_eq!(outreach.who.as_deref(), Some("c1"));
        assert_eq!(outreach.channel.as_deref(), Some("sms"));
        assert!(outreach.withdrawn);
        let use_ = of("use_without_consent");
        assert_eq!(use_.who.as_deref(), Some("donor"));
        assert_eq!(use_.kind.as_deref(), Some("research"));
        assert!(!use_.withdrawn);
        assert_eq!(
            of("deceased_donation_consent").missing,
            vec![
                ("spouse".to_string(), "c1".to_string()),
                ("parent".into(), "c2".into())
            ]
        );
    }

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn rel(id: &str, relationship: &str) -> Relative {
        Relative {
            id: id.into(),
            relationship: relationship.into(),
            minor: false,
            deceased: false,
        }
    }

    fn rec(id: &str, given_by: &str) -> Record {
        Record {
            id: id.into(),
            kind: "donation".into(),
            given_by: given_by.into(),
            method: "written".into(),
            witnessed: true,
            signed_on: date("2025-03-10"),
            status: "active".into(),
            refusal: false,
            signed_form: true,
            subject: "donor".into(),
            channels: None,
        }
    }

    fn facts(relatives: Vec<Relative>, records: Vec<Record>) -> Facts {
        Facts {
            program: Program::Organ,
            donation_date: date("2025-03-11"),
            death_date: Some(date("2025-03-10")),
            relatives,
            records,
            pending: Vec::new(),
            uses: Vec::new(),
        }
    }

    #[test]
    fn publicity_and_research_uses_need_a_consent_of_their_kind_from_that_person() {
        let consent = |id: &str, kind: &str, subject: &str, status: &str| Record {
            kind: kind.into(),
            subject: subject.into(),
            status: status.into(),
            ..rec(id, subject)
        };
        let found_for = |f: &Facts| -> Vec<String> {
            rules(f)
                .into_iter()
                .filter(|(r, _, _)| r == "use_without_consent")
                .map(|(_, c, m)| format!("{c}|{m}"))
                .collect()
        };
        let mut f = facts(vec![rel("s", "spouse")], vec![]);
        f.uses = vec![Use {
            id: "u1".into(),
            kind: "publicity".into(),
            subject: "donor".into(),
        }];
        assert_eq!(
            found_for(&f),
            ["|planned publicity use u1 of the donor's data has no active publicity consent"]
        );
        f.records = vec![consent("k1", "research", "donor", "active")];
        assert_eq!(
            found_for(&f).len(),
            1,
            "research consent does not cover publicity"
        );
        f.records = vec![consent("k1", "publicity", "s", "active")];
        assert_eq!(
            found_for(&f).len(),
            1,
            "the spouse's consent does not cover the donor's data"
        );
        f.records = vec![consent("k1", "publicity", "donor", "active")];
        assert!(found_for(&f).is_empty());
        f.records = vec![consent("k1", "publicity", "donor", "withdrawn")];
        assert_eq!(
            found_for(&f),
            ["k1|planned publicity use u1 of the donor's data rests on consent k1, which has been withdrawn"]
        );
    }

    #[test]
    fn outreach_needs_an_active_contact_consent_for_its_channel() {
        let pending = |recipient: &str, channel: &str| Pending {
            id: format!("m-{recipient}-{channel}"),
            recipient: recipient.into(),
            channel: channel.into(),
        };
        let contact = |id: &str, subject: &str, status: &str, channels: Option<&[&str]>| Record {
            kind: "contact".into(),
            subject: subject.into(),
            given_by: subject.into(),
            status: status.into(),
            channels: channels.map(|c| c.iter().map(|s| s.to_string()).collect()),
            ..rec(id, subject)
        };
        let only = |f: &Facts| -> Vec<String> {
            rules(f)
                .into_iter()
                .filter(|(r, _, _)| r == "outreach_without_consent")
                .map(|(_, c, m)| format!("{c}|{m}"))
                .collect()
        };
        let mut f = facts(vec![rel("s", "spouse")], vec![]);
        f.pending = vec![pending("s", "email"), pending("s", "email")];
        assert_eq!(
            only(&f),
            ["|outreach to contact s is scheduled by email with no active contact consent covering it"],
            "one finding per recipient and channel"
        );
        f.records = vec![contact("k1", "s", "active", Some(&["sms"]))];
        assert_eq!(only(&f).len(), 1, "a consent for sms does not cover email");
        f.records = vec![contact("k1", "s", "active", None)];
        assert!(
            only(&f).is_empty(),
            "a consent without scope covers every channel"
        );
        f.records = vec![contact("k1", "s", "withdrawn", None)];
        assert_eq!(
            only(&f),
            ["k1|outreach to contact s is scheduled by email under contact consent k1, which has been withdrawn"]
        );
        f.records = vec![contact("k2", "donor", "active", None)];
        assert_eq!(
            only(&f).len(),
            1,
            "the donor's consent does not cover the spouse"
        );
    }

    fn rules_of(f: &Facts) -> Vec<(String, String)> {
        rules(f).into_iter().map(|(r, _, m)| (r, m)).collect()
    }

    #[test]
    fn the_table_of_deceased_donation_cases() {
        let family = || vec![rel("s", "spouse"), rel("c", "child"), rel("p", "parent")];
        let cases: Vec<(&str, Facts, Option<&str>)> = vec![
            (
                "spouse only: child and parent missing",
                facts(family(), vec![rec("1", "s")]),
                Some("missing from: child (contact c), parent (contact p)"),
            ),
            (
                "all three: complete",
                facts(family(), vec![rec("1", "s"), rec("2", "c"), rec("3", "p")]),
                None,
            ),
            (
                "the donor's own consent suffices",
                facts(
                    family(),
                    vec![Record {
                        signed_on: date("2020-01-01"),
                        ..rec("1", "donor")
                    }],
                ),
                None,
            ),
            (
                "no living parents recorded",
                facts(
                    vec![rel("s", "spouse"), rel("c", "child")],
                    vec![rec("1", "s"), rec("2", "c")],
                ),
                None,
            ),
            (
                "a deceased parent is not asked",
                facts(
                    vec![
                        rel("s", "spouse"),
                        Relative {
                            deceased: true,
                            ..rel("p", "parent")
                        },
                    ],
                    vec![rec("1", "s")],
                ),
                None,
            ),
            (
                "a minor child is not asked",
                facts(
                    vec![
                        rel("s", "spouse"),
                        Relative {
                            minor: true,
                            ..rel("c", "child")
                        },
                    ],
                    vec![rec("1", "s")],
                ),
                None,
            ),
            (
                "a sibling's consent does not count",
                facts(vec![rel("b", "sibling")], vec![rec("1", "b")]),
                Some("neither the donor's own nor any spouse"),
            ),
            (
                "a verbal family consent is not written",
                facts(
                    vec![rel("s", "spouse")],
                    vec![Record {
                        method: "verbal".into(),
                        ..rec("1", "s")
                    }],
                ),
                Some("missing from: spouse (contact s)"),
            ),
            (
                "a withdrawn consent no longer counts",
                facts(
                    vec![rel("s", "spouse")],
                    vec![Record {
                        status: "withdrawn".into(),
                        ..rec("1", "s")
                    }],
                ),
                Some("missing from: spouse (contact s)"),
            ),
            (
                "a refusal recorded before death rules it out",
                facts(
                    family(),
                    vec![
                        Record {
                            refusal: true,
                            signed_on: date("2019-05-01"),
                            ..rec("r", "donor")
                        },
                        rec("1", "s"),
                        rec("2", "c"),
                        rec("3", "p"),
                    ],
                ),
                Some("refusal"),
            ),
            (
                "nobody at all",
                facts(vec![], vec![]),
                Some("neither the donor's own nor any spouse"),
            ),
        ];
        for (what, f, want) in cases {
            let got: Vec<String> = rules_of(&f)
                .into_iter()
                .filter(|(r, _)| r == "deceased_donation_consent" || r == "donor_refused")
                .map(|(_, m)| m)
                .collect();
            match want {
                None => assert!(got.is_empty(), "{what}: {got:?}"),
                Some(w) => assert!(got.len() == 1 && got[0].contains(w), "{what}: {got:?}"),
            }
        }
    }

    #[test]
    fn other_rules() {
        let late = Record {
            signed_on: date("2025-03-12"),
            ..rec("late", "s")
        };
        let verbal = Record {
            method: "verbal".into(),
            witnessed: false,
            ..rec("v", "s")
        };
        let expired = Record {
            status: "expired".into(),
            kind: "contact".into(),
            ..rec("e", "s")
        };
        let f = facts(vec![rel("s", "spouse")], vec![late, verbal, expired]);
        let got = rules(&f);
        let has = |rule: &str, id: &str| got.iter().any(|(r, k, _)| r == rule && k == id);
        assert!(has("signed_after_donation", "late"));
        assert!(has("verbal_without_witness", "v"));
        assert!(has("expired", "e"));
        let unsigned = Record {
            signed_form: false,
            ..rec("u", "s")
        };
        let got = rules(&facts(vec![rel("s", "spouse")], vec![unsigned]));
        assert!(got
            .iter()
            .any(|(r, k, _)| r == "written_without_form" && k == "u"));
        assert!(!has("verbal_without_witness", "late"));
        // A marrow case has no deceased-donation rule.
        let marrow = Facts {
            program: Program::Marrow,
            ..facts(vec![], vec![])
        };
        assert!(rules(&marrow).is_empty());
    }
}
