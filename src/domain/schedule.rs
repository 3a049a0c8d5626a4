//! Care plans and their materialisation: each open case's plan occurrences become tasks (and,
//! for outreach, one outbox message per recipient) up to a horizon, idempotently. A pass costs
//! in proportion to the cases it is given; the daily pass only takes cases whose horizon is
//! short or whose plan changed.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cases::{self, open_row, Authorized};
use super::contacts::ContactView;
use super::{new_id, Services};
use crate::error::{Error, Result, Validator};
use crate::policy::{Action, Actor, Resource};
use crate::schedule::calendar::{self, Festival};
use crate::schedule::plan::{self, Anchors, CasePreferences, Rule};
use crate::store::{
    CaseRow, CaseScheduleRow, ContactRow, Materialisation, NewMessage, OutreachRow, PlanRow,
    TaskRow, PLAN_DROPPED,
};

/// How scheduling and delivery are set up (`DONORCARE_*` settings).
#[derive(Debug, Clone)]
pub struct ScheduleSettings {
    /// Default zone of recipients (`DONORCARE_TIMEZONE`).
    pub default_tz: Tz,
    /// Local hours in which outreach may go out, `[start, end)` (`DONORCARE_WAKING_HOURS`).
    pub waking: (u32, u32),
    /// How far ahead occurrences become tasks.
    pub horizon_days: i64,
    /// At most `cap` messages to one family in `cap_period`, across all channels.
    pub cap: i64,
    pub cap_period: Duration,
    pub smtp_url: Option<String>,
    pub smtp_from: String,
    pub sms_url: Option<String>,
    /// The WeChat gateway (`DONORCARE_WECHAT_URL`): the same contract as the SMS one.
    pub wechat_url: Option<String>,
    pub outbox_dir: Option<PathBuf>,
    /// The domain part of each email's `Message-ID`.
    pub mail_domain: String,
    /// How long a worker holds a claimed message before another may take it.
    pub lease: Duration,
    pub max_attempts: i64,
    /// How often the worker looks for due messages.
    pub tick: std::time::Duration,
    /// A pass finding at least this many never-materialised open cases, and at least as many
    /// as the others, is a bulk load: see [`materialise_all`].
    pub bulk_threshold: i64,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        ScheduleSettings {
            default_tz: chrono_tz::Asia::Shanghai,
            waking: (9, 20),
            horizon_days: 400,
            cap: 3,
            cap_period: Duration::days(7),
            smtp_url: None,
            smtp_from: "donorcare@localhost".into(),
            sms_url: None,
            wechat_url: None,
            outbox_dir: None,
            mail_domain: "donorcare.invalid".into(),
            lease: Duration::seconds(60),
            max_attempts: 8,
            tick: std::time::Duration::from_secs(5),
            bulk_threshold: 10_000,
        }
    }
}

impl ScheduleSettings {
    pub fn waking_start(&self) -> NaiveTime {
        NaiveTime::from_hms_opt(self.waking.0, 0, 0).unwrap_or(NaiveTime::MIN)
    }
}

/// Parse `DONORCARE_WAKING_HOURS` (`09-20`).
pub fn parse_waking(s: &str) -> std::result::Result<(u32, u32), String> {
    let bad = || format!("waking hours {s:?} must look like 09-20 (start before end, 0-24)");
    let (a, b) = s.trim().split_once('-').ok_or_else(bad)?;
    let (a, b): (u32, u32) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
    if a >= b || b > 24 {
        return Err(bad());
    }
    Ok((a, b))
}

