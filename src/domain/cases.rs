//! Cases: a donor, their donation, notes, and who looks after them. Personal values are sealed
//! under the case's own key; phone, national ID and name are also entered as blind-index terms.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::contacts::{self, ContactView};
use super::types::{self, CaseStatus, Language, Program, Role, Sex};
use super::{from_json, is_id, merge_patch, new_id, page_limit, paginate, Page, Services};
use crate::crypto::keyring::WrappedKey;
use crate::crypto::{self, blind_term, Place, SecretKey, TermKind};
use crate::error::{Error, Result, Validator};
use crate::policy::{self, Action, Actor, Resource};
use crate::store::{
    AssignmentRow, BreakGlassRow, CaseQuery, CaseRow, ContactRow, NewCase, SearchTerms,
};

pub const MAX_NAME: usize = 100;
pub const MAX_ADDRESS: usize = 500;
pub const MAX_HOSPITAL: usize = 200;
pub const MAX_NOTES: usize = 20_000;

fn case_program() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(&super::schema::names(Program::ALL, Program::as_str), true)
}

fn case_region() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::token(types::REGION, true)
}

fn case_coordinator() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::nonempty_text(1, super::MAX_ID)
}

fn case_status() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(
        &[CaseStatus::Open.as_str(), CaseStatus::Closed.as_str()],
        true,
    )
}

fn case_notes() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::text(MAX_NOTES)
}

/// What creating a case needs beyond a change to one (see `web::openapi`): the schemas' creating
/// copies, what they require (as [`validate`] does) and what they refuse (`status`: a new case
/// is always open).
pub const ON_CREATE: &[(&str, &str, &[&str], &[&str])] = &[
    (
        "CaseInput",
        "NewCaseInput",
        &["program", "donor", "donation"],
        &["status"],
    ),
    ("DonorInput", "NewDonorInput", &["full_name"], &[]),
    ("DonationInput", "NewDonationInput", &["date", "kind"], &[]),
];

/// A case as a client sends it. Every field is optional here so that each missing or wrong one
/// is reported by name; [`validate`] decides what is required.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseInput {
    /// `marrow`, `organ` or `body`.
    #[schema(schema_with = case_program)]
    pub program: Option<String>,
    #[schema(schema_with = case_region)]
    pub region: Option<String>,
    /// The primary coordinator; a coordinator who creates a case is assigned too.
    #[schema(schema_with = case_coordinator)]
    pub coordinator_id: Option<String>,
    /// `open` or `closed` (PATCH only).
    #[schema(schema_with = case_status)]
    pub status: Option<String>,
    pub donor: Option<DonorInput>,
    pub donation: Option<DonationInput>,
    #[schema(schema_with = case_notes)]
    pub notes: Option<String>,
}

fn donor_name() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::nonempty_text(1, MAX_NAME)
}

fn donor_sex() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(&super::schema::names(Sex::ALL, Sex::as_str), true)
}

fn any_date() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::date(true)
}

fn donor_national_id() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::national_id(true)
}

fn any_phone() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::phone(true)
}

fn any_email() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::email(true)
}

fn any_address() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::text(MAX_ADDRESS)
}

fn any_language() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(&super::schema::names(Language::ALL, Language::as_str), true)
}

fn any_timezone() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::timezone(true)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DonorInput {
    #[schema(schema_with = donor_name)]
    pub full_name: Option<String>,
    /// `f`, `m` or `x`.
    #[schema(schema_with = donor_sex)]
    pub sex: Option<String>,
    /// YYYY-MM-DD.
    #[schema(schema_with = any_date)]
    pub birth_date: Option<String>,
    /// Mainland resident ID (18 characters, checked).
    #[schema(schema_with = donor_national_id)]
    pub national_id: Option<String>,
    #[schema(schema_with = any_phone)]
    pub phone: Option<String>,
    #[schema(schema_with = any_email)]
    pub email: Option<String>,
    #[schema(schema_with = any_address)]
    pub address: Option<String>,
    pub deceased: Option<bool>,
    #[schema(schema_with = any_date)]
    pub death_date: Option<String>,
    /// A living donor's language for outreach: `zh-CN` (default) or `en`.
    #[schema(schema_with = any_language)]
    pub language: Option<String>,
    /// A living donor's IANA time zone for outreach (default the service's).
    #[schema(schema_with = any_timezone)]
    pub timezone: Option<String>,
}

fn donation_kind() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(
        &Program::ALL
            .iter()
            .flat_map(|p| p.donation_kinds().iter().copied())
            .collect::<Vec<_>>(),
        true,
    )
}

fn donation_hospital() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::text(MAX_HOSPITAL)
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DonationInput {
    #[schema(schema_with = any_date)]
    pub date: Option<String>,
    /// `pbsc`, `marrow`, `lymphocytes` (marrow); `kidney`, `liver`, `heart`, `lung`,
    /// `pancreas`, `intestine`, `cornea`, `multi_organ` (organ); `whole_body` (body).
    #[schema(schema_with = donation_kind)]
    pub kind: Option<String>,
    #[schema(schema_with = donation_hospital)]
    pub hospital: Option<String>,
}

/// The donor, as sealed in `cases.donor`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Donor {
    pub full_name: String,
    pub sex: Option<Sex>,
    pub birth_date: Option<NaiveDate>,
    pub national_id: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub deceased: bool,
    pub death_date: Option<NaiveDate>,
    /// Language of outreach to a living donor (`zh-CN` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<Language>,
    /// Time zone of outreach to a living donor (the service's when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// The donation, as sealed in `cases.donation`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Donation {
    pub date: NaiveDate,
    pub kind: String,
    pub hospital: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AssignmentView {
    pub user_id: String,
    /// `primary` or `team`.
    pub kind: String,
}

