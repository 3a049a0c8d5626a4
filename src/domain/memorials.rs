//! Memorial events: Qingming remembrance, the memorial wall, a ceremony. An event belongs to a
//! region and is planned by its care team. Families are invited through outreach, so the gate
//! that guards every message (contact consent for the channel, the family's pause and opt-out,
//! the family's cap) decides whether each invitation and reminder goes; a family that declines
//! gets no reminder. Replies say who is coming, how many, and what they need (sealed: it can be
//! health). A donor's name is put forward for the event's published list or engraving, but it
//! is shown or exported only while a `publicity` consent about the donor is in force, checked
//! each time the list is read: a withdrawal takes the name off the next export.

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cases::{self, case_key, Authorized};
use super::consents;
use super::types;
use super::{from_json, known_patch_fields, merge_patch, new_id, page_limit, Page, Services};
use crate::crypto::{self, Place, SecretKey};
use crate::error::{Error, Result, Validator};
use crate::policy::{self, Action, Actor, Resource};
use crate::schedule::calendar;
use std::collections::HashMap;

use crate::store::{
    CaseQuery, CaseScope, GuestReply, InvitationRow, MemorialEventQuery, MemorialEventRow,
    MemorialNameRow, NewInvitation, NewMessage, OutreachRow, TaskRow,
};

pub const KINDS: &[&str] = &["qingming", "memorial_wall", "ceremony", "other"];
pub const STATUSES: &[&str] = &["planned", "cancelled"];
pub const REPLIES: &[&str] = &["coming", "not_coming"];
/// The guest list's filters by reply.
pub const GUEST_REPLIES: &[&str] = &["no_reply", "coming", "not_coming", "needs"];

fn guest_reply_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(GUEST_REPLIES, true)
}
/// Memorial events remember the dead: they are for the families of deceased organ and body
/// donors. Living marrow donors are thanked in other ways (the honour roll, certificates).
pub const PROGRAMS: &[&str] = &["organ", "body"];
pub const MAX_TITLE: usize = 200;
pub const MAX_PLACE: usize = 300;
pub const MAX_DETAILS: usize = 2000;
pub const MAX_NEEDS: usize = 500;
pub const MAX_PARTY: i64 = 20;
pub const MAX_REMINDER_DAYS: i64 = 30;
pub const DEFAULT_REMINDER_DAYS: i64 = 3;
/// The outreach templates of an event's messages.
pub const INVITATION_TEMPLATE: &str = "memorial_event_invitation";
pub const REMINDER_TEMPLATE: &str = "memorial_event_reminder";
/// A task's occurrence names its event: `memorial_event:<event id>`.
pub const OCCURRENCE_PREFIX: &str = "memorial_event:";
/// Cases read per store query while a whole scope is invited.
const INVITE_BATCH: i64 = 200;

pub const REQUIRED: &[&str] = &["kind", "title", "starts_at", "place"];
pub const ON_CREATE: &[(&str, &str, &[&str], &[&str])] =
    &[("MemorialEventInput", "MemorialEventCreate", REQUIRED, &[])];

fn kind_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(KINDS, true)
}
fn status_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(STATUSES, true)
}
fn program_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(PROGRAMS, true)
}

/// Whether an event of `program` (`None`: organ and body) is for a case of `case_program`.
fn invites(program: Option<&str>, case_program: &str) -> bool {
    match program {
        Some(p) => p == case_program,
        None => PROGRAMS.contains(&case_program),
    }
}
fn title_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::nonempty_text(1, MAX_TITLE)
}
fn place_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::nonempty_text(1, MAX_PLACE)
}
fn details_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::text(MAX_DETAILS)
}
fn needs_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::text(MAX_NEEDS)
}
fn date_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::date(true)
}
fn reply_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(REPLIES, true)
}
fn starts_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::schema::{
        KnownFormat, ObjectBuilder, OneOfBuilder, Schema, SchemaFormat, SchemaType,
    };
    use utoipa::openapi::Type;
    utoipa::openapi::RefOr::T(Schema::OneOf(
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .pattern(Some(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}$")),
            )
            .item(ObjectBuilder::new().schema_type(SchemaType::Type(Type::Null)))
            .build(),
    ))
}
fn int_schema(
    min: i64,
    max: i64,
    nullable: bool,
) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
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
            .minimum(Some(min))
            .maximum(Some(max))
            .build(),
    ))
}
fn reminder_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    int_schema(0, MAX_REMINDER_DAYS, true)
}
fn party_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    int_schema(1, MAX_PARTY, true)
}

/// An event as planned or changed. A change (PATCH) is a JSON merge patch of these fields.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MemorialEventInput {
    /// `qingming`, `memorial_wall`, `ceremony` or `other`.
    #[schema(schema_with = kind_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[schema(schema_with = title_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Only cases of this programme are invited (`organ` or `body`); absent or null: both.
    #[schema(schema_with = program_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub program: Option<String>,
    /// When it begins: an RFC 3339 time, or `YYYY-MM-DDTHH:MM` in the office's time zone;
    /// in the future.
    #[schema(schema_with = starts_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<String>,
    #[schema(schema_with = place_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
    /// What families should know (transport, what to bring); sent with the invitation.
    #[schema(schema_with = details_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    /// Reply by this day (YYYY-MM-DD), not after the event.
    #[schema(schema_with = date_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply_by: Option<String>,
    /// Days before the event that a reminder goes (0: none); default 3.
    #[schema(schema_with = reminder_schema)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reminder_days: Option<i64>,
}

/// How the replies stand.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct HeadCount {
    pub invited: i64,
    pub coming: i64,
    pub not_coming: i64,
    pub no_reply: i64,
    /// People coming (the families' party sizes added up).
    pub people: i64,
    /// Families who said what help they need on the day.
    pub with_needs: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MemorialEventView {
    pub id: String,
    pub region: String,
    pub kind: String,
    pub title: String,
    pub program: Option<String>,
    pub starts_at: DateTime<Utc>,
    /// The start as the office reads it (`YYYY-MM-DDTHH:MM`, the office's time zone).
    pub starts_local: String,
    pub place: String,
    pub details: Option<String>,
    #[schema(value_type = Option<String>, format = Date)]
    pub reply_by: Option<NaiveDate>,
    pub reminder_days: i64,
    /// `planned` or `cancelled`.
    pub status: String,
    /// The replies in the caller's cases (a coordinator's own, a supervisor's region).
    pub head_count: HeadCount,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    /// Events starting on or after this day (YYYY-MM-DD); default: every event.
    #[param(schema_with = date_schema)]
    pub from: Option<String>,
    #[param(schema_with = status_schema)]
    pub status: Option<String>,
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Whom to invite: the cases named, or (none named) every open case of the caller's scope in
/// the event's region and programme.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteInput {
    #[schema(max_items = 500)]
    pub case_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct InviteResult {
    /// Invitations made now.
    pub invited: u64,
    /// Cases invited before.
    pub already_invited: u64,
    /// Cases with nobody who can receive outreach (no adult, living family contact; a
    /// deceased marrow donor), or erased.
    pub nobody_to_invite: u64,
}

/// A reply, from the family or recorded by their coordinator (a phone call).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplyInput {
    /// `coming` or `not_coming`.
    #[schema(schema_with = reply_schema)]
    pub reply: Option<String>,
    /// How many are coming (1-20); required when coming.
    #[schema(schema_with = party_schema)]
    pub party_size: Option<i64>,
    /// What they need: a wheelchair, transport, a quiet seat.
    #[schema(schema_with = needs_schema)]
    pub needs: Option<String>,
}

