//! Tasks: visits, calls and outreach. Volunteers see only the visits assigned to them, with the
//! contact they are visiting; coordinators the tasks of their cases; supervisors their region's.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cases::{self, case_key, Authorized};
use super::schedule::{self, Recipient};
use super::types::{self, Role};
use super::{new_id, page_limit, Page, Services};
use crate::crypto::{self, Place, SecretKey};
use crate::error::{Error, Result, Validator};
use crate::policy::{Action, Actor, Resource};
use crate::schedule::{calendar, plan};
use crate::store::{CaseRow, ContactRow, NewMessage, OutreachRow, TaskQuery, TaskRow, TaskScope};

pub const MAX_OUTCOME: usize = 200;
pub const MAX_NOTE: usize = 10_000;
/// The longest reason for moving or cancelling a task.
pub const MAX_CHANGE_REASON: usize = 500;
/// The longest template name a visit or call may carry.
pub const MAX_TEMPLATE: usize = 64;
/// What a task may be.
pub const KINDS: &[&str] = &["visit", "call", "outreach"];

type SchemaRef = utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>;

fn kind_schema() -> SchemaRef {
    super::schema::one_of(KINDS, false)
}

fn due_schema() -> SchemaRef {
    super::schema::instant_or_date(false)
}

fn template_schema() -> SchemaRef {
    super::schema::nonempty_text(1, MAX_TEMPLATE)
}

fn due_before_schema() -> SchemaRef {
    super::schema::instant_or_date(true)
}

fn status_schema() -> SchemaRef {
    super::schema::one_of(STATUSES, true)
}

/// What a task listing can be filtered by.
pub const STATUSES: &[&str] = &["scheduled", "overdue", "done", "cancelled"];

fn channel_schema() -> SchemaRef {
    super::schema::one_of(&plan::CHANNELS, true)
}

fn outcome_schema() -> SchemaRef {
    super::schema::required_text(1, MAX_OUTCOME)
}

fn note_schema() -> SchemaRef {
    super::schema::text(MAX_NOTE)
}

fn reason_schema() -> SchemaRef {
    super::schema::required_text(1, MAX_CHANGE_REASON)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaskInput {
    /// `visit`, `call` or `outreach`.
    #[schema(schema_with = kind_schema, required = true)]
    pub kind: Option<String>,
    /// RFC 3339 time, or a date (YYYY-MM-DD: for an outreach the start of the recipient's
    /// waking hours, otherwise 09:00 UTC).
    #[schema(schema_with = due_schema, required = true)]
    pub due_at: Option<String>,
    /// A volunteer or coordinator who carries it out.
    pub assignee_id: Option<String>,
    /// The contact it concerns (one of the case's contacts).
    pub contact_id: Option<String>,
    /// Outreach template name (required for an outreach).
    #[schema(schema_with = template_schema)]
    pub template: Option<String>,
    /// An outreach's channel: `email`, `sms`, `letter`, `portal`, `wechat` or `file`; default: each
    /// recipient's preferred channel.
    #[schema(schema_with = channel_schema)]
    pub channel: Option<String>,
}

/// How long a hand-planned message may wait (for waking hours, a pause or the family's cap)
/// after it is due, or after it was planned if it was planned late, before it is skipped.
pub const HAND_GRACE_DAYS: i64 = 7;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteInput {
    #[schema(schema_with = outcome_schema, required = true)]
    pub outcome: Option<String>,
    #[schema(schema_with = note_schema)]
    pub note: Option<String>,
}

/// The sealed part of a task: the outcome, and why it was moved or cancelled.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Details {
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    changes: Vec<TaskChange>,
}

/// A reschedule or cancellation, with the reason given.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TaskChange {
    pub at: DateTime<Utc>,
    pub by: String,
    /// `reschedule` or `cancel`.
    pub action: String,
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
}

