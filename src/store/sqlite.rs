//! SQLite, the embedded default: WAL, foreign keys, a busy timeout, and `synchronous=FULL` so a
//! power loss cannot undo a commit.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use super::schedule::schedule_impl;
use super::shared::{self, shared_store_helpers, store_impl};
use super::*;
use crate::audit::AuditEntry;
use crate::error::Result;

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let opts = SqliteConnectOptions::from_str(url)
            .context("parsing the SQLite URL")?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Statement journals and sorts in memory, and a larger page cache per connection
            // (16 MiB): a materialisation batch touches many index pages (benches/schedule.rs).
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16384");
        if let Some(parent) = opts.get_filename().parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
        }
        // No liveness ping before each use: a local file does not drop connections, and the ping
        // is a round trip to sqlx's worker thread on every query (measured: half of a read).
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect_with(opts)
            .await?;
        Ok(SqliteStore { pool })
    }

    /// Begin a transaction that will write. SQLite takes the write lock at once (`begin immediate`), so a transaction that reads first cannot fail to upgrade later.
    async fn begin_write(&self) -> sqlx::Result<sqlx::Transaction<'_, Sqlite>> {
        self.pool.begin_with("begin immediate").await
    }

    /// The pool, for benchmarks and tests that need raw access.
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }
}

shared_store_helpers!(Sqlite);
schedule_impl!(SqliteStore, Sqlite, SQLITE_CLAIM);

store_impl!(SqliteStore, Sqlite, {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn checkpoint(&self) -> Result<()> {
        sqlx::query("pragma wal_checkpoint(truncate)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        sqlx::migrate!("migrations/sqlite")
            .run(&self.pool)
            .await
            .context("applying SQLite migrations")?;
        Ok(())
    }

    async fn keyring_exists(&self) -> Result<bool> {
        let (tables,): (i64,) = sqlx::query_as(
            "select count(*) from sqlite_master where type = 'table' and name = 'keyring'",
        )
        .fetch_one(&self.pool)
        .await?;
        if tables == 0 {
            return Ok(false);
        }
        let (rows,): (i64,) = sqlx::query_as("select count(*) from keyring")
            .fetch_one(&self.pool)
            .await?;
        Ok(rows > 0)
    }
});