/// How an invitation's messages stand.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MessageState {
    pub id: String,
    pub template: String,
    pub recipient: String,
    /// `scheduled`, `sent`, `held`, `failed`, `dead` or `cancelled`.
    pub status: String,
    pub reason: Option<String>,
    pub due_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvitationView {
    pub id: String,
    pub event_id: String,
    pub case_id: String,
    /// The donor's name (staff only; absent once erased).
    pub donor_name: Option<String>,
    /// `coming`, `not_coming`, or absent before a reply.
    pub reply: Option<String>,
    pub party_size: Option<i64>,
    /// What the family needs (absent for the family's own listing of other fields, and once
    /// erased).
    pub needs: Option<String>,
    pub replied_at: Option<DateTime<Utc>>,
    /// The invitation's and the reminder's messages.
    pub messages: Vec<MessageState>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GuestFilter {
    /// Only the families with this reply: none yet, coming, not coming, or who said what help
    /// they need on the day.
    #[param(schema_with = guest_reply_schema)]
    pub reply: Option<String>,
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// What a family sees of an invitation: the event and their own reply.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FamilyInvitation {
    pub id: String,
    pub event: MemorialEventView,
    pub reply: Option<String>,
    pub party_size: Option<i64>,
    pub needs: Option<String>,
    pub replied_at: Option<DateTime<Utc>>,
    /// Whether a reply can still be given or changed (the event is planned and ahead).
    pub open: bool,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NameInput {
    pub case_id: String,
}

/// A donor put forward for the event's list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NameEntry {
    pub case_id: String,
    /// Shown only while a publicity consent about the donor is in force.
    pub full_name: Option<String>,
    pub publicity_consent: bool,
    pub program: String,
    #[schema(value_type = Option<String>, format = Date)]
    pub donation_date: Option<NaiveDate>,
    pub added_at: DateTime<Utc>,
}

/// What a message of an event fills its template with.
#[derive(Debug, Clone)]
pub struct EventFacts {
    pub title: String,
    pub date: NaiveDate,
    pub time: String,
    pub place: String,
    pub details: String,
    pub reply_by: Option<NaiveDate>,
}

fn needs_place(id: &str) -> Place<'_> {
    Place::new("memorial_invitations", "needs", id)
}

fn office_tz(svc: &Services) -> chrono_tz::Tz {
    svc.schedule.default_tz
}

fn local_text(svc: &Services, at: DateTime<Utc>) -> String {
    at.with_timezone(&office_tz(svc))
        .format("%Y-%m-%dT%H:%M")
        .to_string()
}

/// An RFC 3339 time, or `YYYY-MM-DDTHH:MM` in the office's time zone.
fn parse_start(svc: &Services, s: &str) -> std::result::Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")
        .map(|local| calendar::local_to_utc(office_tz(svc), local))
        .map_err(|_| {
            "must be a time (RFC 3339, or YYYY-MM-DDTHH:MM in the office's time zone)".into()
        })
}

struct Valid {
    kind: String,
    title: String,
    program: Option<String>,
    starts_at: DateTime<Utc>,
    place: String,
    details: Option<String>,
    reply_by: Option<NaiveDate>,
    reminder_days: i64,
}

fn validate(
    svc: &Services,
    input: &MemorialEventInput,
    now: DateTime<Utc>,
    starts_unchanged: Option<DateTime<Utc>>,
) -> Result<Valid> {
    let mut v = Validator::new();
    for name in REQUIRED {
        let given = match *name {
            "kind" => input.kind.is_some(),
            "title" => input.title.is_some(),
            "starts_at" => input.starts_at.is_some(),
            _ => input.place.is_some(),
        };
        if !given {
            v.add(*name, "is required");
        }
    }
    let kind = match input.kind.as_deref().map(str::trim) {
        Some(k) if KINDS.contains(&k) => Some(k.to_string()),
        Some(_) => {
            v.add("kind", format!("must be one of {}", KINDS.join(", ")));
            None
        }
        None => None,
    };
    let title = input
        .title
        .as_deref()
        .and_then(|t| v.check("title", types::required_text(t, MAX_TITLE)));
    let place = input
        .place
        .as_deref()
        .and_then(|t| v.check("place", types::required_text(t, MAX_PLACE)));
    let details = input
        .details
        .as_deref()
        .and_then(|t| v.check("details", types::text(t, MAX_DETAILS)))
        .filter(|t| !t.is_empty());
    let program = match input.program.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) if PROGRAMS.contains(&p) => Some(p.to_string()),
        Some(_) => {
            v.add("program", format!("must be one of {}", PROGRAMS.join(", ")));
            None
        }
    };
    let starts_at = input
        .starts_at
        .as_deref()
        .and_then(|s| v.check("starts_at", parse_start(svc, s)));
    if let Some(t) = starts_at {
        if t <= now && starts_unchanged != Some(t) {
            v.add("starts_at", "must be in the future");
        }
    }
    let reply_by = input
        .reply_by
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .and_then(|d| v.check("reply_by", types::parse_date(d)));
    if let (Some(r), Some(t)) = (reply_by, starts_at) {
        if r > calendar::local_date(office_tz(svc), t) {
            v.add("reply_by", "must not be after the event");
        }
    }
    let reminder_days = match input.reminder_days {
        None => DEFAULT_REMINDER_DAYS,
        Some(d) if (0..=MAX_REMINDER_DAYS).contains(&d) => d,
        Some(_) => {
            v.add(
                "reminder_days",
                format!("must be between 0 and {MAX_REMINDER_DAYS}"),
            );
            0
        }
    };
    v.finish()?;
    match (kind, title, starts_at, place) {
        (Some(kind), Some(title), Some(starts_at), Some(place)) => Ok(Valid {
            kind,
            title,
            program,
            starts_at,
            place,
            details,
            reply_by,
            reminder_days,
        }),
        _ => Err(Error::Internal(anyhow::anyhow!(
            "validation let a required field through"
        ))),
    }
}

