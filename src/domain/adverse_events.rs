//! Adverse events after a stem-cell collection, kept for marrow cases only: what happened and
//! when, a CTCAE-like grade, whether the donation caused it, how it ended and when the registry
//! was told. The description is health data, sealed with the case key and shown only to the
//! case's own staff (DESIGN.md: visit and health notes); the rest is pseudonymous metadata, which
//! is what the registry's report ([`export`]) is made of: a keyed case reference instead of any
//! id, the days after collection instead of dates, and no names, phones or descriptions.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cases::{self, case_key, Authorized};
use super::{from_json, known_patch_fields, merge_patch, new_id, page_limit, paginate, Page};
use super::{types, Services};
use crate::crypto::{self, Place, SecretKey};
use crate::error::{Error, Result, Validator};
use crate::policy::{self, Action, Actor, Resource};
use crate::store::{AdverseEventQuery, AdverseEventRow, CaseRow};

/// What kind of event it was.
pub const CATEGORIES: &[&str] = &[
    "pain",
    "fatigue",
    "bleeding",
    "infection",
    "anaesthesia_reaction",
    "allergic",
    "other",
];
/// Whether the donation caused it.
pub const RELATIONS: &[&str] = &["related", "possibly", "unlikely", "unrelated"];
/// How it ended, or has not yet.
pub const OUTCOMES: &[&str] = &[
    "recovering",
    "resolved",
    "resolved_with_sequelae",
    "ongoing",
];
/// The grades, CTCAE-like: 1 mild, 2 moderate, 3 severe, 4 life-threatening, 5 death.
pub const GRADE_LABELS: &[&str] = &["mild", "moderate", "severe", "life_threatening", "death"];
/// The longest description.
pub const MAX_DESCRIPTION: usize = 4000;
/// How long before the collection an event may be: mobilisation (G-CSF) starts days before
/// a PBSC collection, and its bone pain belongs to the donation.
pub const DAYS_BEFORE_COLLECTION: i64 = 30;
/// The most rows one export holds; a longer range is refused, not cut short.
pub const MAX_EXPORT: usize = 10_000;

/// Fields a new event must have (the OpenAPI document's creating copy, and the validation).
pub const REQUIRED: &[&str] = &[
    "occurred_on",
    "category",
    "grade",
    "relation",
    "outcome",
    "description",
];
pub const ON_CREATE: &[(&str, &str, &[&str], &[&str])] =
    &[("AdverseEventInput", "AdverseEventCreate", REQUIRED, &[])];

fn date_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::date(true)
}
fn category_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(CATEGORIES, true)
}
fn relation_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(RELATIONS, true)
}
fn outcome_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(OUTCOMES, true)
}
fn description_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::nonempty_text(1, MAX_DESCRIPTION)
}
fn grade_schema(nullable: bool) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, SchemaType};
    use utoipa::openapi::Type;
    let kind = if nullable {
        SchemaType::from_iter([Type::Integer, Type::Null])
    } else {
        SchemaType::Type(Type::Integer)
    };
    utoipa::openapi::RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(kind)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
            .minimum(Some(1))
            .maximum(Some(GRADE_LABELS.len()))
            .build(),
    ))
}
fn input_grade() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    grade_schema(true)
}
fn view_grade() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    grade_schema(false)
}

/// An adverse event as recorded or changed. A change (PATCH) is a JSON merge patch of these
/// fields; `reported_on: null` clears the reporting date.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdverseEventInput {
    /// When it happened (YYYY-MM-DD): not in the future, nor more than 30 days before the
    /// collection.
    #[schema(schema_with = date_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurred_on: Option<String>,
    #[schema(schema_with = category_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// 1 mild, 2 moderate, 3 severe, 4 life-threatening, 5 death (CTCAE-like).
    #[schema(schema_with = input_grade)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grade: Option<i64>,
    /// Whether the donation caused it.
    #[schema(schema_with = relation_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
    #[schema(schema_with = outcome_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    /// When it was reported to the registry (YYYY-MM-DD); absent or null if not yet.
    #[schema(schema_with = date_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reported_on: Option<String>,
    /// What happened, in the coordinator's words (health data, sealed).
    #[schema(schema_with = description_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AdverseEventView {
    pub id: String,
    pub case_id: String,
    /// The case's pseudonymous reference, as the registry's report names it.
    pub reference: String,
    pub occurred_on: NaiveDate,
    pub category: String,
    #[schema(schema_with = view_grade)]
    pub grade: i64,
    /// `mild`, `moderate`, `severe`, `life_threatening` or `death`.
    pub grade_label: String,
    pub relation: String,
    pub outcome: String,
    pub reported_on: Option<NaiveDate>,
    /// Absent for readers who may not read health notes, and once the case is erased.
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One line of the registry's report: nothing that names the donor.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExportRow {
    pub reference: String,
    /// `pbsc`, `marrow` or `lymphocytes`; absent once the case is erased.
    pub donation_kind: Option<String>,
    /// Days from the collection to the event (negative during mobilisation); absent once the
    /// case is erased.
    pub days_after_collection: Option<i64>,
    pub category: String,
    #[schema(schema_with = view_grade)]
    pub grade: i64,
    pub relation: String,
    pub outcome: String,
    pub reported_on: Option<NaiveDate>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Export {
    pub items: Vec<ExportRow>,
}

