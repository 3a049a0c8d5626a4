//! PostgreSQL, for several instances and national scale. Same schema and behaviour as SQLite.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres};

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

store_impl!(PgStore, Postgres, {
    fn backend(&self) -> &'static str {
        "postgres"
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