/// The contact a task concerns, as the person doing it needs it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskContact {
    pub id: String,
    pub full_name: String,
    pub relationship: String,
    pub phone: Option<String>,
    pub address: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TaskView {
    pub id: String,
    pub case_id: String,
    pub kind: String,
    pub due_at: DateTime<Utc>,
    /// `scheduled`, `done` or `cancelled`.
    pub status: String,
    /// Scheduled and past due.
    pub overdue: bool,
    pub assignee_id: Option<String>,
    pub contact_id: Option<String>,
    pub template: Option<String>,
    /// Only on a single task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contact: Option<TaskContact>,
    pub outcome: Option<String>,
    pub note: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Made by a care-plan rule (absent for a task made by hand).
    pub rule_id: Option<String>,
    pub occurrence: Option<String>,
    /// After this the occurrence is skipped rather than done late.
    pub grace_until: Option<DateTime<Utc>>,
    /// Reschedules and cancellations with their reasons (on a single task).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<TaskChange>,
}

fn place(id: &str) -> Place<'_> {
    Place::new("tasks", "details", id)
}

fn open_details(key: &crate::crypto::SecretKey, row: &TaskRow) -> Result<Details> {
    match &row.details {
        None => Ok(Details::default()),
        Some(d) => Ok(crypto::open_json(
            key,
            place(&row.id),
            &crypto::Sealed::from_bytes(d.clone()),
        )?),
    }
}

/// A task's case and its key, to change the task's sealed details; a conflict once the case is
/// erased.
async fn case_and_key(svc: &Services, row: &TaskRow) -> Result<(CaseRow, SecretKey)> {
    let case = svc
        .store
        .case_by_id(&row.case_id)
        .await?
        .ok_or(Error::NotFound)?;
    let key = case_key(svc, &case).await?.ok_or_else(|| Error::Conflict {
        field: None,
        message: "this case has been erased".into(),
    })?;
    Ok((case, key))
}

/// Record a change in the task's sealed details.
async fn sealed_change(svc: &Services, row: &TaskRow, change: TaskChange) -> Result<Vec<u8>> {
    let (_, key) = case_and_key(svc, row).await?;
    let mut d = open_details(&key, row)?;
    d.changes.push(change);
    Ok(crypto::seal_json(&key, place(&row.id), &d).into_bytes())
}

/// The answer when a task has already been done or cancelled.
fn not_scheduled(row: &TaskRow) -> Error {
    Error::Conflict {
        field: Some("status".into()),
        message: format!("the task is {}, not scheduled", row.status),
    }
}

fn parse_due(s: &str) -> std::result::Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Ok(t.with_timezone(&Utc));
    }
    types::parse_date(s)
        .map(|d| d.and_hms_opt(9, 0, 0).unwrap_or_default().and_utc())
        .map_err(|_| "must be an RFC 3339 time or a date (YYYY-MM-DD)".into())
}

fn view(row: &TaskRow, details: Option<Details>, now: DateTime<Utc>) -> TaskView {
    let Details {
        outcome,
        note,
        changes,
    } = details.unwrap_or_default();
    TaskView {
        id: row.id.clone(),
        case_id: row.case_id.clone(),
        kind: row.kind.clone(),
        due_at: row.due_at,
        overdue: row.status == "scheduled" && row.due_at < now,
        status: row.status.clone(),
        assignee_id: row.assignee_id.clone(),
        contact_id: row.contact_id.clone(),
        template: row.template.clone(),
        contact: None,
        outcome,
        note,
        completed_at: row.completed_at,
        rule_id: row.rule_id.clone(),
        occurrence: row.occurrence.clone(),
        grace_until: row.grace_until,
        changes,
    }
}