fn from_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::date(true)
}
fn grade_param() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    grade_schema(true)
}

/// A listing across the cases in the caller's scope.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdverseEventFilter {
    /// Occurred on or after (YYYY-MM-DD).
    #[param(schema_with = from_schema)]
    pub from: Option<String>,
    /// Occurred on or before (YYYY-MM-DD).
    #[param(schema_with = from_schema)]
    pub to: Option<String>,
    #[param(schema_with = grade_param)]
    pub grade: Option<i64>,
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// A page of one case's events.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CasePageFilter {
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// The range of a registry export.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportFilter {
    /// Occurred on or after (YYYY-MM-DD).
    #[param(schema_with = from_schema)]
    pub from: Option<String>,
    /// Occurred on or before (YYYY-MM-DD).
    #[param(schema_with = from_schema)]
    pub to: Option<String>,
}

fn description_place(id: &str) -> Place<'_> {
    Place::new("adverse_events", "description", id)
}

/// The case's reference in the registry's report: a keyed hash of its id, stable across
/// exports (so the registry can link one donor's events) and meaningless without our key.
pub fn reference(svc: &Services, case_id: &str) -> String {
    let key = crypto::derive_key(&svc.keys.ring().index, "donorcare registry reference v1");
    let h = crypto::derive_key(&key, case_id);
    let hex: String = h.expose()[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("DC-{hex}")
}

/// The grade's label (`mild` … `death`).
pub fn grade_label(grade: i64) -> &'static str {
    usize::try_from(grade - 1)
        .ok()
        .and_then(|i| GRADE_LABELS.get(i))
        .copied()
        .unwrap_or("")
}

/// The input checked against the case's donation: the event's fields, each bad one named.
struct Valid {
    occurred_on: NaiveDate,
    category: String,
    grade: i64,
    relation: String,
    outcome: String,
    reported_on: Option<NaiveDate>,
    description: String,
}

fn validate(input: &AdverseEventInput, donation: NaiveDate, today: NaiveDate) -> Result<Valid> {
    let mut v = Validator::new();
    let date = |v: &mut Validator, name: &str, value: &Option<String>| -> Option<NaiveDate> {
        let d = value
            .as_deref()
            .and_then(|s| v.check(name, types::parse_date(s.trim())))?;
        if d > today {
            v.add(name, "is in the future");
            return None;
        }
        Some(d)
    };
    let occurred_on = date(&mut v, "occurred_on", &input.occurred_on);
    if let Some(d) = occurred_on {
        if d < donation - chrono::Duration::days(DAYS_BEFORE_COLLECTION) {
            v.add(
                "occurred_on",
                format!("must not be more than {DAYS_BEFORE_COLLECTION} days before the collection ({donation})"),
            );
        }
    }
    let reported_on = date(&mut v, "reported_on", &input.reported_on);
    if let (Some(o), Some(r)) = (occurred_on, reported_on) {
        if r < o {
            v.add("reported_on", "must not be before the event");
        }
    }
    let one_of = |v: &mut Validator, name: &str, value: &Option<String>, all: &[&str]| {
        let x = value.as_deref().map(str::trim)?;
        if all.contains(&x) {
            Some(x.to_string())
        } else {
            v.add(name, format!("must be one of {}", all.join(", ")));
            None
        }
    };
    let category = one_of(&mut v, "category", &input.category, CATEGORIES);
    let relation = one_of(&mut v, "relation", &input.relation, RELATIONS);
    let outcome = one_of(&mut v, "outcome", &input.outcome, OUTCOMES);
    let grade = match input.grade {
        Some(g) if (1..=GRADE_LABELS.len() as i64).contains(&g) => Some(g),
        Some(_) => {
            v.add(
                "grade",
                format!("must be between 1 and {}", GRADE_LABELS.len()),
            );
            None
        }
        None => None,
    };
    let description = input
        .description
        .as_deref()
        .and_then(|d| v.check("description", types::required_text(d, MAX_DESCRIPTION)));
    let given = |name: &str| match name {
        "occurred_on" => input.occurred_on.is_some(),
        "category" => input.category.is_some(),
        "grade" => input.grade.is_some(),
        "relation" => input.relation.is_some(),
        "outcome" => input.outcome.is_some(),
        _ => input.description.is_some(),
    };
    for name in REQUIRED {
        if !given(name) {
            v.add(*name, "is required");
        }
    }
    v.finish()?;
    match (occurred_on, category, grade, relation, outcome, description) {
        (
            Some(occurred_on),
            Some(category),
            Some(grade),
            Some(relation),
            Some(outcome),
            Some(description),
        ) => Ok(Valid {
            occurred_on,
            category,
            grade,
            relation,
            outcome,
            reported_on,
            description,
        }),
        _ => Err(Error::Internal(anyhow::anyhow!(
            "validation let a required field through"
        ))),
    }
}

