//! What the benchmarks share: the sealing and bulk writing of cases, service set-up, the
//! synthetic data's dice, the figures' formatting; `synthetic`, the synthetic registry and the
//! folders that keep it; `process`, resident memory and the release binary run as an operator
//! runs it; `load`, the HTTP benches' load generator.
//! Included by each bench with `#[path]`; a bench that does not use a part leaves it unused,
//! hence the `allow`.
#![allow(dead_code)]

pub mod load;
pub mod process;
pub mod synthetic;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use donorcare::audit::AuditEntry;
use donorcare::config::Config;
use donorcare::crypto::{self, KeyService, Place, SecretKey};
use donorcare::domain::accounts::{self, NewUserInput};
use donorcare::domain::cases::{self, Donation, Donor};
use donorcare::domain::types::{national_id_check, Program, Role};
use donorcare::domain::{new_id, Services};
use donorcare::policy::{Action, Actor};
use donorcare::server::open_services;
use donorcare::store::CaseRow;

/// Rows per multi-row `insert` statement (at most 15 columns, well under SQLite's 32 766 binds).
pub const ROWS_PER_INSERT: usize = 100;

/// Cases per transaction, and per batch handed from the sealing thread to the writer.
pub const LOAD_BATCH: u64 = 5_000;

pub const PROGRESS_EVERY: u64 = 100_000;

/// A sealed case ready to insert, with its blind-index terms.
pub struct SealedCase {
    pub row: CaseRow,
    pub terms: Vec<Vec<u8>>,
    /// The `case.create` entry that `domain::cases::create` writes with the case.
    pub audit: AuditEntry,
    /// The synthetic case number it was made from.
    pub number: u64,
}

/// Insert one batch of sealed cases (rows, case keys, primary assignments, blind terms) in one
/// transaction of multi-row inserts.
pub async fn write_batch(pool: &SqlitePool, batch: &[SealedCase]) -> Result<()> {
    let mut tx = pool.begin().await?;
    for chunk in batch.chunks(ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "insert into cases (id, program, region, status, created_by, created_at, updated_at, \
             donor, donation, notes) ",
        );
        q.push_values(chunk, |mut b, c| {
            let r = &c.row;
            b.push_bind(&r.id)
                .push_bind(&r.program)
                .push_bind(&r.region)
                .push_bind(&r.status)
                .push_bind(&r.created_by)
                .push_bind(r.created_at)
                .push_bind(r.updated_at)
                .push_bind(&r.donor)
                .push_bind(&r.donation)
                .push_bind(&r.notes);
        });
        q.build().execute(&mut *tx).await?;

        let mut q =
            QueryBuilder::<Sqlite>::new("insert into case_keys (case_id, key_version, wrapped) ");
        q.push_values(chunk, |mut b, c| {
            b.push_bind(&c.row.id)
                .push_bind(c.row.key_version)
                .push_bind(&c.row.wrapped_key);
        });
        q.build().execute(&mut *tx).await?;

        let mut q = QueryBuilder::<Sqlite>::new(
            "insert into case_assignments (case_id, user_id, kind, assigned_at) ",
        );
        q.push_values(chunk, |mut b, c| {
            b.push_bind(&c.row.id)
                .push_bind(&c.row.created_by)
                .push_bind("primary")
                .push_bind(c.row.created_at);
        });
        q.build().execute(&mut *tx).await?;

        let mut q = QueryBuilder::<Sqlite>::new("insert into case_search (term, case_id, source) ");
        let terms = chunk
            .iter()
            .flat_map(|c| c.terms.iter().map(move |t| (t, &c.row.id)));
        q.push_values(terms, |mut b, (term, id)| {
            b.push_bind(term).push_bind(id).push_bind("donor");
        });
        q.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Open the services on `<dir>/donorcare.db` with the keys in `<dir>/keys`, as `serve` does
/// (which also stores the default care plans on first start).
pub async fn services_in(dir: &Path) -> Result<(Services, String)> {
    let mut cfg = Config::new(dir.to_path_buf());
    cfg.keys_dir = dir.join("keys");
    let (svc, _notices) = open_services(&cfg).await?;
    Ok((svc, cfg.database_url()))
}

/// Insert an account (without a password) and return it as an actor.
pub async fn insert_user(
    svc: &Services,
    username: &str,
    role: Role,
    region: &str,
    now: DateTime<Utc>,
) -> Result<Actor> {
    let row = accounts::new_user(
        &NewUserInput {
            email: None,
            username: Some(username.into()),
            display_name: None,
            role: Some(role.as_str().into()),
            region: Some(region.into()),
            password: None,
        },
        now,
    )?;
    svc.store.insert_user(&row, &[]).await?;
    Ok(accounts::actor_of(&row)?)
}

pub async fn sqlite_version() -> Result<String> {
    let pool = SqlitePool::connect("sqlite::memory:").await?;
    let (v,): (String,) = sqlx::query_as("select sqlite_version()")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    Ok(v)
}

/// The one-minute load average where the system reports it, since other work on the machine
/// skews every figure.
pub fn load_average() -> String {
    load_1min().map_or_else(String::new, |l| format!(", load average {l}"))
}

/// The one-minute load average alone, where the system reports it.
pub fn load_1min() -> Option<String> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
}

