//! Storage of letters between donor families and recipients, and of the correspondents they
//! are exchanged with. The SQL is shared by both backends through [`correspondence_impl!`].
//! Metadata is in the clear (direction, dates, status, who reviewed and released, the consent
//! that covered a release) so queues filter without opening a case; texts and the
//! correspondent's reference are sealed bytes.

use chrono::{DateTime, NaiveDate, Utc};

use super::CaseScope;
use crate::audit::AuditEntry;
use crate::error::Result;

/// The other side of a case's letters, with its case's region (joined) for access decisions.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CorrespondentRow {
    pub id: String,
    pub case_id: String,
    pub label: String,
    pub role: String,
    /// The transplant centre's or registry's reference, sealed under the case key.
    pub reference: Option<Vec<u8>>,
    pub consented_on: Option<NaiveDate>,
    pub consent_withdrawn_on: Option<NaiveDate>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub region: String,
}

/// One letter, with its case's region and its correspondent's label (joined).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct LetterRow {
    pub id: String,
    pub case_id: String,
    pub correspondent_id: String,
    pub direction: String,
    pub author: Option<String>,
    pub addressee: Option<String>,
    pub received_on: NaiveDate,
    /// Sealed under the case key.
    pub original: Vec<u8>,
    pub redacted: Option<Vec<u8>>,
    pub status: String,
    pub withheld_reason: Option<String>,
    pub reviewed_by: Option<String>,
    pub reviewed_at: Option<DateTime<Utc>>,
    pub released_by: Option<String>,
    pub released_at: Option<DateTime<Utc>>,
    pub consent_id: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub region: String,
    pub label: String,
}

/// Which letters a listing returns, newest recorded first.
#[derive(Debug, Clone)]
pub struct LetterQuery {
    pub scope: CaseScope,
    pub case_id: Option<String>,
    pub status: Option<String>,
    pub direction: Option<String>,
    /// Only letters addressed to this family party (`donor` or a contact id).
    pub addressee: Option<String>,
    /// Ids below this one (the cursor).
    pub before: Option<String>,
    pub limit: i64,
}

pub const CORRESPONDENT_COLUMNS: &str = "p.id, p.case_id, p.label, p.role, p.reference, \
     p.consented_on, p.consent_withdrawn_on, p.created_by, p.created_at, p.updated_at, c.region";

pub const LETTER_COLUMNS: &str = "l.id, l.case_id, l.correspondent_id, l.direction, l.author, \
     l.addressee, l.received_on, l.original, l.redacted, l.status, l.withheld_reason, \
     l.reviewed_by, l.reviewed_at, l.released_by, l.released_at, l.consent_id, l.created_by, \
     l.created_at, l.updated_at, c.region, p.label";

#[async_trait::async_trait]
pub trait CorrespondenceStore: Send + Sync {
    /// Insert a correspondent; false when the case already has one of that label.
    async fn insert_correspondent(
        &self,
        row: &CorrespondentRow,
        audit: &[AuditEntry],
    ) -> Result<bool>;
    /// Write a correspondent's reference and consent dates.
    async fn update_correspondent(
        &self,
        row: &CorrespondentRow,
        audit: &[AuditEntry],
    ) -> Result<()>;
    async fn correspondent_by_id(&self, id: &str) -> Result<Option<CorrespondentRow>>;
    /// A page of a case's correspondents (ids descending).
    async fn list_correspondents(
        &self,
        case_id: &str,
        before: Option<&str>,
        limit: i64,
    ) -> Result<Vec<CorrespondentRow>>;
    async fn insert_letter(&self, row: &LetterRow, audit: &[AuditEntry]) -> Result<()>;
    /// Write a letter's review (redacted text, status, reviewer, release) if its status is
    /// still `was`; false (nothing written) when another change came first.
    async fn update_letter(&self, row: &LetterRow, was: &str, audit: &[AuditEntry])
        -> Result<bool>;
    async fn letter_by_id(&self, id: &str) -> Result<Option<LetterRow>>;
    /// A page of a listing (`limit` rows, ids descending).
    async fn list_letters(&self, q: &LetterQuery) -> Result<Vec<LetterRow>>;
}