// ---------------------------------------------------------------------------------------------
// Care plans

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PlanView {
    /// `marrow`, `organ` or `body`.
    pub program: String,
    /// Bumped on every change; give it back when you change the plan.
    pub version: i64,
    pub rules: Vec<Rule>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanInput {
    /// The version you read; a plan changed since is a 409.
    pub version: i64,
    pub rules: Vec<Rule>,
}

fn plan_view(r: &PlanRow) -> Result<PlanView> {
    Ok(PlanView {
        program: r.program.clone(),
        version: r.version,
        rules: serde_json::from_str(&r.rules)
            .map_err(|e| anyhow::anyhow!("stored care plan {}: {e}", r.program))?,
        updated_at: r.updated_at,
    })
}

/// Store the default plans of programmes that have none yet (first start), and bring a stored
/// plan no admin has ever changed up to the current default (a release that adds rules, such
/// as the marrow deferral and second-donation messages, reaches installations made before it;
/// a plan an admin edited is theirs and is left alone). Each such update is a new version,
/// so the cases' schedules are made again under it, and it is audited.
pub async fn seed_plans(svc: &Services, now: DateTime<Utc>) -> Result<()> {
    let default_of =
        |p: &str| serde_json::to_string(&plan::default_rules(p)).unwrap_or_else(|_| "[]".into());
    let rows: Vec<PlanRow> = ["marrow", "organ", "body"]
        .into_iter()
        .map(|p| PlanRow {
            program: p.into(),
            version: 1,
            rules: default_of(p),
            updated_by: None,
            updated_at: now,
        })
        .collect();
    svc.store.seed_care_plans(&rows).await?;
    for stored in svc.store.care_plans().await? {
        let default = default_of(&stored.program);
        let same = serde_json::from_str::<serde_json::Value>(&stored.rules).ok()
            == serde_json::from_str::<serde_json::Value>(&default).ok();
        if stored.updated_by.is_some() || same {
            continue;
        }
        let row = PlanRow {
            program: stored.program.clone(),
            version: stored.version + 1,
            rules: default,
            updated_by: None,
            updated_at: now,
        };
        let audit = crate::audit::AuditEntry::new(None, "care_plan.update", "care_plan", now)
            .reason(&stored.program);
        // Another instance starting at the same time may have done it: then nothing to do.
        if svc
            .store
            .update_care_plan(&row, stored.version, &[audit])
            .await?
        {
            tracing::info!(program = %row.program, version = row.version, "care plan brought up to the current default");
        }
    }
    Ok(())
}

/// The rules of `program`'s plan (none if it has no plan).
pub async fn rules_of(svc: &Services, program: &str) -> Result<Vec<Rule>> {
    Ok(plans(svc)
        .await?
        .remove(program)
        .map(|p| p.rules)
        .unwrap_or_default())
}

async fn plans(svc: &Services) -> Result<HashMap<String, PlanView>> {
    svc.store
        .care_plans()
        .await?
        .iter()
        .map(|r| plan_view(r).map(|v| (v.program.clone(), v)))
        .collect()
}

pub async fn list_plans(
    svc: &Services,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<Vec<PlanView>> {
    svc.authorize(
        actor,
        Action::ReadCarePlans,
        Resource::System,
        svc.entry(actor, Action::ReadCarePlans, "care_plan", now),
    )
    .await?;
    let mut out: Vec<PlanView> = plans(svc).await?.into_values().collect();
    out.sort_by(|a, b| a.program.cmp(&b.program));
    Ok(out)
}

/// Replace a programme's rules. Every case of the programme is re-materialised in the
/// background (its future, unfinished occurrences follow the new rules).
pub async fn update_plan(
    svc: &Services,
    actor: &Actor,
    program: &str,
    input: PlanInput,
    now: DateTime<Utc>,
) -> Result<PlanView> {
    svc.authorize(
        actor,
        Action::ManageCarePlans,
        Resource::System,
        svc.entry(actor, Action::ManageCarePlans, "care_plan", now),
    )
    .await?;
    let current = plans(svc).await?;
    let Some(cur) = current.get(program) else {
        return Err(Error::NotFound);
    };
    let mut v = Validator::new();
    plan::validate(&input.rules, &mut v);
    v.finish()?;
    let row = PlanRow {
        program: program.into(),
        version: cur.version + 1,
        rules: serde_json::to_string(&input.rules).map_err(|e| anyhow::anyhow!(e))?,
        updated_by: Some(actor.user_id.clone()),
        updated_at: now,
    };
    let audit = svc
        .entry(actor, Action::ManageCarePlans, "care_plan", now)
        .reason(program);
    if input.version != cur.version
        || !svc
            .store
            .update_care_plan(&row, input.version, &[audit])
            .await?
    {
        return Err(Error::Conflict {
            field: Some("version".into()),
            message: format!(
                "the plan has changed since version {}; read it again",
                input.version
            ),
        });
    }
    tracing::info!(program, version = row.version, "care plan changed");
    plan_view(&row)
}

// ---------------------------------------------------------------------------------------------
// A case's schedule choices

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ScheduleView {
    pub case_id: String,
    #[serde(flatten)]
    pub preferences: CasePreferences,
    /// How far ahead the plan has been materialised.
    pub horizon: Option<NaiveDate>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesInput {
    pub mourning_days: Option<bool>,
    #[schema(schema_with = festivals_schema)]
    pub skip_festivals: Option<Vec<String>>,
}

fn preferences_of_row(s: &CaseScheduleRow) -> CasePreferences {
    CasePreferences {
        mourning_days: s.mourning_days,
        skip_festivals: serde_json::from_str(&s.skip_festivals).unwrap_or_default(),
    }
}

pub async fn preferences_of(
    svc: &Services,
    case_id: &str,
) -> Result<(CasePreferences, Option<NaiveDate>)> {
    Ok(match svc.store.case_schedule(case_id).await? {
        Some(s) => (preferences_of_row(&s), s.horizon),
        None => (CasePreferences::default(), None),
    })
}

/// Null, or festivals among [`Festival::ALL`].
pub(crate) fn festivals_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::list_of(
        &super::schema::names(&Festival::ALL, Festival::as_str),
        true,
    )
}

fn validate_preferences(input: &PreferencesInput, v: &mut Validator) {
    if let Some(f) = &input.skip_festivals {
        if f.iter().any(|x| Festival::parse(x).is_none()) {
            v.add(
                "skip_festivals",
                format!(
                    "must list festivals among {}",
                    super::schema::names(&Festival::ALL, Festival::as_str).join(", ")
                ),
            );
        }
    }
}

pub async fn get_schedule(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    now: DateTime<Utc>,
) -> Result<ScheduleView> {
    cases::load_authorized(svc, actor, case_id, Action::ReadOutreach, now).await?;
    let (preferences, horizon) = preferences_of(svc, case_id).await?;
    Ok(ScheduleView {
        case_id: case_id.into(),
        preferences,
        horizon,
    })
}

/// Apply choices already validated and authorised, then re-materialise the case at once: newly
/// wanted occurrences appear, unwanted future ones are cancelled.
async fn set_preferences(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    input: PreferencesInput,
    now: DateTime<Utc>,
) -> Result<ScheduleView> {
    let (mut prefs, _) = preferences_of(svc, case_id).await?;
    if let Some(m) = input.mourning_days {
        prefs.mourning_days = m;
    }
    if let Some(mut f) = input.skip_festivals {
        f.sort();
        f.dedup();
        prefs.skip_festivals = f;
    }
    let audit = svc
        .entry(actor, Action::ManageSchedule, "case", now)
        .target(case_id)
        .case(case_id);
    svc.store
        .put_case_preferences(
            case_id,
            prefs.mourning_days,
            &serde_json::to_string(&prefs.skip_festivals).unwrap_or_else(|_| "[]".into()),
            now,
            &[audit],
        )
        .await?;
    refresh_case(svc, case_id, now).await;
    let (preferences, horizon) = preferences_of(svc, case_id).await?;
    Ok(ScheduleView {
        case_id: case_id.into(),
        preferences,
        horizon,
    })
}

/// Staff change a case's choices (coordinator assigned, supervisor of the region).
pub async fn update_schedule(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    input: PreferencesInput,
    now: DateTime<Utc>,
) -> Result<ScheduleView> {
    cases::load_authorized(svc, actor, case_id, Action::ManageSchedule, now).await?;
    let mut v = Validator::new();
    validate_preferences(&input, &mut v);
    v.finish()?;
    set_preferences(svc, actor, case_id, input, now).await
}

/// A family's own preferences: their contact's (channel, opt-out, quiet period, language, zone)
/// and their case's schedule choices.
pub async fn family_preferences(
    svc: &Services,
    actor: &Actor,
    now: DateTime<Utc>,
) -> Result<(ContactView, CasePreferences)> {
    let c = super::contacts::family_view(svc, actor, now).await?;
    let (p, _) = preferences_of(svc, &c.case_id).await?;
    Ok((c, p))
}

/// A family changes its preferences with one merge patch. Everything is validated before
/// anything is written, so a bad festival name does not leave the contact half-changed.
pub async fn update_family_preferences(
    svc: &Services,
    actor: &Actor,
    mut patch: serde_json::Value,
    default_tz: &str,
    now: DateTime<Utc>,
) -> Result<(ContactView, CasePreferences)> {
    let Some(obj) = patch.as_object_mut() else {
        return Err(Error::field("body", "must be a JSON object"));
    };
    let mut v = Validator::new();
    let mourning_days = match obj.remove("mourning_days") {
        None => None,
        Some(serde_json::Value::Bool(b)) => Some(b),
        Some(_) => {
            v.add("mourning_days", "must be true or false");
            None
        }
    };
    let skip_festivals = match obj.remove("skip_festivals") {
        None => None,
        Some(f) => v.check(
            "skip_festivals",
            serde_json::from_value(f).map_err(|_| "must be a list of festival names".to_string()),
        ),
    };
    let input = PreferencesInput {
        mourning_days,
        skip_festivals,
    };
    validate_preferences(&input, &mut v);
    v.finish()?;
    let c = if obj.is_empty() {
        super::contacts::family_view(svc, actor, now).await?
    } else {
        super::contacts::family_update(svc, actor, patch, default_tz, now).await?
    };
    if input.mourning_days.is_some() || input.skip_festivals.is_some() {
        set_preferences(svc, actor, &c.case_id, input, now).await?;
    }
    let (p, _) = preferences_of(svc, &c.case_id).await?;
    Ok((c, p))
}

// ---------------------------------------------------------------------------------------------
// Materialisation

/// How far back occurrences are computed: enough for any grace period (at most 366 days), so
/// one late but still in time is made, and one already made is recognised.
const LOOKBACK_DAYS: i64 = 400;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Stats {
    pub cases: usize,
    /// Cases that could not be opened (logged).
    pub skipped: usize,
    pub created: usize,
    pub moved: usize,
    pub cancelled: usize,
    /// Tasks dropped from the plan earlier and wanted again.
    pub revived: usize,
    pub messages: usize,
}

fn parse_tz(s: &str, default: Tz) -> Tz {
    s.parse().unwrap_or(default)
}

/// Who an outreach occurrence goes to: the living donor (marrow), or each adult, living
/// contact of the family (organ and body donors).
pub(crate) struct Recipient {
    pub id: String,
    pub tz: Tz,
}

/// Materialise the plans of `case_ids` up to the horizon, in one transaction per call.
pub async fn materialise(svc: &Services, case_ids: &[String], now: DateTime<Utc>) -> Result<Stats> {
    let (m, stats) = prepare(svc, case_ids, now).await?;
    svc.store.apply_materialisation(&m).await?;
    Ok(stats)
}

/// What materialising `case_ids` would write, and its counts; nothing is written.
async fn prepare(
    svc: &Services,
    case_ids: &[String],
    now: DateTime<Utc>,
) -> Result<(Materialisation, Stats)> {
    let settings = &svc.schedule;
    let plans = plans(svc).await?;
    let rows = svc.store.cases_by_ids(case_ids).await?;
    let contacts = svc.store.contacts_for_cases(case_ids).await?;
    let schedules = svc.store.case_schedules(case_ids).await?;
    // Occurrences are computed from LOOKBACK_DAYS back; older tasks cannot collide.
    let existing = svc
        .store
        .plan_tasks(case_ids, now - Duration::days(LOOKBACK_DAYS + 1))
        .await?;
    let existing_msgs = svc.store.scheduled_outreach(case_ids).await?;

    let mut contacts_of: HashMap<&str, Vec<&ContactRow>> = HashMap::new();
    for c in &contacts {
        contacts_of.entry(c.case_id.as_str()).or_default().push(c);
    }
    let prefs_of: HashMap<&str, CasePreferences> = schedules
        .iter()
        .map(|s| (s.case_id.as_str(), preferences_of_row(s)))
        .collect();
    let mut tasks_of: HashMap<&str, Vec<&TaskRow>> = HashMap::new();
    for t in &existing {
        tasks_of.entry(t.case_id.as_str()).or_default().push(t);
    }
    let mut msgs_of: HashMap<&str, Vec<&OutreachRow>> = HashMap::new();
    for m in &existing_msgs {
        msgs_of.entry(m.task_id.as_str()).or_default().push(m);
    }

    let mut m = Materialisation {
        now,
        ..Default::default()
    };
    let mut stats = Stats::default();
    for row in &rows {
        if row.status != "open" {
            continue;
        }
        let Some(plan) = plans.get(&row.program) else {
            continue;
        };
        let cs: &[&ContactRow] = contacts_of
            .get(row.id.as_str())
            .map(|v| v.as_slice())
            .unwrap_or(&[]);
        // One case that cannot be opened must not stop the others: it is logged and skipped
        // (and taken again next pass).
        let opened = async {
            let Some(key) = cases::case_key(svc, row).await? else {
                return Ok(None);
            };
            let opened = open_row(&key, row)?;
            let recipients = recipients(svc, &key, row, &opened.donor, cs)?;
            Ok::<_, Error>(Some((opened, recipients)))
        }
        .await;
        let (opened, recipients) = match opened {
            Ok(Some(o)) => o,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(case_id = %row.id, error = %e, "cannot materialise this case; skipped");
                stats.skipped += 1;
                continue;
            }
        };
        let case_tz = recipients
            .first()
            .map(|r| r.tz)
            .unwrap_or(settings.default_tz);
        let anchors = Anchors {
            donation: Some(opened.donation.date),
            death: opened.donor.death_date.or(if opened.donor.deceased {
                Some(opened.donation.date)
            } else {
                None
            }),
            // The day it was registered on the case's clock, not UTC's (the two differ for
            // hours of every day in any zone but UTC).
            registration: Some(calendar::local_date(case_tz, row.created_at)),
            birth: opened.donor.birth_date,
            donation_kind: Some(opened.donation.kind.clone()),
        };
        let prefs = prefs_of.get(row.id.as_str()).cloned().unwrap_or_default();
        let today = calendar::local_date(case_tz, now);
        let horizon = today + Duration::days(settings.horizon_days);
        let occurrences = plan::occurrences(
            &plan.rules,
            &anchors,
            &prefs,
            today - Duration::days(LOOKBACK_DAYS),
            horizon,
            settings.waking_start(),
            case_tz,
        );
        materialise_case(
            row,
            &occurrences,
            &recipients,
            case_tz,
            &tasks_of,
            &msgs_of,
            now,
            &mut m,
            &mut stats,
        );
        m.schedules.push((row.id.clone(), horizon, plan.version));
        stats.cases += 1;
    }
    Ok((m, stats))
}

pub(crate) fn recipients(
    svc: &Services,
    key: &crate::crypto::SecretKey,
    row: &CaseRow,
    donor: &cases::Donor,
    contacts: &[&ContactRow],
) -> Result<Vec<Recipient>> {
    let default = svc.schedule.default_tz;
    if row.program == "marrow" {
        if donor.deceased {
            return Ok(Vec::new());
        }
        return Ok(vec![Recipient {
            id: "donor".into(),
            tz: donor
                .timezone
                .as_deref()
                .map_or(default, |t| parse_tz(t, default)),
        }]);
    }
    let mut out = Vec::new();
    for c in contacts {
        let v = super::contacts::open_view(key, c)?;
        if v.minor || v.deceased {
            continue;
        }
        out.push(Recipient {
            id: c.id.clone(),
            tz: parse_tz(&c.timezone, default),
        });
    }
    Ok(out)
}

#[allow(clippy::too_many_arguments)]
fn materialise_case(
    row: &CaseRow,
    occurrences: &[plan::Occurrence],
    recipients: &[Recipient],
    case_tz: Tz,
    tasks_of: &HashMap<&str, Vec<&TaskRow>>,
    msgs_of: &HashMap<&str, Vec<&OutreachRow>>,
    now: DateTime<Utc>,
    m: &mut Materialisation,
    stats: &mut Stats,
) {
    let existing: HashMap<(&str, &str), &TaskRow> = tasks_of
        .get(row.id.as_str())
        .map(|ts| {
            ts.iter()
                .filter_map(|t| Some(((t.rule_id.as_deref()?, t.occurrence.as_deref()?), *t)))
                .collect()
        })
        .unwrap_or_default();
    let mut wanted: HashSet<(&str, &str)> = HashSet::new();
    for o in occurrences {
        let due = plan::due_at(o, case_tz);
        let grace_until = due + o.grace;
        if grace_until < now {
            continue;
        }
        wanted.insert((o.rule_id.as_str(), o.key.as_str()));
        // Outreach with nobody to receive it waits until someone can (a contact is added).
        if o.action == "outreach"
            && recipients.is_empty()
            && !existing.contains_key(&(o.rule_id.as_str(), o.key.as_str()))
        {
            continue;
        }
        let task_id = match existing.get(&(o.rule_id.as_str(), o.key.as_str())) {
            // Dropped by a plan change or a family's choice that has been undone: it comes back
            // (with new messages).
            Some(t)
                if t.status == "cancelled" && t.cancel_reason.as_deref() == Some(PLAN_DROPPED) =>
            {
                m.revived_tasks.push((t.id.clone(), due, grace_until));
                stats.revived += 1;
                t.id.clone()
            }
            // Done, or cancelled by staff or with the case: this occurrence has been dealt with.
            Some(t) if t.status != "scheduled" => continue,
            Some(t) => {
                if t.due_at != due {
                    // The anchor moved: the task and its pending messages follow.
                    m.moved_tasks.push((t.id.clone(), due, grace_until));
                    let shift = due - t.due_at;
                    for msg in msgs_of.get(t.id.as_str()).into_iter().flatten() {
                        m.moved_outreach.push((
                            msg.id.clone(),
                            msg.due_at + shift,
                            msg.grace_until + shift,
                        ));
                    }
                    stats.moved += 1;
                }
                t.id.clone()
            }
            None => {
                let id = new_id();
                m.new_tasks.push(TaskRow {
                    id: id.clone(),
                    case_id: row.id.clone(),
                    kind: o.action.clone(),
                    due_at: due,
                    assignee_id: None,
                    contact_id: None,
                    template: o.template.clone(),
                    status: "scheduled".into(),
                    details: None,
                    created_by: row.created_by.clone(),
                    created_at: now,
                    updated_at: now,
                    completed_at: None,
                    completed_by: None,
                    rule_id: Some(o.rule_id.clone()),
                    occurrence: Some(o.key.clone()),
                    grace_until: Some(grace_until),
                    cancel_reason: None,
                    region: row.region.clone(),
                });
                stats.created += 1;
                id
            }
        };
        if o.action != "outreach" {
            continue;
        }
        let have: HashSet<&str> = msgs_of
            .get(task_id.as_str())
            .into_iter()
            .flatten()
            .map(|m| m.recipient.as_str())
            .collect();
        for r in recipients.iter().filter(|r| !have.contains(r.id.as_str())) {
            let due = calendar::local_to_utc(r.tz, o.local);
            m.new_outreach.push(OutreachRow::scheduled(
                NewMessage {
                    id: new_id(),
                    task_id: &task_id,
                    case_id: &row.id,
                    recipient: &r.id,
                    channel: o.channel.clone(),
                    template: o.template.clone().unwrap_or_default(),
                    due_at: due,
                    grace_until: due + o.grace,
                },
                now,
            ));
            stats.messages += 1;
        }
    }
    for ((rule, key), t) in &existing {
        if t.status == "scheduled" && !wanted.contains(&(*rule, *key)) && t.due_at > now {
            m.cancelled_tasks.push((t.id.clone(), PLAN_DROPPED.into()));
            stats.cancelled += 1;
        }
    }
}

/// One pass over every open case whose schedule is short of the horizon or made under an older
/// plan, in batches of `batch`, logging progress. Returns what it did.
///
/// A bulk load (the first pass after an import or an upgrade: many cases never materialised,
/// at least as many as the rest) drops the indexes keyed by due time first and builds them again
/// at the end, sorted, instead of writing all over them batch after batch; the drop is recorded
/// with the index definitions, so a crash mid-pass is repaired at the next start. Meanwhile the
/// outreach worker's look for due messages scans the table instead of the index.
pub async fn materialise_all(svc: &Services, now: DateTime<Utc>, batch: i64) -> Result<Stats> {
    let horizon = calendar::local_date(svc.schedule.default_tz, now)
        + Duration::days(svc.schedule.horizon_days - 1);
    // Counting is for passes of more than one batch; the hourly pass usually finds none.
    let first = svc.store.cases_to_materialise(horizon, "", batch).await?;
    let bulk = first.len() as i64 == batch && {
        let (new, open) = svc.store.never_materialised().await?;
        new >= svc.schedule.bulk_threshold && new * 2 >= open
    };
    let dropped = bulk && svc.store.drop_bulk_indexes().await?;
    if dropped {
        tracing::info!("bulk materialisation: indexes keyed by due time dropped until the end");
    }
    let result = if first.is_empty() {
        Ok(Stats::default())
    } else {
        materialise_pass(svc, now, horizon, batch, first).await
    };
    if dropped {
        let started = std::time::Instant::now();
        let rebuilt = svc.store.rebuild_bulk_indexes().await?;
        tracing::info!(
            rebuilt,
            ms = started.elapsed().as_millis() as u64,
            "bulk materialisation: indexes rebuilt"
        );
    }
    result
}

/// The pass of [`materialise_all`] from its `first` batch on.
async fn materialise_pass(
    svc: &Services,
    now: DateTime<Utc>,
    horizon: NaiveDate,
    batch: i64,
    first: Vec<String>,
) -> Result<Stats> {
    let mut first = Some(first);
    let mut after = String::new();
    let mut total = Stats::default();
    let started = std::time::Instant::now();
    let mut last_progress = started;
    // Batch after batch, the next is read and computed while the last is written (reading and
    // computing take about as long as writing: `benches/schedule.rs`, phases).
    let mut writing: Option<tokio::task::JoinHandle<Result<()>>> = None;
    let finish = |w: Option<tokio::task::JoinHandle<Result<()>>>| async move {
        match w {
            Some(w) => w
                .await
                .map_err(|e| anyhow::anyhow!("writing a materialisation batch: {e}"))?,
            None => Ok(()),
        }
    };
    loop {
        let next = async {
            let ids = match first.take() {
                Some(ids) => ids,
                None => {
                    svc.store
                        .cases_to_materialise(horizon, &after, batch)
                        .await?
                }
            };
            match ids.last().cloned() {
                Some(last) => Ok(Some((last, prepare(svc, &ids, now).await?))),
                None => Ok::<_, Error>(None),
            }
        }
        .await;
        // The batch before is written (or has failed) before this one is.
        finish(writing.take()).await?;
        let Some((last, (m, s))) = next? else {
            break;
        };
        let store = svc.store.clone();
        writing = Some(tokio::spawn(async move {
            store.apply_materialisation(&m).await
        }));
        total.cases += s.cases;
        total.skipped += s.skipped;
        total.created += s.created;
        total.moved += s.moved;
        total.cancelled += s.cancelled;
        total.revived += s.revived;
        total.messages += s.messages;
        // Progress every few seconds of a long pass.
        if last_progress.elapsed() > std::time::Duration::from_secs(5) {
            tracing::info!(
                cases = total.cases,
                tasks = total.created,
                "materialising care plans"
            );
            last_progress = std::time::Instant::now();
        }
        after = last;
    }
    finish(writing.take()).await?;
    if total.cases > 0 {
        tracing::info!(
            cases = total.cases,
            created = total.created,
            moved = total.moved,
            cancelled = total.cancelled,
            revived = total.revived,
            messages = total.messages,
            skipped = total.skipped,
            ms = started.elapsed().as_millis() as u64,
            "care plans materialised"
        );
    }
    Ok(total)
}

/// After a change to a case, its contacts or its choices: materialise it, then run the validity
/// rules (which also look at its pending messages). Failures are logged, not returned: the
/// hourly pass and the next change catch up.
pub async fn refresh_case(svc: &Services, case_id: &str, now: DateTime<Utc>) {
    if let Err(e) = materialise(svc, &[case_id.to_string()], now).await {
        tracing::warn!(case_id, error = %e, "materialising a case failed");
    }
    // New or moved messages may lack a consent: the rules look again.
    super::findings::refresh(svc, case_id, now).await;
}

/// Authorised access to a case for reading its outreach.
pub async fn authorize_outreach(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    now: DateTime<Utc>,
) -> Result<Authorized> {
    cases::load_authorized(svc, actor, case_id, Action::ReadOutreach, now).await
}

// ---------------------------------------------------------------------------------------------
// A care plan's preview

/// A made-up case to preview a plan on: its anchors, whether the family keeps the mourning
/// days, and the days to show.
#[derive(Debug, Clone)]
pub struct PlanSample {
    pub anchors: Anchors,
    pub mourning_days: bool,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

/// One date a plan makes for the sample case.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewDate {
    pub rule_id: String,
    /// The occurrence within its rule (`once`, `y3`, `2027`, `d49`, …).
    pub key: String,
    pub date: NaiveDate,
    /// Local time of day, `HH:MM`.
    pub time: String,
    pub action: String,
    pub template: Option<String>,
    pub channel: Option<String>,
}

/// The most dates a preview lists.
pub const PREVIEW_LIMIT: usize = 500;

/// The dates `rules` would make for `sample` (admin), computed by the same code that
/// materialises plans; nothing is saved. The rules are validated as a save would validate them.
pub async fn preview_plan(
    svc: &Services,
    actor: &Actor,
    program: &str,
    rules: &[Rule],
    sample: &PlanSample,
    now: DateTime<Utc>,
) -> Result<Vec<PreviewDate>> {
    svc.authorize(
        actor,
        Action::ManageCarePlans,
        Resource::System,
        svc.entry(actor, Action::ManageCarePlans, "care_plan", now),
    )
    .await?;
    if !plans(svc).await?.contains_key(program) {
        return Err(Error::NotFound);
    }
    let mut v = Validator::new();
    plan::validate(rules, &mut v);
    v.finish()?;
    let prefs = CasePreferences {
        mourning_days: sample.mourning_days,
        skip_festivals: Vec::new(),
    };
    let mut found = plan::occurrences(
        rules,
        &sample.anchors,
        &prefs,
        sample.from,
        sample.to,
        svc.schedule.waking_start(),
        svc.schedule.default_tz,
    );
    found.sort_by(|a, b| a.local.cmp(&b.local).then(a.rule_id.cmp(&b.rule_id)));
    found.truncate(PREVIEW_LIMIT);
    Ok(found
        .into_iter()
        .map(|o| PreviewDate {
            rule_id: o.rule_id,
            key: o.key,
            date: o.local.date(),
            time: o.local.format("%H:%M").to_string(),
            action: o.action,
            template: o.template,
            channel: o.channel,
        })
        .collect())
}