/// Who a hand-planned outreach goes to: the contact it names, or (none named) whoever a plan's
/// outreach would reach (the living marrow donor; each adult, living family contact).
fn hand_recipients(
    svc: &Services,
    key: &SecretKey,
    case: &CaseRow,
    contacts: &[ContactRow],
    contact_id: Option<&str>,
    v: &mut Validator,
) -> Result<Vec<Recipient>> {
    let donor = cases::open_row(key, case)?.donor;
    let chosen: Vec<&ContactRow> = match contact_id {
        Some(id) => contacts.iter().filter(|c| c.id == id).collect(),
        None => contacts.iter().collect(),
    };
    let Some(id) = contact_id else {
        let all = schedule::recipients(svc, key, case, &donor, &chosen)?;
        if all.is_empty() {
            v.add(
                "contact_id",
                "nobody in this case can receive outreach: add an adult family contact first",
            );
        }
        return Ok(all);
    };
    let Some(c) = chosen.first() else {
        return Ok(Vec::new());
    };
    let view = super::contacts::open_view(key, c)?;
    if view.minor || view.deceased {
        v.add(
            "contact_id",
            "this contact cannot receive outreach (a minor, or deceased)",
        );
        return Ok(Vec::new());
    }
    Ok(vec![Recipient {
        id: id.to_string(),
        tz: c.timezone.parse().unwrap_or(svc.schedule.default_tz),
    }])
}

pub async fn create(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    input: TaskInput,
    now: DateTime<Utc>,
) -> Result<TaskView> {
    let Authorized {
        break_glass,
        row: case,
        ..
    } = cases::load_authorized(svc, actor, case_id, Action::CreateTask, now).await?;
    let mut v = Validator::new();
    let kind = match input.kind.as_deref() {
        None => {
            v.add("kind", "is required");
            None
        }
        Some(k) if KINDS.contains(&k) => Some(k.to_string()),
        Some(_) => {
            v.add("kind", format!("must be one of {}", KINDS.join(", ")));
            None
        }
    };
    let outreach = kind.as_deref() == Some("outreach");
    // A date alone is the start of the recipient's waking hours for an outreach, 09:00 UTC
    // otherwise.
    let due_day = input
        .due_at
        .as_deref()
        .filter(|d| DateTime::parse_from_rfc3339(d.trim()).is_err())
        .and_then(|d| types::parse_date(d).ok());
    let due_at = match input.due_at.as_deref() {
        None => {
            v.add("due_at", "is required");
            None
        }
        Some(d) => v.check("due_at", parse_due(d)),
    };
    if let Some(a) = &input.assignee_id {
        let ok = svc.store.user_by_id(a).await?.is_some_and(|u| {
            !u.disabled
                && (u.role == Role::Volunteer.as_str() || u.role == Role::Coordinator.as_str())
        });
        if !ok {
            v.add("assignee_id", "is not an active volunteer or coordinator");
        }
    }
    let contacts = svc.store.contacts_for_case(case_id).await?;
    let contact_ok = match &input.contact_id {
        Some(c) if !contacts.iter().any(|k| &k.id == c) => {
            v.add("contact_id", "is not a contact of this case");
            false
        }
        _ => true,
    };
    match (&input.template, outreach) {
        (None, true) => v.add("template", "is required for an outreach"),
        (Some(t), true) if !plan::TEMPLATES.contains(&t.as_str()) => v.add(
            "template",
            format!("must be one of {}", plan::TEMPLATES.join(", ")),
        ),
        (Some(t), false) => {
            v.check("template", types::required_text(t, MAX_TEMPLATE));
        }
        _ => {}
    }
    match (&input.channel, outreach) {
        (Some(_), false) => v.add("channel", "only an outreach has a channel"),
        (Some(c), true) if !plan::CHANNELS.contains(&c.as_str()) => v.add(
            "channel",
            format!("must be one of {}", plan::CHANNELS.join(", ")),
        ),
        _ => {}
    }
    let key = case_key(svc, &case).await?.ok_or_else(|| Error::Conflict {
        field: None,
        message: "this case has been erased".into(),
    })?;
    let recipients = if outreach && contact_ok {
        hand_recipients(
            svc,
            &key,
            &case,
            &contacts,
            input.contact_id.as_deref(),
            &mut v,
        )?
    } else {
        Vec::new()
    };
    v.finish()?;
    let (Some(kind), Some(mut due_at)) = (kind, due_at) else {
        return Err(Error::Internal(anyhow::anyhow!(
            "validation let a required field through"
        )));
    };
    let given = due_at;
    let message_due = |tz: chrono_tz::Tz| match due_day {
        Some(day) => calendar::local_instant(tz, day, svc.schedule.waking_start()),
        None => given,
    };
    if let Some(first) = recipients.first() {
        due_at = message_due(first.tz);
    }
    let grace = |due: DateTime<Utc>| due.max(now) + chrono::Duration::days(HAND_GRACE_DAYS);
    let id = new_id();
    let messages: Vec<OutreachRow> = recipients
        .iter()
        .map(|r| {
            let due = message_due(r.tz);
            OutreachRow::scheduled(
                NewMessage {
                    id: new_id(),
                    task_id: &id,
                    case_id,
                    recipient: &r.id,
                    channel: input.channel.clone(),
                    template: input.template.clone().unwrap_or_default(),
                    due_at: due,
                    grace_until: grace(due),
                },
                now,
            )
        })
        .collect();
    let row = TaskRow {
        id,
        case_id: case_id.to_string(),
        kind,
        due_at,
        assignee_id: input.assignee_id,
        contact_id: input.contact_id,
        template: input.template,
        status: "scheduled".into(),
        details: None,
        created_by: actor.user_id.clone(),
        created_at: now,
        updated_at: now,
        completed_at: None,
        completed_by: None,
        rule_id: None,
        occurrence: None,
        grace_until: outreach.then(|| grace(due_at)),
        cancel_reason: None,
        region: case.region.clone(),
    };
    let audit = svc
        .entry(actor, Action::CreateTask, "task", now)
        .target(&row.id)
        .case(case_id)
        .break_glass(break_glass);
    svc.store.insert_task(&row, &messages, &[audit]).await?;
    Ok(view(&row, None, now))
}