fn head_count(c: crate::store::ReplyCounts) -> HeadCount {
    HeadCount {
        invited: c.invited,
        coming: c.coming,
        not_coming: c.not_coming,
        no_reply: c.invited - c.coming - c.not_coming,
        people: c.people,
        with_needs: c.with_needs,
    }
}

async fn event_view(
    svc: &Services,
    r: &MemorialEventRow,
    scope: Option<&CaseScope>,
) -> Result<MemorialEventView> {
    let head_count = match scope {
        Some(s) => head_count(svc.store.reply_counts(&r.id, s).await?),
        None => HeadCount::default(),
    };
    Ok(MemorialEventView {
        id: r.id.clone(),
        region: r.region.clone(),
        kind: r.kind.clone(),
        title: r.title.clone(),
        program: r.program.clone(),
        starts_at: r.starts_at,
        starts_local: local_text(svc, r.starts_at),
        place: r.place.clone(),
        details: r.details.clone(),
        reply_by: r.reply_by,
        reminder_days: r.reminder_days,
        status: r.status.clone(),
        head_count,
        created_at: r.created_at,
        updated_at: r.updated_at,
    })
}

/// The region the actor plans events for: 422 for an account without one.
fn own_region(actor: &Actor) -> Result<&str> {
    actor
        .region
        .as_deref()
        .ok_or_else(|| Error::field("region", "your account has no region; an admin sets it"))
}

/// The caller's region, if the role may do `action` there (refusals recorded).
async fn region_checked<'a>(
    svc: &Services,
    actor: &'a Actor,
    action: Action,
    now: DateTime<Utc>,
) -> Result<&'a str> {
    let region = actor.region.as_deref().unwrap_or("");
    svc.authorize(
        actor,
        action,
        Resource::Region { region },
        svc.entry(actor, action, "memorial_event", now),
    )
    .await?;
    own_region(actor)
}

/// An event for `action` by `actor`; 404 when absent or of another region.
async fn load_event(
    svc: &Services,
    actor: &Actor,
    id: &str,
    action: Action,
    now: DateTime<Utc>,
) -> Result<MemorialEventRow> {
    let entry = svc.entry(actor, action, "memorial_event", now);
    let Some(row) = svc.store.memorial_event_by_id(id).await? else {
        let entry = if super::is_id(id) {
            entry.target(id)
        } else {
            entry
        };
        svc.audit.record(vec![entry.denied("not_found")]).await?;
        return Err(Error::NotFound);
    };
    svc.authorize(
        actor,
        action,
        Resource::Region {
            region: &row.region,
        },
        entry.target(id),
    )
    .await?;
    Ok(row)
}

/// The cases whose invitations and names the caller sees.
fn guest_scope(actor: &Actor) -> Result<CaseScope> {
    policy::case_scope(actor)
}

pub async fn create_event(
    svc: &Services,
    actor: &Actor,
    input: MemorialEventInput,
    now: DateTime<Utc>,
) -> Result<MemorialEventView> {
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let region = region_checked(svc, actor, Action::ManageMemorials, now).await?;
    let ok = validate(svc, &input, now, None)?;
    let row = MemorialEventRow {
        id: new_id(),
        region: region.to_string(),
        kind: ok.kind,
        title: ok.title,
        program: ok.program,
        starts_at: ok.starts_at,
        place: ok.place,
        details: ok.details,
        reply_by: ok.reply_by,
        reminder_days: ok.reminder_days,
        status: "planned".into(),
        created_by: actor.user_id.clone(),
        created_at: now,
        updated_by: None,
        updated_at: now,
    };
    let audit = svc
        .entry(actor, Action::ManageMemorials, "memorial_event", now)
        .target(&row.id);
    svc.store.insert_memorial_event(&row, &[audit]).await?;
    event_view(svc, &row, guest_scope(actor).ok().as_ref()).await
}

pub async fn get_event(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<MemorialEventView> {
    let row = load_event(svc, actor, id, Action::ReadMemorials, now).await?;
    event_view(svc, &row, guest_scope(actor).ok().as_ref()).await
}

pub async fn list_events(
    svc: &Services,
    actor: &Actor,
    f: EventFilter,
    now: DateTime<Utc>,
) -> Result<Page<MemorialEventView>> {
    let region = region_checked(svc, actor, Action::ReadMemorials, now).await?;
    let mut v = Validator::new();
    let from = f
        .from
        .as_deref()
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .and_then(|d| v.check("from", types::parse_date(d)))
        .map(|d| calendar::local_instant(office_tz(svc), d, chrono::NaiveTime::MIN));
    let status = match f.status.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        Some(s) if STATUSES.contains(&s) => Some(s.to_string()),
        Some(_) => {
            v.add("status", format!("must be one of {}", STATUSES.join(", ")));
            None
        }
        None => None,
    };
    let limit = match page_limit(f.limit) {
        Ok(l) => l,
        Err(_) => {
            v.add("limit", "must be between 1 and 200");
            0
        }
    };
    let after = match f.cursor.as_deref() {
        None => None,
        Some(c) => match c.split_once('_').and_then(|(t, id)| {
            let t = DateTime::parse_from_rfc3339(t).ok()?.with_timezone(&Utc);
            super::is_id(id).then(|| (t, id.to_string()))
        }) {
            Some(a) => Some(a),
            None => {
                v.add("cursor", "is not a cursor of this listing");
                None
            }
        },
    };
    v.finish()?;
    let mut rows = svc
        .store
        .list_memorial_events(&MemorialEventQuery {
            region: region.to_string(),
            from,
            status,
            after,
            limit: limit + 1,
        })
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last()
            .map(|r| format!("{}_{}", r.starts_at.to_rfc3339(), r.id))
    } else {
        None
    };
    let scope = guest_scope(actor).ok();
    let mut items = Vec::with_capacity(rows.len());
    for r in &rows {
        items.push(event_view(svc, r, scope.as_ref()).await?);
    }
    Ok(Page { items, next_cursor })
}

fn current_input(svc: &Services, r: &MemorialEventRow) -> MemorialEventInput {
    MemorialEventInput {
        kind: Some(r.kind.clone()),
        title: Some(r.title.clone()),
        program: r.program.clone(),
        starts_at: Some(local_text(svc, r.starts_at)),
        place: Some(r.place.clone()),
        details: r.details.clone(),
        reply_by: r.reply_by.map(|d| d.to_string()),
        reminder_days: Some(r.reminder_days),
    }
}