/// A case as the API returns it. `donor`, `donation` and `notes` are absent once erased.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CaseView {
    pub id: String,
    pub program: Program,
    pub region: String,
    pub status: CaseStatus,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coordinator_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assignments: Option<Vec<AssignmentView>>,
    pub donor: Option<Donor>,
    pub donation: Option<Donation>,
    pub notes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contacts: Option<Vec<ContactView>>,
}

/// A validated case.
#[derive(Debug, Clone)]
pub struct ValidCase {
    pub program: Program,
    pub region: Option<String>,
    pub coordinator_id: Option<String>,
    pub status: Option<CaseStatus>,
    pub donor: Donor,
    pub donation: Donation,
    pub notes: Option<String>,
}

/// Check a whole case; every problem is reported under its field.
pub fn validate(input: &CaseInput, today: NaiveDate) -> Result<ValidCase> {
    let mut v = Validator::new();
    let program = match &input.program {
        None => {
            v.add("program", "is required");
            None
        }
        Some(p) => v.check("program", Program::parse(p)),
    };
    let region = input
        .region
        .as_deref()
        .and_then(|r| v.check("region", types::region(r)));
    let status = input.status.as_deref().and_then(|s| {
        v.check(
            "status",
            match CaseStatus::parse(s) {
                Ok(CaseStatus::Erased) => Err("erasure is a separate, reviewed request".into()),
                r => r,
            },
        )
    });
    let coordinator_id = input.coordinator_id.clone();

    let empty_donor = DonorInput::default();
    let d = input.donor.as_ref().unwrap_or_else(|| {
        v.add("donor", "is required");
        &empty_donor
    });
    let full_name = match &d.full_name {
        None => {
            v.add("donor.full_name", "is required");
            None
        }
        Some(n) => v.check("donor.full_name", types::required_text(n, MAX_NAME)),
    };
    let sex = d
        .sex
        .as_deref()
        .and_then(|s| v.check("donor.sex", Sex::parse(s)));
    let birth_date = d.birth_date.as_deref().and_then(|s| {
        v.check(
            "donor.birth_date",
            types::parse_date(s).and_then(|b| {
                if b > today {
                    Err("is in the future".into())
                } else {
                    Ok(b)
                }
            }),
        )
    });
    let national_id = d
        .national_id
        .as_deref()
        .and_then(|s| v.check("donor.national_id", types::national_id(s, today)));
    if let (Some((_, id_birth)), Some(b)) = (&national_id, birth_date) {
        if *id_birth != b {
            v.add(
                "donor.national_id",
                "the birth date it contains differs from donor.birth_date",
            );
        }
    }
    let phone = d
        .phone
        .as_deref()
        .and_then(|s| v.check("donor.phone", types::phone(s)));
    let email = d
        .email
        .as_deref()
        .and_then(|s| v.check("donor.email", types::email(s)));
    let address = d
        .address
        .as_deref()
        .and_then(|s| v.check("donor.address", types::text(s, MAX_ADDRESS)))
        .filter(|s| !s.is_empty());
    let language = d
        .language
        .as_deref()
        .and_then(|s| v.check("donor.language", Language::parse(s.trim())));
    let timezone = d
        .timezone
        .as_deref()
        .and_then(|s| v.check("donor.timezone", types::timezone(s)));
    let deceased = d.deceased.unwrap_or(false);
    let death_date = d.death_date.as_deref().and_then(|s| {
        v.check(
            "donor.death_date",
            types::parse_date(s).and_then(|x| {
                if x > today {
                    Err("is in the future".into())
                } else {
                    Ok(x)
                }
            }),
        )
    });
    if let Some(p) = program {
        if p.is_deceased_program() && !deceased {
            v.add(
                "donor.deceased",
                format!("must be true in the {p} programme"),
            );
        }
        if !p.is_deceased_program() && deceased {
            v.add("donor.deceased", "marrow donors are living donors");
        }
    }
    if deceased && d.death_date.is_none() {
        v.add("donor.death_date", "is required for a deceased donor");
    }
    if !deceased && d.death_date.is_some() {
        v.add(
            "donor.death_date",
            "is given but donor.deceased is not true",
        );
    }
    if let (Some(b), Some(x)) = (birth_date, death_date) {
        if x < b {
            v.add("donor.death_date", "is before donor.birth_date");
        }
    }

    let empty_donation = DonationInput::default();
    let dn = input.donation.as_ref().unwrap_or_else(|| {
        v.add("donation", "is required");
        &empty_donation
    });
    let donation_date = match &dn.date {
        None => {
            v.add("donation.date", "is required");
            None
        }
        Some(s) => v.check(
            "donation.date",
            types::parse_date(s).and_then(|x| {
                if x > today {
                    Err("is in the future".into())
                } else {
                    Ok(x)
                }
            }),
        ),
    };
    if let (Some(dd), Some(b)) = (donation_date, birth_date) {
        if dd < b {
            v.add("donation.date", "is before donor.birth_date");
        }
    }
    if let (Some(dd), Some(x)) = (donation_date, death_date) {
        if dd < x {
            v.add(
                "donation.date",
                "is before donor.death_date (a deceased donation follows death)",
            );
        }
    }
    let kind = match (&dn.kind, program) {
        (None, _) => {
            v.add("donation.kind", "is required");
            None
        }
        (Some(k), Some(p)) => {
            let k = k.trim();
            if p.donation_kinds().contains(&k) {
                Some(k.to_string())
            } else {
                v.add(
                    "donation.kind",
                    format!(
                        "in the {p} programme must be one of {}",
                        p.donation_kinds().join(", ")
                    ),
                );
                None
            }
        }
        (Some(_), None) => None,
    };
    let hospital = dn
        .hospital
        .as_deref()
        .and_then(|s| v.check("donation.hospital", types::text(s, MAX_HOSPITAL)))
        .filter(|s| !s.is_empty());
    let notes = input
        .notes
        .as_deref()
        .and_then(|s| v.check("notes", types::text(s, MAX_NOTES)))
        .filter(|s| !s.is_empty());

    v.finish()?;
    // Every `None` below was reported above, so `finish` has returned early.
    let (Some(program), Some(full_name), Some(date), Some(kind)) =
        (program, full_name, donation_date, kind)
    else {
        return Err(Error::Internal(anyhow::anyhow!(
            "validation let a required field through"
        )));
    };
    Ok(ValidCase {
        program,
        region,
        coordinator_id,
        status,
        donor: Donor {
            full_name,
            sex,
            birth_date,
            national_id: national_id.map(|(id, _)| id),
            phone,
            email,
            address,
            deceased,
            death_date,
            language,
            timezone,
        },
        donation: Donation {
            date,
            kind,
            hospital,
        },
        notes,
    })
}

