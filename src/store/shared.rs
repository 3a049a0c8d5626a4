//! The SQL both backends share. SQLite and PostgreSQL both take `$n` parameters, `returning`,
//! and `on conflict`, so the queries are written once and instantiated per backend by
//! [`shared_store_methods!`]; what differs (connection set-up, migrations, locking) lives in
//! `sqlite.rs` and `postgres.rs`.

use chrono::{DateTime, Utc};

use super::{AssignmentRow, CaseAssignmentRow, CaseRow, CaseScope, ReportQuery};

/// Columns of a case row joined with its wrapped key.
pub const CASE_COLUMNS: &str = "c.id, c.program, c.region, c.status, c.created_by, c.created_at, \
     c.updated_at, c.donor, c.donation, c.notes, k.key_version, k.wrapped as wrapped_key";

/// After `select`: the active account behind the API token `$1`, with the token's expiry
/// (`UserRow` columns, then `expires_at`); callers add conditions with `and`.
pub const TOKEN_USER: &str = "u.id, u.username, u.display_name, u.role, u.region, \
     u.password_hash, u.disabled, u.created_at, u.updated_at, u.totp_secret, u.totp_enabled_at, \
     u.totp_last_step, u.contact_id, u.email, t.expires_at \
     from api_tokens t join users u on u.id = t.user_id \
     where t.token_hash = $1 and u.disabled = false";

/// The access generation now (SQLite: migration 0017), as a statement or a scalar subquery.
pub const GENERATION_NOW: &str = "select n from access_generation where id = 1";

/// A case's (`$1`) contacts in id order.
pub fn contacts_of_case() -> String {
    format!("select {CONTACT_COLUMNS} from contacts where case_id = $1 order by id")
}

/// After `select CASE_COLUMNS`: a case (`$1`) joined with its assignments, one row each
/// (`CaseAssignmentRow`), for `fold_assignments`.
pub const CASE_WITH_ASSIGNMENTS: &str = ", a.user_id as a_user_id, a.kind as a_kind from cases c \
     left join case_keys k on k.case_id = c.id \
     left join case_assignments a on a.case_id = c.id where c.id = $1 \
     order by a.kind, a.user_id";

/// The cases of a scope as the start of a query: `from … where …`, ending in a comparison whose
/// value (if any) is to be bound next, and aliasing the cases `c`.
pub fn cases_of_scope(scope: &CaseScope) -> (&'static str, Option<String>) {
    match scope {
        CaseScope::AssignedTo(user) => (
            "case_assignments a join cases c on c.id = a.case_id where a.user_id = ",
            Some(user.clone()),
        ),
        CaseScope::Region(region) => ("cases c where c.region = ", Some(region.clone())),
        CaseScope::All => ("cases c where 1 = 1", None),
    }
}

/// Push the condition that a row of a case (its case id in column `case_id`, the case itself
/// joined as `c`) is in `scope`: assigned to the user, of the region, or any.
pub fn push_case_scope<'a, DB: sqlx::Database>(
    b: &mut sqlx::QueryBuilder<'a, DB>,
    scope: &CaseScope,
    case_id: &str,
) where
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB> + 'a,
{
    match scope {
        CaseScope::AssignedTo(user) => {
            b.push(format!(
                "exists (select 1 from case_assignments a where a.case_id = {case_id} \
                 and a.user_id = "
            ));
            b.push_bind(user.clone());
            b.push(")");
        }
        CaseScope::Region(region) => {
            b.push("c.region = ");
            b.push_bind(region.clone());
        }
        CaseScope::All => {
            b.push("1 = 1");
        }
    }
}

/// `cast(case when col < b1 then 0 when col < b2 then 1 … end as bigint)`: the month of a
/// report (`q.bounds`) a time falls in, for times already known to lie within the bounds.
pub fn push_month<'a, DB: sqlx::Database>(
    b: &mut sqlx::QueryBuilder<'a, DB>,
    column: &str,
    q: &ReportQuery,
) where
    DateTime<Utc>: sqlx::Encode<'a, DB> + sqlx::Type<DB> + 'a,
{
    b.push("cast(case");
    for (i, bound) in q.bounds.iter().skip(1).enumerate() {
        b.push(format!(" when {column} < "));
        b.push_bind(*bound);
        b.push(format!(" then {i}"));
    }
    b.push(" end as bigint)");
}

/// `case when col < b1 then b1 when col < b2 then b2 … end`: the end of the month `col` is in.
pub fn push_month_end<'a, DB: sqlx::Database>(
    b: &mut sqlx::QueryBuilder<'a, DB>,
    column: &str,
    q: &ReportQuery,
) where
    DateTime<Utc>: sqlx::Encode<'a, DB> + sqlx::Type<DB> + 'a,
{
    b.push("case");
    for bound in q.bounds.iter().skip(1) {
        b.push(format!(" when {column} < "));
        b.push_bind(*bound);
        b.push(" then ");
        b.push_bind(*bound);
    }
    b.push(" end");
}

/// ` and col >= first bound and col < last bound`, and the report's programme and region,
/// of cases aliased `c`.
pub fn push_report_filter<'a, DB: sqlx::Database>(
    b: &mut sqlx::QueryBuilder<'a, DB>,
    column: Option<&str>,
    q: &ReportQuery,
) where
    DateTime<Utc>: sqlx::Encode<'a, DB> + sqlx::Type<DB> + 'a,
    String: sqlx::Encode<'a, DB> + sqlx::Type<DB> + 'a,
{
    if let (Some(column), Some(first), Some(last)) = (column, q.bounds.first(), q.bounds.last()) {
        b.push(format!(" and {column} >= "));
        b.push_bind(*first);
        b.push(format!(" and {column} < "));
        b.push_bind(*last);
    }
    if let Some(p) = &q.program {
        b.push(" and c.program = ");
        b.push_bind(p.clone());
    }
    if let Some(r) = &q.region {
        b.push(" and c.region = ");
        b.push_bind(r.clone());
    }
}

/// The case of `CASE_WITH_ASSIGNMENTS` rows and its assignments; `None` without rows.
pub fn fold_assignments(
    rows: impl IntoIterator<Item = CaseAssignmentRow>,
) -> Option<(CaseRow, Vec<AssignmentRow>)> {
    let mut assignments = Vec::new();
    let mut case = None;
    for r in rows {
        if let (Some(user_id), Some(kind)) = (r.a_user_id, r.a_kind) {
            assignments.push(AssignmentRow {
                case_id: r.case.id.clone(),
                user_id,
                kind,
            });
        }
        case.get_or_insert(r.case);
    }
    case.map(|c| (c, assignments))
}

pub const USER_COLUMNS: &str = "id, username, display_name, role, region, password_hash, \
     disabled, created_at, updated_at, totp_secret, totp_enabled_at, totp_last_step, contact_id, email";

/// Columns of a finding row (`f`) with its case's (`c`) programme.
pub const FINDING_COLUMNS: &str = "f.id, f.case_id, f.rule, f.consent_key, f.message, f.status, \
     c.program, f.opened_at, f.updated_at, f.closed_at, f.closed_by, f.decision, f.note";

/// Audit entries per multi-row insert (15 parameters each, well under both backends' limits).
pub const AUDIT_ROWS_PER_INSERT: usize = 500;

/// Whether a statement over `rows` rows, of a batch cut into chunks of `full`, is kept prepared
/// on its connection (sqlx's statement cache): only at the full size. The last chunk of a batch
/// has another length nearly every time, and each length kept is another compiled program
/// (hundreds of kB at 400 rows of 14 columns) held by every connection that ran it for as long
/// as it lives: 56 MiB of the peak of a first materialisation of 100 000 cases
/// (`benches/schedule.rs`, 2026-12-07).
pub fn keep_prepared(rows: usize, full: usize) -> bool {
    rows == full
}
pub const AUDIT_COLUMNS: &str = "seq, id, at, actor_id, actor_role, action, target_type, \
     target_id, case_id, outcome, break_glass, reason, content_hash, prev_hash, hash";

pub const TASK_COLUMNS: &str = "t.id, t.case_id, t.kind, t.due_at, t.assignee_id, t.contact_id, \
     t.template, t.status, t.details, t.created_by, t.created_at, t.updated_at, t.completed_at, \
     t.completed_by, t.rule_id, t.occurrence, t.grace_until, t.cancel_reason, c.region";