/// A marrow case's key and donation: 422 for another programme, 409 once erased.
async fn marrow_case(svc: &Services, case: &CaseRow) -> Result<(SecretKey, cases::Donation)> {
    if case.program != "marrow" {
        return Err(Error::field(
            "program",
            format!(
                "adverse events are kept for marrow (stem-cell) donors only; this case is {}",
                case.program
            ),
        ));
    }
    let key = case_key(svc, case).await?.ok_or_else(|| Error::Conflict {
        field: None,
        message: "this case has been erased".into(),
    })?;
    let donation = cases::open_row(&key, case)?.donation;
    Ok((key, donation))
}

fn open_description(key: &SecretKey, r: &AdverseEventRow) -> Result<Option<String>> {
    let Some(sealed) = &r.description else {
        return Ok(None);
    };
    let plain = crypto::open(
        key,
        description_place(&r.id),
        &crypto::Sealed::from_bytes(sealed.clone()),
    )?;
    Ok(Some(
        String::from_utf8(plain.to_vec()).map_err(|_| crypto::CryptoError::Malformed)?,
    ))
}

fn view(svc: &Services, r: &AdverseEventRow, key: Option<&SecretKey>) -> Result<AdverseEventView> {
    Ok(AdverseEventView {
        id: r.id.clone(),
        case_id: r.case_id.clone(),
        reference: reference(svc, &r.case_id),
        occurred_on: r.occurred_on,
        category: r.category.clone(),
        grade: r.grade,
        grade_label: grade_label(r.grade).into(),
        relation: r.relation.clone(),
        outcome: r.outcome.clone(),
        reported_on: r.reported_on,
        description: key.map(|k| open_description(k, r)).transpose()?.flatten(),
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

fn today(svc: &Services, now: DateTime<Utc>) -> NaiveDate {
    crate::schedule::calendar::local_date(svc.schedule.default_tz, now)
}

/// Record an adverse event on a marrow case (its coordinator, the region's supervisor).
pub async fn create(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    input: AdverseEventInput,
    now: DateTime<Utc>,
) -> Result<AdverseEventView> {
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let Authorized {
        row: case,
        break_glass,
        ..
    } = cases::load_authorized(svc, actor, case_id, Action::RecordAdverseEvent, now).await?;
    let (key, donation) = marrow_case(svc, &case).await?;
    let ok = validate(&input, donation.date, today(svc, now))?;
    let id = new_id();
    let row = AdverseEventRow {
        description: Some(
            crypto::seal(&key, description_place(&id), ok.description.as_bytes()).into_bytes(),
        ),
        id,
        case_id: case_id.into(),
        occurred_on: ok.occurred_on,
        category: ok.category,
        grade: ok.grade,
        relation: ok.relation,
        outcome: ok.outcome,
        reported_on: ok.reported_on,
        created_by: actor.user_id.clone(),
        created_at: now,
        updated_by: None,
        updated_at: now,
        region: case.region.clone(),
    };
    let audit = svc
        .entry(actor, Action::RecordAdverseEvent, "adverse_event", now)
        .target(&row.id)
        .case(case_id)
        .break_glass(break_glass);
    svc.store.insert_adverse_event(&row, &[audit]).await?;
    view(svc, &row, Some(&key))
}

/// An event and its case, for `action` by `actor`; 404 when absent or out of scope.
async fn load(
    svc: &Services,
    actor: &Actor,
    id: &str,
    action: Action,
    now: DateTime<Utc>,
) -> Result<(AdverseEventRow, Authorized)> {
    let Some(row) = svc.store.adverse_event_by_id(id).await? else {
        let entry = svc.entry(actor, action, "adverse_event", now);
        let entry = if super::is_id(id) {
            entry.target(id)
        } else {
            entry
        };
        svc.audit.record(vec![entry.denied("not_found")]).await?;
        return Err(Error::NotFound);
    };
    let case = cases::load_authorized(svc, actor, &row.case_id, action, now).await?;
    Ok((row, case))
}

/// The input an event holds now, as a merge patch applies to it.
fn current_input(r: &AdverseEventRow, description: Option<String>) -> AdverseEventInput {
    AdverseEventInput {
        occurred_on: Some(r.occurred_on.to_string()),
        category: Some(r.category.clone()),
        grade: Some(r.grade),
        relation: Some(r.relation.clone()),
        outcome: Some(r.outcome.clone()),
        reported_on: r.reported_on.map(|d| d.to_string()),
        description,
    }
}

/// Change an event (outcome, the reporting date, …) with a JSON merge patch.
pub async fn update(
    svc: &Services,
    actor: &Actor,
    id: &str,
    patch: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<AdverseEventView> {
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let (
        mut row,
        Authorized {
            row: case,
            break_glass,
            ..
        },
    ) = load(svc, actor, id, Action::UpdateAdverseEvent, now).await?;
    let (key, donation) = marrow_case(svc, &case).await?;
    if !patch.is_object() {
        return Err(Error::field("body", "must be a JSON object"));
    }
    known_patch_fields::<AdverseEventInput>(&patch)?;
    let mut merged = serde_json::to_value(current_input(&row, open_description(&key, &row)?))
        .map_err(|e| anyhow::anyhow!("an event as JSON: {e}"))?;
    merge_patch(&mut merged, &patch);
    let input: AdverseEventInput = from_json(merged)?;
    let ok = validate(&input, donation.date, today(svc, now))?;
    row.occurred_on = ok.occurred_on;
    row.category = ok.category;
    row.grade = ok.grade;
    row.relation = ok.relation;
    row.outcome = ok.outcome;
    row.reported_on = ok.reported_on;
    row.description = Some(
        crypto::seal(&key, description_place(&row.id), ok.description.as_bytes()).into_bytes(),
    );
    row.updated_by = Some(actor.user_id.clone());
    row.updated_at = now;
    let audit = svc
        .entry(actor, Action::UpdateAdverseEvent, "adverse_event", now)
        .target(&row.id)
        .case(&row.case_id)
        .break_glass(break_glass);
    svc.store.update_adverse_event(&row, &[audit]).await?;
    view(svc, &row, Some(&key))
}

/// The key that opens descriptions for `actor`: only the case's own staff read health notes.
async fn reader_key(svc: &Services, actor: &Actor, case: &CaseRow) -> Result<Option<SecretKey>> {
    if policy::reads_health_notes(actor.role) {
        case_key(svc, case).await
    } else {
        Ok(None)
    }
}

/// One event (the case's staff, with its description; ethics reviewers without).
pub async fn get(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<AdverseEventView> {
    let (
        row,
        Authorized {
            row: case,
            break_glass,
            ..
        },
    ) = load(svc, actor, id, Action::ReadAdverseEvents, now).await?;
    let v = view(svc, &row, reader_key(svc, actor, &case).await?.as_ref())?;
    svc.audit
        .record(vec![svc
            .entry(actor, Action::ReadAdverseEvents, "adverse_event", now)
            .target(id)
            .case(&row.case_id)
            .break_glass(break_glass)])
        .await?;
    Ok(v)
}

fn cursor(c: &Option<String>, v: &mut Validator) -> Option<String> {
    let c = c.as_deref()?;
    if super::is_id(c) {
        Some(c.to_string())
    } else {
        v.add("cursor", "is not a cursor of this listing");
        None
    }
}

/// A case's events, newest recorded first.
pub async fn list_for_case(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    f: CasePageFilter,
    now: DateTime<Utc>,
) -> Result<Page<AdverseEventView>> {
    let Authorized {
        row: case,
        break_glass,
        ..
    } = cases::load_authorized(svc, actor, case_id, Action::ReadAdverseEvents, now).await?;
    let limit = page_limit(f.limit)?;
    let mut v = Validator::new();
    let before = cursor(&f.cursor, &mut v);
    v.finish()?;
    let rows = svc
        .store
        .list_adverse_events(&AdverseEventQuery {
            scope: crate::store::CaseScope::All,
            case_id: Some(case_id.into()),
            from: None,
            to: None,
            grade: None,
            before,
            limit: limit + 1,
        })
        .await?;
    let key = reader_key(svc, actor, &case).await?;
    let page = paginate(
        rows,
        limit,
        |r| r.id.clone(),
        |r| view(svc, &r, key.as_ref()),
    )?;
    svc.audit
        .record(vec![svc
            .entry(actor, Action::ReadAdverseEvents, "adverse_event", now)
            .case(case_id)
            .break_glass(break_glass)])
        .await?;
    Ok(page)
}

/// The checked date range of a listing or export.
fn range(
    from: &Option<String>,
    to: &Option<String>,
    v: &mut Validator,
) -> (Option<NaiveDate>, Option<NaiveDate>) {
    let date = |v: &mut Validator, name: &str, value: &Option<String>| {
        value
            .as_deref()
            .and_then(|s| v.check(name, types::parse_date(s.trim())))
    };
    let from = date(v, "from", from);
    let to = date(v, "to", to);
    if let (Some(a), Some(b)) = (from, to) {
        if b < a {
            v.add("to", "must not be before from");
        }
    }
    (from, to)
}

/// Events across the cases in the caller's scope, newest recorded first; no descriptions.
pub async fn list(
    svc: &Services,
    actor: &Actor,
    f: AdverseEventFilter,
    now: DateTime<Utc>,
) -> Result<Page<AdverseEventView>> {
    svc.authorize(
        actor,
        Action::ListAdverseEvents,
        Resource::System,
        svc.entry(actor, Action::ListAdverseEvents, "adverse_event", now),
    )
    .await?;
    let scope = policy::adverse_event_scope(actor)?;
    let limit = page_limit(f.limit)?;
    let mut v = Validator::new();
    let (from, to) = range(&f.from, &f.to, &mut v);
    if let Some(g) = f.grade {
        if !(1..=GRADE_LABELS.len() as i64).contains(&g) {
            v.add(
                "grade",
                format!("must be between 1 and {}", GRADE_LABELS.len()),
            );
        }
    }
    let before = cursor(&f.cursor, &mut v);
    v.finish()?;
    let rows = svc
        .store
        .list_adverse_events(&AdverseEventQuery {
            scope,
            case_id: None,
            from,
            to,
            grade: f.grade,
            before,
            limit: limit + 1,
        })
        .await?;
    let page = paginate(rows, limit, |r| r.id.clone(), |r| view(svc, &r, None))?;
    svc.audit
        .record(vec![svc.entry(
            actor,
            Action::ListAdverseEvents,
            "adverse_event",
            now,
        )])
        .await?;
    Ok(page)
}

/// The registry's report over a date range: one pseudonymous row per event, oldest first
/// (supervisors for their region, ethics reviewers for all). `format` (`csv` or `json`) goes
/// into the audit entry with the number of rows.
pub async fn export(
    svc: &Services,
    actor: &Actor,
    f: ExportFilter,
    format: &str,
    now: DateTime<Utc>,
) -> Result<Vec<ExportRow>> {
    svc.authorize(
        actor,
        Action::ExportAdverseEvents,
        Resource::System,
        svc.entry(actor, Action::ExportAdverseEvents, "adverse_event", now),
    )
    .await?;
    let scope = policy::adverse_event_scope(actor)?;
    let mut v = Validator::new();
    let (from, to) = range(&f.from, &f.to, &mut v);
    v.finish()?;
    let mut rows = svc
        .store
        .list_adverse_events(&AdverseEventQuery {
            scope,
            case_id: None,
            from,
            to,
            grade: None,
            before: None,
            limit: MAX_EXPORT as i64 + 1,
        })
        .await?;
    if rows.len() > MAX_EXPORT {
        return Err(Error::field(
            "from",
            format!("more than {MAX_EXPORT} events: choose a shorter range"),
        ));
    }
    rows.sort_by(|a, b| (a.occurred_on, &a.id).cmp(&(b.occurred_on, &b.id)));
    // Each case's donation is opened once, for its kind and date.
    let mut donations: std::collections::HashMap<String, Option<cases::Donation>> =
        Default::default();
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        if !donations.contains_key(&r.case_id) {
            let donation = match svc.store.case_by_id(&r.case_id).await? {
                Some(case) => match case_key(svc, &case).await? {
                    Some(k) => Some(cases::open_row(&k, &case)?.donation),
                    None => None,
                },
                None => None,
            };
            donations.insert(r.case_id.clone(), donation);
        }
        let donation = donations.get(&r.case_id).and_then(Option::as_ref);
        out.push(ExportRow {
            reference: reference(svc, &r.case_id),
            donation_kind: donation.map(|d| d.kind.clone()),
            days_after_collection: donation.map(|d| (r.occurred_on - d.date).num_days()),
            category: r.category,
            grade: r.grade,
            relation: r.relation,
            outcome: r.outcome,
            reported_on: r.reported_on,
        });
    }
    svc.audit
        .record(vec![svc
            .entry(actor, Action::ExportAdverseEvents, "adverse_event", now)
            .reason(&format!("{format}:{}", out.len()))])
        .await?;
    Ok(out)
}

/// The registry's report as CSV (every value is a token, a number or a date: nothing to quote).
pub fn csv(rows: &[ExportRow]) -> String {
    let mut out = String::from(
        "reference,donation_kind,days_after_collection,category,grade,relation,outcome,reported_on\r\n",
    );
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\r\n",
            r.reference,
            r.donation_kind.as_deref().unwrap_or(""),
            r.days_after_collection
                .map(|d| d.to_string())
                .unwrap_or_default(),
            r.category,
            r.grade,
            r.relation,
            r.outcome,
            r.reported_on.map(|d| d.to_string()).unwrap_or_default(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn input() -> AdverseEventInput {
        AdverseEventInput {
            occurred_on: Some("2026-03-16".into()),
            category: Some("pain".into()),
            grade: Some(2),
            relation: Some("related".into()),
            outcome: Some("recovering".into()),
            reported_on: None,
            description: Some("Back pain at the harvest site".into()),
        }
    }

    #[test]
    fn a_good_event_passes_and_each_bad_field_is_named() {
        let (donation, today) = (d("2026-03-14"), d("2026-04-01"));
        assert!(validate(&input(), donation, today).is_ok());
        let bad = AdverseEventInput {
            occurred_on: Some("2026-05-01".into()),
            category: Some("headache".into()),
            grade: Some(6),
            relation: Some("maybe".into()),
            outcome: None,
            reported_on: Some("tomorrow".into()),
            description: Some("  ".into()),
        };
        let Err(Error::Validation(f)) = validate(&bad, donation, today) else {
            panic!("accepted");
        };
        let mut names: Vec<&str> = f.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "category",
                "description",
                "grade",
                "occurred_on",
                "outcome",
                "relation",
                "reported_on"
            ]
        );
    }

    #[test]
    fn mobilisation_counts_but_not_long_before_and_reporting_follows_the_event() {
        let (donation, today) = (d("2026-03-14"), d("2026-04-01"));
        let mut i = input();
        i.occurred_on = Some("2026-03-10".into());
        assert!(validate(&i, donation, today).is_ok());
        i.occurred_on = Some("2026-01-01".into());
        assert!(validate(&i, donation, today).is_err());
        let mut i = input();
        i.reported_on = Some("2026-03-15".into());
        let Err(Error::Validation(f)) = validate(&i, donation, today) else {
            panic!("accepted");
        };
        assert!(f.contains_key("reported_on"));
    }

    #[test]
    fn grades_have_ctcae_labels() {
        assert_eq!(grade_label(1), "mild");
        assert_eq!(grade_label(4), "life_threatening");
        assert_eq!(grade_label(5), "death");
        assert_eq!(grade_label(0), "");
    }

    #[test]
    fn the_csv_names_no_one() {
        let rows = [ExportRow {
            reference: "DC-0123456789ab".into(),
            donation_kind: Some("pbsc".into()),
            days_after_collection: Some(-2),
            category: "pain".into(),
            grade: 2,
            relation: "related".into(),
            outcome: "resolved".into(),
            reported_on: Some(d("2026-03-20")),
        }];
        assert_eq!(
            csv(&rows),
            "reference,donation_kind,days_after_collection,category,grade,relation,outcome,reported_on\r\n\
             DC-0123456789ab,pbsc,-2,pain,2,related,resolved,2026-03-20\r\n"
        );
    }
}