/// Expands to the [`CorrespondenceStore`] implementation of `$store` over `$db`.
macro_rules! correspondence_impl {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl CorrespondenceStore for $store {
            async fn insert_correspondent(
                &self,
                p: &CorrespondentRow,
                audit: &[AuditEntry],
            ) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "insert into correspondents (id, case_id, label, role, reference, \
                     consented_on, consent_withdrawn_on, created_by, created_at, updated_at) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     on conflict (case_id, label) do nothing",
                )
                .bind(&p.id)
                .bind(&p.case_id)
                .bind(&p.label)
                .bind(&p.role)
                .bind(&p.reference)
                .bind(p.consented_on)
                .bind(p.consent_withdrawn_on)
                .bind(&p.created_by)
                .bind(p.created_at)
                .bind(p.updated_at)
                .execute(&mut *tx)
                .await?;
                commit_if_one(tx, done.rows_affected(), audit).await
            }

            async fn update_correspondent(
                &self,
                p: &CorrespondentRow,
                audit: &[AuditEntry],
            ) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "update correspondents set reference = $1, consented_on = $2, \
                     consent_withdrawn_on = $3, updated_at = $4 where id = $5",
                )
                .bind(&p.reference)
                .bind(p.consented_on)
                .bind(p.consent_withdrawn_on)
                .bind(p.updated_at)
                .bind(&p.id)
                .execute(&mut *tx)
                .await?;
                append_entries(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn correspondent_by_id(&self, id: &str) -> Result<Option<CorrespondentRow>> {
                Ok(sqlx::query_as::<$db, CorrespondentRow>(&format!(
                    "select {} from correspondents p join cases c on c.id = p.case_id \
                     where p.id = $1",
                    super::correspondence::CORRESPONDENT_COLUMNS
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_correspondents(
                &self,
                case_id: &str,
                before: Option<&str>,
                limit: i64,
            ) -> Result<Vec<CorrespondentRow>> {
                let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                    "select {} from correspondents p join cases c on c.id = p.case_id \
                     where p.case_id = ",
                    super::correspondence::CORRESPONDENT_COLUMNS
                ));
                b.push_bind(case_id.to_string());
                if let Some(x) = before {
                    b.push(" and p.id < ");
                    b.push_bind(x.to_string());
                }
                b.push(" order by p.id desc limit ");
                b.push_bind(limit);
                Ok(b.build_query_as::<CorrespondentRow>()
                    .fetch_all(&self.pool)
                    .await?)
            }

            async fn insert_letter(&self, l: &LetterRow, audit: &[AuditEntry]) -> Result<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "insert into correspondence_letters (id, case_id, correspondent_id, \
                     direction, author, addressee, received_on, original, redacted, status, \
                     withheld_reason, reviewed_by, reviewed_at, released_by, released_at, \
                     consent_id, created_by, created_at, updated_at) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                     $15, $16, $17, $18, $19)",
                )
                .bind(&l.id)
                .bind(&l.case_id)
                .bind(&l.correspondent_id)
                .bind(&l.direction)
                .bind(&l.author)
                .bind(&l.addressee)
                .bind(l.received_on)
                .bind(&l.original)
                .bind(&l.redacted)
                .bind(&l.status)
                .bind(&l.withheld_reason)
                .bind(&l.reviewed_by)
                .bind(l.reviewed_at)
                .bind(&l.released_by)
                .bind(l.released_at)
                .bind(&l.consent_id)
                .bind(&l.created_by)
                .bind(l.created_at)
                .bind(l.updated_at)
                .execute(&mut *tx)
                .await?;
                append_entries(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn update_letter(
                &self,
                l: &LetterRow,
                was: &str,
                audit: &[AuditEntry],
            ) -> Result<bool> {
                let mut tx = self.begin_write().await?;
                let done = sqlx::query(
                    "update correspondence_letters set redacted = $1, status = $2, \
                     withheld_reason = $3, reviewed_by = $4, reviewed_at = $5, \
                     released_by = $6, released_at = $7, consent_id = $8, updated_at = $9 \
                     where id = $10 and status = $11",
                )
                .bind(&l.redacted)
                .bind(&l.status)
                .bind(&l.withheld_reason)
                .bind(&l.reviewed_by)
                .bind(l.reviewed_at)
                .bind(&l.released_by)
                .bind(l.released_at)
                .bind(&l.consent_id)
                .bind(l.updated_at)
                .bind(&l.id)
                .bind(was)
                .execute(&mut *tx)
                .await?;
                commit_if_one(tx, done.rows_affected(), audit).await
            }

            async fn letter_by_id(&self, id: &str) -> Result<Option<LetterRow>> {
                Ok(sqlx::query_as::<$db, LetterRow>(&format!(
                    "select {} from correspondence_letters l join cases c on c.id = l.case_id \
                     join correspondents p on p.id = l.correspondent_id where l.id = $1",
                    super::correspondence::LETTER_COLUMNS
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            async fn list_letters(&self, q: &LetterQuery) -> Result<Vec<LetterRow>> {
                let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                    "select {} from correspondence_letters l join cases c on c.id = l.case_id \
                     join correspondents p on p.id = l.correspondent_id where ",
                    super::correspondence::LETTER_COLUMNS
                ));
                super::shared::push_case_scope(&mut b, &q.scope, "l.case_id");
                if let Some(c) = &q.case_id {
                    b.push(" and l.case_id = ");
                    b.push_bind(c.clone());
                }
                if let Some(s) = &q.status {
                    b.push(" and l.status = ");
                    b.push_bind(s.clone());
                }
                if let Some(d) = &q.direction {
                    b.push(" and l.direction = ");
                    b.push_bind(d.clone());
                }
                if let Some(a) = &q.addressee {
                    b.push(" and l.addressee = ");
                    b.push_bind(a.clone());
                }
                if let Some(x) = &q.before {
                    b.push(" and l.id < ");
                    b.push_bind(x.clone());
                }
                b.push(" order by l.id desc limit ");
                b.push_bind(q.limit);
                Ok(b.build_query_as::<LetterRow>().fetch_all(&self.pool).await?)
            }
        }
    };
}
pub(crate) use correspondence_impl;
