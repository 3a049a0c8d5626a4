//! SQLite, the embedded default: WAL, foreign keys, a busy timeout, and `synchronous=FULL` so a
//! power loss cannot undo a commit. Batches of read entries are the exception: committed with
//! `synchronous=NORMAL` and fsynced right after, before any request they record is answered
//! (`ReadsConnection`). The case view's reads are kept in memory (`cached.rs`).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Connection, Sqlite, SqliteConnection, SqlitePool};

use super::cached::ReadCache;
use super::correspondence::correspondence_impl;
use super::marrow::marrow_impl;
use super::memorial::memorial_impl;
use super::schedule::schedule_impl;
use super::shared::{self, shared_store_helpers, store_impl};
use super::*;
use crate::audit::AuditEntry;
use crate::error::Result;

pub struct SqliteStore {
    pool: SqlitePool,
    /// Where this process last left the audit chain's head (sequence, hash), so a batch of read
    /// entries is one statement. Only a hint: the triggers of migration 0013 refuse an entry that
    /// does not follow the real head, and the head is then read again.
    audit_head_hint: std::sync::Mutex<Option<(i64, Vec<u8>)>>,
    /// The connection that appends batches of read entries (absent for an in-memory database).
    reads: Option<ReadsConnection>,
    cache: ReadCache,
}

/// Batches of read entries are committed with `synchronous=NORMAL`: the commit writes the WAL
/// without waiting for the disk, and `sync_reads` then fsyncs the WAL (on the recorder's sync
/// thread) before the requests continue. So the next batch is written while the last one
/// reaches the disk, and every view is still on disk before its answer leaves, as with
/// `synchronous=FULL`. `NORMAL` still syncs around checkpoints, so an interrupted write
/// cannot corrupt the database (SQLite's guarantee for WAL mode).
struct ReadsConnection {
    conn: tokio::sync::Mutex<Option<SqliteConnection>>,
    wal: PathBuf,
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
            // Statement journals and sorts in memory. The page cache is SQLite's default (2 MiB
            // a connection): it was 16 MiB when a materialisation batch wrote all over the
            // due-time indexes, but a bulk pass now drops them, and nine connections' caches
            // were 70 MiB of that pass's peak resident memory at 100 000 cases
            // (benches/schedule.rs, 2026-12-07), with no measurable gain in its time.
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-2000");
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
            .connect_with(opts.clone())
            .await?;
        let file = opts.get_filename();
        let reads = if file.as_os_str().is_empty() || file == Path::new(":memory:") {
            None
        } else {
            let mut wal = file.as_os_str().to_owned();
            wal.push("-wal");
            let conn = opts
                .synchronous(SqliteSynchronous::Normal)
                .connect()
                .await?;
            Some(ReadsConnection {
                conn: tokio::sync::Mutex::new(Some(conn)),
                wal: wal.into(),
            })
        };
        Ok(SqliteStore {
            cache: ReadCache::new(pool.clone()),
            pool,
            audit_head_hint: std::sync::Mutex::new(None),
            reads,
        })
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

/// Finish a guarded change: with exactly one row changed, append `audit` and commit (true);
/// otherwise roll back (false), so a lost race writes nothing.
async fn commit_if_one(
    mut tx: sqlx::Transaction<'_, Sqlite>,
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

/// Append `entries` to the hash chain inside `tx` (which holds the write lock: `begin
/// immediate`). The triggers of migration 0013 check each entry against the head and move it.
async fn append_entries(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    entries: &[AuditEntry],
) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let (seq, hash): (i64, Vec<u8>) =
        sqlx::query_as("select seq, hash from audit_head where id = 1")
            .fetch_one(&mut **tx)
            .await?;
    insert_audit_rows(tx, seq + 1, hash, entries, None).await?;
    Ok(())
}

/// The indexes a bulk materialisation drops and builds again: their keys are due times, so a
/// pass over many cases writes all over them (`benches/schedule.rs`: 0.58× the time without
/// them). The others a pass appends to (time-ordered ids) or fills a case range at a time.
const BULK_INDEXES: [&str; 2] = ["tasks_due", "outreach_next"];

/// Build the indexes saved in `bulk_dropped_indexes` and forget them, in one transaction.
async fn rebuild_saved_indexes(conn: &mut SqliteConnection) -> Result<usize> {
    let mut tx = conn.begin_with("begin immediate").await?;
    let saved: Vec<(String, String)> =
        sqlx::query_as("select name, sql from bulk_dropped_indexes order by name")
            .fetch_all(&mut *tx)
            .await?;
    for (name, sql) in &saved {
        sqlx::query(sql)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("rebuilding index {name}"))?;
    }
    sqlx::query("delete from bulk_dropped_indexes")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(saved.len())
}