/// The blind-index terms of a donor.
pub fn donor_terms(index_key: &SecretKey, donor: &Donor) -> SearchTerms {
    let mut terms = vec![blind_term(
        index_key,
        TermKind::Name,
        &types::normalise_name(&donor.full_name),
    )];
    if let Some(p) = &donor.phone {
        terms.push(blind_term(
            index_key,
            TermKind::Phone,
            &types::normalise_phone(p),
        ));
    }
    if let Some(id) = &donor.national_id {
        terms.push(blind_term(
            index_key,
            TermKind::NationalId,
            &types::normalise_national_id(id),
        ));
    }
    SearchTerms {
        source: "donor".into(),
        terms,
    }
}

/// Seal the personal parts of a case into a row.
fn seal_row(
    key: &SecretKey,
    row: &mut CaseRow,
    donor: &Donor,
    donation: &Donation,
    notes: Option<&str>,
) {
    row.donor = crypto::seal_json(key, Place::new("cases", "donor", &row.id), donor).into_bytes();
    row.donation =
        crypto::seal_json(key, Place::new("cases", "donation", &row.id), donation).into_bytes();
    row.notes = notes.map(|n| {
        crypto::seal(key, Place::new("cases", "notes", &row.id), n.as_bytes()).into_bytes()
    });
}

/// The opened contents of a case row.
pub struct Opened {
    pub donor: Donor,
    pub donation: Donation,
    pub notes: Option<String>,
}

/// Open a case row with its case key.
pub fn open_row(key: &SecretKey, row: &CaseRow) -> Result<Opened> {
    let donor = crypto::open_json(
        key,
        Place::new("cases", "donor", &row.id),
        &crypto::Sealed::from_bytes(row.donor.clone()),
    )?;
    let donation = crypto::open_json(
        key,
        Place::new("cases", "donation", &row.id),
        &crypto::Sealed::from_bytes(row.donation.clone()),
    )?;
    let notes = match &row.notes {
        None => None,
        Some(n) => {
            let plain = crypto::open(
                key,
                Place::new("cases", "notes", &row.id),
                &crypto::Sealed::from_bytes(n.clone()),
            )?;
            Some(String::from_utf8(plain.to_vec()).map_err(|_| crypto::CryptoError::Malformed)?)
        }
    };
    Ok(Opened {
        donor,
        donation,
        notes,
    })
}

fn wrapped(row: &CaseRow) -> Option<WrappedKey> {
    match (row.key_version, &row.wrapped_key) {
        (Some(version), Some(bytes)) => Some(WrappedKey {
            version,
            bytes: bytes.clone(),
        }),
        _ => None,
    }
}

/// The case key of a row; `None` once the case is erased.
pub async fn case_key(svc: &Services, row: &CaseRow) -> Result<Option<SecretKey>> {
    match wrapped(row) {
        None => Ok(None),
        Some(w) => Ok(Some(svc.keys.unwrap_case_key(&row.id, &w).await?)),
    }
}

/// A listed case opened with the keyring at hand (no donor, donation or notes once erased).
/// Reading it is the caller's to audit.
pub fn open_listed(
    svc: &Services,
    ring: &crate::crypto::keyring::Keyring,
    row: &CaseRow,
) -> Result<CaseView> {
    let opened = match wrapped(row) {
        None => None,
        Some(w) => Some(open_row(&svc.keys.unwrap_with(ring, &row.id, &w)?, row)?),
    };
    view(row, opened)
}

fn view(row: &CaseRow, opened: Option<Opened>) -> Result<CaseView> {
    let (donor, donation, notes) = match opened {
        Some(o) => (Some(o.donor), Some(o.donation), o.notes),
        None => (None, None, None),
    };
    Ok(CaseView {
        id: row.id.clone(),
        program: Program::parse(&row.program)
            .map_err(|e| anyhow::anyhow!("stored program: {e}"))?,
        region: row.region.clone(),
        status: CaseStatus::parse(&row.status)
            .map_err(|e| anyhow::anyhow!("stored status: {e}"))?,
        created_at: row.created_at,
        updated_at: row.updated_at,
        coordinator_id: None,
        assignments: None,
        donor,
        donation,
        notes,
        contacts: None,
    })
}

/// A case loaded for an actor who may take the action on it.
pub struct Authorized {
    pub row: CaseRow,
    /// Access came from a break-glass grant, not an assignment.
    pub break_glass: bool,
    /// The case's assignments (read once for the decision and the view).
    pub assignments: Vec<AssignmentRow>,
}

