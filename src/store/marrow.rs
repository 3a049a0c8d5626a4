//! Storage of marrow donors' adverse events. The SQL is shared by both backends through
//! [`marrow_impl!`]. Rows carry the pseudonymous metadata in the clear (dates, category, grade,
//! relation, outcome) so that lists and the registry's report filter without opening a case;
//! the description is sealed bytes.

use chrono::{DateTime, NaiveDate, Utc};

use super::CaseScope;
use crate::audit::AuditEntry;
use crate::error::Result;

/// One adverse event, with its case's region (joined) for access decisions.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AdverseEventRow {
    pub id: String,
    pub case_id: String,
    pub occurred_on: NaiveDate,
    pub category: String,
    pub grade: i64,
    pub relation: String,
    pub outcome: String,
    pub reported_on: Option<NaiveDate>,
    /// Sealed under the case key; `None` only if none was kept.
    pub description: Option<Vec<u8>>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_by: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub region: String,
}

/// Which adverse events a listing returns, newest recorded first.
#[derive(Debug, Clone)]
pub struct AdverseEventQuery {
    pub scope: CaseScope,
    pub case_id: Option<String>,
    /// Occurred on or after / on or before.
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub grade: Option<i64>,
    /// Ids below this one (the cursor).
    pub before: Option<String>,
    pub limit: i64,
}

/// Columns of an adverse-event row (`e`) with its case's (`c`) region.
pub const ADVERSE_EVENT_COLUMNS: &str = "e.id, e.case_id, e.occurred_on, e.category, e.grade, \
     e.relation, e.outcome, e.reported_on, e.description, e.created_by, e.created_at, \
     e.updated_by, e.updated_at, c.region";

#[async_trait::async_trait]
pub trait MarrowStore: Send + Sync {
    async fn insert_adverse_event(&self, row: &AdverseEventRow, audit: &[AuditEntry])
        -> Result<()>;
    /// Write the changeable fields of an existing event (outcome, reporting, …).
    async fn update_adverse_event(&self, row: &AdverseEventRow, audit: &[AuditEntry])
        -> Result<()>;
    async fn adverse_event_by_id(&self, id: &str) -> Result<Option<AdverseEventRow>>;
    /// A page of a listing (`limit` rows, ids descending).
    async fn list_adverse_events(&self, q: &AdverseEventQuery) -> Result<Vec<AdverseEventRow>>;
}

/// Expands to the [`MarrowStore`] implementation of `$store` over `$db`.
macro_rules! marrow_impl {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl MarrowStore for $store {
            async fn insert_adverse_event(
                &self,
                e: &AdverseEventRow,
                audit: &[AuditEntry],
            ) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "insert into adverse_events (id, case_id, occurred_on, category, grade, \
                     relation, outcome, reported_on, description, created_by, created_at, \
                     updated_by, updated_at) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                )
                .bind(&e.id)
                .bind(&e.case_id)
                .bind(e.occurred_on)
                .bind(&e.category)
                .bind(e.grade)
                .bind(&e.relation)
                .bind(&e.outcome)
                .bind(e.reported_on)
                .bind(&e.description)
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

            async fn update_adverse_event(
                &self,
                e: &AdverseEventRow,
                audit: &[AuditEntry],
            ) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "update adverse_events set occurred_on = $1, category = $2, grade = $3, \
                     relation = $4, outcome = $5, reported_on = $6, description = $7, \
                     updated_by = $8, updated_at = $9 where id = $10",
                )
                .bind(e.occurred_on)
                .bind(&e.category)
                .bind(e.grade)
                .bind(&e.relation)
                .bind(&e.outcome)
                .bind(e.reported_on)
                .bind(&e.description)
                .bind(&e.updated_by)
                .bind(e.updated_at)
                .bind(&e.id)
                .execute(&mut *tx)
                .await?;
                append_entries(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn adverse_event_by_id(&self, id: &str) -> Result<Option<AdverseEventRow>> {
                Ok(sqlx::query_as::<$db, AdverseEventRow>(&format!(
                    "select {} from adverse_events e join cases c on c.id = e.case_id \
                     where e.id = $1",
                    super::marrow::ADVERSE_EVENT_COLUMNS
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_adverse_events(
                &self,
                q: &AdverseEventQuery,
            ) -> Result<Vec<AdverseEventRow>> {
                let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                    "select {} from adverse_events e join cases c on c.id = e.case_id where ",
                    super::marrow::ADVERSE_EVENT_COLUMNS
                ));
                super::shared::push_case_scope(&mut b, &q.scope, "e.case_id");
                if let Some(c) = &q.case_id {
                    b.push(" and e.case_id = ");
                    b.push_bind(c.clone());
                }
                if let Some(d) = q.from {
                    b.push(" and e.occurred_on >= ");
                    b.push_bind(d);
                }
                if let Some(d) = q.to {
                    b.push(" and e.occurred_on <= ");
                    b.push_bind(d);
                }
                if let Some(g) = q.grade {
                    b.push(" and e.grade = ");
                    b.push_bind(g);
                }
                if let Some(x) = &q.before {
                    b.push(" and e.id < ");
                    b.push_bind(x.clone());
                }
                b.push(" order by e.id desc limit ");
                b.push_bind(q.limit);
                Ok(b.build_query_as::<AdverseEventRow>()
                    .fetch_all(&self.pool)
                    .await?)
            }
        }
    };
}
pub(crate) use marrow_impl;