/// Change a planned event (a JSON merge patch of [`MemorialEventInput`]). Once families are
/// invited its time cannot move: their invitations and reminders name it, so the event is
/// cancelled (which tells nobody twice) and planned again.
pub async fn update_event(
    svc: &Services,
    actor: &Actor,
    id: &str,
    patch: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<MemorialEventView> {
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let row = load_event(svc, actor, id, Action::ManageMemorials, now).await?;
    if row.status != "planned" {
        return Err(Error::conflict("status", "this event was cancelled"));
    }
    if !patch.is_object() {
        return Err(Error::field("body", "must be a JSON object"));
    }
    known_patch_fields::<MemorialEventInput>(&patch)?;
    let mut merged =
        serde_json::to_value(current_input(svc, &row)).map_err(|e| Error::Internal(e.into()))?;
    merge_patch(&mut merged, &patch);
    let input: MemorialEventInput = from_json(merged)?;
    let ok = validate(svc, &input, now, Some(row.starts_at))?;
    // The program, too, decided who was invited.
    let invited = svc
        .store
        .reply_counts(&row.id, &CaseScope::All)
        .await?
        .invited;
    if invited > 0 && ok.starts_at != row.starts_at {
        return Err(Error::conflict(
            "starts_at",
            "families have been invited to this time; cancel the event and plan it again",
        ));
    }
    if invited > 0 && ok.program != row.program {
        return Err(Error::conflict(
            "program",
            "families have been invited; the programme can no longer change",
        ));
    }
    let updated = MemorialEventRow {
        kind: ok.kind,
        title: ok.title,
        program: ok.program,
        starts_at: ok.starts_at,
        place: ok.place,
        details: ok.details,
        reply_by: ok.reply_by,
        reminder_days: ok.reminder_days,
        updated_by: Some(actor.user_id.clone()),
        updated_at: now,
        ..row
    };
    let audit = svc
        .entry(actor, Action::ManageMemorials, "memorial_event", now)
        .target(id)
        .reason("update");
    svc.store
        .update_memorial_event(&updated, None, &[audit])
        .await?;
    event_view(svc, &updated, guest_scope(actor).ok().as_ref()).await
}

/// Cancel an event: every invitation's and reminder's message not yet sent is cancelled.
pub async fn cancel_event(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<MemorialEventView> {
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let row = load_event(svc, actor, id, Action::ManageMemorials, now).await?;
    if row.status != "planned" {
        return Err(Error::conflict(
            "status",
            "this event was already cancelled",
        ));
    }
    let updated = MemorialEventRow {
        status: "cancelled".into(),
        updated_by: Some(actor.user_id.clone()),
        updated_at: now,
        ..row
    };
    let audit = svc
        .entry(actor, Action::ManageMemorials, "memorial_event", now)
        .target(id)
        .reason("cancel");
    svc.store
        .update_memorial_event(&updated, Some("event_cancelled"), &[audit])
        .await?;
    event_view(svc, &updated, guest_scope(actor).ok().as_ref()).await
}

/// The facts an event's message is filled with, if `occurrence` names an event.
pub async fn facts_for(
    svc: &Services,
    occurrence: Option<&str>,
    tz: chrono_tz::Tz,
) -> Result<Option<EventFacts>> {
    let Some(id) = occurrence.and_then(|o| o.strip_prefix(OCCURRENCE_PREFIX)) else {
        return Ok(None);
    };
    let Some(e) = svc.store.memorial_event_by_id(id).await? else {
        return Ok(None);
    };
    let local = e.starts_at.with_timezone(&tz);
    Ok(Some(EventFacts {
        title: e.title,
        date: local.date_naive(),
        time: local.format("%H:%M").to_string(),
        place: e.place,
        details: e.details.unwrap_or_default(),
        reply_by: e.reply_by,
    }))
}

/// The invitation (due now) and reminder tasks of one case, with their messages.
fn invitation_for_case(
    svc: &Services,
    actor: &Actor,
    event: &MemorialEventRow,
    case: &crate::store::CaseRow,
    recipients: &[super::schedule::Recipient],
    now: DateTime<Utc>,
) -> NewInvitation {
    let occurrence = format!("{OCCURRENCE_PREFIX}{}", event.id);
    let task = |template: &str, due: DateTime<Utc>| TaskRow {
        id: new_id(),
        case_id: case.id.clone(),
        kind: "outreach".into(),
        due_at: due,
        assignee_id: None,
        contact_id: None,
        template: Some(template.into()),
        status: "scheduled".into(),
        details: None,
        created_by: actor.user_id.clone(),
        created_at: now,
        updated_at: now,
        completed_at: None,
        completed_by: None,
        rule_id: None,
        occurrence: Some(occurrence.clone()),
        grace_until: Some(event.starts_at),
        cancel_reason: None,
        region: case.region.clone(),
    };
    let invitation = task(INVITATION_TEMPLATE, now);
    let mut messages: Vec<OutreachRow> = recipients
        .iter()
        .map(|r| {
            OutreachRow::scheduled(
                NewMessage {
                    id: new_id(),
                    task_id: &invitation.id,
                    case_id: &case.id,
                    recipient: &r.id,
                    channel: None,
                    template: INVITATION_TEMPLATE.into(),
                    due_at: now,
                    grace_until: event.starts_at,
                },
                now,
            )
        })
        .collect();
    let mut tasks = vec![invitation];
    let remind_day =
        calendar::local_date(office_tz(svc), event.starts_at) - Duration::days(event.reminder_days);
    let reminder_due =
        calendar::local_instant(office_tz(svc), remind_day, svc.schedule.waking_start());
    if event.reminder_days > 0 && reminder_due > now && reminder_due < event.starts_at {
        let reminder = task(REMINDER_TEMPLATE, reminder_due);
        for r in recipients {
            let due = calendar::local_instant(r.tz, remind_day, svc.schedule.waking_start());
            messages.push(OutreachRow::scheduled(
                NewMessage {
                    id: new_id(),
                    task_id: &reminder.id,
                    case_id: &case.id,
                    recipient: &r.id,
                    channel: None,
                    template: REMINDER_TEMPLATE.into(),
                    due_at: due,
                    grace_until: event.starts_at,
                },
                now,
            ));
        }
        tasks.push(reminder);
    }
    NewInvitation {
        row: InvitationRow {
            id: new_id(),
            event_id: event.id.clone(),
            case_id: case.id.clone(),
            invitation_task_id: tasks.first().map(|t| t.id.clone()),
            reminder_task_id: tasks.get(1).map(|t| t.id.clone()),
            reply: None,
            party_size: None,
            needs: None,
            replied_at: None,
            replied_by: None,
            created_by: actor.user_id.clone(),
            created_at: now,
            region: case.region.clone(),
        },
        tasks,
        messages,
        supersedes_until: event.starts_at,
    }
}

/// Invite families to a planned event: the cases named (each decided by the policy), or every
/// open case of the caller's scope in the event's region and programme. A case invited before
/// is left as it is. The care plan's general yearly invitation still to come before the event
/// is cancelled for each family invited: the event's own says when and where, and one
/// invitation to the same remembrance is enough. Each invitation is audited on its case.
pub async fn invite(
    svc: &Services,
    actor: &Actor,
    event_id: &str,
    input: InviteInput,
    now: DateTime<Utc>,
) -> Result<InviteResult> {
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let event = load_event(svc, actor, event_id, Action::ReadMemorials, now).await?;
    if event.status != "planned" {
        return Err(Error::conflict("status", "this event was cancelled"));
    }
    if event.starts_at <= now {
        return Err(Error::conflict("starts_at", "this event has already begun"));
    }
    let mut cases_to_invite = Vec::new();
    match input.case_ids {
        Some(ids) => {
            let mut v = Validator::new();
            if ids.is_empty() || ids.len() > 500 {
                v.add("case_ids", "must name from 1 to 500 cases");
            }
            if ids.iter().any(|id| !super::is_id(id)) {
                v.add("case_ids", "must be case ids");
            }
            v.finish()?;
            for id in ids {
                let Authorized { row, .. } =
                    cases::load_authorized(svc, actor, &id, Action::ManageMemorialGuests, now)
                        .await?;
                let fits =
                    row.region == event.region && invites(event.program.as_deref(), &row.program);
                if !fits {
                    return Err(Error::field(
                        "case_ids",
                        format!("case {id} is not of this event's region and programme"),
                    ));
                }
                if row.status != "open" {
                    return Err(Error::field(
                        "case_ids",
                        format!("case {id} is {}", row.status),
                    ));
                }
                cases_to_invite.push(row);
            }
        }
        None => {
            let scope = match guest_scope(actor) {
                Ok(s) => s,
                Err(e) => {
                    let entry = svc
                        .entry(actor, Action::ManageMemorialGuests, "memorial_event", now)
                        .target(event_id)
                        .denied("role");
                    svc.audit.record(vec![entry]).await?;
                    return Err(e);
                }
            };
            let mut after = None;
            loop {
                let rows = svc
                    .store
                    .list_cases(&CaseQuery {
                        scope: scope.clone(),
                        program: event.program.clone(),
                        status: Some("open".into()),
                        term: None,
                        consent_in_force: None,
                        after: after.clone(),
                        limit: INVITE_BATCH,
                    })
                    .await?;
                let Some(last) = rows.last() else { break };
                after = Some(last.id.clone());
                let full = rows.len() as i64 == INVITE_BATCH;
                cases_to_invite.extend(rows.into_iter().filter(|r| {
                    r.region == event.region && invites(event.program.as_deref(), &r.program)
                }));
                if !full {
                    break;
                }
            }
        }
    }
    let mut result = InviteResult::default();
    for chunk in cases_to_invite.chunks(INVITE_BATCH as usize) {
        let ids: Vec<String> = chunk.iter().map(|c| c.id.clone()).collect();
        let invited = svc.store.invited_cases(&event.id, &ids).await?;
        let contacts = svc.store.contacts_for_cases(&ids).await?;
        let mut new = Vec::new();
        let mut audit = Vec::new();
        for case in chunk {
            if invited.contains(&case.id) {
                result.already_invited += 1;
                continue;
            }
            let Some(key) = case_key(svc, case).await? else {
                result.nobody_to_invite += 1;
                continue;
            };
            let donor = cases::open_row(&key, case)?.donor;
            let theirs: Vec<&crate::store::ContactRow> =
                contacts.iter().filter(|c| c.case_id == case.id).collect();
            let recipients = super::schedule::recipients(svc, &key, case, &donor, &theirs)?;
            if recipients.is_empty() {
                result.nobody_to_invite += 1;
                continue;
            }
            let n = invitation_for_case(svc, actor, &event, case, &recipients, now);
            audit.push(
                svc.entry(
                    actor,
                    Action::ManageMemorialGuests,
                    "memorial_invitation",
                    now,
                )
                .target(&n.row.id)
                .case(&case.id),
            );
            new.push(n);
        }
        if new.is_empty() {
            continue;
        }
        let made = svc.store.insert_invitations(&new, &audit).await?;
        result.invited += made;
        result.already_invited += new.len() as u64 - made;
    }
    Ok(result)
}

fn open_needs(key: &SecretKey, r: &InvitationRow) -> Result<Option<String>> {
    let Some(sealed) = &r.needs else {
        return Ok(None);
    };
    let plain = crypto::open(
        key,
        needs_place(&r.id),
        &crypto::Sealed::from_bytes(sealed.clone()),
    )?;
    Ok(Some(
        String::from_utf8(plain.to_vec()).map_err(|_| crypto::CryptoError::Malformed)?,
    ))
}

/// The invitation and reminder messages of `rows`, in one read, for each row in order.
async fn messages_of(svc: &Services, rows: &[InvitationRow]) -> Result<Vec<Vec<MessageState>>> {
    let tasks: Vec<String> = rows
        .iter()
        .flat_map(|r| [&r.invitation_task_id, &r.reminder_task_id])
        .flatten()
        .cloned()
        .collect();
    let mut cases: Vec<String> = rows.iter().map(|r| r.case_id.clone()).collect();
    cases.sort();
    cases.dedup();
    let found = svc.store.outreach_of_tasks(&cases, &tasks).await?;
    Ok(rows
        .iter()
        .map(|r| {
            let mine = [&r.invitation_task_id, &r.reminder_task_id];
            found
                .iter()
                .filter(|m| {
                    mine.iter()
                        .any(|t| t.as_deref() == Some(m.task_id.as_str()))
                })
                .map(|m| MessageState {
                    id: m.id.clone(),
                    template: m.template.clone(),
                    recipient: m.recipient.clone(),
                    status: m.status.clone(),
                    reason: m.reason.clone(),
                    due_at: m.due_at,
                })
                .collect()
        })
        .collect())
}

/// A page of an event's invitations in the caller's cases, with each family's reply, needs
/// and messages. Donor names are opened, so each case shown is a recorded case view.
pub async fn guests(
    svc: &Services,
    actor: &Actor,
    event_id: &str,
    f: GuestFilter,
    now: DateTime<Utc>,
) -> Result<Page<InvitationView>> {
    let event = load_event(svc, actor, event_id, Action::ReadMemorials, now).await?;
    let limit = page_limit(f.limit)?;
    if f.cursor.as_deref().is_some_and(|c| !super::is_id(c)) {
        return Err(Error::field("cursor", "is not a cursor of this listing"));
    }
    let reply = match f.reply.as_deref().map(str::trim) {
        None | Some("") => None,
        Some("no_reply") => Some(GuestReply::None),
        Some("coming") => Some(GuestReply::Coming),
        Some("not_coming") => Some(GuestReply::NotComing),
        Some("needs") => Some(GuestReply::Needs),
        Some(_) => {
            return Err(Error::field(
                "reply",
                format!("must be one of {}", GUEST_REPLIES.join(", ")),
            ))
        }
    };
    let scope = guest_scope(actor)?;
    let mut rows = svc
        .store
        .list_invitations(&event.id, &scope, reply, f.cursor.as_deref(), limit + 1)
        .await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let items = invitation_views(svc, &rows).await?;
    let audit: Vec<_> = items
        .iter()
        .filter(|v| v.donor_name.is_some())
        .map(|v| {
            svc.entry(actor, Action::ReadCase, "case", now)
                .target(&v.case_id)
                .case(&v.case_id)
                .reason("memorial_guests")
        })
        .collect();
    if !audit.is_empty() {
        svc.audit.record(audit).await?;
    }
    let next_cursor = if more {
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

struct ValidReply {
    reply: String,
    party_size: Option<i64>,
    needs: Option<String>,
}

fn validate_reply(input: &ReplyInput) -> Result<ValidReply> {
    let mut v = Validator::new();
    let reply = match input.reply.as_deref().map(str::trim) {
        None | Some("") => {
            v.add("reply", "is required");
            None
        }
        Some(r) if REPLIES.contains(&r) => Some(r.to_string()),
        Some(_) => {
            v.add("reply", format!("must be one of {}", REPLIES.join(", ")));
            None
        }
    };
    let party_size = match (reply.as_deref(), input.party_size) {
        (Some("coming"), None) => {
            v.add("party_size", "say how many are coming (1 to 20)");
            None
        }
        (_, Some(n)) if !(1..=MAX_PARTY).contains(&n) => {
            v.add("party_size", format!("must be between 1 and {MAX_PARTY}"));
            None
        }
        (Some("coming"), n) => n,
        _ => None,
    };
    let needs = input
        .needs
        .as_deref()
        .and_then(|t| v.check("needs", types::text(t, MAX_NEEDS)))
        .filter(|t| !t.is_empty());
    v.finish()?;
    Ok(ValidReply {
        reply: reply.unwrap_or_default(),
        party_size,
        needs,
    })
}

/// Write a reply to `row` (of `event`), by `actor`; audited as `action` on the case.
async fn write_reply(
    svc: &Services,
    actor: &Actor,
    action: Action,
    event: &MemorialEventRow,
    row: InvitationRow,
    input: ReplyInput,
    now: DateTime<Utc>,
) -> Result<InvitationRow> {
    let ok = validate_reply(&input)?;
    if event.status != "planned" {
        return Err(Error::conflict("reply", "this event was cancelled"));
    }
    if event.starts_at <= now {
        return Err(Error::conflict(
            "reply",
            "this event has already taken place",
        ));
    }
    let case = svc
        .store
        .case_by_id(&row.case_id)
        .await?
        .ok_or(Error::NotFound)?;
    let key = case_key(svc, &case).await?.ok_or_else(|| Error::Conflict {
        field: None,
        message: "this case has been erased".into(),
    })?;
    let declined = ok.reply == "not_coming";
    let updated = InvitationRow {
        needs: ok
            .needs
            .map(|n| crypto::seal(&key, needs_place(&row.id), n.as_bytes()).into_bytes()),
        reply: Some(ok.reply),
        party_size: ok.party_size,
        replied_at: Some(now),
        replied_by: Some(actor.user_id.clone()),
        ..row
    };
    let audit = svc
        .entry(actor, action, "memorial_invitation", now)
        .target(&updated.id)
        .case(&updated.case_id);
    svc.store.record_reply(&updated, declined, &[audit]).await?;
    Ok(updated)
}

/// Record a family's reply as their coordinator heard it.
pub async fn record_reply(
    svc: &Services,
    actor: &Actor,
    invitation_id: &str,
    input: ReplyInput,
    now: DateTime<Utc>,
) -> Result<InvitationView> {
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let Some(row) = svc.store.invitation_by_id(invitation_id).await? else {
        let entry = svc.entry(
            actor,
            Action::ManageMemorialGuests,
            "memorial_invitation",
            now,
        );
        let entry = if super::is_id(invitation_id) {
            entry.target(invitation_id)
        } else {
            entry
        };
        svc.audit.record(vec![entry.denied("not_found")]).await?;
        return Err(Error::NotFound);
    };
    cases::load_authorized(svc, actor, &row.case_id, Action::ManageMemorialGuests, now).await?;
    let event = svc
        .store
        .memorial_event_by_id(&row.event_id)
        .await?
        .ok_or(Error::NotFound)?;
    let updated = write_reply(
        svc,
        actor,
        Action::ManageMemorialGuests,
        &event,
        row,
        input,
        now,
    )
    .await?;
    invitation_view(svc, &updated).await
}

/// An invitation as staff see it, opened.
async fn invitation_view(svc: &Services, r: &InvitationRow) -> Result<InvitationView> {
    let mut views = invitation_views(svc, std::slice::from_ref(r)).await?;
    Ok(views.remove(0))
}

/// Invitations as staff see them, opened, with their messages read at once.
async fn invitation_views(svc: &Services, rows: &[InvitationRow]) -> Result<Vec<InvitationView>> {
    let mut messages = messages_of(svc, rows).await?.into_iter();
    let ids: Vec<String> = rows.iter().map(|r| r.case_id.clone()).collect();
    let mut cases: HashMap<String, crate::store::CaseRow> = svc
        .store
        .cases_by_ids(&ids)
        .await?
        .into_iter()
        .map(|c| (c.id.clone(), c))
        .collect();
    let mut views = Vec::with_capacity(rows.len());
    for r in rows {
        // A case is invited to an event once, so each row takes its own case.
        let case = cases.remove(&r.case_id);
        let key = match &case {
            Some(c) => case_key(svc, c).await?,
            None => None,
        };
        views.push(InvitationView {
            id: r.id.clone(),
            event_id: r.event_id.clone(),
            case_id: r.case_id.clone(),
            donor_name: match (&case, &key) {
                (Some(c), Some(k)) => Some(cases::open_row(k, c)?.donor.full_name),
                _ => None,
            },
            reply: r.reply.clone(),
            party_size: r.party_size,
            needs: key
                .as_ref()
                .map(|k| open_needs(k, r))
                .transpose()?
                .flatten(),
            replied_at: r.replied_at,
            messages: messages.next().unwrap_or_default(),
            created_at: r.created_at,
        });
    }
    Ok(views)
}

/// One invitation with its event, for its case's staff (a recorded case view).
pub async fn get_invitation(
    svc: &Services,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
) -> Result<(InvitationView, MemorialEventView)> {
    let Some(row) = svc.store.invitation_by_id(id).await? else {
        let entry = svc.entry(
            actor,
            Action::ManageMemorialGuests,
            "memorial_invitation",
            now,
        );
        let entry = if super::is_id(id) {
            entry.target(id)
        } else {
            entry
        };
        svc.audit.record(vec![entry.denied("not_found")]).await?;
        return Err(Error::NotFound);
    };
    cases::load_authorized(svc, actor, &row.case_id, Action::ManageMemorialGuests, now).await?;
    let event = svc
        .store
        .memorial_event_by_id(&row.event_id)
        .await?
        .ok_or(Error::NotFound)?;
    svc.audit
        .record(vec![svc
            .entry(actor, Action::ReadCase, "case", now)
            .target(&row.case_id)
            .case(&row.case_id)
            .reason("memorial_guests")])
        .await?;
    Ok((
        invitation_view(svc, &row).await?,
        event_view(svc, &event, None).await?,
    ))
}

/// What a case's page shows: its invitations (with their events), and the region's planned
/// events ahead that it could still be invited to.
pub struct CaseMemorials {
    pub invitations: Vec<(InvitationRow, MemorialEventView)>,
    pub open_events: Vec<MemorialEventView>,
}

/// A case's invitations and the events ahead it is not yet invited to (the case's page, whose
/// own view decided the access).
pub async fn for_case(
    svc: &Services,
    actor: &Actor,
    case: &crate::store::CaseRow,
    now: DateTime<Utc>,
) -> Result<CaseMemorials> {
    let mut invitations = Vec::new();
    let rows = svc.store.case_invitations(&case.id).await?;
    for r in rows {
        if let Some(e) = svc.store.memorial_event_by_id(&r.event_id).await? {
            invitations.push((r, event_view(svc, &e, None).await?));
        }
    }
    let may_invite = policy::authorize(
        actor,
        Action::ManageMemorials,
        Resource::Region {
            region: &case.region,
        },
    )
    .is_ok();
    let mut open_events = Vec::new();
    if may_invite && case.status == "open" {
        let ahead = svc
            .store
            .list_memorial_events(&MemorialEventQuery {
                region: case.region.clone(),
                from: Some(now),
                status: Some("planned".into()),
                after: None,
                limit: 20,
            })
            .await?;
        for e in ahead {
            let fits = invites(e.program.as_deref(), &case.program);
            if fits && !invitations.iter().any(|(i, _)| i.event_id == e.id) {
                open_events.push(event_view(svc, &e, None).await?);
            }
        }
    }
    Ok(CaseMemorials {
        invitations,
        open_events,
    })
}

async fn family_view(
    svc: &Services,
    key: Option<&SecretKey>,
    r: &InvitationRow,
    now: DateTime<Utc>,
) -> Result<Option<FamilyInvitation>> {
    let Some(e) = svc.store.memorial_event_by_id(&r.event_id).await? else {
        return Ok(None);
    };
    let open = e.status == "planned" && e.starts_at > now;
    Ok(Some(FamilyInvitation {
        id: r.id.clone(),
        event: event_view(svc, &e, None).await?,
        reply: r.reply.clone(),
        party_size: r.party_size,
        needs: key.map(|k| open_needs(k, r)).transpose()?.flatten(),
        replied_at: r.replied_at,
        open,
    }))
}

/// The family's invitations, newest first (events of the last year and ahead).
pub async fn family_invitations(
    svc: &Services,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Vec<FamilyInvitation>> {
    let case_id = super::family::own_case(svc, actor, now).await?;
    let case = svc
        .store
        .case_by_id(&case_id)
        .await?
        .ok_or(Error::NotFound)?;
    let key = case_key(svc, &case).await?;
    let mut out = Vec::new();
    for r in svc.store.case_invitations(&case_id).await? {
        if let Some(v) = family_view(svc, key.as_ref(), &r, now).await? {
            if v.event.starts_at > now - Duration::days(365) {
                out.push(v);
            }
        }
    }
    Ok(out)
}

/// A family answers its own invitation.
pub async fn family_reply(
    svc: &Services,
    actor: &Actor,
    invitation_id: &str,
    input: ReplyInput,
    now: DateTime<Utc>,
) -> Result<FamilyInvitation> {
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    svc.authorize(
        actor,
        Action::ReplyToMemorial,
        Resource::System,
        svc.entry(actor, Action::ReplyToMemorial, "memorial_invitation", now),
    )
    .await?;
    let case_id = super::family::own_case(svc, actor, now).await?;
    let row = match svc.store.invitation_by_id(invitation_id).await? {
        Some(r) if r.case_id == case_id => r,
        _ => {
            let entry = svc.entry(actor, Action::ReplyToMemorial, "memorial_invitation", now);
            let entry = if super::is_id(invitation_id) {
                entry.target(invitation_id)
            } else {
                entry
            };
            svc.audit.record(vec![entry.denied("not_found")]).await?;
            return Err(Error::NotFound);
        }
    };
    let event = svc
        .store
        .memorial_event_by_id(&row.event_id)
        .await?
        .ok_or(Error::NotFound)?;
    let updated = write_reply(svc, actor, Action::ReplyToMemorial, &event, row, input, now).await?;
    let case = svc
        .store
        .case_by_id(&case_id)
        .await?
        .ok_or(Error::NotFound)?;
    let key = case_key(svc, &case).await?;
    family_view(svc, key.as_ref(), &updated, now)
        .await?
        .ok_or(Error::NotFound)
}

/// Put a donor's name forward for the event's list. Allowed without a publicity consent (it may
/// come later), but the name is shown and exported only while one is in force.
pub async fn add_name(
    svc: &Services,
    actor: &Actor,
    event_id: &str,
    input: NameInput,
    now: DateTime<Utc>,
) -> Result<NameEntry> {
    let now = chrono::SubsecRound::trunc_subsecs(now, 6);
    let event = load_event(svc, actor, event_id, Action::ReadMemorials, now).await?;
    if !super::is_id(&input.case_id) {
        return Err(Error::field("case_id", "is not a case id"));
    }
    let Authorized { row: case, .. } = cases::load_authorized(
        svc,
        actor,
        &input.case_id,
        Action::ManageMemorialGuests,
        now,
    )
    .await?;
    if case.region != event.region {
        return Err(Error::field(
            "case_id",
            "is not a case of this event's region",
        ));
    }
    if !PROGRAMS.contains(&case.program.as_str()) {
        return Err(Error::field(
            "case_id",
            "memorial lists are for deceased organ and body donors",
        ));
    }
    let row = MemorialNameRow {
        event_id: event.id.clone(),
        case_id: case.id.clone(),
        added_by: actor.user_id.clone(),
        added_at: now,
    };
    let audit = svc
        .entry(actor, Action::ManageMemorialGuests, "memorial_name", now)
        .target(&event.id)
        .case(&case.id)
        .reason("add");
    svc.store.add_memorial_name(&row, &[audit]).await?;
    name_entry(svc, &case, row.added_at, now).await
}

pub async fn remove_name(
    svc: &Services,
    actor: &Actor,
    event_id: &str,
    case_id: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let event = load_event(svc, actor, event_id, Action::ReadMemorials, now).await?;
    cases::load_authorized(svc, actor, case_id, Action::ManageMemorialGuests, now).await?;
    let audit = svc
        .entry(actor, Action::ManageMemorialGuests, "memorial_name", now)
        .target(&event.id)
        .case(case_id)
        .reason("remove");
    // Taking off a name that is not there leaves the list as asked: nothing to record.
    svc.store
        .remove_memorial_name(&event.id, case_id, &[audit])
        .await?;
    Ok(())
}

async fn name_entry(
    svc: &Services,
    case: &crate::store::CaseRow,
    added_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<NameEntry> {
    let consent = consents::publicity_in_force(svc, &case.id, now).await?;
    let opened = match case_key(svc, case).await? {
        Some(k) => Some(cases::open_row(&k, case)?),
        None => None,
    };
    Ok(NameEntry {
        case_id: case.id.clone(),
        full_name: opened
            .as_ref()
            .filter(|_| consent)
            .map(|o| o.donor.full_name.clone()),
        publicity_consent: consent && opened.is_some(),
        program: case.program.clone(),
        donation_date: opened.map(|o| o.donation.date),
        added_at,
    })
}

/// The names put forward, in the caller's cases; a name is shown only with consent in force.
/// Each shown name is a recorded case view.
pub async fn names(
    svc: &Services,
    actor: &Actor,
    event_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<NameEntry>> {
    let event = load_event(svc, actor, event_id, Action::ReadMemorials, now).await?;
    let scope = guest_scope(actor)?;
    names_in(svc, actor, &event, &scope, "memorial_names", now).await
}

async fn names_in(
    svc: &Services,
    actor: &Actor,
    event: &MemorialEventRow,
    scope: &CaseScope,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<Vec<NameEntry>> {
    let rows = svc.store.memorial_names(&event.id, scope).await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut audit = Vec::new();
    for r in rows {
        let Some(case) = svc.store.case_by_id(&r.case_id).await? else {
            continue;
        };
        let e = name_entry(svc, &case, r.added_at, now).await?;
        if e.full_name.is_some() {
            audit.push(
                svc.entry(actor, Action::ReadCase, "case", now)
                    .target(&case.id)
                    .case(&case.id)
                    .reason(reason),
            );
        }
        out.push(e);
    }
    if !audit.is_empty() {
        svc.audit.record(audit).await?;
    }
    out.sort_by(|a, b| {
        b.publicity_consent
            .cmp(&a.publicity_consent)
            .then(a.full_name.cmp(&b.full_name))
    });
    Ok(out)
}

/// The engraver's list: the names of the whole region's list with a publicity consent in
/// force, nothing else (the region's supervisor).
pub async fn engraver_list(
    svc: &Services,
    actor: &Actor,
    event_id: &str,
    now: DateTime<Utc>,
) -> Result<(MemorialEventView, Vec<NameEntry>)> {
    let event = load_event(svc, actor, event_id, Action::ExportMemorialNames, now).await?;
    let scope = CaseScope::Region(event.region.clone());
    let mut names = names_in(svc, actor, &event, &scope, "engraver_list", now).await?;
    names.retain(|n| n.publicity_consent && n.full_name.is_some());
    names.sort_by(|a, b| a.full_name.cmp(&b.full_name));
    let audit = svc
        .entry(actor, Action::ExportMemorialNames, "memorial_event", now)
        .target(&event.id);
    svc.audit.record(vec![audit]).await?;
    Ok((event_view(svc, &event, None).await?, names))
}

/// The engraver's list as CSV: `full_name,program,donation_year`.
pub fn engraver_csv(names: &[NameEntry]) -> String {
    let mut out = String::from("full_name,program,donation_year\r\n");
    for n in names {
        let Some(name) = &n.full_name else { continue };
        out.push_str(&format!(
            "{},{},{}\r\n",
            super::honour::csv_field(name),
            n.program,
            n.donation_date
                .map(|d| chrono::Datelike::year(&d).to_string())
                .unwrap_or_default()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_names_its_bad_fields() {
        let bad = ReplyInput {
            reply: Some("maybe".into()),
            party_size: Some(40),
            needs: Some("x".repeat(MAX_NEEDS + 1)),
        };
        let Err(Error::Validation(e)) = validate_reply(&bad) else {
            panic!("refused");
        };
        let fields: Vec<&str> = e.keys().map(String::as_str).collect();
        assert_eq!(fields, ["needs", "party_size", "reply"]);
        let coming = ReplyInput {
            reply: Some("coming".into()),
            ..Default::default()
        };
        let Err(Error::Validation(e)) = validate_reply(&coming) else {
            panic!("coming needs a party size");
        };
        assert!(e.contains_key("party_size"));
        let declined = validate_reply(&ReplyInput {
            reply: Some("not_coming".into()),
            party_size: None,
            needs: Some("  ".into()),
        })
        .unwrap();
        assert_eq!(
            (declined.reply.as_str(), declined.party_size, declined.needs),
            ("not_coming", None, None)
        );
    }

    #[test]
    fn the_engravers_list_holds_only_consented_names() {
        let n = |name: Option<&str>, consent| NameEntry {
            case_id: "c".into(),
            full_name: name.map(str::to_string),
            publicity_consent: consent,
            program: "organ".into(),
            donation_date: NaiveDate::from_ymd_opt(2025, 4, 5),
            added_at: Utc::now(),
        };
        let csv = engraver_csv(&[
            n(Some("林小满"), true),
            n(None, false),
            n(Some("=1+1"), true),
        ]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines,
            [
                "full_name,program,donation_year",
                "林小满,organ,2025",
                "'=1+1,organ,2025"
            ]
        );
    }
}