/// The refusal of the trigger `audit_log_follows_head`: the writer's head was stale.
fn is_stale_head(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.message().contains("audit chain"))
}
schedule_impl!(SqliteStore, Sqlite, SQLITE_CLAIM);
marrow_impl!(SqliteStore, Sqlite);
memorial_impl!(SqliteStore, Sqlite);
correspondence_impl!(SqliteStore, Sqlite);

super::dump::dump_impl!(
    SqliteStore,
    Sqlite,
    "begin",
    "begin immediate",
    Some(
        "select type, name, sql from sqlite_master where sql is not null and \
         (type = 'index' or (type = 'trigger' and name like '%_moves_generation')) \
         order by type, name"
    ),
    super::dump::Placeholders::Anonymous
);

store_impl!(SqliteStore, Sqlite, {
    async fn dump(&self, out: tokio::sync::mpsc::Sender<super::dump::Item>) -> Result<()> {
        self.dump_snapshot(&out).await
    }

    async fn load(
        &self,
        mut items: tokio::sync::mpsc::Receiver<super::dump::Item>,
    ) -> Result<super::dump::Loaded> {
        self.load_items(&mut items).await
    }

    async fn is_empty(&self) -> Result<bool> {
        self.holds_nothing(
            "select count(*) from sqlite_master where type = 'table' and name in ('keyring', 'users', 'cases', 'audit_log')",
        )
        .await
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    /// A batch of read and denial entries (the group commit). Up to 500 entries are one
    /// statement committed on its own, on the reads connection (`ReadsConnection`), against
    /// the head this process last wrote; if another writer moved the head since, the trigger
    /// refuses the batch and it is retried from the head as stored. Larger batches, and a head
    /// that keeps moving, take a write transaction on the pool (`synchronous=FULL`).
    async fn append_reads(&self, entries: &[AuditEntry], only_at: Option<i64>) -> Result<Appended> {
        if entries.is_empty() {
            return Ok(Appended::Durable);
        }
        if entries.len() <= shared::AUDIT_ROWS_PER_INSERT {
            let mut locked;
            let mut pooled;
            let (conn, appended): (&mut SqliteConnection, _) = match &self.reads {
                Some(r) => {
                    locked = r.conn.lock().await;
                    match locked.as_mut() {
                        Some(c) => (c, Appended::Unsynced),
                        None => return Err(anyhow::anyhow!("the store is closed").into()),
                    }
                }
                None => {
                    pooled = self.pool.acquire().await?;
                    (&mut *pooled, Appended::Durable)
                }
            };
            for _ in 0..2 {
                let hint = self.audit_head_hint.lock().expect("audit head hint").take();
                let (seq, hash) = match hint {
                    Some(h) => h,
                    None => {
                        sqlx::query_as("select seq, hash from audit_head where id = 1")
                            .fetch_one(&mut *conn)
                            .await?
                    }
                };
                match insert_audit_rows(conn, seq + 1, hash, entries, only_at).await {
                    Ok(Some(head)) => {
                        *self.audit_head_hint.lock().expect("audit head hint") =
                            Some((seq + entries.len() as i64, head));
                        return Ok(appended);
                    }
                    Ok(None) => {
                        self.cache.refresh().await?;
                        return Ok(Appended::Stale);
                    }
                    Err(e) if is_stale_head(&e) => continue,
                    Err(e) => return Err(e.into()),
                }
            }
        }
        let mut tx = self.begin_write().await?;
        if let Some(expected) = only_at {
            let (now,): (i64,) = sqlx::query_as(shared::GENERATION_NOW)
                .fetch_one(&mut *tx)
                .await?;
            if now != expected {
                self.cache.seen(now);
                return Ok(Appended::Stale);
            }
        }
        append_entries(&mut tx, entries).await?;
        tx.commit().await?;
        Ok(Appended::Durable)
    }

    fn cached_reads(&self) -> Option<&dyn CachedReads> {
        Some(&self.cache)
    }

    fn sync_reads(&self) -> Result<()> {
        let Some(r) = &self.reads else {
            return Ok(());
        };
        // A fresh descriptor each time: fsync covers the file, not the descriptor, and the
        // WAL in place now is the one to sync.
        std::fs::File::open(&r.wal)
            .and_then(|f| f.sync_data())
            .with_context(|| format!("syncing {}", r.wal.display()))?;
        Ok(())
    }

    async fn close(&self) {
        if let Some(r) = &self.reads {
            if let Some(conn) = r.conn.lock().await.take() {
                let _ = conn.close().await;
            }
        }
        self.pool.close().await;
    }

    async fn checkpoint(&self) -> Result<()> {
        sqlx::query("pragma wal_checkpoint(truncate)")
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<()> {
        // Indexes an interrupted bulk materialisation left dropped come back first, so that
        // migrations find the schema they were written for.
        let (recorded,): (i64,) = sqlx::query_as(
            "select count(*) from sqlite_master where type = 'table' and name = 'bulk_dropped_indexes'",
        )
        .fetch_one(&self.pool)
        .await?;
        if recorded > 0 {
            let rebuilt = self.rebuild_bulk_indexes().await?;
            if rebuilt > 0 {
                tracing::warn!(
                    rebuilt,
                    "rebuilt indexes left dropped by an interrupted bulk materialisation"
                );
            }
        }
        sqlx::migrate!("migrations/sqlite")
            .run(&self.pool)
            .await
            .context("applying SQLite migrations")?;
        Ok(())
    }

    async fn drop_bulk_indexes(&self) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let mut dropped = false;
        for name in BULK_INDEXES {
            let saved = sqlx::query(
                "insert into bulk_dropped_indexes (name, sql) \
                 select name, sql from sqlite_master where type = 'index' and name = $1",
            )
            .bind(name)
            .execute(&mut *tx)
            .await?;
            if saved.rows_affected() == 1 {
                sqlx::query(&format!("drop index {name}"))
                    .execute(&mut *tx)
                    .await?;
                dropped = true;
            }
        }
        tx.commit().await?;
        Ok(dropped)
    }

    async fn rebuild_bulk_indexes(&self) -> Result<usize> {
        let (pending,): (i64,) = sqlx::query_as("select count(*) from bulk_dropped_indexes")
            .fetch_one(&self.pool)
            .await?;
        if pending == 0 {
            return Ok(0);
        }
        // The sort of each index spills to temporary files rather than memory: with
        // `temp_store=memory` the sort of 600 000 due times held about 35 MiB at the end of a
        // bulk pass over 100 000 cases (benches/schedule.rs, 2026-12-07).
        let mut conn = self.pool.acquire().await?;
        sqlx::query("pragma temp_store = file")
            .execute(&mut *conn)
            .await?;
        let rebuilt = rebuild_saved_indexes(&mut conn).await;
        let restored = sqlx::query("pragma temp_store = memory")
            .execute(&mut *conn)
            .await;
        if restored.is_err() {
            // Not back in the pool with other settings than its peers.
            let _ = conn.close().await;
        }
        let rebuilt = rebuilt?;
        restored.context("restoring temp_store after rebuilding indexes")?;
        Ok(rebuilt)
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