/// Load a task for `action`, deciding access; 404 when absent or out of scope.
async fn load(
    svc: &Services,
    actor: &Actor,
    id: &str,
    action: Action,
    now: DateTime<Utc>,
) -> Result<TaskRow> {
    let entry = svc.entry(actor, action, "task", now);
    let Some(row) = svc.store.task_by_id(id).await? else {
        let entry = if super::is_id(id) {
            entry.target(id)
        } else {
            entry
        };
        svc.audit.record(vec![entry.denied("not_found")]).await?;
        return Err(Error::NotFound);
    };
    let case_access = actor.role == Role::Coordinator
        && (svc.store.is_assigned(&row.case_id, &actor.user_id).await?
            || svc
                .store
                .has_break_glass(&row.case_id, &actor.user_id, now)
                .await?);
    svc.authorize(
        actor,
        action,
        Resource::Task {
            region: &row.region,
            case_access,
            own: row.assignee_id.as_deref() == Some(actor.user_id.as_str()),
        },
        entry.target(id).case(&row.case_id),
    )
    .await?;
    Ok(row)
}

/// One task with its contact and sealed outcome; the view is audited.
pub async fn get(svc: &Services, actor: &Actor, id: &str, now: DateTime<Utc>) -> Result<TaskView> {
    let row = load(svc, actor, id, Action::ReadTask, now).await?;
    let case = svc
        .store
        .case_by_id(&row.case_id)
        .await?
        .ok_or(Error::NotFound)?;
    let key = case_key(svc, &case).await?;
    let details = match &key {
        Some(k) => Some(open_details(k, &row)?),
        None => None,
    };
    let mut v = view(&row, details, now);
    if let (Some(k), Some(cid)) = (&key, &row.contact_id) {
        if let Some(c) = super::contacts::views_for_case(svc, k, &row.case_id)
            .await?
            .into_iter()
            .find(|c| &c.id == cid)
        {
            v.contact = Some(TaskContact {
                id: c.id,
                full_name: c.full_name,
                relationship: c.relationship.as_str().to_string(),
                phone: c.phone,
                address: c.address,
            });
        }
    }
    svc.audit
        .record(vec![svc
            .entry(actor, Action::ReadTask, "task", now)
            .target(id)
            .case(&row.case_id)])
        .await?;
    Ok(v)
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct TaskFilter {
    /// `scheduled`, `overdue` (scheduled and past due), `done` or `cancelled`.
    #[param(schema_with = status_schema)]
    pub status: Option<String>,
    /// Only tasks due before this date or time.
    #[param(schema_with = due_before_schema)]
    pub due_before: Option<String>,
    pub case_id: Option<String>,
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Tasks in the caller's scope, in due order (without contact details or outcomes).
pub async fn list(
    svc: &Services,
    actor: &Actor,
    f: TaskFilter,
    now: DateTime<Utc>,
) -> Result<Page<TaskView>> {
    svc.authorize(
        actor,
        Action::ListTasks,
        Resource::System,
        svc.entry(actor, Action::ListTasks, "task", now),
    )
    .await?;
    let scope = match actor.role {
        Role::Volunteer => TaskScope::AssignedTo(actor.user_id.clone()),
        Role::Coordinator => TaskScope::CasesOf(actor.user_id.clone()),
        _ => TaskScope::Region(actor.region.clone().unwrap_or_default()),
    };
    let mut v = Validator::new();
    if let Some(s) = &f.status {
        if !STATUSES.contains(&s.as_str()) {
            v.add("status", format!("must be one of {}", STATUSES.join(", ")));
        }
    }
    let mut due_before = f
        .due_before
        .as_deref()
        .and_then(|d| v.check("due_before", parse_due(d)));
    // `overdue` is scheduled and past due.
    let status = match f.status.as_deref() {
        Some("overdue") => {
            due_before = Some(due_before.map_or(now, |d| d.min(now)));
            Some("scheduled".to_string())
        }
        _ => f.status.clone(),
    };
    let after = super::time_cursor(f.cursor.as_deref(), &mut v);
    let limit = page_limit(f.limit)?;
    v.finish()?;
    let rows = svc
        .store
        .list_tasks(&TaskQuery {
            scope,
            status,
            due_before,
            case_id: f.case_id,
            after,
            limit: limit + 1,
        })
        .await?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<TaskRow> = rows.into_iter().take(limit as usize).collect();
    let next_cursor = if more {
        rows.last()
            .map(|r| format!("{}|{}", r.due_at.to_rfc3339(), r.id))
    } else {
        None
    };
    Ok(Page {
        items: rows.iter().map(|r| view(r, None, now)).collect(),
        next_cursor,
    })
}

/// Record the outcome of a visit or call.
/// The messages a visit completed `now` makes pointless: those of the case's outreach rules with
/// `skip_after_visit_days`, due within that many days.
async fn cancelled_by_visit(
    svc: &Services,
    case: &CaseRow,
    now: DateTime<Utc>,
) -> Result<Vec<crate::store::CancelOutreach>> {
    Ok(super::schedule::rules_of(svc, &case.program)
        .await?
        .into_iter()
        .filter_map(|r| {
            let days = r.skip_after_visit_days?;
            Some(crate::store::CancelOutreach {
                case_id: case.id.clone(),
                recipient: None,
                channels: None,
                rule: Some((r.id, now + chrono::Duration::days(i64::from(days)))),
                reason: "visit_done".into(),
            })
        })
        .collect())
}

pub async fn complete(
    svc: &Services,
    actor: &Actor,
    id: &str,
    input: CompleteInput,
    now: DateTime<Utc>,
) -> Result<TaskView> {
    let row = load(svc, actor, id, Action::CompleteTask, now).await?;
    let mut v = Validator::new();
    let outcome = match &input.outcome {
        None => {
            v.add("outcome", "is required");
            None
        }
        Some(o) => v.check("outcome", types::required_text(o, MAX_OUTCOME)),
    };
    let note = input
        .note
        .as_deref()
        .and_then(|n| v.check("note", types::text(n, MAX_NOTE)))
        .filter(|n| !n.is_empty());
    v.finish()?;
    let outcome = outcome.unwrap_or_default();
    let (case, key) = case_and_key(svc, &row).await?;
    let mut details = open_details(&key, &row)?;
    details.outcome = Some(outcome);
    details.note = note;
    let sealed = crypto::seal_json(&key, place(&row.id), &details);
    let audit = svc
        .entry(actor, Action::CompleteTask, "task", now)
        .target(id)
        .case(&row.case_id);
    let cancel = if row.kind == "visit" {
        cancelled_by_visit(svc, &case, now).await?
    } else {
        Vec::new()
    };
    if !svc
        .store
        .complete_task(
            id,
            sealed.as_bytes(),
            &actor.user_id,
            now,
            &cancel,
            &[audit],
        )
        .await?
    {
        return Err(not_scheduled(&row));
    }
    let mut done = row.clone();
    done.status = "done".into();
    done.completed_at = Some(now);
    Ok(view(&done, Some(details), now))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RescheduleInput {
    /// RFC 3339 time, or a date (YYYY-MM-DD, taken as 09:00 UTC).
    #[schema(schema_with = due_schema, required = true)]
    pub due_at: Option<String>,
    #[schema(schema_with = reason_schema, required = true)]
    pub reason: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelInput {
    #[schema(schema_with = reason_schema, required = true)]
    pub reason: Option<String>,
}

fn reason(v: &mut Validator, r: Option<&str>) -> Option<String> {
    match r {
        None => {
            v.add("reason", "is required");
            None
        }
        Some(r) => v.check("reason", types::required_text(r, MAX_CHANGE_REASON)),
    }
}

/// Move a scheduled task (and its pending messages) to another time, saying why. The reason
/// goes to the audit log.
pub async fn reschedule(
    svc: &Services,
    actor: &Actor,
    id: &str,
    input: RescheduleInput,
    now: DateTime<Utc>,
) -> Result<TaskView> {
    let row = load(svc, actor, id, Action::ChangeTask, now).await?;
    let mut v = Validator::new();
    let due_at = match input.due_at.as_deref() {
        None => {
            v.add("due_at", "is required");
            None
        }
        Some(d) => v.check("due_at", parse_due(d)),
    };
    let why = reason(&mut v, input.reason.as_deref());
    v.finish()?;
    let (Some(due_at), Some(why)) = (due_at, why) else {
        return Err(Error::Internal(anyhow::anyhow!(
            "validation let a required field through"
        )));
    };
    let sealed = sealed_change(
        svc,
        &row,
        TaskChange {
            at: now,
            by: actor.user_id.clone(),
            action: "reschedule".into(),
            reason: why,
            due_at: Some(due_at),
        },
    )
    .await?;
    // The reason is sealed with the task; the audit log names only the action.
    let audit = svc
        .entry(actor, Action::ChangeTask, "task", now)
        .target(id)
        .case(&row.case_id)
        .reason("reschedule");
    if !svc
        .store
        .reschedule_task(id, due_at, &sealed, now, &[audit])
        .await?
    {
        return Err(not_scheduled(&row));
    }
    let mut moved = row.clone();
    moved.due_at = due_at;
    Ok(view(&moved, None, now))
}

/// Cancel a scheduled task and its pending messages, saying why.
pub async fn cancel(
    svc: &Services,
    actor: &Actor,
    id: &str,
    input: CancelInput,
    now: DateTime<Utc>,
) -> Result<TaskView> {
    let row = load(svc, actor, id, Action::ChangeTask, now).await?;
    let mut v = Validator::new();
    let why = reason(&mut v, input.reason.as_deref());
    v.finish()?;
    let why = why.unwrap_or_default();
    let sealed = sealed_change(
        svc,
        &row,
        TaskChange {
            at: now,
            by: actor.user_id.clone(),
            action: "cancel".into(),
            reason: why,
            due_at: None,
        },
    )
    .await?;
    let audit = svc
        .entry(actor, Action::ChangeTask, "task", now)
        .target(id)
        .case(&row.case_id)
        .reason("cancel");
    if !svc
        .store
        .cancel_task(id, "task_cancelled", &sealed, now, &[audit])
        .await?
    {
        return Err(not_scheduled(&row));
    }
    let mut cancelled = row.clone();
    cancelled.status = "cancelled".into();
    Ok(view(&cancelled, None, now))
}

/// A coordinator's digest: visits and calls due by the end of today (in the default zone),
/// overdue first.
#[derive(Debug, Serialize, ToSchema)]
pub struct Digest {
    pub date: chrono::NaiveDate,
    pub overdue: Vec<TaskView>,
    pub due_today: Vec<TaskView>,
}

pub async fn digest(svc: &Services, actor: &Actor, now: DateTime<Utc>) -> Result<Digest> {
    svc.authorize(
        actor,
        Action::ListTasks,
        Resource::System,
        svc.entry(actor, Action::ListTasks, "task", now),
    )
    .await?;
    let tz = svc.schedule.default_tz;
    let today = crate::schedule::calendar::local_date(tz, now);
    let end = crate::schedule::calendar::local_instant(
        tz,
        today + chrono::Duration::days(1),
        chrono::NaiveTime::MIN,
    );
    let rows = svc.store.coordinator_due(&actor.user_id, end, 500).await?;
    let (overdue, due_today): (Vec<TaskRow>, Vec<TaskRow>) =
        rows.into_iter().partition(|r| r.due_at < now);
    Ok(Digest {
        date: today,
        overdue: overdue.iter().map(|r| view(r, None, now)).collect(),
        due_today: due_today.iter().map(|r| view(r, None, now)).collect(),
    })
}

/// The local hour (default zone) from which the day's digests go out.
pub const DIGEST_HOUR: u32 = 7;

/// Email each active coordinator with an address their digest for today, once per day (claimed
/// first, so several instances send it once; a failed send is given back and tried next run).
/// The email names tasks, kinds, times and case ids only, never personal data. Returns how many
/// were sent.
pub async fn send_digests(
    svc: &Services,
    ch: &super::outreach::Channels,
    now: DateTime<Utc>,
) -> Result<usize> {
    use chrono::Timelike;
    let tz = svc.schedule.default_tz;
    let local = now.with_timezone(&tz);
    if local.hour() < DIGEST_HOUR || !ch.email_configured() {
        return Ok(0);
    }
    let day = local.date_naive();
    let mut sent = 0;
    for u in svc.store.digest_recipients().await? {
        let Some(to) = u.email.clone() else { continue };
        if !svc.store.claim_digest(&u.id, day, now).await? {
            continue;
        }
        let actor = super::accounts::actor_of(&u)?;
        let d = digest(svc, &actor, now).await?;
        if d.overdue.is_empty() && d.due_today.is_empty() {
            continue;
        }
        let line = |t: &TaskView| {
            format!(
                "- {} {} due {} (case {}, task {}){}",
                t.kind,
                t.rule_id.as_deref().unwrap_or("by hand"),
                t.due_at.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
                t.case_id,
                t.id,
                if t.contact_id.is_some() {
                    ", with a contact"
                } else {
                    ""
                }
            )
        };
        let mut body = format!("Good morning, {}.\n\n", u.display_name);
        if !d.overdue.is_empty() {
            body += &format!("Overdue ({}):\n", d.overdue.len());
            body += &d.overdue.iter().map(line).collect::<Vec<_>>().join("\n");
            body += "\n\n";
        }
        if !d.due_today.is_empty() {
            body += &format!("Due today ({}):\n", d.due_today.len());
            body += &d.due_today.iter().map(line).collect::<Vec<_>>().join("\n");
            body += "\n\n";
        }
        body += "Open donorcare to see the cases. This email holds no personal data.\n";
        let subject = format!(
            "donorcare {day}: {} due today, {} overdue",
            d.due_today.len(),
            d.overdue.len()
        );
        match ch
            .send_email(&format!("digest-{}-{day}", u.id), &to, &subject, &body)
            .await
        {
            Ok(()) => sent += 1,
            Err(e) => {
                tracing::warn!(user_id = %u.id, error = %e, "daily digest not sent; will retry");
                svc.store.unclaim_digest(&u.id, day).await?;
            }
        }
    }
    if sent > 0 {
        tracing::info!(sent, %day, "daily digests sent");
    }
    Ok(sent)
}
