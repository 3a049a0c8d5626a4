//! Storage of memorial events, their invitations and the names put forward for a published list
//! or engraving. The SQL is shared by both backends through [`memorial_impl!`]. An invitation's
//! messages are ordinary outreach tasks written in the same transaction as the invitation, so
//! the outreach worker's gate decides whether each goes.

use chrono::{DateTime, NaiveDate, Utc};

use super::{CaseScope, OutreachRow, TaskRow};
use crate::audit::AuditEntry;
use crate::error::Result;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemorialEventRow {
    pub id: String,
    pub region: String,
    pub kind: String,
    pub title: String,
    /// Only cases of this programme are invited; `None`: every programme.
    pub program: Option<String>,
    pub starts_at: DateTime<Utc>,
    pub place: String,
    pub details: Option<String>,
    pub reply_by: Option<NaiveDate>,
    pub reminder_days: i64,
    pub status: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_by: Option<String>,
    pub updated_at: DateTime<Utc>,
}

/// One invitation, with its case's region (joined) and the state of its tasks.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvitationRow {
    pub id: String,
    pub event_id: String,
    pub case_id: String,
    pub invitation_task_id: Option<String>,
    pub reminder_task_id: Option<String>,
    pub reply: Option<String>,
    pub party_size: Option<i64>,
    /// Sealed under the case key.
    pub needs: Option<Vec<u8>>,
    pub replied_at: Option<DateTime<Utc>>,
    pub replied_by: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub region: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MemorialNameRow {
    pub event_id: String,
    pub case_id: String,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
}

/// Which events a listing returns, soonest first.
#[derive(Debug, Clone)]
pub struct MemorialEventQuery {
    pub region: String,
    /// Only events starting at or after this.
    pub from: Option<DateTime<Utc>>,
    pub status: Option<String>,
    /// After this (starts_at, id) in listing order (the cursor).
    pub after: Option<(DateTime<Utc>, String)>,
    pub limit: i64,
}

/// Head count of an event's replies.
#[derive(Debug, Clone, Default, sqlx::FromRow)]
pub struct ReplyCounts {
    pub invited: i64,
    pub coming: i64,
    pub not_coming: i64,
    /// People coming (the sum of party sizes).
    pub people: i64,
    /// Families who said what help they need on the day.
    pub with_needs: i64,
}

/// Which replies a guest list shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestReply {
    /// No reply yet.
    None,
    Coming,
    NotComing,
    /// Replied with a need for help on the day (transport, a wheelchair, someone to meet them).
    Needs,
}

impl GuestReply {
    /// The SQL condition on `i` (memorial_invitations) for this filter.
    pub(super) fn condition(self) -> &'static str {
        match self {
            GuestReply::None => "i.reply is null",
            GuestReply::Coming => "i.reply = 'coming'",
            GuestReply::NotComing => "i.reply = 'not_coming'",
            GuestReply::Needs => "i.needs is not null",
        }
    }
}

/// A new invitation with its invitation and reminder tasks and their messages.
#[derive(Debug, Clone)]
pub struct NewInvitation {
    pub row: InvitationRow,
    pub tasks: Vec<TaskRow>,
    pub messages: Vec<OutreachRow>,
    /// The care plan's general memorial invitation (rule `memorial_invitation`) still
    /// scheduled for the case up to this time is cancelled: this invitation says more.
    pub supersedes_until: DateTime<Utc>,
}

/// The care-plan rule whose general invitation an event's own invitation supersedes.
pub const PLAN_INVITATION_RULE: &str = "memorial_invitation";
/// Why such a plan task was cancelled.
pub const SUPERSEDED: &str = "memorial_event";

/// Columns of an invitation (`i`) with its case's (`c`) region.
pub const INVITATION_COLUMNS: &str = "i.id, i.event_id, i.case_id, i.invitation_task_id, \
     i.reminder_task_id, i.reply, i.party_size, i.needs, i.replied_at, i.replied_by, \
     i.created_by, i.created_at, c.region";

pub const EVENT_COLUMNS: &str = "id, region, kind, title, program, starts_at, place, details, \
     reply_by, reminder_days, status, created_by, created_at, updated_by, updated_at";