/// Load a case and decide `action` on it for `actor`; 404 when absent or out of scope. Every
/// refusal is recorded in the audit log.
pub async fn load_authorized(
    svc: &Services,
    actor: &Actor,
    id: &str,
    action: Action,
    now: DateTime<Utc>,
) -> Result<Authorized> {
    let entry = svc.entry(actor, action, "case", now);
    let Some((row, assignments)) = svc.store.case_with_assignments(id).await? else {
        let entry = if is_id(id) { entry.target(id) } else { entry };
        svc.audit.record(vec![entry.denied("not_found")]).await?;
        return Err(Error::NotFound);
    };
    let assigned = is_assigned(actor, &assignments);
    let break_glass = actor.role == Role::Coordinator
        && !assigned
        && svc.store.has_break_glass(id, &actor.user_id, now).await?;
    svc.authorize(
        actor,
        action,
        Resource::Case {
            region: &row.region,
            assigned,
            break_glass,
        },
        entry.target(id).case(id),
    )
    .await?;
    Ok(Authorized {
        row,
        break_glass,
        assignments,
    })
}

/// Whether `actor` is a coordinator on the case of `assignments` (primary or team).
fn is_assigned(actor: &Actor, assignments: &[AssignmentRow]) -> bool {
    actor.role == Role::Coordinator && assignments.iter().any(|a| a.user_id == actor.user_id)
}

pub async fn create(
    svc: &Services,
    actor: &Actor,
    input: CaseInput,
    now: DateTime<Utc>,
) -> Result<CaseView> {
    // Keep what the database keeps (PostgreSQL: microseconds), so this answer equals a later read.
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    svc.authorize(
        actor,
        Action::CreateCase,
        Resource::System,
        svc.entry(actor, Action::CreateCase, "case", now),
    )
    .await?;
    if input.status.is_some() {
        return Err(Error::field("status", "a new case is always open"));
    }
    let valid = validate(&input, now.date_naive())?;
    let region = match (valid.region.clone(), actor.role, &actor.region) {
        (Some(r), Role::Supervisor, Some(own)) if &r != own => {
            return Err(Error::field(
                "region",
                "supervisors create cases in their own region",
            ));
        }
        (Some(r), _, _) => r,
        (None, _, Some(own)) => own.clone(),
        (None, _, None) => return Err(Error::field("region", "is required")),
    };
    let mut assignments = Vec::new();
    let id = new_id();
    if let Some(c) = &valid.coordinator_id {
        let ok = svc
            .store
            .user_by_id(c)
            .await?
            .is_some_and(|u| u.role == Role::Coordinator.as_str() && !u.disabled);
        if !ok {
            return Err(Error::field(
                "coordinator_id",
                "is not an active coordinator",
            ));
        }
        assignments.push(AssignmentRow {
            case_id: id.clone(),
            user_id: c.clone(),
            kind: "primary".into(),
        });
    }
    if actor.role == Role::Coordinator && valid.coordinator_id.as_deref() != Some(&actor.user_id) {
        let kind = if assignments.is_empty() {
            "primary"
        } else {
            "team"
        };
        assignments.push(AssignmentRow {
            case_id: id.clone(),
            user_id: actor.user_id.clone(),
            kind: kind.into(),
        });
    }
    let (key, wrapped) = svc.keys.new_case_key(&id);
    let mut row = CaseRow {
        id: id.clone(),
        program: valid.program.as_str().into(),
        region,
        status: CaseStatus::Open.as_str().into(),
        created_by: actor.user_id.clone(),
        created_at: now,
        updated_at: now,
        donor: Vec::new(),
        donation: Vec::new(),
        notes: None,
        key_version: Some(wrapped.version),
        wrapped_key: Some(wrapped.bytes),
    };
    seal_row(
        &key,
        &mut row,
        &valid.donor,
        &valid.donation,
        valid.notes.as_deref(),
    );
    let terms = donor_terms(&svc.keys.ring().index, &valid.donor);
    let audit = svc
        .entry(actor, Action::CreateCase, "case", now)
        .target(&id)
        .case(&id);
    let new = NewCase {
        row,
        terms,
        assignments,
    };
    svc.store.insert_case(&new, &[audit]).await?;
    tracing::info!(case_id = %id, actor = %actor.user_id, "case created");
    super::schedule::refresh_case(svc, &id, now).await;
    // The creator's answer is built from what was written: no second read, and no view entry
    // beside the create entry.
    assemble(svc, &new.row, Some(&key), new.assignments).await
}

pub async fn get(svc: &Services, actor: &Actor, id: &str, now: DateTime<Utc>) -> Result<CaseView> {
    let Authorized {
        row,
        break_glass,
        assignments,
    } = load_authorized(svc, actor, id, Action::ReadCase, now).await?;
    let key = case_key(svc, &row).await?;
    let v = assemble(svc, &row, key.as_ref(), assignments).await?;
    // The reply waits until the view is on the record.
    svc.audit
        .record(vec![
            view_entry(svc, actor, id, now).break_glass(break_glass)
        ])
        .await?;
    Ok(v)
}