/// A national ID completed with its check character.
pub fn with_check(first17: &str) -> String {
    format!("{first17}{}", national_id_check(first17).unwrap_or('0'))
}

/// splitmix64: a small, fast, deterministic source of numbers for the synthetic data.
pub struct Dice(pub u64);

impl Dice {
    pub fn new(seed: u64) -> Self {
        Dice(seed.wrapping_mul(0x2545_f491_4f6c_dd1d))
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// `1234567` as `1 234 567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (k, c) in s.chars().enumerate() {
        if k > 0 && (s.len() - k) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

pub fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

/// What a synthetic case is made of, for [`seal_case`].
pub struct NewCase<'a> {
    pub program: Program,
    pub region: &'a str,
    pub created_at: DateTime<Utc>,
    pub donor: &'a Donor,
    pub donation: &'a Donation,
    pub notes: Option<&'a str>,
}

/// Seal a synthetic case exactly as `domain::cases::create` does (`seal_row` there is private;
/// these are its three lines), created by the coordinator `by`.
pub fn seal_case(
    keys: &KeyService,
    index: &SecretKey,
    c: NewCase<'_>,
    by: &Actor,
    number: u64,
) -> SealedCase {
    let id = new_id();
    let audit = AuditEntry::new(Some(by), Action::CreateCase.as_str(), "case", c.created_at)
        .target(&id)
        .case(&id);
    let (key, wrapped) = keys.new_case_key(&id);
    let donor = crypto::seal_json(&key, Place::new("cases", "donor", &id), c.donor).into_bytes();
    let donation =
        crypto::seal_json(&key, Place::new("cases", "donation", &id), c.donation).into_bytes();
    let notes = c
        .notes
        .map(|n| crypto::seal(&key, Place::new("cases", "notes", &id), n.as_bytes()).into_bytes());
    let terms = cases::donor_terms(index, c.donor).terms;
    SealedCase {
        row: CaseRow {
            id,
            program: c.program.as_str().into(),
            region: c.region.into(),
            status: "open".into(),
            created_by: by.user_id.clone(),
            created_at: c.created_at,
            updated_at: c.created_at,
            donor,
            donation,
            notes,
            key_version: Some(wrapped.version),
            wrapped_key: Some(wrapped.bytes),
        },
        terms,
        audit,
        number,
    }
}

/// The fixed "now" of the benches that need one: 2026-06-01 10:00 in Asia/Shanghai (the
/// default zone), so kept data sets stay valid.
pub fn bench_now() -> DateTime<Utc> {
    use chrono::TimeZone;
    Utc.with_ymd_and_hms(2026, 6, 1, 2, 0, 0)
        .single()
        .expect("a valid instant")
}

/// `CARGO_TARGET_DIR`, else this package's `target/`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// Order statistics of a set of timings.
pub struct Stats {
    pub min: Duration,
    pub median: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Stats {
    pub fn of(mut v: Vec<Duration>) -> Stats {
        v.sort_unstable();
        let at = |q: f64| {
            let k = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len().max(1)) - 1;
            v.get(k).copied().unwrap_or_default()
        };
        Stats {
            min: v.first().copied().unwrap_or_default(),
            median: at(0.5),
            p99: at(0.99),
            max: v.last().copied().unwrap_or_default(),
        }
    }
}