pub const CONSENT_COLUMNS: &str = "k.id, k.case_id, k.kind, k.subject, k.given_by, k.method, \
     k.document_id, k.document_sha256, k.signed_at, k.expires_at, k.withdraws, k.sealed, \
     k.created_by, k.created_at, k.content_hash, w.id as withdrawn_by";

pub const CONTACT_COLUMNS: &str = "id, case_id, relationship, language, timezone, \
     preferred_channel, opted_out, do_not_contact_until, details, created_at, updated_at";

/// Map a unique-constraint violation to a 409 naming `field`; pass anything else through.
pub fn unique_to_conflict(e: sqlx::Error, field: &str, message: &str) -> crate::error::Error {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => {
            crate::error::Error::conflict(field, message)
        }
        _ => e.into(),
    }
}

/// Expands to the `Store` implementation of `$store`: the backend-specific methods passed in,
/// plus every method whose SQL is the same on both backends. `$db` is the sqlx database type;
/// `self.pool` must be a `sqlx::Pool<$db>`.
macro_rules! store_impl {
    ($store:ty, $db:ty, { $($own:tt)* }) => {
        #[async_trait::async_trait]
        impl Store for $store {
        $($own)*

        async fn ping(&self) -> Result<()> {
            sqlx::query("select 1").execute(&self.pool).await?;
            Ok(())
        }

        async fn keyring_rows(&self) -> Result<Vec<KeyringRow>> {
            Ok(sqlx::query_as::<$db, KeyringRow>(
                "select purpose, version, created_at, retired_at, sealed, recipients \
                 from keyring order by purpose, version",
            )
            .fetch_all(&self.pool)
            .await?)
        }

        async fn insert_keyring_rows(&self, rows: &[KeyringRow], audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            for r in rows {
                sqlx::query(
                    "insert into keyring (purpose, version, created_at, retired_at, sealed, recipients) \
                     values ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&r.purpose)
                .bind(r.version)
                .bind(r.created_at)
                .bind(r.retired_at)
                .bind(&r.sealed)
                .bind(&r.recipients)
                .execute(&mut *tx)
                .await
                .map_err(|e| {
                    shared::unique_to_conflict(e, "version", "that keyring version already exists")
                })?;
            }
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn reseal_keyring(&self, rows: &[KeyringRow], audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            for r in rows {
                sqlx::query(
                    "update keyring set sealed = $1, recipients = $2 \
                     where purpose = $3 and version = $4 and retired_at is null",
                )
                .bind(&r.sealed)
                .bind(&r.recipients)
                .bind(&r.purpose)
                .bind(r.version)
                .execute(&mut *tx)
                .await?;
            }
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn retire_key_version(&self, version: i64, now: DateTime<Utc>, audit: &[AuditEntry]) -> Result<bool> {
            let mut tx = self.begin_write().await?;
            let done = sqlx::query(
                "update keyring set retired_at = $1, sealed = null \
                 where purpose = 'data' and version = $2 and retired_at is null \
                 and version < (select max(version) from keyring where purpose = 'data') \
                 and not exists (select 1 from case_keys where key_version = $2)",
            )
            .bind(now)
            .bind(version)
            .execute(&mut *tx)
            .await?;
            commit_if_one(tx, done.rows_affected(), audit).await
        }

        async fn case_key_counts(&self) -> Result<Vec<VersionCount>> {
            Ok(sqlx::query_as::<$db, VersionCount>(
                "select key_version, count(*) as count from case_keys group by key_version \
                 order by key_version",
            )
            .fetch_all(&self.pool)
            .await?)
        }

        async fn case_keys_not_at(&self, version: i64, limit: i64) -> Result<Vec<WrappedCaseKey>> {
            Ok(sqlx::query_as::<$db, WrappedCaseKey>(
                "select case_id, key_version, wrapped from case_keys where key_version < $1 \
                 order by key_version, case_id limit $2",
            )
            .bind(version)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn rewrap_case_key(&self, key: &WrappedCaseKey, old_version: i64) -> Result<bool> {
            let done = sqlx::query(
                "update case_keys set key_version = $1, wrapped = $2 \
                 where case_id = $3 and key_version = $4",
            )
            .bind(key.key_version)
            .bind(&key.wrapped)
            .bind(&key.case_id)
            .bind(old_version)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn count_users(&self) -> Result<i64> {
            let (n,): (i64,) = sqlx::query_as("select count(*) from users")
                .fetch_one(&self.pool)
                .await?;
            Ok(n)
        }

        async fn insert_user(&self, u: &UserRow, audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            shared_insert_user(&mut *tx, u).await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn user_by_id(&self, id: &str) -> Result<Option<UserRow>> {
            Ok(sqlx::query_as::<$db, UserRow>(&format!(
                "select {} from users where id = $1",
                shared::USER_COLUMNS
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn user_by_username(&self, username: &str) -> Result<Option<UserRow>> {
            Ok(sqlx::query_as::<$db, UserRow>(&format!(
                "select {} from users where username = $1",
                shared::USER_COLUMNS
            ))
            .bind(username)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn list_users(&self, after: Option<&str>, limit: i64) -> Result<Vec<UserRow>> {
            Ok(sqlx::query_as::<$db, UserRow>(&format!(
                "select {} from users where id > $1 order by id limit $2",
                shared::USER_COLUMNS
            ))
            .bind(after.unwrap_or(""))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn update_user(&self, u: &UserRow, audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "update users set display_name = $1, role = $2, region = $3, password_hash = $4, \
                 disabled = $5, updated_at = $6, email = $8 where id = $7",
            )
            .bind(&u.display_name)
            .bind(&u.role)
            .bind(&u.region)
            .bind(&u.password_hash)
            .bind(u.disabled)
            .bind(u.updated_at)
            .bind(&u.id)
            .bind(&u.email)
            .execute(&mut *tx)
            .await?;
            if u.disabled {
                sqlx::query("delete from api_tokens where user_id = $1")
                    .bind(&u.id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("delete from sessions where user_id = $1")
                    .bind(&u.id)
                    .execute(&mut *tx)
                    .await?;
            }
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn count_active_admins(&self) -> Result<i64> {
            let (n,): (i64,) = sqlx::query_as(
                "select count(*) from users where role = 'admin' and disabled = $1",
            )
            .bind(false)
            .fetch_one(&self.pool)
            .await?;
            Ok(n)
        }

        async fn insert_token(
            &self,
            hash: &[u8],
            user_id: &str,
            now: DateTime<Utc>,
            expires_at: DateTime<Utc>,
            audit: &[AuditEntry],
        ) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "insert into api_tokens (token_hash, user_id, created_at, expires_at) \
                 values ($1, $2, $3, $4)",
            )
            .bind(hash)
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn user_for_token(&self, hash: &[u8], now: DateTime<Utc>) -> Result<Option<UserRow>> {
            Ok(sqlx::query_as::<$db, UserRow>(&format!(
                "select {} and t.expires_at > $2",
                shared::TOKEN_USER
            ))
            .bind(hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn append_audit(&self, entries: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            append_entries(&mut tx, entries).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn revoke_token(&self, hash: &[u8], audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query("delete from api_tokens where token_hash = $1")
                .bind(hash)
                .execute(&mut *tx)
                .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn replace_setup_token(
            &self,
            hash: &[u8],
            now: DateTime<Utc>,
            expires_at: DateTime<Utc>,
        ) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query("delete from setup_tokens where user_id is null")
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "insert into setup_tokens (token_hash, created_at, expires_at) values ($1, $2, $3)",
            )
            .bind(hash)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        }

        async fn setup_token_valid(&self, hash: &[u8], now: DateTime<Utc>) -> Result<bool> {
            let row: Option<(String,)> = sqlx::query_as(
                "select 'y' from setup_tokens where token_hash = $1 and used_at is null \
                 and user_id is null and expires_at > $2 and not exists (select 1 from users)",
            )
            .bind(hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.is_some())
        }

        async fn consume_setup_token(
            &self,
            hash: &[u8],
            now: DateTime<Utc>,
            admin: &UserRow,
            audit: &[AuditEntry],
        ) -> Result<bool> {
            let mut tx = self.begin_write().await?;
            let used = sqlx::query(
                "update setup_tokens set used_at = $1 \
                 where token_hash = $2 and used_at is null and user_id is null and expires_at > $1",
            )
            .bind(now)
            .bind(hash)
            .execute(&mut *tx)
            .await?;
            let (users,): (i64,) = sqlx::query_as("select count(*) from users")
                .fetch_one(&mut *tx)
                .await?;
            if used.rows_affected() != 1 || users != 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            shared_insert_user(&mut *tx, admin).await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(true)
        }

        async fn replace_user_setup_token(
            &self,
            user_id: &str,
            hash: &[u8],
            now: DateTime<Utc>,
            expires_at: DateTime<Utc>,
            audit: &[AuditEntry],
        ) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query("delete from setup_tokens where user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "insert into setup_tokens (token_hash, created_at, expires_at, user_id) \
                 values ($1, $2, $3, $4)",
            )
            .bind(hash)
            .bind(now)
            .bind(expires_at)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn user_setup_token(&self, hash: &[u8], now: DateTime<Utc>) -> Result<Option<UserRow>> {
            let columns = shared::USER_COLUMNS
                .split(", ")
                .map(|c| format!("u.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ");
            Ok(sqlx::query_as::<$db, UserRow>(&format!(
                "select {columns} from setup_tokens s join users u on u.id = s.user_id \
                 where s.token_hash = $1 and s.used_at is null and s.expires_at > $2 \
                 and u.disabled = $3"
            ))
            .bind(hash)
            .bind(now)
            .bind(false)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn consume_user_setup_token(
            &self,
            hash: &[u8],
            now: DateTime<Utc>,
            password_hash: &str,
            audit: &[AuditEntry],
        ) -> Result<Option<String>> {
            let mut tx = self.begin_write().await?;
            let user: Option<(String,)> = sqlx::query_as(
                "update setup_tokens set used_at = $1 \
                 where token_hash = $2 and used_at is null and expires_at > $1 \
                 and user_id in (select id from users where disabled = $3) \
                 returning user_id",
            )
            .bind(now)
            .bind(hash)
            .bind(false)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((user_id,)) = user else {
                tx.rollback().await?;
                return Ok(None);
            };
            sqlx::query("update users set password_hash = $1, updated_at = $2 where id = $3")
                .bind(password_hash)
                .bind(now)
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("delete from api_tokens where user_id = $1")
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("delete from sessions where user_id = $1")
                .bind(&user_id)
                .execute(&mut *tx)
                .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(Some(user_id))
        }

        async fn insert_case(&self, case: &NewCase, audit: &[AuditEntry]) -> Result<()> {
            let r = &case.row;
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "insert into cases (id, program, region, status, created_by, created_at, \
                 updated_at, donor, donation, notes) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&r.id)
            .bind(&r.program)
            .bind(&r.region)
            .bind(&r.status)
            .bind(&r.created_by)
            .bind(r.created_at)
            .bind(r.updated_at)
            .bind(&r.donor)
            .bind(&r.donation)
            .bind(&r.notes)
            .execute(&mut *tx)
            .await?;
            sqlx::query("insert into case_keys (case_id, key_version, wrapped) values ($1, $2, $3)")
                .bind(&r.id)
                .bind(r.key_version)
                .bind(&r.wrapped_key)
                .execute(&mut *tx)
                .await?;
            for a in &case.assignments {
                sqlx::query(
                    "insert into case_assignments (case_id, user_id, kind, assigned_at) \
                     values ($1, $2, $3, $4) on conflict (case_id, user_id) do nothing",
                )
                .bind(&a.case_id)
                .bind(&a.user_id)
                .bind(&a.kind)
                .bind(r.created_at)
                .execute(&mut *tx)
                .await?;
            }
            replace_terms(&mut tx, &r.id, &case.terms).await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn case_by_id(&self, id: &str) -> Result<Option<CaseRow>> {
            Ok(sqlx::query_as::<$db, CaseRow>(&format!(
                "select {} from cases c left join case_keys k on k.case_id = c.id where c.id = $1",
                shared::CASE_COLUMNS
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn case_with_assignments(
            &self,
            id: &str,
        ) -> Result<Option<(CaseRow, Vec<AssignmentRow>)>> {
            let rows = sqlx::query_as::<$db, CaseAssignmentRow>(&format!(
                "select {} {}",
                shared::CASE_COLUMNS,
                shared::CASE_WITH_ASSIGNMENTS
            ))
            .bind(id)
            .fetch_all(&self.pool)
            .await?;
            Ok(shared::fold_assignments(rows))
        }

        async fn cases_with_assignments(
            &self,
            ids: &[String],
        ) -> Result<Vec<(CaseRow, Vec<AssignmentRow>)>> {
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                "select {}, a.user_id as a_user_id, a.kind as a_kind from cases c \
                 left join case_keys k on k.case_id = c.id \
                 left join case_assignments a on a.case_id = c.id where c.id in (",
                shared::CASE_COLUMNS
            ));
            let mut list = b.separated(", ");
            for id in ids {
                list.push_bind(id.clone());
            }
            b.push(") order by c.id, a.kind, a.user_id");
            let rows = b.build_query_as::<CaseAssignmentRow>().fetch_all(&self.pool).await?;
            // Rows come grouped by case: fold each run.
            let mut out = Vec::new();
            let mut run: Vec<CaseAssignmentRow> = Vec::new();
            for r in rows {
                if run.last().is_some_and(|l| l.case.id != r.case.id) {
                    out.extend(shared::fold_assignments(std::mem::take(&mut run)));
                }
                run.push(r);
            }
            out.extend(shared::fold_assignments(run));
            Ok(out)
        }

        async fn list_cases(&self, q: &CaseQuery) -> Result<Vec<CaseRow>> {
            let mut b = sqlx::QueryBuilder::<$db>::new(format!("select {} from ", shared::CASE_COLUMNS));
            // Drive the scan from the narrowest index: the assignment list, or the region.
            match &q.scope {
                CaseScope::AssignedTo(user) => {
                    b.push("case_assignments a join cases c on c.id = a.case_id \
                            left join case_keys k on k.case_id = c.id where a.user_id = ");
                    b.push_bind(user.clone());
                }
                CaseScope::Region(region) => {
                    b.push("cases c left join case_keys k on k.case_id = c.id where c.region = ");
                    b.push_bind(region.clone());
                }
                CaseScope::All => {
                    b.push("cases c left join case_keys k on k.case_id = c.id where 1 = 1");
                }
            }
            if let Some(term) = &q.term {
                b.push(" and c.id in (select case_id from case_search where term = ");
                b.push_bind(term.clone());
                b.push(")");
            }
            if let Some(p) = &q.program {
                b.push(" and c.program = ");
                b.push_bind(p.clone());
            }
            if let Some(s) = &q.status {
                b.push(" and c.status = ");
                b.push_bind(s.clone());
            }
            if let Some((kind, at)) = &q.consent_in_force {
                b.push(" and exists (select 1 from consents p where p.case_id = c.id and p.kind = ");
                b.push_bind(kind.clone());
                b.push(" and p.subject = 'donor' and p.withdraws is null and p.signed_at <= ");
                b.push_bind(*at);
                b.push(" and (p.expires_at is null or p.expires_at > ");
                b.push_bind(*at);
                b.push(") and not exists (select 1 from consents w where w.withdraws = p.id))");
            }
            if let Some(after) = &q.after {
                b.push(" and c.id > ");
                b.push_bind(after.clone());
            }
            b.push(" order by c.id limit ");
            b.push_bind(q.limit);
            Ok(b.build_query_as::<CaseRow>().fetch_all(&self.pool).await?)
        }

        async fn account_language(&self, user_id: &str) -> Result<Option<String>> {
            Ok(sqlx::query_scalar::<$db, String>("select language from account_settings where user_id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?)
        }

        async fn set_account_language(&self, user_id: &str, language: &str, audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "insert into account_settings (user_id, language) values ($1, $2) \
                 on conflict (user_id) do update set language = excluded.language",
            )
            .bind(user_id)
            .bind(language)
            .execute(&mut *tx)
            .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn set_calendar_feed(&self, user_id: &str, token_hash: &[u8], now: DateTime<Utc>, audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "insert into calendar_feeds (user_id, token_hash, created_at) values ($1, $2, $3) \
                 on conflict (user_id) do update set token_hash = excluded.token_hash, \
                 created_at = excluded.created_at",
            )
            .bind(user_id)
            .bind(token_hash)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn delete_calendar_feed(&self, user_id: &str, audit: &[AuditEntry]) -> Result<bool> {
            let mut tx = self.begin_write().await?;
            let gone = sqlx::query("delete from calendar_feeds where user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(gone > 0)
        }

        async fn calendar_feed(&self, token_hash: &[u8]) -> Result<Option<(String, DateTime<Utc>)>> {
            Ok(sqlx::query_as::<$db, (String, DateTime<Utc>)>(
                "select user_id, created_at from calendar_feeds where token_hash = $1",
            )
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn calendar_feed_of(&self, user_id: &str) -> Result<Option<DateTime<Utc>>> {
            Ok(sqlx::query_scalar::<$db, DateTime<Utc>>(
                "select created_at from calendar_feeds where user_id = $1",
            )
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn count_cases(&self, scope: &CaseScope) -> Result<Vec<ProgramCount>> {
            let mut b = sqlx::QueryBuilder::<$db>::new("select c.program, c.status, count(*) as count from ");
            let (from, value) = shared::cases_of_scope(scope);
            b.push(from);
            if let Some(v) = value {
                b.push_bind(v);
            }
            b.push(" group by c.program, c.status order by c.program, c.status");
            Ok(b.build_query_as::<ProgramCount>().fetch_all(&self.pool).await?)
        }

        async fn report_rows(&self, q: &ReportQuery) -> Result<ReportRows> {
            let mut b = sqlx::QueryBuilder::<$db>::new("select c.program, c.region, ");
            shared::push_month(&mut b, "t.due_at", q);
            b.push(
                " as bucket, count(*) as total, \
                 count(case when t.status = 'done' then 1 end) as done, \
                 count(case when t.status = 'cancelled' then 1 end) as cancelled, \
                 count(case when t.status = 'done' and (t.completed_at > t.grace_until \
                 or (t.grace_until is null and t.completed_at >= ",
            );
            shared::push_month_end(&mut b, "t.due_at", q);
            b.push(
                ")) then 1 end) as late \
                 from tasks t join cases c on c.id = t.case_id \
                 where t.kind <> 'outreach' and t.status in ('scheduled', 'done', 'cancelled')",
            );
            shared::push_report_filter(&mut b, Some("t.due_at"), q);
            b.push(" group by 1, 2, 3");
            let tasks = b.build_query_as::<ReportTasks>().persistent(false).fetch_all(&self.pool).await?;

            // (what, detail, the time that places a row in its month, from and where) of the
            // counts by month; then the standing ones, at `q.at`.
            let monthly: [(&str, &str, &str, &str); 6] = [
                ("'sent'", "o.channel", "o.sent_at",
                 "outreach o join cases c on c.id = o.case_id where o.status = 'sent'"),
                ("'not_sent'", "o.status || ':' || coalesce(o.reason, '')", "o.due_at",
                 "outreach o join cases c on c.id = o.case_id \
                  where o.status in ('held', 'failed', 'dead', 'cancelled')"),
                ("case when k.withdraws is null then 'consent_given' else 'consent_withdrawn' end",
                 "k.kind", "k.signed_at", "consents k join cases c on c.id = k.case_id where 1 = 1"),
                ("'finding_opened'", "f.rule", "f.opened_at",
                 "findings f join cases c on c.id = f.case_id where 1 = 1"),
                ("'finding_closed'", "f.rule", "f.closed_at",
                 "findings f join cases c on c.id = f.case_id where f.closed_at is not null"),
                ("'case_new'", "c.program", "c.created_at", "cases c where 1 = 1"),
            ];
            let mut b = sqlx::QueryBuilder::<$db>::new("");
            for (i, (what, detail, time, from)) in monthly.iter().enumerate() {
                if i > 0 {
                    b.push(" union all ");
                }
                b.push("select c.program as program, c.region as region, ");
                shared::push_month(&mut b, time, q);
                b.push(format!(
                    " as bucket, {what} as what, coalesce({detail}, '') as detail, count(*) as count \
                     from {from}"
                ));
                shared::push_report_filter(&mut b, Some(time), q);
                b.push(" group by 1, 2, 3, 4, 5");
            }
            let standing: [(&str, &str, &str, &str); 3] = [
                ("'consent_active'", "k.kind",
                 "consents k join cases c on c.id = k.case_id where k.withdraws is null \
                  and k.signed_at < ",
                 " and (k.expires_at is null or k.expires_at > {at}) and not exists \
                  (select 1 from consents w where w.withdraws = k.id and w.signed_at < {at})"),
                ("'finding_open'", "f.rule",
                 "findings f join cases c on c.id = f.case_id where f.opened_at < ",
                 " and (f.closed_at is null or f.closed_at >= {at})"),
                ("'case_open'", "c.program",
                 "cases c where c.status = 'open' and c.created_at < ", ""),
            ];
            for (what, detail, from, rest) in standing {
                b.push(format!(
                    " union all select c.program, c.region, cast(-1 as bigint), {what}, \
                     coalesce({detail}, ''), count(*) from {from}"
                ));
                b.push_bind(q.at);
                // `{at}` stands for `q.at` again, bound once for each place.
                let mut parts = rest.split("{at}");
                if let Some(first) = parts.next() {
                    b.push(first);
                }
                for part in parts {
                    b.push_bind(q.at);
                    b.push(part);
                }
                shared::push_report_filter(&mut b, None, q);
                b.push(" group by 1, 2, 3, 4, 5");
            }
            let counts = b.build_query_as::<ReportCount>().persistent(false).fetch_all(&self.pool).await?;
            Ok(ReportRows { tasks, counts })
        }

        async fn case_regions(&self) -> Result<Vec<String>> {
            Ok(sqlx::query_scalar::<$db, String>(
                "select distinct region from cases order by region",
            )
            .fetch_all(&self.pool)
            .await?)
        }

        async fn consent_coverage(
            &self,
            scope: &CaseScope,
            now: DateTime<Utc>,
            after: Option<&str>,
            limit: i64,
        ) -> Result<Vec<CoverageRow>> {
            // The page of cases first, then their kinds in force, so `limit` counts cases.
            let mut b = sqlx::QueryBuilder::<$db>::new(
                "with page as (select c.id, c.program, c.region from ",
            );
            let (from, value) = shared::cases_of_scope(scope);
            b.push(from);
            if let Some(v) = value {
                b.push_bind(v);
            }
            b.push(" and c.status = 'open'");
            if let Some(a) = after {
                b.push(" and c.id > ");
                b.push_bind(a.to_string());
            }
            b.push(" order by c.id limit ");
            b.push_bind(limit);
            b.push(
                ") select distinct p.id as case_id, p.program, p.region, k.kind from page p \
                 left join consents k on k.case_id = p.id \
                 and k.withdraws is null \
                 and not exists (select 1 from consents w where w.withdraws = k.id) \
                 and (k.expires_at is null or k.expires_at > ",
            );
            b.push_bind(now);
            b.push(") order by p.id, k.kind");
            Ok(b.build_query_as::<CoverageRow>().fetch_all(&self.pool).await?)
        }

        async fn update_case(&self, r: &CaseRow, terms: Option<&SearchTerms>, audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "update cases set region = $1, status = $2, updated_at = $3, donor = $4, \
                 donation = $5, notes = $6 where id = $7",
            )
            .bind(&r.region)
            .bind(&r.status)
            .bind(r.updated_at)
            .bind(&r.donor)
            .bind(&r.donation)
            .bind(&r.notes)
            .bind(&r.id)
            .execute(&mut *tx)
            .await?;
            if let Some(t) = terms {
                replace_terms(&mut tx, &r.id, t).await?;
            }
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn assignments(&self, case_id: &str) -> Result<Vec<AssignmentRow>> {
            Ok(sqlx::query_as::<$db, AssignmentRow>(
                "select case_id, user_id, kind from case_assignments where case_id = $1 \
                 order by kind, user_id",
            )
            .bind(case_id)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn set_primary(&self, case_id: &str, user_id: &str, now: DateTime<Utc>, audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "delete from case_assignments where case_id = $1 and kind = 'primary' and user_id <> $2",
            )
            .bind(case_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "insert into case_assignments (case_id, user_id, kind, assigned_at) \
                 values ($1, $2, 'primary', $3) \
                 on conflict (case_id, user_id) do update set kind = 'primary'",
            )
            .bind(case_id)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn add_to_team(&self, case_id: &str, user_id: &str, now: DateTime<Utc>, audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "insert into case_assignments (case_id, user_id, kind, assigned_at) \
                 values ($1, $2, 'team', $3) on conflict (case_id, user_id) do nothing",
            )
            .bind(case_id)
            .bind(user_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn is_assigned(&self, case_id: &str, user_id: &str) -> Result<bool> {
            let row: Option<(String,)> = sqlx::query_as(
                "select kind from case_assignments where case_id = $1 and user_id = $2",
            )
            .bind(case_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.is_some())
        }

        async fn insert_contact(&self, c: &ContactRow, terms: &SearchTerms, audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "insert into contacts (id, case_id, relationship, language, timezone, \
                 preferred_channel, opted_out, do_not_contact_until, details, created_at, updated_at) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&c.id)
            .bind(&c.case_id)
            .bind(&c.relationship)
            .bind(&c.language)
            .bind(&c.timezone)
            .bind(&c.preferred_channel)
            .bind(c.opted_out)
            .bind(c.do_not_contact_until)
            .bind(&c.details)
            .bind(c.created_at)
            .bind(c.updated_at)
            .execute(&mut *tx)
            .await?;
            replace_terms(&mut tx, &c.case_id, terms).await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn contact_by_id(&self, id: &str) -> Result<Option<ContactRow>> {
            Ok(sqlx::query_as::<$db, ContactRow>(&format!(
                "select {} from contacts where id = $1",
                shared::CONTACT_COLUMNS
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn contacts_for_case(&self, case_id: &str) -> Result<Vec<ContactRow>> {
            Ok(sqlx::query_as::<$db, ContactRow>(&shared::contacts_of_case())
            .bind(case_id)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn update_contact(&self, c: &ContactRow, terms: &SearchTerms, audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "update contacts set relationship = $1, language = $2, timezone = $3, \
                 preferred_channel = $4, opted_out = $5, do_not_contact_until = $6, details = $7, \
                 updated_at = $8 where id = $9",
            )
            .bind(&c.relationship)
            .bind(&c.language)
            .bind(&c.timezone)
            .bind(&c.preferred_channel)
            .bind(c.opted_out)
            .bind(c.do_not_contact_until)
            .bind(&c.details)
            .bind(c.updated_at)
            .bind(&c.id)
            .execute(&mut *tx)
            .await?;
            replace_terms(&mut tx, &c.case_id, terms).await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn audit_page(&self, after_seq: i64, limit: i64) -> Result<Vec<AuditRow>> {
            Ok(sqlx::query_as::<$db, AuditRow>(&format!(
                "select {} from audit_log where seq > $1 order by seq limit $2",
                shared::AUDIT_COLUMNS
            ))
            .bind(after_seq)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn audit_head(&self) -> Result<(i64, Vec<u8>)> {
            Ok(sqlx::query_as("select seq, hash from audit_head where id = 1")
                .fetch_one(&self.pool)
                .await?)
        }

        async fn list_audit(&self, q: &AuditQuery) -> Result<Vec<AuditRow>> {
            let cols = shared::AUDIT_COLUMNS
                .split(", ")
                .map(|c| format!("a.{c}"))
                .collect::<Vec<_>>()
                .join(", ");
            let mut b = sqlx::QueryBuilder::<$db>::new(format!("select {cols} from audit_log a "));
            if let Some(region) = &q.region {
                b.push("join cases c on c.id = a.case_id and c.region = ");
                b.push_bind(region.clone());
            }
            b.push(" where 1 = 1");
            if let Some(v) = &q.case_id {
                b.push(" and a.case_id = ");
                b.push_bind(v.clone());
            }
            if let Some(v) = &q.actor_id {
                b.push(" and a.actor_id = ");
                b.push_bind(v.clone());
            }
            if let Some(v) = &q.action {
                b.push(" and a.action = ");
                b.push_bind(v.clone());
            }
            if let Some(v) = q.from {
                b.push(" and a.at >= ");
                b.push_bind(v);
            }
            if let Some(v) = q.to {
                b.push(" and a.at < ");
                b.push_bind(v);
            }
            if let Some(v) = q.before {
                b.push(" and a.seq < ");
                b.push_bind(v);
            }
            b.push(" order by a.seq desc limit ");
            b.push_bind(q.limit);
            Ok(b.build_query_as::<AuditRow>().fetch_all(&self.pool).await?)
        }

        async fn insert_break_glass(&self, r: &BreakGlassRow, audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "insert into break_glass (id, case_id, user_id, reason, granted_at, expires_at) \
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&r.id)
            .bind(&r.case_id)
            .bind(&r.user_id)
            .bind(&r.reason)
            .bind(r.granted_at)
            .bind(r.expires_at)
            .execute(&mut *tx)
            .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn has_break_glass(&self, case_id: &str, user_id: &str, now: DateTime<Utc>) -> Result<bool> {
            let row: Option<(String,)> = sqlx::query_as(
                "select id from break_glass where user_id = $1 and case_id = $2 and expires_at > $3 \
                 limit 1",
            )
            .bind(user_id)
            .bind(case_id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
            Ok(row.is_some())
        }

        async fn list_break_glass(
            &self,
            region: Option<&str>,
            case_id: Option<&str>,
            unreviewed: bool,
            before: Option<&str>,
            limit: i64,
        ) -> Result<Vec<BreakGlassRow>> {
            let mut b = sqlx::QueryBuilder::<$db>::new(
                "select g.id, g.case_id, g.user_id, g.reason, g.granted_at, g.expires_at \
                 from break_glass g join cases c on c.id = g.case_id where 1 = 1",
            );
            if let Some(r) = region {
                b.push(" and c.region = ");
                b.push_bind(r.to_string());
            }
            if let Some(c) = case_id {
                b.push(" and g.case_id = ");
                b.push_bind(c.to_string());
            }
            if unreviewed {
                b.push(
                    " and not exists (select 1 from break_glass_reviews r where r.grant_id = g.id)",
                );
            }
            if let Some(x) = before {
                b.push(" and g.id < ");
                b.push_bind(x.to_string());
            }
            b.push(" order by g.id desc limit ");
            b.push_bind(limit);
            Ok(b.build_query_as::<BreakGlassRow>().fetch_all(&self.pool).await?)
        }

        async fn break_glass_by_id(&self, id: &str) -> Result<Option<BreakGlassRow>> {
            Ok(sqlx::query_as::<$db, BreakGlassRow>(
                "select id, case_id, user_id, reason, granted_at, expires_at \
                 from break_glass where id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn insert_break_glass_review(
            &self,
            r: &BreakGlassReviewRow,
            audit: &[AuditEntry],
        ) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "insert into break_glass_reviews \
                 (id, grant_id, reviewer_id, decision, note, reviewed_at) \
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&r.id)
            .bind(&r.grant_id)
            .bind(&r.reviewer_id)
            .bind(&r.decision)
            .bind(&r.note)
            .bind(r.reviewed_at)
            .execute(&mut *tx)
            .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn break_glass_reviews(&self, grant_ids: &[String]) -> Result<Vec<BreakGlassReviewRow>> {
            if grant_ids.is_empty() {
                return Ok(Vec::new());
            }
            let mut b = sqlx::QueryBuilder::<$db>::new(
                "select id, grant_id, reviewer_id, decision, note, reviewed_at \
                 from break_glass_reviews where grant_id in (",
            );
            let mut ids = b.separated(", ");
            for id in grant_ids {
                ids.push_bind(id.clone());
            }
            b.push(") order by reviewed_at, id");
            Ok(b.build_query_as::<BreakGlassReviewRow>().fetch_all(&self.pool).await?)
        }

        async fn set_totp(
            &self,
            user_id: &str,
            secret: Option<&[u8]>,
            enabled_at: Option<DateTime<Utc>>,
            audit: &[AuditEntry],
        ) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query("update users set totp_secret = $1, totp_enabled_at = $2 where id = $3")
                .bind(secret)
                .bind(enabled_at)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn use_totp_step(&self, user_id: &str, step: i64) -> Result<bool> {
            let done = sqlx::query(
                "update users set totp_last_step = $1 where id = $2 and totp_last_step < $1",
            )
            .bind(step)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
            Ok(done.rows_affected() == 1)
        }

        async fn change_password(
            &self,
            user_id: &str,
            hash: &str,
            keep_token: &[u8],
            now: DateTime<Utc>,
            audit: &[AuditEntry],
        ) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query("update users set password_hash = $1, updated_at = $2 where id = $3")
                .bind(hash)
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("delete from api_tokens where user_id = $1 and token_hash <> $2")
                .bind(user_id)
                .bind(keep_token)
                .execute(&mut *tx)
                .await?;
            sqlx::query("delete from sessions where user_id = $1 and id_hash <> $2")
                .bind(user_id)
                .bind(keep_token)
                .execute(&mut *tx)
                .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn insert_invite(&self, hash: &[u8], i: &InviteRow, audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "insert into invites (token_hash, contact_id, created_by, created_at, expires_at) \
                 values ($1, $2, $3, $4, $5)",
            )
            .bind(hash)
            .bind(&i.contact_id)
            .bind(&i.created_by)
            .bind(i.created_at)
            .bind(i.expires_at)
            .execute(&mut *tx)
            .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn invite(&self, hash: &[u8]) -> Result<Option<InviteRow>> {
            Ok(sqlx::query_as::<$db, InviteRow>(
                "select contact_id, created_by, created_at, expires_at, used_at from invites \
                 where token_hash = $1",
            )
            .bind(hash)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn accept_invite(
            &self,
            hash: &[u8],
            now: DateTime<Utc>,
            user: &UserRow,
            audit: &[AuditEntry],
        ) -> Result<bool> {
            let mut tx = self.begin_write().await?;
            let used = sqlx::query(
                "update invites set used_at = $1 where token_hash = $2 and used_at is null \
                 and expires_at > $1 and contact_id = $3",
            )
            .bind(now)
            .bind(hash)
            .bind(&user.contact_id)
            .execute(&mut *tx)
            .await?;
            let (taken,): (i64,) = sqlx::query_as("select count(*) from users where contact_id = $1")
                .bind(&user.contact_id)
                .fetch_one(&mut *tx)
                .await?;
            if used.rows_affected() != 1 || taken != 0 {
                tx.rollback().await?;
                return Ok(false);
            }
            shared_insert_user(&mut *tx, user).await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(true)
        }

        async fn insert_erasure_request(&self, r: &ErasureRow, audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "insert into erasure_requests (id, case_id, requested_by, requested_at, status) \
                 values ($1, $2, $3, $4, $5)",
            )
            .bind(&r.id)
            .bind(&r.case_id)
            .bind(&r.requested_by)
            .bind(r.requested_at)
            .bind(&r.status)
            .execute(&mut *tx)
            .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn erasure_request(&self, id: &str) -> Result<Option<ErasureRow>> {
            Ok(sqlx::query_as::<$db, ErasureRow>(
                "select id, case_id, requested_by, requested_at, status, decided_by, decided_at \
                 from erasure_requests where id = $1",
            )
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn list_erasure_requests(
            &self,
            status: Option<&str>,
            after: Option<&str>,
            limit: i64,
        ) -> Result<Vec<ErasureRow>> {
            let mut b = sqlx::QueryBuilder::<$db>::new(
                "select id, case_id, requested_by, requested_at, status, decided_by, decided_at \
                 from erasure_requests where id > ",
            );
            b.push_bind(after.unwrap_or("").to_string());
            if let Some(s) = status {
                b.push(" and status = ");
                b.push_bind(s.to_string());
            }
            b.push(" order by id limit ");
            b.push_bind(limit);
            Ok(b.build_query_as::<ErasureRow>().fetch_all(&self.pool).await?)
        }

        async fn decide_erasure(
            &self,
            id: &str,
            approve: bool,
            decided_by: &str,
            now: DateTime<Utc>,
            audit: &[AuditEntry],
        ) -> Result<bool> {
            let mut tx = self.begin_write().await?;
            let status = if approve { "approved" } else { "rejected" };
            let case: Option<(String,)> = sqlx::query_as(
                "update erasure_requests set status = $1, decided_by = $2, decided_at = $3 \
                 where id = $4 and status = 'pending' returning case_id",
            )
            .bind(status)
            .bind(decided_by)
            .bind(now)
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((case_id,)) = case else {
                tx.rollback().await?;
                return Ok(false);
            };
            if approve {
                for sql in [
                    "delete from case_keys where case_id = $1",
                    "delete from case_search where case_id = $1",
                ] {
                    sqlx::query(sql).bind(&case_id).execute(&mut *tx).await?;
                }
                sqlx::query("update cases set status = 'erased', updated_at = $1 where id = $2")
                    .bind(now)
                    .bind(&case_id)
                    .execute(&mut *tx)
                    .await?;
            }
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(true)
        }

        async fn erase_again(
            &self,
            case_id: &str,
            request_id: Option<&str>,
            now: DateTime<Utc>,
            audit: &[AuditEntry],
        ) -> Result<bool> {
            let mut tx = self.begin_write().await?;
            let erased = sqlx::query(
                "update cases set status = 'erased', updated_at = $1 where id = $2 and status <> 'erased'",
            )
            .bind(now)
            .bind(case_id)
            .execute(&mut *tx)
            .await?;
            if erased.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            for sql in [
                "delete from case_keys where case_id = $1",
                "delete from case_search where case_id = $1",
            ] {
                sqlx::query(sql).bind(case_id).execute(&mut *tx).await?;
            }
            if let Some(id) = request_id {
                sqlx::query(
                    "update erasure_requests set status = 'approved', decided_at = $1 \
                     where id = $2 and case_id = $3 and status = 'pending'",
                )
                .bind(now)
                .bind(id)
                .bind(case_id)
                .execute(&mut *tx)
                .await?;
            }
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(true)
        }

        async fn case_access_log(&self, case_id: &str, before: Option<i64>, limit: i64) -> Result<Vec<AccessRow>> {
            Ok(sqlx::query_as::<$db, AccessRow>(
                "select a.seq, a.at, a.actor_id, a.actor_role, u.display_name, a.action, a.break_glass \
                 from audit_log a left join users u on u.id = a.actor_id \
                 where a.case_id = $1 and a.outcome = 'allowed' and a.seq < $2 \
                 and a.actor_role in ('supervisor', 'coordinator', 'ethics_reviewer', 'volunteer', 'admin') \
                 and a.action in ('case.view', 'case.update', 'contact.write', 'case.break_glass', \
                                  'case.reveal', 'case.erase') \
                 order by a.seq desc limit $3",
            )
            .bind(case_id)
            .bind(before.unwrap_or(i64::MAX))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn insert_session(&self, id_hash: &[u8], r: &SessionRow, audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "insert into sessions (id_hash, user_id, csrf, created_at, last_seen_at, expires_at) \
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id_hash)
            .bind(&r.user_id)
            .bind(&r.csrf)
            .bind(r.created_at)
            .bind(r.last_seen_at)
            .bind(r.expires_at)
            .execute(&mut *tx)
            .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn session(&self, id_hash: &[u8]) -> Result<Option<SessionRow>> {
            Ok(sqlx::query_as::<$db, SessionRow>(
                "select user_id, csrf, created_at, last_seen_at, expires_at from sessions \
                 where id_hash = $1",
            )
            .bind(id_hash)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn touch_session(&self, id_hash: &[u8], now: DateTime<Utc>) -> Result<()> {
            sqlx::query("update sessions set last_seen_at = $1 where id_hash = $2")
                .bind(now)
                .bind(id_hash)
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn delete_session(&self, id_hash: &[u8], audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query("delete from sessions where id_hash = $1")
                .bind(id_hash)
                .execute(&mut *tx)
                .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn insert_task(
            &self,
            t: &TaskRow,
            outreach: &[OutreachRow],
            audit: &[AuditEntry],
        ) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "insert into tasks (id, case_id, kind, due_at, assignee_id, contact_id, template, \
                 status, details, created_by, created_at, updated_at, grace_until) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
            .bind(t.grace_until)
            .execute(&mut *tx)
            .await?;
            // A hand-planned outreach's messages go in with it, as a plan's do with theirs.
            insert_outreach_in(&mut tx, &outreach.iter().collect::<Vec<_>>()).await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn task_by_id(&self, id: &str) -> Result<Option<TaskRow>> {
            Ok(sqlx::query_as::<$db, TaskRow>(&format!(
                "select {} from tasks t join cases c on c.id = t.case_id where t.id = $1",
                shared::TASK_COLUMNS
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn list_tasks(&self, q: &TaskQuery) -> Result<Vec<TaskRow>> {
            let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                "select {} from tasks t join cases c on c.id = t.case_id where ",
                shared::TASK_COLUMNS
            ));
            match &q.scope {
                TaskScope::AssignedTo(u) => {
                    b.push("t.assignee_id = ");
                    b.push_bind(u.clone());
                }
                TaskScope::CasesOf(u) => {
                    b.push("t.case_id in (select case_id from case_assignments where user_id = ");
                    b.push_bind(u.clone());
                    b.push(")");
                }
                TaskScope::Region(r) => {
                    b.push("c.region = ");
                    b.push_bind(r.clone());
                }
            }
            if let Some(s) = &q.status {
                b.push(" and t.status = ");
                b.push_bind(s.clone());
            }
            if let Some(d) = q.due_before {
                b.push(" and t.due_at < ");
                b.push_bind(d);
            }
            if let Some(c) = &q.case_id {
                b.push(" and t.case_id = ");
                b.push_bind(c.clone());
            }
            if let Some((due, id)) = &q.after {
                b.push(" and (t.due_at > ");
                b.push_bind(*due);
                b.push(" or (t.due_at = ");
                b.push_bind(*due);
                b.push(" and t.id > ");
                b.push_bind(id.clone());
                b.push("))");
            }
            b.push(" order by t.due_at, t.id limit ");
            b.push_bind(q.limit);
            Ok(b.build_query_as::<TaskRow>().fetch_all(&self.pool).await?)
        }

        async fn complete_task(
            &self,
            id: &str,
            details: &[u8],
            by: &str,
            now: DateTime<Utc>,
            cancel: &[CancelOutreach],
            audit: &[AuditEntry],
        ) -> Result<bool> {
            let mut tx = self.begin_write().await?;
            let done = sqlx::query(
                "update tasks set status = 'done', details = $1, completed_by = $2, completed_at = $3, \
                 updated_at = $3 where id = $4 and status = 'scheduled'",
            )
            .bind(details)
            .bind(by)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            for c in cancel {
                cancel_outreach_in(&mut tx, c, now).await?;
            }
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(true)
        }

        async fn insert_consent(
            &self,
            r: &ConsentRow,
            audit: &[AuditEntry],
            cancel: Option<&Cancel>,
        ) -> Result<u64> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "insert into consents (id, case_id, kind, subject, given_by, method, document_id, \
                 document_sha256, signed_at, expires_at, withdraws, sealed, created_by, created_at, \
                 content_hash) values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
            )
            .bind(&r.id)
            .bind(&r.case_id)
            .bind(&r.kind)
            .bind(&r.subject)
            .bind(&r.given_by)
            .bind(&r.method)
            .bind(&r.document_id)
            .bind(&r.document_sha256)
            .bind(r.signed_at)
            .bind(r.expires_at)
            .bind(&r.withdraws)
            .bind(&r.sealed)
            .bind(&r.created_by)
            .bind(r.created_at)
            .bind(&r.content_hash)
            .execute(&mut *tx)
            .await
            .map_err(|e| shared::unique_to_conflict(e, "id", "this consent has already been withdrawn"))?;
            let cancelled = match cancel {
                Some(Cancel::Outreach(c)) => cancel_outreach_in(&mut tx, c, r.created_at).await?,
                Some(Cancel::Uses(c)) => cancel_uses_in(&mut tx, c).await?,
                None => 0,
            };
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(cancelled)
        }

        async fn consent_by_id(&self, id: &str) -> Result<Option<ConsentRow>> {
            Ok(sqlx::query_as::<$db, ConsentRow>(&format!(
                "select {} from consents k left join consents w on w.withdraws = k.id where k.id = $1",
                shared::CONSENT_COLUMNS
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn list_consents(&self, q: &ConsentQuery) -> Result<Vec<ConsentRow>> {
            let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                "select {} from consents k left join consents w on w.withdraws = k.id \
                 join cases c on c.id = k.case_id where ",
                shared::CONSENT_COLUMNS
            ));
            match &q.scope {
                ConsentScope::All => {
                    b.push("1 = 1");
                }
                ConsentScope::Region(r) => {
                    b.push("c.region = ");
                    b.push_bind(r.clone());
                }
                ConsentScope::AssignedTo(u) => {
                    b.push("k.case_id in (select case_id from case_assignments where user_id = ");
                    b.push_bind(u.clone());
                    b.push(")");
                }
                ConsentScope::Contact(id) => {
                    b.push("(k.subject = ");
                    b.push_bind(id.clone());
                    b.push(" or k.given_by = ");
                    b.push_bind(id.clone());
                    b.push(")");
                }
            }
            if let Some(v) = &q.case_id {
                b.push(" and k.case_id = ");
                b.push_bind(v.clone());
            }
            if let Some(v) = &q.kind {
                b.push(" and k.kind = ");
                b.push_bind(v.clone());
            }
            if let Some(v) = &q.after {
                b.push(" and k.id > ");
                b.push_bind(v.clone());
            }
            b.push(" order by k.id limit ");
            b.push_bind(q.limit);
            Ok(b.build_query_as::<ConsentRow>().fetch_all(&self.pool).await?)
        }

        async fn sync_findings(&self, case_id: &str, found: &[Found], now: DateTime<Utc>) -> Result<(usize, usize)> {
            let mut tx = self.begin_write().await?;
            let open: Vec<(String, String, String, String)> = sqlx::query_as(
                "select id, rule, consent_key, message from findings where case_id = $1 and status = 'open'",
            )
            .bind(case_id)
            .fetch_all(&mut *tx)
            .await?;
            let mut opened = 0;
            let mut closed = 0;
            for (rule, key, message) in found {
                match open.iter().find(|(_, r, k, _)| r == rule && k == key) {
                    Some((id, _, _, m)) if m != message => {
                        sqlx::query("update findings set message = $1, updated_at = $2 where id = $3")
                            .bind(message)
                            .bind(now)
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    Some(_) => {}
                    None => {
                        sqlx::query(
                            "insert into findings (id, case_id, rule, consent_key, message, status, \
                             opened_at, updated_at) values ($1, $2, $3, $4, $5, 'open', $6, $6)",
                        )
                        .bind(uuid::Uuid::now_v7().to_string())
                        .bind(case_id)
                        .bind(rule)
                        .bind(key)
                        .bind(message)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        opened += 1;
                    }
                }
            }
            for (id, rule, key, _) in &open {
                if !found.iter().any(|(r, k, _)| r == rule && k == key) {
                    sqlx::query(
                        "update findings set status = 'closed', closed_at = $1, updated_at = $1, \
                         closed_by = 'system', decision = 'resolved' where id = $2",
                    )
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                    closed += 1;
                }
            }
            tx.commit().await?;
            Ok((opened, closed))
        }

        async fn finding_by_id(&self, id: &str) -> Result<Option<FindingRow>> {
            Ok(sqlx::query_as::<$db, FindingRow>(&format!(
                "select {} from findings f join cases c on c.id = f.case_id \
                 where f.id = $1",
                shared::FINDING_COLUMNS
            ))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn list_findings(&self, q: &FindingQuery) -> Result<Vec<FindingRow>> {
            let mut b = sqlx::QueryBuilder::<$db>::new(format!(
                "select {} from findings f join cases c on c.id = f.case_id \
                 where f.id > ",
                shared::FINDING_COLUMNS
            ));
            b.push_bind(q.after.clone().unwrap_or_default());
            if let Some(r) = &q.region {
                b.push(" and c.region = ");
                b.push_bind(r.clone());
            }
            if let Some(u) = &q.assigned_to {
                b.push(" and f.case_id in (select case_id from case_assignments where user_id = ");
                b.push_bind(u.clone());
                b.push(")");
            }
            for (column, value) in [
                ("f.case_id", &q.case_id),
                ("f.status", &q.status),
                ("f.rule", &q.rule),
                ("c.program", &q.program),
            ] {
                if let Some(v) = value {
                    b.push(format!(" and {column} = "));
                    b.push_bind(v.clone());
                }
            }
            if let Some(t) = q.opened_before {
                b.push(" and f.opened_at < ");
                b.push_bind(t);
            }
            b.push(" order by f.id limit ");
            b.push_bind(q.limit);
            Ok(b.build_query_as::<FindingRow>().fetch_all(&self.pool).await?)
        }

        async fn close_finding(
            &self,
            id: &str,
            by: &str,
            decision: &str,
            note: Option<&[u8]>,
            now: DateTime<Utc>,
            audit: &[AuditEntry],
        ) -> Result<bool> {
            let mut tx = self.begin_write().await?;
            let done = sqlx::query(
                "update findings set status = 'closed', closed_at = $1, updated_at = $1, closed_by = $2, \
                 decision = $3, note = $4 where id = $5 and status = 'open'",
            )
            .bind(now)
            .bind(by)
            .bind(decision)
            .bind(note)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            commit_if_one(tx, done.rows_affected(), audit).await
        }

        async fn reviews_of_consent(&self, consent_id: &str) -> Result<Vec<ReviewRow>> {
            Ok(sqlx::query_as::<$db, ReviewRow>(
                "select id, consent_id, reviewer_id, finding, note, reviewed_at \
                 from consent_reviews where consent_id = $1 order by reviewed_at, id",
            )
            .bind(consent_id)
            .fetch_all(&self.pool)
            .await?)
        }

        async fn insert_review(&self, r: &ReviewRow, audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "insert into consent_reviews (id, consent_id, reviewer_id, finding, note, reviewed_at) \
                 values ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&r.id)
            .bind(&r.consent_id)
            .bind(&r.reviewer_id)
            .bind(&r.finding)
            .bind(&r.note)
            .bind(r.reviewed_at)
            .execute(&mut *tx)
            .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn insert_reveal(
            &self,
            id: &str,
            case_id: &str,
            user_id: &str,
            reason: &[u8],
            now: DateTime<Utc>,
            audit: &[AuditEntry],
        ) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "insert into reveals (id, case_id, user_id, reason, revealed_at) values ($1, $2, $3, $4, $5)",
            )
            .bind(id)
            .bind(case_id)
            .bind(user_id)
            .bind(reason)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn insert_attachment(&self, r: &AttachmentRow, audit: &[AuditEntry]) -> Result<()> {
            let mut tx = self.begin_write().await?;
            sqlx::query(
                "insert into consent_attachments (consent_id, case_id, media_type, size, sealed_sha256, \
                 uploaded_by, uploaded_at) values ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&r.consent_id)
            .bind(&r.case_id)
            .bind(&r.media_type)
            .bind(r.size)
            .bind(&r.sealed_sha256)
            .bind(&r.uploaded_by)
            .bind(r.uploaded_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| shared::unique_to_conflict(e, "attachment", "this consent already has its signed form"))?;
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(())
        }

        async fn attachment(&self, consent_id: &str) -> Result<Option<AttachmentRow>> {
            Ok(sqlx::query_as::<$db, AttachmentRow>(
                "select consent_id, case_id, media_type, size, sealed_sha256, uploaded_by, uploaded_at \
                 from consent_attachments where consent_id = $1",
            )
            .bind(consent_id)
            .fetch_optional(&self.pool)
            .await?)
        }

        async fn attached_consents(&self, case_id: &str) -> Result<Vec<String>> {
            let rows: Vec<(String,)> =
                sqlx::query_as("select consent_id from consent_attachments where case_id = $1")
                    .bind(case_id)
                    .fetch_all(&self.pool)
                    .await?;
            Ok(rows.into_iter().map(|r| r.0).collect())
        }

        async fn meta_get(&self, key: &str) -> Result<Option<String>> {
            let row: Option<(String,)> = sqlx::query_as("select value from meta where key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?;
            Ok(row.map(|r| r.0))
        }

        async fn meta_set(&self, key: &str, value: &str) -> Result<()> {
            sqlx::query(
                "insert into meta (key, value) values ($1, $2) \
                 on conflict (key) do update set value = excluded.value",
            )
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
            Ok(())
        }

        async fn end_sessions(&self, user_id: &str, audit: &[AuditEntry]) -> Result<u64> {
            let mut tx = self.begin_write().await?;
            let sessions = sqlx::query("delete from sessions where user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let tokens = sqlx::query("delete from api_tokens where user_id = $1")
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            append_entries(&mut tx, audit).await?;
            tx.commit().await?;
            Ok(sessions + tokens)
        }
        }
    };
}

/// Free functions both backends need inside transactions, generic over the executor.
macro_rules! shared_store_helpers {
    ($db:ty) => {
        async fn shared_insert_user<'e, E>(ex: E, u: &UserRow) -> Result<()>
        where
            E: sqlx::Executor<'e, Database = $db>,
        {
            sqlx::query(
                "insert into users (id, username, display_name, role, region, password_hash, \
                 disabled, created_at, updated_at, contact_id, email) \
                 values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&u.id)
            .bind(&u.username)
            .bind(&u.display_name)
            .bind(&u.role)
            .bind(&u.region)
            .bind(&u.password_hash)
            .bind(u.disabled)
            .bind(u.created_at)
            .bind(u.updated_at)
            .bind(&u.contact_id)
            .bind(&u.email)
            .execute(ex)
            .await
            .map_err(|e| shared::unique_to_conflict(e, "username", "that username is taken"))?;
            Ok(())
        }

        /// Insert `entries` as the chain's entries `first`, `first + 1`, … after `prev` (the hash
        /// of entry `first - 1`), in one statement per 500; returns the new head hash. With
        /// `only_at` (SQLite only: migration 0017's `access_generation`) a statement's rows go in
        /// only while the access generation is that one, and `None` says they did not; on its
        /// own connection that holds for a batch of up to `AUDIT_ROWS_PER_INSERT` entries, in a
        /// write transaction for any number.
        async fn insert_audit_rows(
            conn: &mut <$db as sqlx::Database>::Connection,
            first: i64,
            mut prev: Vec<u8>,
            entries: &[AuditEntry],
            only_at: Option<i64>,
        ) -> sqlx::Result<Option<Vec<u8>>> {
            for (c, chunk) in entries.chunks(shared::AUDIT_ROWS_PER_INSERT).enumerate() {
                let mut b = sqlx::QueryBuilder::<$db>::new(
                    "insert into audit_log (seq, id, at, actor_id, actor_role, action, target_type, \
                     target_id, case_id, outcome, break_glass, reason, content_hash, prev_hash, hash) ",
                );
                if only_at.is_some() {
                    b.push("select * from (");
                }
                let mut rows = Vec::with_capacity(chunk.len());
                for (i, e) in chunk.iter().enumerate() {
                    let seq = first + (c * shared::AUDIT_ROWS_PER_INSERT + i) as i64;
                    let hash = crate::audit::chain_hash(&prev, seq, e);
                    rows.push((seq, e, std::mem::replace(&mut prev, hash.clone()), hash));
                }
                b.push_values(rows, |mut r, (seq, e, prev_hash, hash)| {
                    r.push_bind(seq)
                        .push_bind(e.id.clone())
                        .push_bind(e.at)
                        .push_bind(e.actor_id.clone())
                        .push_bind(e.actor_role.clone())
                        .push_bind(e.action.clone())
                        .push_bind(e.target_type.clone())
                        .push_bind(e.target_id.clone())
                        .push_bind(e.case_id.clone())
                        .push_bind(e.outcome.as_str())
                        .push_bind(e.break_glass)
                        .push_bind(e.reason.clone())
                        .push_bind(e.content_hash.clone())
                        .push_bind(prev_hash)
                        .push_bind(hash);
                });
                if let Some(generation) = only_at {
                    // In sequence order, which the chain's triggers require.
                    b.push(") as v where (");
                    b.push(shared::GENERATION_NOW);
                    b.push(") = ");
                    b.push_bind(generation);
                    b.push(" order by 1");
                }
                let done = b.build().execute(&mut *conn).await?;
                if only_at.is_some() && done.rows_affected() == 0 {
                    return Ok(None);
                }
            }
            Ok(Some(prev))
        }

        async fn replace_terms(
            tx: &mut sqlx::Transaction<'_, $db>,
            case_id: &str,
            terms: &SearchTerms,
        ) -> Result<()> {
            sqlx::query("delete from case_search where case_id = $1 and source = $2")
                .bind(case_id)
                .bind(&terms.source)
                .execute(&mut **tx)
                .await?;
            for t in &terms.terms {
                sqlx::query(
                    "insert into case_search (term, case_id, source) values ($1, $2, $3) \
                     on conflict do nothing",
                )
                .bind(t)
                .bind(case_id)
                .bind(&terms.source)
                .execute(&mut **tx)
                .await?;
            }
            Ok(())
        }
    };
}

pub(crate) use shared_store_helpers;
pub(crate) use store_impl;