/// The audit entry of a view of case `id`.
fn view_entry(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> crate::audit::AuditEntry {
    svc.entry(actor, Action::ReadCase, "case", now)
        .target(id)
        .case(id)
}

/// The case view from reads kept in memory (`store::CachedReads`, SQLite), for a caller the
/// access table lets read the case without break-glass: the token's account, the case, its
/// assignments and contacts come from the cache, and the view is recorded only if none of
/// them has changed since they were read (`Recorder::record_at`). `None` whenever the cache
/// cannot answer alone (no cache, an unknown or expired token, an unknown case, anything the
/// access table does not simply allow, or a change since the reads); the caller then takes
/// the uncached path, which decides, records denials and answers as always.
pub async fn get_cached(
    svc: &Services,
    token: &str,
    id: &str,
    now: DateTime<Utc>,
) -> Result<Option<(Actor, CaseView)>> {
    let Some(cache) = svc.store.cached_reads() else {
        return Ok(None);
    };
    let Some((account, account_at)) = cache.token_user(&crypto::token_hash(token), now).await?
    else {
        return Ok(None);
    };
    let actor = super::accounts::actor_with(svc, &account.user)?;
    if actor.must_enrol {
        return Ok(None);
    }
    let Some((case, case_at)) = cache.case_bundle(id).await? else {
        return Ok(None);
    };
    let resource = Resource::Case {
        region: &case.row.region,
        assigned: is_assigned(&actor, &case.assignments),
        break_glass: false,
    };
    if policy::authorize(&actor, Action::ReadCase, resource).is_err() {
        return Ok(None);
    }
    let key = case_key(svc, &case.row).await?;
    let v = assemble_with(&case.row, key.as_ref(), &case.assignments, &case.contacts)?;
    let recorded = svc
        .audit
        .record_at(
            vec![view_entry(svc, &actor, id, now)],
            account_at.min(case_at),
        )
        .await?;
    Ok(recorded.then_some((actor, v)))
}

/// The full view of a case: donor, donation, notes, assignments and contacts (the personal
/// parts absent once erased). Callers decide access and record the audit entry.
async fn assemble(
    svc: &Services,
    row: &CaseRow,
    key: Option<&SecretKey>,
    assignments: Vec<AssignmentRow>,
) -> Result<CaseView> {
    // An erased case has no key and shows no contacts: they are not read.
    let contacts = match key {
        Some(_) => svc.store.contacts_for_case(&row.id).await?,
        None => Vec::new(),
    };
    assemble_with(row, key, &assignments, &contacts)
}

/// `assemble` from rows already read.
fn assemble_with(
    row: &CaseRow,
    key: Option<&SecretKey>,
    assignments: &[AssignmentRow],
    contacts: &[ContactRow],
) -> Result<CaseView> {
    let opened = key.map(|k| open_row(k, row)).transpose()?;
    let mut v = view(row, opened)?;
    v.coordinator_id = assignments
        .iter()
        .find(|a| a.kind == "primary")
        .map(|a| a.user_id.clone());
    v.assignments = Some(
        assignments
            .iter()
            .map(|a| AssignmentView {
                user_id: a.user_id.clone(),
                kind: a.kind.clone(),
            })
            .collect(),
    );
    v.contacts = Some(match key {
        Some(k) => contacts::open_views(k, contacts)?,
        None => Vec::new(),
    });
    Ok(v)
}

fn program_param() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(&super::schema::names(Program::ALL, Program::as_str), true)
}

fn status_param() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(
        &super::schema::names(CaseStatus::ALL, CaseStatus::as_str),
        true,
    )
}