#[async_trait::async_trait]
pub trait MemorialStore: Send + Sync {
    async fn insert_memorial_event(
        &self,
        row: &MemorialEventRow,
        audit: &[AuditEntry],
    ) -> Result<()>;
    /// Write the changeable fields of an event; a cancellation also cancels the pending
    /// messages and scheduled tasks of every invitation (`cancel_reason` set).
    async fn update_memorial_event(
        &self,
        row: &MemorialEventRow,
        cancel_reason: Option<&str>,
        audit: &[AuditEntry],
    ) -> Result<()>;
    async fn memorial_event_by_id(&self, id: &str) -> Result<Option<MemorialEventRow>>;
    async fn list_memorial_events(&self, q: &MemorialEventQuery) -> Result<Vec<MemorialEventRow>>;
    /// Insert invitations (with their tasks and messages); one already there for the same
    /// event and case is kept and its new tasks are not written. Returns how many were new.
    async fn insert_invitations(&self, new: &[NewInvitation], audit: &[AuditEntry]) -> Result<u64>;
    async fn invitation_by_id(&self, id: &str) -> Result<Option<InvitationRow>>;
    async fn invitation_for(&self, event_id: &str, case_id: &str) -> Result<Option<InvitationRow>>;
    /// A page of an event's invitations in the cases of `scope`, by id after `after`.
    async fn list_invitations(
        &self,
        event_id: &str,
        scope: &CaseScope,
        reply: Option<GuestReply>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<InvitationRow>>;
    /// The invitations of one case, newest first.
    async fn case_invitations(&self, case_id: &str) -> Result<Vec<InvitationRow>>;
    /// Which of `case_ids` are already invited to the event.
    async fn invited_cases(&self, event_id: &str, case_ids: &[String]) -> Result<Vec<String>>;
    async fn reply_counts(&self, event_id: &str, scope: &CaseScope) -> Result<ReplyCounts>;
    /// Record a reply; a decline cancels the reminder task and its pending messages.
    async fn record_reply(
        &self,
        row: &InvitationRow,
        cancel_reminder: bool,
        audit: &[AuditEntry],
    ) -> Result<()>;
    async fn add_memorial_name(&self, row: &MemorialNameRow, audit: &[AuditEntry]) -> Result<bool>;
    async fn remove_memorial_name(
        &self,
        event_id: &str,
        case_id: &str,
        audit: &[AuditEntry],
    ) -> Result<bool>;
    /// The names put forward for an event in the cases of `scope`, by case id.
    async fn memorial_names(
        &self,
        event_id: &str,
        scope: &CaseScope,
    ) -> Result<Vec<MemorialNameRow>>;
}

/// Expands to the [`MemorialStore`] implementation of `$store` over `$db`.
macro_rules! memorial_impl {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl MemorialStore for $store {
            async fn insert_memorial_event(
                &self,
                e: &MemorialEventRow,
                audit: &[AuditEntry],
            ) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "insert into memorial_events (id, region, kind, title, program, starts_at, \
                     place, details, reply_by, reminder_days, status, created_by, created_at, \
                     updated_by, updated_at) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )
                .bind(&e.id)
                .bind(&e.region)
                .bind(&e.kind)
                .bind(&e.title)
                .bind(&e.program)
                .bind(e.starts_at)
                .bind(&e.place)
                .bind(&e.details)
                .bind(e.reply_by)
                .bind(e.reminder_days)
                .bind(&e.status)
                .bind(&e.created_by)
                .bind(e.created_at)
                .bind(&e.updated_by)
                .bind(e.updated_at)
                .execute(&mut *tx)
                .await?;
                append_entries(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn update_memorial_event(
                &self,
                e: &MemorialEventRow,
                cancel_reason: Option<&str>,
                audit: &[AuditEntry],
            ) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "update memorial_events set kind = $1, title = $2, program = $3, \
                     starts_at = $4, place = $5, details = $6, reply_by = $7, \
                     reminder_days = $8, status = $9, updated_by = $10, updated_at = $11 \
                     where id = $12",
                )
                .bind(&e.kind)
                .bind(&e.title)
                .bind(&e.program)
                .bind(e.starts_at)
                .bind(&e.place)
                .bind(&e.details)
                .bind(e.reply_by)
                .bind(e.reminder_days)
                .bind(&e.status)
                .bind(&e.updated_by)
                .bind(e.updated_at)
                .bind(&e.id)
                .execute(&mut *tx)
                .await?;
                if let Some(reason) = cancel_reason {
                    let tasks: Vec<(Option<String>, Option<String>)> = sqlx::query_as(
                        "select invitation_task_id, reminder_task_id from memorial_invitations \
                         where event_id = $1",
                    )
                    .bind(&e.id)
                    .fetch_all(&mut *tx)
                    .await?;
                    for id in tasks.into_iter().flat_map(|(a, b)| [a, b]).flatten() {
                        cancel_scheduled_task_in(&mut tx, &id, reason, e.updated_at).await?;
                    }
                }
                append_entries(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn memorial_event_by_id(&self, id: &str) -> Result<Option<MemorialEventRow>> {
                Ok(sqlx::query_as::<$db, MemorialEventRow>(&format!(
                    "select {} from memorial_events where id = $1",
                    super::memorial::EVENT_COLUMNS
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_memorial_events(
                &self,
                q: &MemorialEventQuery,
            ) -> Result<Vec<MemorialEventRow>> {
                let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                    "select {} from memorial_events where region = ",
                    super::memorial::EVENT_COLUMNS
                ));
                b.push_bind(q.region.clone());
                if let Some(from) = q.from {
                    b.push(" and starts_at >= ");
                    b.push_bind(from);
                }
                if let Some(s) = &q.status {
                    b.push(" and status = ");
                    b.push_bind(s.clone());
                }
                if let Some((at, id)) = &q.after {
                    b.push(" and (starts_at > ");
                    b.push_bind(*at);
                    b.push(" or (starts_at = ");
                    b.push_bind(*at);
                    b.push(" and id > ");
                    b.push_bind(id.clone());
                    b.push("))");
                }
                b.push(" order by starts_at, id limit ");
                b.push_bind(q.limit);
                Ok(b.build_query_as::<MemorialEventRow>()
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn insert_invitations(
                &self,
                new: &[NewInvitation],
                audit: &[AuditEntry],
            ) -> Result<u64> {
                let mut tx = self.begin_write().await?;
                let mut made = 0;
                for n in new {
                    let r = &n.row;
                    // Tasks first: the invitation refers to them.
                    let taken: Option<(String,)> = sqlx::query_as(
                        "select id from memorial_invitations where event_id = $1 and case_id = $2",
                    )
                    .bind(&r.event_id)
                    .bind(&r.case_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if taken.is_some() {
                        continue;
                    }
                    for t in &n.tasks {
                        sqlx::query(
                            "insert into tasks (id, case_id, kind, due_at, assignee_id, \
                             contact_id, template, status, details, created_by, created_at, \
                             updated_at, occurrence, grace_until) \
                             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                        )
                        .bind(&t.id)
                        .bind(&t.case_id)
                        .bind(&t.kind)
                        .bind(t.due_at)
                        .bind(&t.assignee_id)
                        .bind(&t.contact_id)
                        .bind(&t.template)
                        .bind(&t.status)
                        .bind(&t.details)
                        .bind(&t.created_by)
                        .bind(t.created_at)
                        .bind(t.updated_at)
                        .bind(&t.occurrence)
                        .bind(t.grace_until)
                        .execute(&mut *tx)
                        .await?;
                    }
                    insert_outreach_in(&mut tx, &n.messages.iter().collect::<Vec<_>>()).await?;
                    let superseded: Vec<(String,)> = sqlx::query_as(
                        "select id from tasks where case_id = $1 and rule_id = $2 \
                         and status = 'scheduled' and due_at <= $3",
                    )
                    .bind(&r.case_id)
                    .bind(super::memorial::PLAN_INVITATION_RULE)
                    .bind(n.supersedes_until)
                    .fetch_all(&mut *tx)
                    .await?;
                    for (id,) in superseded {
                        cancel_scheduled_task_in(
                            &mut tx,
                            &id,
                            super::memorial::SUPERSEDED,
                            r.created_at,
                        )
                        .await?;
                    }
                    sqlx::query(
                        "insert into memorial_invitations (id, event_id, case_id, \
                         invitation_task_id, reminder_task_id, reply, party_size, needs, \
                         replied_at, replied_by, created_by, created_at) \
                         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    )
                    .bind(&r.id)
                    .bind(&r.event_id)
                    .bind(&r.case_id)
                    .bind(&r.invitation_task_id)
                    .bind(&r.reminder_task_id)
                    .bind(&r.reply)
                    .bind(r.party_size)
                    .bind(&r.needs)
                    .bind(r.replied_at)
                    .bind(&r.replied_by)
                    .bind(&r.created_by)
                    .bind(r.created_at)
                    .execute(&mut *tx)
                    .await?;
                    made += 1;
                }
                append_entries(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(made)
            }

            async fn invitation_by_id(&self, id: &str) -> Result<Option<InvitationRow>> {
                Ok(sqlx::query_as::<$db, InvitationRow>(&format!(
                    "select {} from memorial_invitations i join cases c on c.id = i.case_id \
                     where i.id = $1",
                    super::memorial::INVITATION_COLUMNS
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn invitation_for(
                &self,
                event_id: &str,
                case_id: &str,
            ) -> Result<Option<InvitationRow>> {
                Ok(sqlx::query_as::<$db, InvitationRow>(&format!(
                    "select {} from memorial_invitations i join cases c on c.id = i.case_id \
                     where i.event_id = $1 and i.case_id = $2",
                    super::memorial::INVITATION_COLUMNS
                ))
                .bind(event_id)
                .bind(case_id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_invitations(
                &self,
                event_id: &str,
                scope: &CaseScope,
                reply: Option<super::memorial::GuestReply>,
                after: Option<&str>,
                limit: i64,
            ) -> Result<Vec<InvitationRow>> {
                let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                    "select {} from memorial_invitations i join cases c on c.id = i.case_id \
                     where i.event_id = ",
                    super::memorial::INVITATION_COLUMNS
                ));
                b.push_bind(event_id.to_string());
                b.push(" and ");
                super::shared::push_case_scope(&mut b, scope, "c.id");
                if let Some(r) = reply {
                    b.push(" and ");
                    b.push(r.condition());
                }
                if let Some(a) = after {
                    b.push(" and i.id > ");
                    b.push_bind(a.to_string());
                }
                b.push(" order by i.id limit ");
                b.push_bind(limit);
                Ok(b.build_query_as::<InvitationRow>()
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn case_invitations(&self, case_id: &str) -> Result<Vec<InvitationRow>> {
                Ok(sqlx::query_as::<$db, InvitationRow>(&format!(
                    "select {} from memorial_invitations i join cases c on c.id = i.case_id \
                     where i.case_id = $1 order by i.id desc limit 200",
                    super::memorial::INVITATION_COLUMNS
                ))
                .bind(case_id)
                .fetch_all(&self.pool)
                .await?)
            }

            async fn invited_cases(
                &self,
                event_id: &str,
                case_ids: &[String],
            ) -> Result<Vec<String>> {
                let mut out = Vec::new();
                for chunk in case_ids.chunks(500) {
                    let mut b = sqlx::QueryBuilder::<$db>::new(
                        "select case_id from memorial_invitations where event_id = ",
                    );
                    b.push_bind(event_id.to_string());
                    b.push(" and case_id in (");
                    let mut s = b.separated(", ");
                    for id in chunk {
                        s.push_bind(id.clone());
                    }
                    b.push(")");
                    let rows: Vec<(String,)> = b.build_query_as().fetch_all(&self.pool).await?;
                    out.extend(rows.into_iter().map(|(id,)| id));
                }
                Ok(out)
            }

            async fn reply_counts(&self, event_id: &str, scope: &CaseScope) -> Result<ReplyCounts> {
                let mut b = sqlx::QueryBuilder::<$db>::new(
                    // PostgreSQL's sum of bigints is numeric: cast back.
                    "select count(*) as invited, \
                     cast(coalesce(sum(case when i.reply = 'coming' then 1 else 0 end), 0) \
                     as bigint) as coming, \
                     cast(coalesce(sum(case when i.reply = 'not_coming' then 1 else 0 end), 0) \
                     as bigint) as not_coming, \
                     cast(coalesce(sum(case when i.reply = 'coming' then i.party_size else 0 end), \
                     0) as bigint) as people, \
                     cast(coalesce(sum(case when i.needs is not null then 1 else 0 end), 0) \
                     as bigint) as with_needs \
                     from memorial_invitations i join cases c on c.id = i.case_id \
                     where i.event_id = ",
                );
                b.push_bind(event_id.to_string());
                b.push(" and ");
                super::shared::push_case_scope(&mut b, scope, "c.id");
                let row: (i64, i64, i64, i64, i64) =
                    b.build_query_as().fetch_one(&self.pool).await?;
                Ok(ReplyCounts {
                    invited: row.0,
                    coming: row.1,
                    not_coming: row.2,
                    people: row.3,
                    with_needs: row.4,
                })
            }

            async fn record_reply(
                &self,
                r: &InvitationRow,
                cancel_reminder: bool,
                audit: &[AuditEntry],
            ) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "update memorial_invitations set reply = $1, party_size = $2, needs = $3, \
                     replied_at = $4, replied_by = $5 where id = $6",
                )
                .bind(&r.reply)
                .bind(r.party_size)
                .bind(&r.needs)
                .bind(r.replied_at)
                .bind(&r.replied_by)
                .bind(&r.id)
                .execute(&mut *tx)
                .await?;
                if let (true, Some(task), Some(at)) =
                    (cancel_reminder, &r.reminder_task_id, r.replied_at)
                {
                    cancel_scheduled_task_in(&mut tx, task, "declined", at).await?;
                }
                append_entries(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn add_memorial_name(
                &self,
                n: &MemorialNameRow,
                audit: &[AuditEntry],
            ) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                let added = sqlx::query(
                    "insert into memorial_names (event_id, case_id, added_by, added_at) \
                     values ($1, $2, $3, $4) on conflict do nothing",
                )
                .bind(&n.event_id)
                .bind(&n.case_id)
                .bind(&n.added_by)
                .bind(n.added_at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if added {
                    append_entries(&mut tx, audit).await?;
                }
                tx.commit().await?;
                Ok(added)
            }

            async fn remove_memorial_name(
                &self,
                event_id: &str,
                case_id: &str,
                audit: &[AuditEntry],
            ) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                let removed = sqlx::query(
                    "delete from memorial_names where event_id = $1 and case_id = $2",
                )
                .bind(event_id)
                .bind(case_id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    == 1;
                if removed {
                    append_entries(&mut tx, audit).await?;
                }
                tx.commit().await?;
                Ok(removed)
            }

            async fn memorial_names(
                &self,
                event_id: &str,
                scope: &CaseScope,
            ) -> Result<Vec<MemorialNameRow>> {
                let mut b = sqlx::QueryBuilder::<$db>::new(
                    "select n.event_id, n.case_id, n.added_by, n.added_at from memorial_names n \
                     join cases c on c.id = n.case_id where n.event_id = ",
                );
                b.push_bind(event_id.to_string());
                b.push(" and ");
                super::shared::push_case_scope(&mut b, scope, "c.id");
                b.push(" order by n.case_id limit 10000");
                Ok(b.build_query_as::<MemorialNameRow>()
                    .fetch_all(&self.pool)
                    .await?)
            }
        }

        /// Cancel a task if it is still scheduled, and its pending messages, inside `tx`.
        async fn cancel_scheduled_task_in(
            tx: &mut sqlx::Transaction<'_, $db>,
            task_id: &str,
            reason: &str,
            now: DateTime<Utc>,
        ) -> Result<()> {
            sqlx::query(
                "update tasks set status = 'cancelled', cancel_reason = $1, updated_at = $2 \
                 where id = $3 and status = 'scheduled'",
            )
            .bind(reason)
            .bind(now)
            .bind(task_id)
            .execute(&mut **tx)
            .await?;
            cancel_task_messages_in(tx, task_id, reason, now).await?;
            Ok(())
        }
    };
}
pub(crate) use memorial_impl;
