//! PostgreSQL, for several instances and national scale. Same schema and behaviour as SQLite.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};

use super::correspondence::correspondence_impl;
use super::marrow::marrow_impl;
use super::memorial::memorial_impl;
use super::schedule::schedule_impl;
use super::shared::{self, shared_store_helpers, store_impl};
use super::*;
use crate::audit::AuditEntry;
use crate::error::Result;

pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        Ok(PgStore { pool })
    }

    /// Begin a transaction that will write. Row locks (the audit head) serialise what must be.
    async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'_, Postgres>> {
        self.pool.begin().await
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

shared_store_helpers!(Postgres);
schedule_impl!(PgStore, Postgres, POSTGRES_CLAIM);
marrow_impl!(PgStore, Postgres);
memorial_impl!(PgStore, Postgres);
correspondence_impl!(PgStore, Postgres);

/// Finish a guarded change: with exactly one row changed, append `audit` and commit (true);
/// otherwise roll back (false), so a lost race writes nothing.
async fn commit_if_one(
    mut tx: sqlx::Transaction<'_, Postgres>,
    rows: u64,
    audit: &[AuditEntry],
) -> Result<bool> {
    if rows != 1 {
        tx.rollback().await?;
        return Ok(false);
    }
    append_entries(&mut tx, audit).await?;
    tx.commit().await?;
    Ok(true)
}

/// Append `entries` to the hash chain inside `tx`. The update of the head row takes its lock
/// first, so concurrent writers (several instances) queue here and the chain stays linear.
async fn append_entries(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    entries: &[AuditEntry],
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let n = entries.len() as i64;
    let (last, prev): (i64, Vec<u8>) =
        sqlx::query_as("update audit_head set seq = seq + $1 where id = 1 returning seq, hash")
            .bind(n)
            .fetch_one(&mut **tx)
            .await?;
    let head = insert_audit_rows(tx, last - n + 1, prev, entries, None)
        .await?
        .ok_or_else(|| anyhow::anyhow!("an unguarded audit insert wrote nothing"))?;
    sqlx::query("update audit_head set hash = $1 where id = 1")
        .bind(&head)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

super::dump::dump_impl!(
    PgStore,
    Postgres,
    "begin isolation level repeatable read read only",
    "begin",
    None::<&str>,
    super::dump::Placeholders::Numbered
);

store_impl!(PgStore, Postgres, {
    async fn dump(&self, out: tokio::sync::mpsc::Sender<super::dump::Item>) -> Result<()> {
        self.dump_snapshot(&out).await
    }

    async fn load(
        &self,
        mut items: tokio::sync::mpsc::Receiver<super::dump::Item>,
    ) -> Result<super::dump::Loaded> {
        let loaded = self.load_items(&mut items).await?;
        // A restored database has no planner statistics until autovacuum comes round to it,
        // and without them PostgreSQL guesses: a freshly restored million cases had every
        // lookup planned as if the tables were small. Gather them before anyone is let in.
        sqlx::query("analyze").execute(&self.pool).await?;
        Ok(loaded)
    }

    async fn is_empty(&self) -> Result<bool> {
        self.holds_nothing(
            "select ((to_regclass('keyring') is not null)::int + (to_regclass('users') is not null)::int + (to_regclass('cases') is not null)::int + (to_regclass('audit_log') is not null)::int)::bigint",
        )
        .await
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    /// PostgreSQL has no access generation (no `CachedReads`): `only_at` is never given here,
    /// and if it were, the batch is refused as stale rather than written unchecked.
    async fn append_reads(&self, entries: &[AuditEntry], only_at: Option<i64>) -> Result<Appended> {
        if only_at.is_some() {
            return Ok(Appended::Stale);
        }
        self.append_audit(entries).await?;
        Ok(Appended::Durable)
    }

    fn sync_reads(&self) -> Result<()> {
        Ok(())
    }

    async fn close(&self) {
        self.pool.close().await;
    }

    async fn checkpoint(&self) -> Result<()> {
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        // sqlx takes an advisory lock, so instances starting together migrate once.
        sqlx::migrate!("migrations/postgres")
            .run(&self.pool)
            .await
            .context("applying PostgreSQL migrations")?;
        Ok(())
    }

    async fn keyring_exists(&self) -> Result<bool> {
        let (exists,): (bool,) = sqlx::query_as("select to_regclass('keyring') is not null")
            .fetch_one(&self.pool)
            .await?;
        if !exists {
            return Ok(false);
        }
        let (rows,): (i64,) = sqlx::query_as("select count(*) from keyring")
            .fetch_one(&self.pool)
            .await?;
        Ok(rows > 0)
    }
});