/// Filters of a case listing, as the API receives them.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CaseFilter {
    #[param(schema_with = program_param)]
    pub program: Option<String>,
    #[param(schema_with = status_param)]
    pub status: Option<String>,
    /// Exact match on the donor's or a contact's phone.
    pub phone: Option<String>,
    /// Exact match on the donor's national ID.
    pub national_id: Option<String>,
    /// Exact match on the donor's or a contact's full name.
    pub name: Option<String>,
    /// 1–200, default 50.
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// The donors' names of cases the caller may read, for lists that name each case (the home
/// page's tasks and messages): one audit entry per case named, in one commit, as a listing
/// records. Cases outside the caller's scope, unknown or erased are left out.
pub async fn names(
    svc: &Services,
    actor: &Actor,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<std::collections::HashMap<String, String>> {
    let mut unique: Vec<String> = ids.to_vec();
    unique.sort();
    unique.dedup();
    // One read for all the cases; each is then authorized as `load_authorized` would, and
    // every view and every refusal goes into one audit batch.
    let rows: std::collections::HashMap<String, (CaseRow, Vec<AssignmentRow>)> = svc
        .store
        .cases_with_assignments(&unique)
        .await?
        .into_iter()
        .map(|(row, a)| (row.id.clone(), (row, a)))
        .collect();
    let mut names = std::collections::HashMap::new();
    let mut entries = Vec::new();
    let ring = svc.keys.ring();
    for id in &unique {
        let entry = svc.entry(actor, Action::ReadCase, "case", now);
        let Some((row, assignments)) = rows.get(id) else {
            let entry = if is_id(id) { entry.target(id) } else { entry };
            entries.push(entry.denied("not_found"));
            continue;
        };
        let assigned = is_assigned(actor, assignments);
        let break_glass = actor.role == Role::Coordinator
            && !assigned
            && svc.store.has_break_glass(id, &actor.user_id, now).await?;
        let resource = Resource::Case {
            region: &row.region,
            assigned,
            break_glass,
        };
        if let Err(e) = policy::authorize(actor, Action::ReadCase, resource) {
            let why = match e {
                Error::NotFound => "not_in_scope",
                _ => "role",
            };
            entries.push(entry.target(id).case(id).denied(why));
            continue;
        }
        let Some(w) = wrapped(row) else { continue };
        let opened = open_row(&svc.keys.unwrap_with(&ring, &row.id, &w)?, row)?;
        names.insert(id.clone(), opened.donor.full_name);
        entries.push(
            view_entry(svc, actor, id, now)
                .break_glass(break_glass)
                .reason("list"),
        );
    }
    if !entries.is_empty() {
        svc.audit.record(entries).await?;
    }
    Ok(names)
}

/// How many cases of each programme and status the caller's scope holds: metadata only, so
/// nothing is decrypted and nothing personal is shown.
pub async fn counts(svc: &Services, actor: &Actor) -> Result<Vec<crate::store::ProgramCount>> {
    let scope = policy::case_scope(actor)?;
    svc.store.count_cases(&scope).await
}

pub async fn list(
    svc: &Services,
    actor: &Actor,
    f: CaseFilter,
    now: DateTime<Utc>,
) -> Result<Page<CaseView>> {
    let scope = match policy::case_scope(actor) {
        Ok(s) => s,
        Err(e) => {
            let entry = svc
                .entry(actor, Action::ListCases, "case", now)
                .denied("role");
            svc.audit.record(vec![entry]).await?;
            return Err(e);
        }
    };
    let searched = f.phone.is_some() || f.national_id.is_some() || f.name.is_some();
    let mut v = Validator::new();
    let program = f
        .program
        .as_deref()
        .and_then(|p| v.check("program", Program::parse(p)));
    let status = f
        .status
        .as_deref()
        .and_then(|s| v.check("status", CaseStatus::parse(s)));
    let limit = match page_limit(f.limit) {
        Ok(l) => l,
        Err(_) => {
            v.add("limit", "must be between 1 and 200");
            0
        }
    };
    let ring = svc.keys.ring();
    let mut terms = Vec::new();
    if let Some(p) = &f.phone {
        let n = types::normalise_phone(p);
        if n.len() < 5 {
            v.add("phone", "must have at least 5 digits");
        }
        terms.push(blind_term(&ring.index, TermKind::Phone, &n));
    }
    if let Some(id) = &f.national_id {
        terms.push(blind_term(
            &ring.index,
            TermKind::NationalId,
            &types::normalise_national_id(id),
        ));
    }
    if let Some(n) = &f.name {
        let n = types::normalise_name(n);
        if n.is_empty() {
            v.add("name", "must not be empty");
        }
        terms.push(blind_term(&ring.index, TermKind::Name, &n));
    }
    if terms.len() > 1 {
        v.add(
            "phone",
            "search by one of phone, national_id or name at a time",
        );
    }
    v.finish()?;
    let rows = svc
        .store
        .list_cases(&CaseQuery {
            consent_in_force: None,
            scope,
            program: program.map(|p| p.as_str().to_string()),
            status: status.map(|s| s.as_str().to_string()),
            term: terms.pop(),
            after: f.cursor,
            limit: limit + 1,
        })
        .await?;
    let page = paginate(
        rows,
        limit,
        |r| r.id.clone(),
        |row| open_listed(svc, &ring, &row),
    )?;
    // Each case shown is a view of personal data: one entry per case, one commit per page.
    let reason = if searched { "search" } else { "list" };
    let entries: Vec<_> = page
        .items
        .iter()
        .map(|c| {
            svc.entry(actor, Action::ReadCase, "case", now)
                .target(&c.id)
                .case(&c.id)
                .reason(reason)
        })
        .collect();
    if !entries.is_empty() {
        svc.audit.record(entries).await?;
    }
    Ok(page)
}

pub async fn update(
    svc: &Services,
    actor: &Actor,
    id: &str,
    patch: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<CaseView> {
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let Authorized {
        mut row,
        break_glass,
        assignments,
    } = load_authorized(svc, actor, id, Action::UpdateCase, now).await?;
    if !patch.is_object() {
        return Err(Error::field("body", "must be a JSON object"));
    }
    super::known_patch_fields::<CaseInput>(&patch)?;
    for (field, why) in [
        (
            "program",
            "cannot change; close this case and open one in the other programme",
        ),
        ("coordinator_id", "use POST /api/v1/cases/{id}/assign"),
    ] {
        if patch.get(field).is_some() {
            return Err(Error::field(field, why));
        }
    }
    let key = case_key(svc, &row).await?.ok_or_else(|| Error::Conflict {
        field: None,
        message: "this case has been erased".into(),
    })?;
    let opened = open_row(&key, &row)?;
    let current = CaseInput {
        program: Some(row.program.clone()),
        region: Some(row.region.clone()),
        coordinator_id: None,
        status: Some(row.status.clone()),
        donor: Some(donor_input(&opened.donor)),
        donation: Some(DonationInput {
            date: Some(opened.donation.date.to_string()),
            kind: Some(opened.donation.kind.clone()),
            hospital: opened.donation.hospital.clone(),
        }),
        notes: opened.notes.clone(),
    };
    let mut merged = serde_json::to_value(&current).map_err(anyhow::Error::from)?;
    strip_nulls(&mut merged);
    merge_patch(&mut merged, &patch);
    let input: CaseInput = from_json(merged)?;
    let valid = validate(&input, now.date_naive())?;
    if let Some(r) = &valid.region {
        if actor.role == Role::Supervisor && actor.region.as_deref() != Some(r) {
            return Err(Error::field(
                "region",
                "supervisors keep cases in their own region",
            ));
        }
        row.region = r.clone();
    }
    if let Some(s) = valid.status {
        row.status = s.as_str().into();
    }
    row.updated_at = now;
    seal_row(
        &key,
        &mut row,
        &valid.donor,
        &valid.donation,
        valid.notes.as_deref(),
    );
    let terms =
        (valid.donor != opened.donor).then(|| donor_terms(&svc.keys.ring().index, &valid.donor));
    let audit = svc
        .entry(actor, Action::UpdateCase, "case", now)
        .target(id)
        .case(id)
        .break_glass(break_glass);
    svc.store
        .update_case(&row, terms.as_ref(), &[audit])
        .await?;
    tracing::info!(case_id = %id, actor = %actor.user_id, "case updated");
    if row.status == "open" {
        // Anchors may have moved: future, unfinished occurrences follow (and the rules look
        // again).
        super::schedule::refresh_case(svc, id, now).await;
    } else {
        svc.store
            .cancel_case_schedule(id, &format!("case_{}", row.status), now)
            .await?;
        super::findings::refresh(svc, id, now).await;
    }
    assemble(svc, &row, Some(&key), assignments).await
}

fn donor_input(d: &Donor) -> DonorInput {
    DonorInput {
        full_name: Some(d.full_name.clone()),
        sex: d.sex.map(|s| s.as_str().to_string()),
        birth_date: d.birth_date.map(|x| x.to_string()),
        national_id: d.national_id.clone(),
        phone: d.phone.clone(),
        email: d.email.clone(),
        address: d.address.clone(),
        deceased: Some(d.deceased),
        death_date: d.death_date.map(|x| x.to_string()),
        language: d.language.map(|l| l.as_str().to_string()),
        timezone: d.timezone.clone(),
    }
}

/// Drop nulls so that the merged document only holds values (merge patch treats null as
/// removal, and `deny_unknown_fields` inputs take absent and null alike).
fn strip_nulls(v: &mut serde_json::Value) {
    if let serde_json::Value::Object(m) = v {
        m.retain(|_, x| !x.is_null());
        for x in m.values_mut() {
            strip_nulls(x);
        }
    }
}

/// Assign a coordinator as the case's primary (supervisors).
pub async fn assign(
    svc: &Services,
    actor: &Actor,
    id: &str,
    coordinator_id: &str,
    team: bool,
    now: DateTime<Utc>,
) -> Result<CaseView> {
    let Authorized { row, .. } = load_authorized(svc, actor, id, Action::AssignCase, now).await?;
    let ok = svc
        .store
        .user_by_id(coordinator_id)
        .await?
        .is_some_and(|u| u.role == Role::Coordinator.as_str() && !u.disabled);
    if !ok {
        return Err(Error::field(
            "coordinator_id",
            "is not an active coordinator",
        ));
    }
    let audit = svc
        .entry(actor, Action::AssignCase, "user", now)
        .target(coordinator_id)
        .case(id)
        .reason(if team { "team" } else { "primary" });
    if team {
        svc.store
            .add_to_team(id, coordinator_id, now, &[audit])
            .await?;
    } else {
        svc.store
            .set_primary(id, coordinator_id, now, &[audit])
            .await?;
    }
    tracing::info!(case_id = %id, actor = %actor.user_id, coordinator = %coordinator_id, "case assigned");
    let key = case_key(svc, &row).await?;
    assemble(svc, &row, key.as_ref(), svc.store.assignments(id).await?).await
}

/// Minimum length of a break-glass reason.
pub const MIN_BREAK_GLASS_REASON: usize = 20;
/// The longest reason a break-glass, reveal or withdrawal may state.
pub const MAX_REASON: usize = 2000;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BreakGlassView {
    pub id: String,
    pub case_id: String,
    pub user_id: String,
    /// The stated reason; absent once the case is erased.
    pub reason: Option<String>,
    pub granted_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub active: bool,
    /// What ethics reviewers said of this use, oldest first (the newest counts).
    pub reviews: Vec<super::break_glass::BreakGlassReviewView>,
}

fn break_glass_place(id: &str) -> Place<'_> {
    Place::new("break_glass", "reason", id)
}

/// A coordinator opens a case they are not assigned to, for `svc.break_glass_for`, stating why.
pub async fn break_glass(
    svc: &Services,
    actor: &Actor,
    id: &str,
    reason: &str,
    totp: Option<&str>,
    now: DateTime<Utc>,
) -> Result<BreakGlassView> {
    if actor.role != Role::Coordinator {
        svc.authorize(
            actor,
            Action::BreakGlass,
            Resource::System,
            svc.entry(actor, Action::BreakGlass, "case", now),
        )
        .await?;
    }
    let reason = types::required_text(reason, MAX_REASON).map_err(|e| Error::field("reason", e))?;
    if reason.chars().count() < MIN_BREAK_GLASS_REASON {
        return Err(Error::field(
            "reason",
            format!("state why in at least {MIN_BREAK_GLASS_REASON} characters"),
        ));
    }
    let Authorized {
        row, assignments, ..
    } = load_authorized(svc, actor, id, Action::BreakGlass, now).await?;
    // Staff who have TOTP confirm a break-glass with a fresh code.
    super::accounts::require_fresh_totp(svc, actor, totp, now).await?;
    if assignments.iter().any(|a| a.user_id == actor.user_id) {
        return Err(Error::Conflict {
            field: None,
            message: "you are assigned to this case; break-glass is not needed".into(),
        });
    }
    let key = case_key(svc, &row).await?.ok_or_else(|| Error::Conflict {
        field: None,
        message: "this case has been erased".into(),
    })?;
    let grant_id = new_id();
    let grant = BreakGlassRow {
        reason: crypto::seal(&key, break_glass_place(&grant_id), reason.as_bytes()).into_bytes(),
        id: grant_id.clone(),
        case_id: id.to_string(),
        user_id: actor.user_id.clone(),
        granted_at: now,
        expires_at: now + svc.break_glass_for,
    };
    let audit = svc
        .entry(actor, Action::BreakGlass, "break_glass", now)
        .target(&grant_id)
        .case(id)
        .break_glass(true)
        .reason("stated");
    svc.store.insert_break_glass(&grant, &[audit]).await?;
    tracing::warn!(case_id = %id, actor = %actor.user_id, grant = %grant_id, "break-glass access granted");
    Ok(BreakGlassView {
        id: grant.id,
        case_id: grant.case_id,
        user_id: grant.user_id,
        reason: Some(reason),
        granted_at: grant.granted_at,
        expires_at: grant.expires_at,
        active: true,
        reviews: Vec::new(),
    })
}

/// Break-glass grants, newest first: all for ethics reviewers, their region for supervisors;
/// `unreviewed` keeps those no reviewer has acknowledged or raised a concern about.
pub async fn list_break_glass(
    svc: &Services,
    actor: &Actor,
    case_id: Option<&str>,
    unreviewed: bool,
    cursor: Option<&str>,
    limit: Option<i64>,
    now: DateTime<Utc>,
) -> Result<Page<BreakGlassView>> {
    svc.authorize(
        actor,
        Action::ReviewBreakGlass,
        Resource::System,
        svc.entry(actor, Action::ReviewBreakGlass, "break_glass", now),
    )
    .await?;
    let limit = page_limit(limit)?;
    let rows = svc
        .store
        .list_break_glass(
            grant_region(actor).as_deref(),
            case_id,
            unreviewed,
            cursor,
            limit + 1,
        )
        .await?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<_> = rows.into_iter().take(limit as usize).collect();
    let items = open_grants(svc, rows, now).await?;
    record_grant_views(svc, actor, &items, now).await?;
    let next_cursor = if more {
        items.last().map(|i: &BreakGlassView| i.id.clone())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// One grant, with its reviews, for those who may list grants (a supervisor's region only).
pub async fn get_break_glass(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<BreakGlassView> {
    svc.authorize(
        actor,
        Action::ReviewBreakGlass,
        Resource::System,
        svc.entry(actor, Action::ReviewBreakGlass, "break_glass", now),
    )
    .await?;
    let row = svc
        .store
        .break_glass_by_id(id)
        .await?
        .ok_or(Error::NotFound)?;
    if let Some(region) = grant_region(actor) {
        let case = svc.store.case_by_id(&row.case_id).await?;
        if case.is_none_or(|c| c.region != region) {
            return Err(Error::NotFound);
        }
    }
    let items = open_grants(svc, vec![row], now).await?;
    record_grant_views(svc, actor, &items, now).await?;
    items.into_iter().next().ok_or(Error::NotFound)
}

/// A grant's stated reason and its reviews' notes were opened: one entry per grant shown.
async fn record_grant_views(
    svc: &Services,
    actor: &Actor,
    items: &[BreakGlassView],
    now: DateTime<Utc>,
) -> Result<()> {
    let entries: Vec<_> = items
        .iter()
        .map(|g| {
            svc.entry(actor, Action::ReviewBreakGlass, "break_glass", now)
                .target(&g.id)
                .case(&g.case_id)
                .reason("view")
        })
        .collect();
    if !entries.is_empty() {
        svc.audit.record(entries).await?;
    }
    Ok(())
}

/// The region a supervisor's view of grants is limited to; none for others.
fn grant_region(actor: &Actor) -> Option<String> {
    match actor.role {
        Role::Supervisor => Some(actor.region.clone().unwrap_or_default()),
        _ => None,
    }
}

/// Grants as views: reasons and review notes opened with each case's key, reviews attached.
async fn open_grants(
    svc: &Services,
    rows: Vec<BreakGlassRow>,
    now: DateTime<Utc>,
) -> Result<Vec<BreakGlassView>> {
    let mut keys = std::collections::HashMap::new();
    for r in &rows {
        if !keys.contains_key(&r.case_id) {
            let key = match svc.store.case_by_id(&r.case_id).await? {
                Some(c) => case_key(svc, &c).await?,
                None => None,
            };
            keys.insert(r.case_id.clone(), key);
        }
    }
    let mut reviews = super::break_glass::reviews_of(svc, &rows, &keys).await?;
    let mut items = Vec::with_capacity(rows.len());
    for r in rows {
        let reason = match keys.get(&r.case_id).and_then(Option::as_ref) {
            Some(k) => Some(
                String::from_utf8(
                    crypto::open(
                        k,
                        break_glass_place(&r.id),
                        &crypto::Sealed::from_bytes(r.reason.clone()),
                    )?
                    .to_vec(),
                )
                .map_err(|_| crypto::CryptoError::Malformed)?,
            ),
            None => None,
        };
        items.push(BreakGlassView {
            active: r.expires_at > now,
            reviews: reviews.remove(&r.id).unwrap_or_default(),
            id: r.id,
            case_id: r.case_id,
            user_id: r.user_id,
            reason,
            granted_at: r.granted_at,
            expires_at: r.expires_at,
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields the OpenAPI document requires of a new case ([`ON_CREATE`]) are exactly those
    /// validation reports missing from an empty one.
    #[test]
    fn the_documented_required_fields_are_the_validated_ones() {
        let today = NaiveDate::from_ymd_opt(2026, 1, 1).expect("a date");
        let Err(Error::Validation(fields)) = validate(&CaseInput::default(), today) else {
            panic!("an empty case is refused");
        };
        let mut missing: Vec<&str> = fields
            .iter()
            .filter(|(_, why)| why.starts_with("is required"))
            .map(|(f, _)| f.as_str())
            .collect();
        missing.sort_unstable();
        let prefix = |schema: &str| match schema {
            "DonorInput" => "donor.",
            "DonationInput" => "donation.",
            _ => "",
        };
        let mut documented: Vec<String> = ON_CREATE
            .iter()
            .flat_map(|(schema, _, required, _)| {
                required
                    .iter()
                    .map(move |f| format!("{}{f}", prefix(schema)))
            })
            .collect();
        documented.sort_unstable();
        assert_eq!(missing, documented);
    }
}
