//! Storage of care plans, materialised occurrences and the outreach outbox. The SQL is shared by
//! both backends through [`schedule_impl!`]; only the claim differs (PostgreSQL skips rows
//! another instance has locked, SQLite has one writer at a time).

use chrono::{DateTime, NaiveDate, Utc};

use super::TaskRow;
use crate::audit::AuditEntry;
use crate::error::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PlanRow {
    pub program: String,
    pub version: i64,
    /// The rules, as JSON.
    pub rules: String,
    pub updated_by: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// What a new message of the outbox is made from (by a plan, or by hand).
pub struct NewMessage<'a> {
    pub id: String,
    pub task_id: &'a str,
    pub case_id: &'a str,
    pub recipient: &'a str,
    pub channel: Option<String>,
    pub template: String,
    pub due_at: DateTime<Utc>,
    pub grace_until: DateTime<Utc>,
}

impl OutreachRow {
    /// A new message, scheduled and due at `m.due_at`.
    pub fn scheduled(m: NewMessage<'_>, now: DateTime<Utc>) -> OutreachRow {
        OutreachRow {
            id: m.id,
            task_id: m.task_id.to_string(),
            case_id: m.case_id.to_string(),
            recipient: m.recipient.to_string(),
            channel: m.channel,
            template: m.template,
            status: "scheduled".into(),
            reason: None,
            due_at: m.due_at,
            grace_until: m.grace_until,
            next_attempt_at: Some(m.due_at),
            attempts: 0,
            lease_owner: None,
            lease_until: None,
            sent_at: None,
            created_at: now,
            updated_at: now,
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CaseScheduleRow {
    pub case_id: String,
    pub mourning_days: bool,
    /// JSON list of festival names.
    pub skip_festivals: String,
    pub plan_version: i64,
    pub horizon: Option<NaiveDate>,
    pub updated_at: DateTime<Utc>,
}

pub const OUTREACH_COLUMNS: &str = "id, task_id, case_id, recipient, channel, template, status, \
     reason, due_at, grace_until, next_attempt_at, attempts, lease_owner, lease_until, sent_at, \
     created_at, updated_at";

/// One message of the outbox.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutreachRow {
    pub id: String,
    pub task_id: String,
    pub case_id: String,
    /// `donor` or a contact id.
    pub recipient: String,
    /// Decided at send time unless the rule names one.
    pub channel: Option<String>,
    pub template: String,
    pub status: String,
    pub reason: Option<String>,
    pub due_at: DateTime<Utc>,
    pub grace_until: DateTime<Utc>,
    /// When a worker may next take it; `None` once it is settled.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub attempts: i64,
    pub lease_owner: Option<String>,
    pub lease_until: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A rendered message in a family's portal inbox, sealed under the case key.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PortalRow {
    pub outreach_id: String,
    pub case_id: String,
    pub recipient: String,
    pub sealed: Vec<u8>,
    pub created_at: DateTime<Utc>,
}

/// What one materialisation pass writes, in one transaction.
#[derive(Debug, Default)]
pub struct Materialisation {
    pub new_tasks: Vec<TaskRow>,
    /// (task id, due, grace until) of scheduled tasks whose anchor moved.
    pub moved_tasks: Vec<(String, DateTime<Utc>, DateTime<Utc>)>,
    /// Scheduled plan tasks no rule asks for any more, with why.
    pub cancelled_tasks: Vec<(String, String)>,
    pub new_outreach: Vec<OutreachRow>,
    /// (outreach id, due, grace until) of scheduled messages whose task moved.
    pub moved_outreach: Vec<(String, DateTime<Utc>, DateTime<Utc>)>,
    /// (case id, horizon, plan version) to record.
    pub schedules: Vec<(String, NaiveDate, i64)>,
    /// (task id, due, grace until) of tasks cancelled with [`PLAN_DROPPED`] that are wanted
    /// again: scheduled again, their cancelled messages replaced by new ones.
    pub revived_tasks: Vec<(String, DateTime<Utc>, DateTime<Utc>)>,
    pub now: DateTime<Utc>,
}

/// Why a plan task is cancelled when no rule asks for its occurrence any more (a rule removed,
/// a festival skipped, mourning days declined); such a task comes back if it is wanted again.
pub const PLAN_DROPPED: &str = "no_longer_in_plan";

/// How a worker settles a claimed message.
#[derive(Debug, Clone)]
pub struct Settle {
    pub id: String,
    pub task_id: String,
    pub status: String,
    pub reason: Option<String>,
    pub channel: Option<String>,
    /// For a retry or a deferral.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub portal: Option<PortalRow>,
}

/// Which pending messages to cancel.
#[derive(Debug, Clone)]
pub struct CancelOutreach {
    pub case_id: String,
    /// Only this recipient's (`donor` or a contact id).
    pub recipient: Option<String>,
    /// Only messages that would go out on one of these channels (a rule's fixed channel, or
    /// the recipient's preferred one when the rule names none).
    pub channels: Option<Vec<String>>,
    /// Only messages of tasks made by this care-plan rule, due at or before `due_by`.
    pub rule: Option<(String, DateTime<Utc>)>,
    pub reason: String,
}

/// Which planned uses to cancel: a person's of one kind.
#[derive(Debug, Clone)]
pub struct CancelUses {
    pub case_id: String,
    /// `donor` or a contact id.
    pub subject: String,
    /// `publicity` or `research`.
    pub kind: String,
    pub reason: String,
}

/// What a consent withdrawal cancels in its own transaction.
#[derive(Debug, Clone)]
pub enum Cancel {
    Outreach(CancelOutreach),
    Uses(CancelUses),
}

/// A planned publicity or research use of someone's data.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UseRow {
    pub id: String,
    pub case_id: String,
    pub kind: String,
    pub subject: String,
    pub planned_on: NaiveDate,
    pub status: String,
    pub reason: Option<String>,
    /// The description, sealed under the case key.
    pub sealed: Vec<u8>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

#[async_trait::async_trait]
pub trait ScheduleStore: Send + Sync {
    async fn care_plans(&self) -> Result<Vec<PlanRow>>;
    /// Insert the plans that are missing (first start); existing plans are kept.
    async fn seed_care_plans(&self, rows: &[PlanRow]) -> Result<()>;
    /// Replace a plan if it is still at `expected_version`; false if someone else changed it.
    async fn update_care_plan(
        &self,
        row: &PlanRow,
        expected_version: i64,
        audit: &[AuditEntry],
    ) -> Result<bool>;

    async fn case_schedule(&self, case_id: &str) -> Result<Option<CaseScheduleRow>>;
    async fn case_schedules(&self, case_ids: &[String]) -> Result<Vec<CaseScheduleRow>>;
    async fn put_case_preferences(
        &self,
        case_id: &str,
        mourning_days: bool,
        skip_festivals: &str,
        now: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<()>;
    /// Open cases whose schedule reaches less far than `horizon` or was made under another plan
    /// version, after `after` in id order.
    async fn cases_to_materialise(
        &self,
        horizon: NaiveDate,
        after: &str,
        limit: i64,
    ) -> Result<Vec<String>>;

    /// Open cases never materialised (no schedule yet), and all open cases.
    async fn never_materialised(&self) -> Result<(i64, i64)>;
    async fn cases_by_ids(&self, ids: &[String]) -> Result<Vec<super::CaseRow>>;
    async fn contacts_for_cases(&self, ids: &[String]) -> Result<Vec<super::ContactRow>>;
    /// Plan-made tasks of these cases due since `since`, whatever their status (a done or
    /// cancelled occurrence is not made again).
    async fn plan_tasks(&self, case_ids: &[String], since: DateTime<Utc>) -> Result<Vec<TaskRow>>;
    /// Scheduled messages of these cases.
    async fn scheduled_outreach(&self, case_ids: &[String]) -> Result<Vec<OutreachRow>>;
    async fn apply_materialisation(&self, m: &Materialisation) -> Result<()>;

    /// Whether any message is due (a cheap read before a claim).
    async fn outreach_due(&self, now: DateTime<Utc>) -> Result<bool>;
    /// Take up to `limit` due messages under a lease.
    async fn claim_outreach(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutreachRow>>;
    /// Extend this worker's lease on a claimed message to `until`, if it still holds it and
    /// the lease has not run out (another worker may have taken it since); false otherwise.
    async fn renew_outreach_lease(
        &self,
        owner: &str,
        id: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool>;
    /// Record what happened to a claimed message, if this worker still holds it.
    async fn settle_outreach(&self, owner: &str, s: &Settle, now: DateTime<Utc>) -> Result<bool>;
    async fn outreach_by_id(&self, id: &str) -> Result<Option<OutreachRow>>;
    async fn list_outreach(
        &self,
        case_id: &str,
        recipient: Option<&str>,
        after: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<OutreachRow>>;
    /// Messages in `statuses` (some of held, dead, failed) in the cases of `scope`, in due order
    /// after `after`.
    async fn attention_outreach(
        &self,
        scope: &super::CaseScope,
        statuses: &[String],
        after: Option<(DateTime<Utc>, String)>,
        limit: i64,
    ) -> Result<Vec<OutreachRow>>;
    /// The messages of `task_ids`, which belong to `case_ids` (the case index finds them), in
    /// due order.
    async fn outreach_of_tasks(
        &self,
        case_ids: &[String],
        task_ids: &[String],
    ) -> Result<Vec<OutreachRow>>;
    /// Messages sent to a case's family since `since`, on any channel.
    async fn sent_since(&self, case_id: &str, since: DateTime<Utc>) -> Result<i64>;
    async fn cancel_outreach(
        &self,
        c: &CancelOutreach,
        now: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<u64>;
    /// Cancel every scheduled plan task and pending message of a case (closed or erased).
    async fn cancel_case_schedule(
        &self,
        case_id: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<u64>;
    /// Move a scheduled task and its pending messages; `details` is its new sealed details.
    async fn reschedule_task(
        &self,
        id: &str,
        due_at: DateTime<Utc>,
        details: &[u8],
        now: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<bool>;
    async fn cancel_task(
        &self,
        id: &str,
        reason: &str,
        details: &[u8],
        now: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<bool>;
    /// The portal copies of these messages (those that went to a portal inbox).
    async fn portal_messages(&self, outreach_ids: &[String]) -> Result<Vec<PortalRow>>;
    async fn insert_use(&self, row: &UseRow, audit: &[AuditEntry]) -> Result<()>;
    async fn uses_for_case(&self, case_id: &str) -> Result<Vec<UseRow>>;
    /// Put back in the queue, due now, the messages to `recipient` held for a reason starting
    /// with `reason` and still within their grace period; returns how many.
    async fn requeue_held(
        &self,
        case_id: &str,
        recipient: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<u64>;
    /// Active coordinators with an email address: who gets a daily digest.
    async fn digest_recipients(&self) -> Result<Vec<super::UserRow>>;
    /// Take the digest of `user_id` for `day`; false if another instance (or an earlier run)
    /// has. A failed send gives it back with [`ScheduleStore::unclaim_digest`].
    async fn claim_digest(&self, user_id: &str, day: NaiveDate, now: DateTime<Utc>)
        -> Result<bool>;
    async fn unclaim_digest(&self, user_id: &str, day: NaiveDate) -> Result<()>;
    /// Put a held or dead message back in the queue, due now; false if it is not held or dead.
    async fn release_outreach(
        &self,
        id: &str,
        now: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<bool>;
    /// Cancel one held or dead message for good; false if it is not held or dead (or a worker
    /// holds it).
    async fn cancel_message(
        &self,
        id: &str,
        now: DateTime<Utc>,
        audit: &[AuditEntry],
    ) -> Result<bool>;
    /// Letters sent in `[from, to)` in a coordinator's cases (`assigned_to`) or a region.
    async fn letters_sent(
        &self,
        assigned_to: Option<&str>,
        region: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutreachRow>>;
    /// When the case's last visit was completed, if ever.
    async fn last_visit_done(&self, case_id: &str) -> Result<Option<DateTime<Utc>>>;
    /// Scheduled tasks due before `before` in the cases a coordinator is assigned to.
    async fn coordinator_due(
        &self,
        user_id: &str,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<TaskRow>>;
}

/// Expands to the [`ScheduleStore`] implementation of `$store` over `$db`. `$claim` is the
/// backend's claim statement: `$1` owner, `$2` now, `$3` lease end, `$4` limit.
macro_rules! schedule_impl {
    ($store:ty, $db:ty, $claim:expr) => {
        #[async_trait::async_trait]
        impl ScheduleStore for $store {
            async fn care_plans(&self) -> Result<Vec<PlanRow>> {
                Ok(sqlx::query_as::<$db, PlanRow>(
                    "select program, version, rules, updated_by, updated_at from care_plans order by program",
                )
                .fetch_all(&self.pool)
                .await?)
            }

            async fn seed_care_plans(&self, rows: &[PlanRow]) -> Result<()> {
                let mut tx = self.begin_write().await?;
                for r in rows {
                    sqlx::query(
                        "insert into care_plans (program, version, rules, updated_by, updated_at) \
                         values ($1, $2, $3, $4, $5) on conflict (program) do nothing",
                    )
                    .bind(&r.program)
                    .bind(r.version)
                    .bind(&r.rules)
                    .bind(&r.updated_by)
                    .bind(r.updated_at)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn update_care_plan(
                &self,
                r: &PlanRow,
                expected_version: i64,
                audit: &[AuditEntry],
            ) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "update care_plans set version = $1, rules = $2, updated_by = $3, updated_at = $4 \
                     where program = $5 and version = $6",
                )
                .bind(r.version)
                .bind(&r.rules)
                .bind(&r.updated_by)
                .bind(r.updated_at)
                .bind(&r.program)
                .bind(expected_version)
                .execute(&mut *tx)
                .await?;
                commit_if_one(tx, done.rows_affected(), audit).await
            }

            async fn case_schedule(&self, case_id: &str) -> Result<Option<CaseScheduleRow>> {
                Ok(sqlx::query_as::<$db, CaseScheduleRow>(
                    "select case_id, mourning_days, skip_festivals, plan_version, horizon, updated_at \
                     from case_schedules where case_id = $1",
                )
                .bind(case_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn case_schedules(&self, case_ids: &[String]) -> Result<Vec<CaseScheduleRow>> {
                fetch_for_ids::<CaseScheduleRow>(&self.pool, "select case_id, mourning_days, skip_festivals, plan_version, horizon, updated_at \
                         from case_schedules where case_id in (", case_ids, "").await
            }

            async fn put_case_preferences(
                &self,
                case_id: &str,
                mourning_days: bool,
                skip_festivals: &str,
                now: DateTime<Utc>,
                audit: &[AuditEntry],
            ) -> Result<()> {
                let mut tx = self.begin_write().await?;
                // Reset the horizon so the next pass re-materialises the case under the new choices.
                sqlx::query(
                    "insert into case_schedules (case_id, mourning_days, skip_festivals, plan_version, horizon, updated_at) \
                     values ($1, $2, $3, 0, null, $4) \
                     on conflict (case_id) do update set mourning_days = $2, skip_festivals = $3, \
                     horizon = null, updated_at = $4",
                )
                .bind(case_id)
                .bind(mourning_days)
                .bind(skip_festivals)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                append_entries(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn never_materialised(&self) -> Result<(i64, i64)> {
                Ok(sqlx::query_as(
                    "select coalesce(sum(case when s.case_id is null then 1 else 0 end), 0), count(*) \
                     from cases c left join case_schedules s on s.case_id = c.id \
                     where c.status = 'open'",
                )
                .fetch_one(&self.pool)
                .await?)
            }

            async fn cases_to_materialise(
                &self,
                horizon: chrono::NaiveDate,
                after: &str,
                limit: i64,
            ) -> Result<Vec<String>> {
                let rows: Vec<(String,)> = sqlx::query_as(
                    "select c.id from cases c left join case_schedules s on s.case_id = c.id \
                     where c.status = 'open' and c.id > $1 and (s.horizon is null or s.horizon < $2 \
                     or s.plan_version <> (select p.version from care_plans p where p.program = c.program)) \
                     order by c.id limit $3",
                )
                .bind(after)
                .bind(horizon)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
                Ok(rows.into_iter().map(|(id,)| id).collect())
            }

            async fn cases_by_ids(&self, ids: &[String]) -> Result<Vec<CaseRow>> {
                fetch_for_ids::<CaseRow>(&self.pool, &format!(
                        "select {} from cases c left join case_keys k on k.case_id = c.id where c.id in (",
                        shared::CASE_COLUMNS
                    ), ids, "").await
            }

            async fn contacts_for_cases(&self, ids: &[String]) -> Result<Vec<ContactRow>> {
                fetch_for_ids::<ContactRow>(&self.pool, &format!(
                        "select {} from contacts where case_id in (",
                        shared::CONTACT_COLUMNS
                    ), ids, " order by case_id, id").await
            }

            async fn plan_tasks(&self, case_ids: &[String], since: DateTime<Utc>) -> Result<Vec<TaskRow>> {
                let mut out = Vec::new();
                for chunk in case_ids.chunks(500) {
                    let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                        "select {} from tasks t join cases c on c.id = t.case_id \
                         where t.rule_id is not null and t.due_at >= ",
                        shared::TASK_COLUMNS
                    ));
                    b.push_bind(since);
                    b.push(" and t.case_id in (");
                    let mut sep = b.separated(", ");
                    for id in chunk {
                        sep.push_bind(id.clone());
                    }
                    b.push(")");
                    out.extend(
                        b.build_query_as::<TaskRow>()
                            .persistent(shared::keep_prepared(chunk.len(), 500))
                            .fetch_all(&self.pool)
                            .await?,
                    );
                }
                Ok(out)
            }

            async fn scheduled_outreach(&self, case_ids: &[String]) -> Result<Vec<OutreachRow>> {
                fetch_for_ids::<OutreachRow>(&self.pool, &format!(
                        "select {} from outreach where status = 'scheduled' and case_id in (",
                        OUTREACH_COLUMNS
                    ), case_ids, "").await
            }

            async fn apply_materialisation(&self, m: &Materialisation) -> Result<()> {
                let mut tx = self.begin_write().await?;
                let mut inserted = std::collections::HashSet::new();
                for chunk in m.new_tasks.chunks(400) {
                    let mut b = sqlx::QueryBuilder::<$db>::new(
                        "insert into tasks (id, case_id, kind, due_at, assignee_id, contact_id, template, \
                         status, created_by, created_at, updated_at, rule_id, occurrence, grace_until) ",
                    );
                    b.push_values(chunk, |mut r, t| {
                        // Bound by reference: a pass binds millions of strings, and copies
                        // of each only to be freed again kept the allocator's share of
                        // resident memory up (docs/benchmarks.md, memory of materialisation).
                        r.push_bind(t.id.as_str())
                            .push_bind(t.case_id.as_str())
                            .push_bind(t.kind.as_str())
                            .push_bind(t.due_at)
                            .push_bind(t.assignee_id.as_deref())
                            .push_bind(t.contact_id.as_deref())
                            .push_bind(t.template.as_deref())
                            .push_bind(t.status.as_str())
                            .push_bind(t.created_by.as_str())
                            .push_bind(t.created_at)
                            .push_bind(t.updated_at)
                            .push_bind(t.rule_id.as_deref())
                            .push_bind(t.occurrence.as_deref())
                            .push_bind(t.grace_until);
                    });
                    // A concurrent pass may have made the same occurrence: keep its task.
                    b.push(" on conflict do nothing");
                    let made = b
                        .build()
                        .persistent(shared::keep_prepared(chunk.len(), 400))
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                    if made == chunk.len() as u64 {
                        inserted.extend(chunk.iter().map(|t| t.id.clone()));
                        continue;
                    }
                    // Rarely: which of ours went in? (Asked only now, not row by row: every
                    // returned row is a hand-off from sqlx's SQLite thread.)
                    let mut q = sqlx::QueryBuilder::<$db>::new("select id from tasks where id in (");
                    let mut list = q.separated(", ");
                    for t in chunk {
                        list.push_bind(t.id.clone());
                    }
                    q.push(")");
                    let ids: Vec<(String,)> =
                        q.build_query_as().persistent(false).fetch_all(&mut *tx).await?;
                    inserted.extend(ids.into_iter().map(|(id,)| id));
                }
                for (id, due, grace) in &m.revived_tasks {
                    let back = sqlx::query(
                        "update tasks set status = 'scheduled', cancel_reason = null, due_at = $1, \
                         grace_until = $2, updated_at = $3 \
                         where id = $4 and status = 'cancelled' and cancel_reason = $5",
                    )
                    .bind(*due)
                    .bind(*grace)
                    .bind(m.now)
                    .bind(id)
                    .bind(PLAN_DROPPED)
                    .execute(&mut *tx)
                    .await?;
                    if back.rows_affected() == 1 {
                        // Its new messages (in `new_outreach`) take their place.
                        sqlx::query(
                            "delete from outreach where task_id = $1 and status = 'cancelled' and reason = $2",
                        )
                        .bind(id)
                        .bind(PLAN_DROPPED)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                for (id, due, grace) in &m.moved_tasks {
                    sqlx::query(
                        "update tasks set due_at = $1, grace_until = $2, updated_at = $3 \
                         where id = $4 and status = 'scheduled'",
                    )
                    .bind(*due)
                    .bind(*grace)
                    .bind(m.now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                for (id, reason) in &m.cancelled_tasks {
                    sqlx::query(
                        "update tasks set status = 'cancelled', cancel_reason = $3, updated_at = $1 \
                         where id = $2 and status = 'scheduled'",
                    )
                    .bind(m.now)
                    .bind(id)
                    .bind(reason)
                    .execute(&mut *tx)
                    .await?;
                    cancel_task_messages_in(&mut tx, id, reason, m.now).await?;
                }
                // Messages of tasks this pass made but another pass had already made are that
                // pass's to create.
                let made: std::collections::HashSet<&str> =
                    m.new_tasks.iter().map(|t| t.id.as_str()).collect();
                let outreach: Vec<&OutreachRow> = m
                    .new_outreach
                    .iter()
                    .filter(|o| !made.contains(o.task_id.as_str()) || inserted.contains(&o.task_id))
                    .collect();
                insert_outreach_in(&mut tx, &outreach).await?;
                for (id, due, grace) in &m.moved_outreach {
                    sqlx::query(
                        "update outreach set due_at = $1, next_attempt_at = $1, grace_until = $2, updated_at = $3 \
                         where id = $4 and status = 'scheduled' and lease_owner is null",
                    )
                    .bind(*due)
                    .bind(*grace)
                    .bind(m.now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                for chunk in m.schedules.chunks(500) {
                    let mut b = sqlx::QueryBuilder::<$db>::new(
                        "insert into case_schedules (case_id, horizon, plan_version, updated_at) ",
                    );
                    b.push_values(chunk, |mut r, (case_id, horizon, version)| {
                        r.push_bind(case_id.as_str())
                            .push_bind(*horizon)
                            .push_bind(*version)
                            .push_bind(m.now);
                    });
                    b.push(
                        " on conflict (case_id) do update set horizon = excluded.horizon, \
                         plan_version = excluded.plan_version, updated_at = excluded.updated_at",
                    );
                    b.build()
                        .persistent(shared::keep_prepared(chunk.len(), 500))
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn outreach_due(&self, now: DateTime<Utc>) -> Result<bool> {
                // Ordered by the partial index's column, so the plan is that index's range
                // scan whatever the planner's statistics say: without them (a table just
                // restored or filled by a first materialisation) PostgreSQL chose a sequential
                // scan of every message, 206 ms at two million of them, for a tick that finds
                // nothing due (0.03 ms with the index).
                let row: Option<(String,)> = sqlx::query_as(
                    "select id from outreach where next_attempt_at <= $1 \
                     and (lease_until is null or lease_until < $1) order by next_attempt_at limit 1",
                )
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.is_some())
            }

            async fn claim_outreach(
                &self,
                owner: &str,
                now: DateTime<Utc>,
                lease_until: DateTime<Utc>,
                limit: i64,
            ) -> Result<Vec<OutreachRow>> {
                let mut tx = self.begin_write().await?;
                let rows = sqlx::query_as::<$db, OutreachRow>($claim)
                    .bind(owner)
                    .bind(now)
                    .bind(lease_until)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(rows)
            }

            async fn renew_outreach_lease(
                &self,
                owner: &str,
                id: &str,
                now: DateTime<Utc>,
                until: DateTime<Utc>,
            ) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "update outreach set lease_until = $1 \
                     where id = $2 and lease_owner = $3 and lease_until > $4",
                )
                .bind(until)
                .bind(id)
                .bind(owner)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn settle_outreach(&self, owner: &str, s: &Settle, now: DateTime<Utc>) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "update outreach set status = $1, reason = $2, channel = coalesce($3, channel), \
                     next_attempt_at = $4, sent_at = coalesce($5, sent_at), lease_owner = null, \
                     lease_until = null, updated_at = $6 where id = $7 and lease_owner = $8",
                )
                .bind(&s.status)
                .bind(&s.reason)
                .bind(&s.channel)
                .bind(s.next_attempt_at)
                .bind(s.sent_at)
                .bind(now)
                .bind(&s.id)
                .bind(owner)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                if let Some(p) = &s.portal {
                    sqlx::query(
                        "insert into portal_messages (outreach_id, case_id, recipient, sealed, created_at) \
                         values ($1, $2, $3, $4, $5) on conflict do nothing",
                    )
                    .bind(&p.outreach_id)
                    .bind(&p.case_id)
                    .bind(&p.recipient)
                    .bind(&p.sealed)
                    .bind(p.created_at)
                    .execute(&mut *tx)
                    .await?;
                }
                // The outreach task is done once none of its messages is pending.
                sqlx::query(
                    "update tasks set status = 'done', completed_at = $1, updated_at = $1 \
                     where id = $2 and status = 'scheduled' and kind = 'outreach' and not exists \
                     (select 1 from outreach where task_id = $2 and next_attempt_at is not null)",
                )
                .bind(now)
                .bind(&s.task_id)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn outreach_by_id(&self, id: &str) -> Result<Option<OutreachRow>> {
                Ok(sqlx::query_as::<$db, OutreachRow>(&format!(
                    "select {} from outreach where id = $1",
                    OUTREACH_COLUMNS
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_outreach(
                &self,
                case_id: &str,
                recipient: Option<&str>,
                after: Option<(DateTime<Utc>, String)>,
                limit: i64,
            ) -> Result<Vec<OutreachRow>> {
                let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                    "select {} from outreach where case_id = ",
                    OUTREACH_COLUMNS
                ));
                b.push_bind(case_id.to_string());
                if let Some(r) = recipient {
                    b.push(" and recipient = ");
                    b.push_bind(r.to_string());
                }
                if let Some((due, id)) = after {
                    b.push(" and (due_at > ");
                    b.push_bind(due);
                    b.push(" or (due_at = ");
                    b.push_bind(due);
                    b.push(" and id > ");
                    b.push_bind(id);
                    b.push("))");
                }
                b.push(" order by due_at, id limit ");
                b.push_bind(limit);
                Ok(b.build_query_as::<OutreachRow>().fetch_all(&self.pool).await?)
            }

            async fn outreach_of_tasks(
                &self,
                case_ids: &[String],
                task_ids: &[String],
            ) -> Result<Vec<OutreachRow>> {
                if case_ids.is_empty() || task_ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                    "select {} from outreach where case_id in (",
                    OUTREACH_COLUMNS
                ));
                let mut ids = b.separated(", ");
                for id in case_ids {
                    ids.push_bind(id.clone());
                }
                b.push(") and task_id in (");
                let mut ids = b.separated(", ");
                for id in task_ids {
                    ids.push_bind(id.clone());
                }
                b.push(") order by due_at, id");
                Ok(b.build_query_as::<OutreachRow>().fetch_all(&self.pool).await?)
            }

            async fn sent_since(&self, case_id: &str, since: DateTime<Utc>) -> Result<i64> {
                let (n,): (i64,) = sqlx::query_as(
                    "select count(*) from outreach where case_id = $1 and sent_at >= $2",
                )
                .bind(case_id)
                .bind(since)
                .fetch_one(&self.pool)
                .await?;
                Ok(n)
            }

            async fn cancel_outreach(
                &self,
                c: &CancelOutreach,
                now: DateTime<Utc>,
                audit: &[AuditEntry],
            ) -> Result<u64> {
                let mut tx = self.begin_write().await?;
                let n = cancel_outreach_in(&mut tx, c, now).await?;
                append_entries(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(n)
            }

            async fn cancel_case_schedule(
                &self,
                case_id: &str,
                reason: &str,
                now: DateTime<Utc>,
            ) -> Result<u64> {
                let mut tx = self.begin_write().await?;
                let all = CancelOutreach {
                    case_id: case_id.to_string(),
                    recipient: None,
                    channels: None,
                    rule: None,
                    reason: reason.to_string(),
                };
                let n = cancel_outreach_in(&mut tx, &all, now).await?;
                sqlx::query(
                    "update tasks set status = 'cancelled', cancel_reason = $3, updated_at = $1 \
                     where case_id = $2 and status = 'scheduled'",
                )
                .bind(now)
                .bind(case_id)
                .bind(reason)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(n)
            }

            async fn reschedule_task(
                &self,
                id: &str,
                due_at: DateTime<Utc>,
                details: &[u8],
                now: DateTime<Utc>,
                audit: &[AuditEntry],
            ) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                let old: Option<(DateTime<Utc>, Option<DateTime<Utc>>)> = sqlx::query_as(
                    "select due_at, grace_until from tasks where id = $1 and status = 'scheduled'",
                )
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some((old, grace)) = old else {
                    tx.rollback().await?;
                    return Ok(false);
                };
                let shift = due_at - old;
                // Rescheduled by hand: the grace window moves with it.
                let grace = grace.map(|g| g + shift);
                sqlx::query("update tasks set due_at = $1, grace_until = $2, updated_at = $3, details = $5 where id = $4")
                    .bind(due_at)
                    .bind(grace)
                    .bind(now)
                    .bind(id)
                    .bind(details)
                    .execute(&mut *tx)
                    .await?;
                let msgs: Vec<(String, DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
                    "select id, due_at, grace_until from outreach where task_id = $1 and status = 'scheduled'",
                )
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
                for (mid, due, grace) in msgs {
                    sqlx::query(
                        "update outreach set due_at = $1, next_attempt_at = $1, grace_until = $2, \
                         updated_at = $3 where id = $4",
                    )
                    .bind(due + shift)
                    .bind(grace + shift)
                    .bind(now)
                    .bind(mid)
                    .execute(&mut *tx)
                    .await?;
                }
                append_entries(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn cancel_task(
                &self,
                id: &str,
                reason: &str,
                details: &[u8],
                now: DateTime<Utc>,
                audit: &[AuditEntry],
            ) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "update tasks set status = 'cancelled', cancel_reason = 'staff', updated_at = $1, \
                     details = $3 where id = $2 and status = 'scheduled'",
                )
                .bind(now)
                .bind(id)
                .bind(details)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                cancel_task_messages_in(&mut tx, id, reason, now).await?;
                append_entries(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn portal_messages(&self, outreach_ids: &[String]) -> Result<Vec<PortalRow>> {
                fetch_for_ids::<PortalRow>(
                    &self.pool,
                    "select outreach_id, case_id, recipient, sealed, created_at from portal_messages \
                     where outreach_id in (",
                    outreach_ids,
                    "",
                )
                .await
            }

            async fn insert_use(&self, u: &UseRow, audit: &[AuditEntry]) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "insert into consent_uses (id, case_id, kind, subject, planned_on, status, reason, \
                     sealed, created_by, created_at) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&u.id)
                .bind(&u.case_id)
                .bind(&u.kind)
                .bind(&u.subject)
                .bind(u.planned_on)
                .bind(&u.status)
                .bind(&u.reason)
                .bind(&u.sealed)
                .bind(&u.created_by)
                .bind(u.created_at)
                .execute(&mut *tx)
                .await?;
                append_entries(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn uses_for_case(&self, case_id: &str) -> Result<Vec<UseRow>> {
                Ok(sqlx::query_as::<$db, UseRow>(
                    "select id, case_id, kind, subject, planned_on, status, reason, sealed, created_by, \
                     created_at from consent_uses where case_id = $1 order by planned_on, id limit 1000",
                )
                .bind(case_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn requeue_held(
                &self,
                case_id: &str,
                recipient: &str,
                reason: &str,
                now: DateTime<Utc>,
            ) -> Result<u64> {
                let mut tx = self.begin_write().await?;
                let n = sqlx::query(
                    "update outreach set status = 'scheduled', reason = 'requeued', next_attempt_at = $1, \
                     updated_at = $1 where case_id = $2 and recipient = $3 and status = 'held' \
                     and reason like $4 and grace_until > $1",
                )
                .bind(now)
                .bind(case_id)
                .bind(recipient)
                .bind(format!("{reason}%"))
                .execute(&mut *tx)
                .await?
                .rows_affected();
                // Their tasks are pending again.
                sqlx::query(
                    "update tasks set status = 'scheduled', completed_at = null, updated_at = $1 \
                     where status = 'done' and kind = 'outreach' and rule_id is not null and id in \
                     (select task_id from outreach where case_id = $2 and recipient = $3 \
                     and status = 'scheduled' and reason = 'requeued')",
                )
                .bind(now)
                .bind(case_id)
                .bind(recipient)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(n)
            }

            async fn digest_recipients(&self) -> Result<Vec<UserRow>> {
                Ok(sqlx::query_as::<$db, UserRow>(&format!(
                    "select {} from users where role = 'coordinator' and not disabled \
                     and email is not null order by id",
                    shared::USER_COLUMNS
                ))
                .fetch_all(&self.pool)
                .await?)
            }

            async fn claim_digest(&self, user_id: &str, day: chrono::NaiveDate, now: DateTime<Utc>) -> Result<bool> {
                let done = sqlx::query(
                    "insert into digests (user_id, day, sent_at) values ($1, $2, $3) on conflict do nothing",
                )
                .bind(user_id)
                .bind(day)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn unclaim_digest(&self, user_id: &str, day: chrono::NaiveDate) -> Result<()> {
                sqlx::query("delete from digests where user_id = $1 and day = $2")
                    .bind(user_id)
                    .bind(day)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn cancel_message(&self, id: &str, now: DateTime<Utc>, audit: &[AuditEntry]) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "update outreach set status = 'cancelled', reason = 'cancelled by staff', \
                     next_attempt_at = null, updated_at = $1 \
                     where id = $2 and status in ('held', 'dead') and lease_owner is null",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                commit_if_one(tx, done.rows_affected(), audit).await
            }

            async fn release_outreach(&self, id: &str, now: DateTime<Utc>, audit: &[AuditEntry]) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "update outreach set status = 'scheduled', reason = 'released by staff', \
                     next_attempt_at = $1, attempts = 0, updated_at = $1 \
                     where id = $2 and status in ('held', 'dead')",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                // Its task is pending again too.
                sqlx::query(
                    "update tasks set status = 'scheduled', completed_at = null, updated_at = $1 \
                     where id = (select task_id from outreach where id = $2) and status = 'done'",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
                append_entries(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn attention_outreach(
                &self,
                scope: &super::CaseScope,
                statuses: &[String],
                after: Option<(DateTime<Utc>, String)>,
                limit: i64,
            ) -> Result<Vec<OutreachRow>> {
                let cols: Vec<String> = OUTREACH_COLUMNS.split(", ").map(|c| format!("o.{c}")).collect();
                let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                    "select {} from outreach o join cases c on c.id = o.case_id where o.status in (",
                    cols.join(", ")
                ));
                let mut list = b.separated(", ");
                for s in statuses {
                    list.push_bind(s.clone());
                }
                b.push(")");
                match scope {
                    super::CaseScope::All => {}
                    super::CaseScope::Region(r) => {
                        b.push(" and c.region = ");
                        b.push_bind(r.clone());
                    }
                    super::CaseScope::AssignedTo(u) => {
                        b.push(" and o.case_id in (select case_id from case_assignments where user_id = ");
                        b.push_bind(u.clone());
                        b.push(")");
                    }
                }
                if let Some((due, id)) = after {
                    b.push(" and (o.due_at > ");
                    b.push_bind(due);
                    b.push(" or (o.due_at = ");
                    b.push_bind(due);
                    b.push(" and o.id > ");
                    b.push_bind(id);
                    b.push("))");
                }
                b.push(" order by o.due_at, o.id limit ");
                b.push_bind(limit);
                Ok(b.build_query_as::<OutreachRow>().fetch_all(&self.pool).await?)
            }

            async fn letters_sent(
                &self,
                assigned_to: Option<&str>,
                region: Option<&str>,
                from: DateTime<Utc>,
                to: DateTime<Utc>,
                limit: i64,
            ) -> Result<Vec<OutreachRow>> {
                let cols: Vec<String> = OUTREACH_COLUMNS.split(", ").map(|c| format!("o.{c}")).collect();
                let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                    "select {} from outreach o join cases c on c.id = o.case_id \
                     where o.channel = 'letter' and o.status = 'sent' and o.sent_at >= ",
                    cols.join(", ")
                ));
                b.push_bind(from);
                b.push(" and o.sent_at < ");
                b.push_bind(to);
                if let Some(u) = assigned_to {
                    b.push(" and o.case_id in (select case_id from case_assignments where user_id = ");
                    b.push_bind(u.to_string());
                    b.push(")");
                }
                if let Some(r) = region {
                    b.push(" and c.region = ");
                    b.push_bind(r.to_string());
                }
                b.push(" order by o.case_id, o.id limit ");
                b.push_bind(limit);
                Ok(b.build_query_as::<OutreachRow>().fetch_all(&self.pool).await?)
            }

            async fn last_visit_done(&self, case_id: &str) -> Result<Option<DateTime<Utc>>> {
                let row: Option<(DateTime<Utc>,)> = sqlx::query_as(
                    "select completed_at from tasks where case_id = $1 and kind = 'visit' \
                     and status = 'done' and completed_at is not null \
                     order by completed_at desc limit 1",
                )
                .bind(case_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(t,)| t))
            }

            async fn coordinator_due(
                &self,
                user_id: &str,
                before: DateTime<Utc>,
                limit: i64,
            ) -> Result<Vec<TaskRow>> {
                Ok(sqlx::query_as::<$db, TaskRow>(&format!(
                    "select {} from tasks t join cases c on c.id = t.case_id \
                     where t.status = 'scheduled' and t.due_at < $1 and t.kind <> 'outreach' \
                     and t.case_id in (select case_id from case_assignments where user_id = $2) \
                     order by t.due_at, t.id limit $3",
                    shared::TASK_COLUMNS
                ))
                .bind(before)
                .bind(user_id)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?)
            }
        }

        /// Rows of `select_from` (which ends in `... in (`) for the ids, 500 at a time.
        async fn fetch_for_ids<T>(
            pool: &sqlx::Pool<$db>,
            select_from: &str,
            ids: &[String],
            suffix: &str,
        ) -> Result<Vec<T>>
        where
            T: for<'r> sqlx::FromRow<'r, <$db as sqlx::Database>::Row> + Send + Unpin,
        {
            let mut out = Vec::new();
            for chunk in ids.chunks(500) {
                let mut b = sqlx::QueryBuilder::<$db>::new(select_from);
                let mut sep = b.separated(", ");
                for id in chunk {
                    sep.push_bind(id.clone());
                }
                b.push(")");
                b.push(suffix);
                out.extend(
                    b.build_query_as::<T>()
                        .persistent(shared::keep_prepared(chunk.len(), 500))
                        .fetch_all(pool)
                        .await?,
                );
            }
            Ok(out)
        }

        /// Insert messages inside `tx`; one already there (the same id) is kept.
        async fn insert_outreach_in(
            tx: &mut sqlx::Transaction<'_, $db>,
            rows: &[&OutreachRow],
        ) -> Result<()> {
            for chunk in rows.chunks(500) {
                let mut b = sqlx::QueryBuilder::<$db>::new(
                    "insert into outreach (id, task_id, case_id, recipient, channel, template, status, \
                     reason, due_at, grace_until, next_attempt_at, attempts, created_at, updated_at) ",
                );
                b.push_values(chunk, |mut r, o| {
                    r.push_bind(o.id.as_str())
                        .push_bind(o.task_id.as_str())
                        .push_bind(o.case_id.as_str())
                        .push_bind(o.recipient.as_str())
                        .push_bind(o.channel.as_deref())
                        .push_bind(o.template.as_str())
                        .push_bind(o.status.as_str())
                        .push_bind(o.reason.as_deref())
                        .push_bind(o.due_at)
                        .push_bind(o.grace_until)
                        .push_bind(o.next_attempt_at)
                        .push_bind(o.attempts)
                        .push_bind(o.created_at)
                        .push_bind(o.updated_at);
                });
                b.push(" on conflict do nothing");
                b.build()
                    .persistent(shared::keep_prepared(chunk.len(), 500))
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(())
        }

        /// Cancel the pending messages of one task inside `tx`.
        async fn cancel_task_messages_in(
            tx: &mut sqlx::Transaction<'_, $db>,
            task_id: &str,
            reason: &str,
            now: DateTime<Utc>,
        ) -> Result<u64> {
            Ok(sqlx::query(
                "update outreach set status = 'cancelled', reason = $1, next_attempt_at = null, \
                 updated_at = $2 where task_id = $3 and status in ('scheduled', 'failed')",
            )
            .bind(reason)
            .bind(now)
            .bind(task_id)
            .execute(&mut **tx)
            .await?
            .rows_affected())
        }

        /// Cancel a person's planned uses of one kind inside `tx` (a consent withdrawal).
        async fn cancel_uses_in(
            tx: &mut sqlx::Transaction<'_, $db>,
            c: &CancelUses,
        ) -> Result<u64> {
            Ok(sqlx::query(
                "update consent_uses set status = 'cancelled', reason = $1 \
                 where case_id = $2 and subject = $3 and kind = $4 and status = 'planned'",
            )
            .bind(&c.reason)
            .bind(&c.case_id)
            .bind(&c.subject)
            .bind(&c.kind)
            .execute(&mut **tx)
            .await?
            .rows_affected())
        }

        /// Cancel pending messages inside `tx` (a consent withdrawal uses this in its own
        /// transaction, so no message can go out under a consent that is already withdrawn).
        async fn cancel_outreach_in(
            tx: &mut sqlx::Transaction<'_, $db>,
            c: &CancelOutreach,
            now: DateTime<Utc>,
        ) -> Result<u64> {
            let mut b = sqlx::QueryBuilder::<$db>::new("update outreach set status = 'cancelled', reason = ");
            b.push_bind(c.reason.clone());
            b.push(", next_attempt_at = null, updated_at = ");
            b.push_bind(now);
            b.push(" where case_id = ");
            b.push_bind(c.case_id.clone());
            b.push(" and status in ('scheduled', 'failed')");
            if let Some(r) = &c.recipient {
                b.push(" and recipient = ");
                b.push_bind(r.clone());
            }
            if let Some((rule, due_by)) = &c.rule {
                b.push(" and due_at <= ");
                b.push_bind(*due_by);
                b.push(" and task_id in (select id from tasks where case_id = ");
                b.push_bind(c.case_id.clone());
                b.push(" and rule_id = ");
                b.push_bind(rule.clone());
                b.push(")");
            }
            if let Some(chs) = &c.channels {
                // A message with no fixed channel goes out on the contact's preferred one.
                b.push(" and coalesce(channel, (select preferred_channel from contacts where contacts.id = outreach.recipient), 'email') in (");
                let mut sep = b.separated(", ");
                for ch in chs {
                    sep.push_bind(ch.clone());
                }
                b.push(")");
            }
            Ok(b.build().execute(&mut **tx).await?.rows_affected())
        }
    };
}
pub(crate) use schedule_impl;

/// SQLite has one writer at a time (`begin immediate`), so a plain claim is safe.
pub const SQLITE_CLAIM: &str = "update outreach set lease_owner = $1, lease_until = $3, \
     attempts = attempts + 1 where id in (select id from outreach where next_attempt_at <= $2 \
     and (lease_until is null or lease_until < $2) order by next_attempt_at limit $4) \
     returning id, task_id, case_id, recipient, channel, template, status, reason, due_at, \
     grace_until, next_attempt_at, attempts, lease_owner, lease_until, sent_at, created_at, updated_at";

/// PostgreSQL: instances skip the rows another has locked, so none takes the same message.
pub const POSTGRES_CLAIM: &str = "update outreach set lease_owner = $1, lease_until = $3, \
     attempts = attempts + 1 where id in (select id from outreach where next_attempt_at <= $2 \
     and (lease_until is null or lease_until < $2) order by next_attempt_at limit $4 \
     for update skip locked) \
     returning id, task_id, case_id, recipient, channel, template, status, reason, due_at, \
     grace_until, next_attempt_at, attempts, lease_owner, lease_until, sent_at, created_at, updated_at";
