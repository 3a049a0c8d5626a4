//! Store benchmarks for two performance targets of donorcare (custom harness:
//! `cargo bench --bench store [-- read|search]`).
//!
//! 1. **Reading encrypted cases.** Every personal value of a case is sealed under its own case
//!    key, which the keyring wraps; a listing therefore fetches the sealed blobs and the wrapped
//!    key, unwraps the key and opens three ciphertexts per case. The target is that reading and
//!    decrypting 10 000 cases costs at most 1.3 times the same read of a table that holds the
//!    same fields as plain columns. Both tables live in one SQLite database opened with the
//!    store's own settings (WAL, `synchronous=FULL`); both are read in pages of 200 (the API's
//!    largest page, walked by cursor as the API does) and in one query of 10 000 rows, and both
//!    end in the same domain types (`Donor`, `Donation`, notes). The cases are made through
//!    `domain::cases::create`, the path the API takes. The figures are medians of interleaved
//!    repetitions after a warm-up, with a breakdown (SQL fetch alone, unwrap and open alone) and
//!    the API's own listing for reference, which also commits an audit entry per case shown.
//! 2. **Exact-match search among 1M cases.** Phone, national ID and name searches go through a
//!    keyed blind index (`case_search`). The target is under 5 ms per search. The timed call is
//!    the whole `domain::cases::list` of a supervisor, as behind `GET /api/v1/cases?phone=…`: it
//!    computes the blind term, runs the query, decrypts the hits and waits for their audit
//!    entries to commit. Lookups are of random existing values (checked to be found) plus values
//!    that no case has; the same searches straight through `Store::list_cases` and decryption,
//!    without the audit, show where the time goes.
//!
//! The search data set is the shared synthetic registry (`common/synthetic.rs`: all three
//! programs, sealed from the same parts as `create`, written in bulk). It is kept in
//! `target/bench-data/search-<cases>/` and reused by later runs; `DONORCARE_BENCH_CASES` sets
//! its size (default 1 000 000) for a quicker run. Every synthetic value derives from the case
//! number, so a lookup can regenerate what case `i` holds; every name, number and address is
//! invented.

#[path = "common/mod.rs"]
mod common;
use common::synthetic::*;
use common::*;

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use chrono::{DateTime, NaiveDate, Utc};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use donorcare::crypto::keyring::WrappedKey;
use donorcare::crypto::{self, blind_term, SecretKey, TermKind};
use donorcare::domain::cases::{
    self, CaseFilter, CaseInput, CaseView, Donation, DonationInput, Donor, DonorInput,
};
use donorcare::domain::types::{self, Role, Sex};
use donorcare::domain::{Services, DEFAULT_PAGE};
use donorcare::policy::Actor;
use donorcare::store::{CaseQuery, CaseRow, CaseScope, SqliteStore};

/// Cases of the read benchmark.
const READ_CASES: usize = 10_000;
/// The API's largest page.
const PAGE: usize = 200;
const READ_WARMUP: usize = 2;
const READ_REPS: usize = 15;
const READ_TARGET: f64 = 1.30;

/// Default size of the search data set (`DONORCARE_BENCH_CASES` overrides it).
const SEARCH_CASES: u64 = 1_000_000;
const SEARCH_LOOKUPS: usize = 1_000;
const SEARCH_MISSES: usize = 50;
const SEARCH_WARMUP: usize = 50;
const SEARCH_TARGET_MS: f64 = 5.0;

#[tokio::main]
async fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; any other word selects the parts to run.
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let cases = match std::env::var("DONORCARE_BENCH_CASES") {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= 1_000)
            .with_context(|| format!("DONORCARE_BENCH_CASES={v}: expected a number >= 1000"))?,
        Err(_) => SEARCH_CASES,
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "donorcare store benchmarks: {cores} cores{}, SQLite {}",
        load_average(),
        sqlite_version().await?
    );

    let mut summary = Vec::new();
    if run("read") {
        summary.extend(read_benchmark().await?);
    }
    if run("search") {
        summary.extend(search_benchmark(cases).await?);
    }
    println!("\nsummary ({cores} cores{}):", load_average());
    for line in &summary {
        println!("  {line}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 1. Reading 10k encrypted cases against plaintext columns
// ---------------------------------------------------------------------------------------------

/// A case read back, whichever table it came from.
struct ReadCase {
    id: String,
    meta: [String; 4],
    times: (DateTime<Utc>, DateTime<Utc>),
    donor: Donor,
    donation: Donation,
    notes: Option<String>,
}

/// The plaintext baseline: the same fields as the sealed ones, as columns.
#[derive(sqlx::FromRow)]
struct PlainRow {
    id: String,
    program: String,
    region: String,
    status: String,
    created_by: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    full_name: String,
    sex: Option<String>,
    birth_date: Option<NaiveDate>,
    national_id: Option<String>,
    phone: Option<String>,
    email: Option<String>,
    address: Option<String>,
    deceased: bool,
    death_date: Option<NaiveDate>,
    donation_date: NaiveDate,
    donation_kind: String,
    hospital: Option<String>,
    notes: Option<String>,
}

const PLAIN_TABLE: &str = "create table plain_cases (
    id text primary key,
    program text not null,
    region text not null,
    status text not null,
    created_by text not null,
    created_at text not null,
    updated_at text not null,
    full_name text not null,
    sex text,
    birth_date text,
    national_id text,
    phone text,
    email text,
    address text,
    deceased integer not null,
    death_date text,
    donation_date text not null,
    donation_kind text not null,
    hospital text,
    notes text
)";

const PLAIN_COLUMNS: &str = "id, program, region, status, created_by, created_at, updated_at, \
     full_name, sex, birth_date, national_id, phone, email, address, deceased, death_date, \
     donation_date, donation_kind, hospital, notes";

impl PlainRow {
    fn from_view(v: &CaseView, created_by: &str) -> Result<Self> {
        let (Some(d), Some(dn)) = (&v.donor, &v.donation) else {
            bail!("case {} came back without its donor or donation", v.id);
        };
        Ok(PlainRow {
            id: v.id.clone(),
            program: v.program.as_str().into(),
            region: v.region.clone(),
            status: v.status.as_str().into(),
            created_by: created_by.into(),
            created_at: v.created_at,
            updated_at: v.updated_at,
            full_name: d.full_name.clone(),
            sex: d.sex.map(|s| s.as_str().into()),
            birth_date: d.birth_date,
            national_id: d.national_id.clone(),
            phone: d.phone.clone(),
            email: d.email.clone(),
            address: d.address.clone(),
            deceased: d.deceased,
            death_date: d.death_date,
            donation_date: dn.date,
            donation_kind: dn.kind.clone(),
            hospital: dn.hospital.clone(),
            notes: v.notes.clone(),
        })
    }

    /// The same domain values the encrypted path ends with.
    fn into_case(self) -> Result<ReadCase> {
        let sex = self
            .sex
            .map(|s| Sex::parse(&s))
            .transpose()
            .map_err(anyhow::Error::msg)?;
        Ok(ReadCase {
            id: self.id,
            meta: [self.program, self.region, self.status, self.created_by],
            times: (self.created_at, self.updated_at),
            donor: Donor {
                full_name: self.full_name,
                sex,
                birth_date: self.birth_date,
                national_id: self.national_id,
                phone: self.phone,
                email: self.email,
                address: self.address,
                deceased: self.deceased,
                death_date: self.death_date,
                language: None,
                timezone: None,
            },
            donation: Donation {
                date: self.donation_date,
                kind: self.donation_kind,
                hospital: self.hospital,
            },
            notes: self.notes,
        })
    }
}

/// Unwrap the case key of a stored row and open it, as `domain::cases::list` does.
fn decrypt(svc: &Services, ring: &crypto::Keyring, row: CaseRow) -> Result<ReadCase> {
    let (Some(version), Some(bytes)) = (row.key_version, row.wrapped_key.clone()) else {
        bail!("case {} has no case key", row.id);
    };
    let key = svc
        .keys
        .unwrap_with(ring, &row.id, &WrappedKey { version, bytes })?;
    let opened = cases::open_row(&key, &row)?;
    Ok(ReadCase {
        id: row.id,
        meta: [row.program, row.region, row.status, row.created_by],
        times: (row.created_at, row.updated_at),
        donor: opened.donor,
        donation: opened.donation,
        notes: opened.notes,
    })
}

/// How a read walks the table: pages of `limit` rows by cursor, like the API.
#[derive(Clone, Copy)]
struct Walk {
    limit: usize,
}

/// Read every case through `Store::list_cases`, decrypting each unless `decrypt_rows` is false.
async fn read_encrypted(svc: &Services, walk: Walk, decrypt_rows: bool) -> Result<Vec<ReadCase>> {
    let mut out = Vec::with_capacity(READ_CASES);
    let mut after = None;
    loop {
        let mut rows = svc
            .store
            .list_cases(&CaseQuery {
                consent_in_force: None,
                scope: CaseScope::All,
                program: None,
                status: None,
                term: None,
                after: after.take(),
                limit: walk.limit as i64 + 1,
            })
            .await?;
        let more = rows.len() > walk.limit;
        rows.truncate(walk.limit);
        after = rows.last().map(|r| r.id.clone());
        let ring = svc.keys.ring();
        for row in rows {
            if decrypt_rows {
                out.push(decrypt(svc, &ring, row)?);
            } else {
                black_box(row);
            }
        }
        if !more {
            return Ok(out);
        }
    }
}

/// Read every case from the plaintext table, with the same pages.
async fn read_plain(pool: &SqlitePool, walk: Walk) -> Result<Vec<ReadCase>> {
    let sql = format!("select {PLAIN_COLUMNS} from plain_cases where id > $1 order by id limit $2");
    let mut out = Vec::with_capacity(READ_CASES);
    let mut after = String::new();
    loop {
        let mut rows = sqlx::query_as::<_, PlainRow>(&sql)
            .bind(&after)
            .bind(walk.limit as i64 + 1)
            .fetch_all(pool)
            .await?;
        let more = rows.len() > walk.limit;
        rows.truncate(walk.limit);
        if let Some(last) = rows.last() {
            after.clone_from(&last.id);
        }
        for row in rows {
            out.push(row.into_case()?);
        }
        if !more {
            return Ok(out);
        }
    }
}

/// Read every case through the API's own listing (`domain::cases::list`) as a supervisor.
async fn read_api(svc: &Services, actor: &Actor) -> Result<usize> {
    let mut n = 0;
    let mut cursor = None;
    loop {
        let page = cases::list(
            svc,
            actor,
            CaseFilter {
                limit: Some(PAGE as i64),
                cursor: cursor.take(),
                ..CaseFilter::default()
            },
            Utc::now(),
        )
        .await?;
        n += page.items.len();
        black_box(&page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return Ok(n),
        }
    }
}

/// The timed variants of the read benchmark, run interleaved.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ReadVariant {
    EncryptedPages,
    PlainPages,
    EncryptedOneQuery,
    PlainOneQuery,
    FetchOnlyPages,
    /// Unwrap and open rows already in memory: the cryptographic and JSON work alone.
    DecryptInMemory,
    ApiPages,
}

impl ReadVariant {
    const ALL: [ReadVariant; 7] = [
        ReadVariant::EncryptedPages,
        ReadVariant::PlainPages,
        ReadVariant::EncryptedOneQuery,
        ReadVariant::PlainOneQuery,
        ReadVariant::FetchOnlyPages,
        ReadVariant::DecryptInMemory,
        ReadVariant::ApiPages,
    ];

    /// Run once; returns the time taken. `fetched` holds every stored row, for the variant
    /// that decrypts rows already in memory.
    async fn run(
        self,
        svc: &Services,
        plain: &SqlitePool,
        actor: &Actor,
        fetched: &[CaseRow],
    ) -> Result<Duration> {
        let pages = Walk { limit: PAGE };
        let whole = Walk { limit: READ_CASES };
        let copy = (self == ReadVariant::DecryptInMemory).then(|| fetched.to_vec());
        let t = Instant::now();
        let n = match self {
            ReadVariant::EncryptedPages => black_box(read_encrypted(svc, pages, true).await?).len(),
            ReadVariant::PlainPages => black_box(read_plain(plain, pages).await?).len(),
            ReadVariant::EncryptedOneQuery => {
                black_box(read_encrypted(svc, whole, true).await?).len()
            }
            ReadVariant::PlainOneQuery => black_box(read_plain(plain, whole).await?).len(),
            ReadVariant::FetchOnlyPages => {
                black_box(read_encrypted(svc, pages, false).await?);
                READ_CASES
            }
            ReadVariant::DecryptInMemory => {
                let ring = svc.keys.ring();
                let opened = copy
                    .unwrap_or_default()
                    .into_iter()
                    .map(|row| decrypt(svc, &ring, row))
                    .collect::<Result<Vec<_>>>()?;
                black_box(opened).len()
            }
            ReadVariant::ApiPages => read_api(svc, actor).await?,
        };
        let took = t.elapsed();
        ensure!(n == READ_CASES, "read {n} cases, expected {READ_CASES}");
        Ok(took)
    }
}

async fn read_benchmark() -> Result<Vec<String>> {
    println!("\n== read {READ_CASES} cases: decrypting vs plaintext columns ==");
    let dir = tempfile::tempdir().context("creating a temporary folder")?;
    let (svc, url) = services_in(dir.path()).await?;
    let now = Utc::now();
    let supervisor =
        insert_user(&svc, "bench-supervisor", Role::Supervisor, READ_REGION, now).await?;
    let coordinator = insert_user(
        &svc,
        "bench-coordinator",
        Role::Coordinator,
        READ_REGION,
        now,
    )
    .await?;

    // The cases, through the API's own path (validation, sealing, blind terms, one transaction).
    let started = Instant::now();
    let mut plain_rows = Vec::with_capacity(READ_CASES);
    for i in 0..READ_CASES as u64 {
        let mut s = Synthetic::new(i, &profile());
        s.region = READ_REGION;
        let view = cases::create(&svc, &supervisor, case_input(&s, &coordinator.user_id), now)
            .await
            .map_err(|e| anyhow::anyhow!("creating case {i}: {e:?}"))?;
        plain_rows.push(PlainRow::from_view(&view, &supervisor.user_id)?);
    }
    let created = started.elapsed();
    println!(
        "created {READ_CASES} cases through domain::cases::create in {:.1} s ({:.2} ms per case)",
        created.as_secs_f64(),
        ms(created) / READ_CASES as f64
    );

    // The plaintext copy, in the same database and through a pool with the store's settings.
    let raw = SqliteStore::open(&url).await?;
    let plain = raw.pool();
    sqlx::query(PLAIN_TABLE).execute(plain).await?;
    sqlx::query("create index plain_cases_region on plain_cases(region, id)")
        .execute(plain)
        .await?;
    insert_plain(plain, &plain_rows).await?;
    drop(plain_rows);

    // Both paths must yield the same cases before either is timed.
    let enc = read_encrypted(&svc, Walk { limit: PAGE }, true).await?;
    let clear = read_plain(plain, Walk { limit: PAGE }).await?;
    ensure!(
        enc.len() == READ_CASES && clear.len() == READ_CASES,
        "read {} encrypted and {} plaintext cases, expected {READ_CASES}",
        enc.len(),
        clear.len()
    );
    for (a, b) in enc.iter().zip(&clear) {
        let same = a.id == b.id
            && a.meta == b.meta
            && a.times == b.times
            && a.donor == b.donor
            && a.donation == b.donation
            && a.notes == b.notes;
        ensure!(same, "case {} differs between the two tables", a.id);
    }
    println!("checked: the {READ_CASES} decrypted cases equal their plaintext copies");
    drop((enc, clear));

    let fetched = svc
        .store
        .list_cases(&CaseQuery {
            consent_in_force: None,
            scope: CaseScope::All,
            program: None,
            status: None,
            term: None,
            after: None,
            limit: READ_CASES as i64,
        })
        .await?;
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); ReadVariant::ALL.len()];
    for rep in 0..READ_WARMUP + READ_REPS {
        for (k, variant) in ReadVariant::ALL.iter().enumerate() {
            let took = variant.run(&svc, plain, &supervisor, &fetched).await?;
            if rep >= READ_WARMUP {
                samples[k].push(took);
            }
        }
    }
    drop(fetched);
    let median = |v: ReadVariant| {
        let k = ReadVariant::ALL.iter().position(|x| *x == v).unwrap_or(0);
        Stats::of(samples[k].clone()).median
    };
    let enc_pages = median(ReadVariant::EncryptedPages);
    let plain_pages = median(ReadVariant::PlainPages);
    let enc_one = median(ReadVariant::EncryptedOneQuery);
    let plain_one = median(ReadVariant::PlainOneQuery);
    let fetch_only = median(ReadVariant::FetchOnlyPages);
    let api = median(ReadVariant::ApiPages);
    let in_memory = median(ReadVariant::DecryptInMemory);

    println!("medians of {READ_REPS} interleaved repetitions after {READ_WARMUP} warm-ups:");
    println!(
        "  pages of {PAGE}: encrypted {:.1} ms (SQL fetch {:.1} ms + unwrap/open {:.1} ms), plaintext {:.1} ms",
        ms(enc_pages),
        ms(fetch_only),
        ms(enc_pages.saturating_sub(fetch_only)),
        ms(plain_pages)
    );
    println!(
        "  one query:     encrypted {:.1} ms, plaintext {:.1} ms",
        ms(enc_one),
        ms(plain_one)
    );
    println!(
        "  unwrap/open alone, rows already in memory: {:.1} ms ({:.2} µs per case)",
        ms(in_memory),
        us(in_memory) / READ_CASES as f64
    );
    println!(
        "  API listing (domain::cases::list as a supervisor, pages of {PAGE}, which also commits \
         an audit entry per case shown): {:.1} ms",
        ms(api)
    );
    println!(
        "  per case: encrypted {:.2} µs, plaintext {:.2} µs",
        us(enc_pages) / READ_CASES as f64,
        us(plain_pages) / READ_CASES as f64
    );

    let line = |what: &str, enc: Duration, plain: Duration| {
        let ratio = enc.as_secs_f64() / plain.as_secs_f64();
        format!(
            "read 10k cases ({what}): encrypted {:.1} ms, plaintext {:.1} ms, ratio {ratio:.2} \
             (target <= {READ_TARGET:.2}: {})",
            ms(enc),
            ms(plain),
            verdict(ratio <= READ_TARGET)
        )
    };
    let lines = vec![
        line(&format!("pages of {PAGE}"), enc_pages, plain_pages),
        line("one query", enc_one, plain_one),
        format!(
            "read 10k cases (API listing, pages of {PAGE}, with its audit entries): {:.1} ms, \
             {:.2}x the plaintext read (no target)",
            ms(api),
            api.as_secs_f64() / plain_pages.as_secs_f64()
        ),
    ];
    for l in &lines {
        println!("{l}");
    }
    raw.pool().close().await;
    svc.store.close().await;
    Ok(lines)
}

async fn insert_plain(pool: &SqlitePool, rows: &[PlainRow]) -> Result<()> {
    let mut tx = pool.begin().await?;
    for chunk in rows.chunks(ROWS_PER_INSERT / 2) {
        let mut q =
            QueryBuilder::<Sqlite>::new(format!("insert into plain_cases ({PLAIN_COLUMNS}) "));
        q.push_values(chunk, |mut b, r| {
            b.push_bind(&r.id)
                .push_bind(&r.program)
                .push_bind(&r.region)
                .push_bind(&r.status)
                .push_bind(&r.created_by)
                .push_bind(r.created_at)
                .push_bind(r.updated_at)
                .push_bind(&r.full_name)
                .push_bind(&r.sex)
                .push_bind(r.birth_date)
                .push_bind(&r.national_id)
                .push_bind(&r.phone)
                .push_bind(&r.email)
                .push_bind(&r.address)
                .push_bind(r.deceased)
                .push_bind(r.death_date)
                .push_bind(r.donation_date)
                .push_bind(&r.donation_kind)
                .push_bind(&r.hospital)
                .push_bind(&r.notes);
        });
        q.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// 2. Exact-match search among 1M cases
// ---------------------------------------------------------------------------------------------

impl SearchKind {
    /// The blind-index term of `value`, normalised as `domain::cases::list` does.
    fn term(self, index: &SecretKey, value: &str) -> Vec<u8> {
        match self {
            SearchKind::Phone => blind_term(index, TermKind::Phone, &types::normalise_phone(value)),
            SearchKind::NationalId => blind_term(
                index,
                TermKind::NationalId,
                &types::normalise_national_id(value),
            ),
            SearchKind::Name => blind_term(index, TermKind::Name, &types::normalise_name(value)),
        }
    }

    /// A valid value that no synthetic case holds (synthetic phones start with 139, IDs carry a
    /// Ningbo area code, names use none of these characters).
    fn missing_value(self, k: u64) -> String {
        match self {
            SearchKind::Phone => format!("138{:08}", k * 7_919),
            SearchKind::NationalId => with_check(&format!("1101051990{:04}{:03}", 101 + k % 28, k)),
            SearchKind::Name => format!("无此人{}", ["甲", "乙", "丙", "丁"][(k % 4) as usize]),
        }
    }
}

/// How a search is timed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SearchPath {
    /// `domain::cases::list`, as the API calls it: blind term, query, decryption of the hits,
    /// and the audit entries of the cases shown, committed before it returns.
    Api,
    /// `Store::list_cases` with the blind term, then decryption: the same without the audit.
    Store,
}

/// What one search found.
struct Found {
    took: Duration,
    donors: Vec<Donor>,
    /// A further page exists.
    more: bool,
}

async fn search_once(
    svc: &Services,
    path: SearchPath,
    kind: SearchKind,
    region: &str,
    value: &str,
) -> Result<Found> {
    let t = Instant::now();
    match path {
        SearchPath::Api => {
            let actor = supervisor_of(region);
            let page = cases::list(svc, &actor, kind.filter(value.into()), Utc::now()).await?;
            let took = t.elapsed();
            Ok(Found {
                took,
                more: page.next_cursor.is_some(),
                donors: page.items.into_iter().filter_map(|v| v.donor).collect(),
            })
        }
        SearchPath::Store => {
            let ring = svc.keys.ring();
            let mut rows = svc
                .store
                .list_cases(&CaseQuery {
                    consent_in_force: None,
                    scope: CaseScope::Region(region.into()),
                    program: None,
                    status: None,
                    term: Some(kind.term(&ring.index, value)),
                    after: None,
                    limit: DEFAULT_PAGE + 1,
                })
                .await?;
            let more = rows.len() as i64 > DEFAULT_PAGE;
            rows.truncate(DEFAULT_PAGE as usize);
            let donors = rows
                .into_iter()
                .map(|row| Ok(decrypt(svc, &ring, row)?.donor))
                .collect::<Result<Vec<_>>>()?;
            Ok(Found {
                took: t.elapsed(),
                donors,
                more,
            })
        }
    }
}

struct SearchFigures {
    found: Stats,
    missed: Stats,
    hits_mean: f64,
    hits_max: usize,
}

/// Time `SEARCH_LOOKUPS` searches for values of random cases (after a warm-up) and
/// `SEARCH_MISSES` for values no case has. Each path draws its own cases.
async fn measure_search(
    svc: &Services,
    n: u64,
    kind: SearchKind,
    path: SearchPath,
) -> Result<SearchFigures> {
    let mut times = Vec::with_capacity(SEARCH_LOOKUPS);
    let (mut hits, mut hits_max) = (0, 0);
    let mut dice = Dice::new(0x5ea4c4 ^ (kind as u64) << 8 ^ path as u64);
    for k in 0..SEARCH_WARMUP + SEARCH_LOOKUPS {
        let s = Synthetic::new(dice.below(n), &profile());
        let value = kind.value_of(&s);
        let f = search_once(svc, path, kind, s.region, &value).await?;
        ensure!(
            kind.finds(&s, &f.donors, f.more),
            "searching by {} for {value}: case not found",
            kind.label()
        );
        if k >= SEARCH_WARMUP {
            times.push(f.took);
            hits += f.donors.len();
            hits_max = hits_max.max(f.donors.len());
        }
    }
    let mut miss_times = Vec::with_capacity(SEARCH_MISSES);
    for k in 0..SEARCH_MISSES as u64 {
        let region = REGIONS[(k % REGIONS.len() as u64) as usize].code;
        let f = search_once(svc, path, kind, region, &kind.missing_value(k)).await?;
        ensure!(f.donors.is_empty(), "a made-up {} was found", kind.label());
        miss_times.push(f.took);
    }
    Ok(SearchFigures {
        found: Stats::of(times),
        missed: Stats::of(miss_times),
        hits_mean: hits as f64 / SEARCH_LOOKUPS as f64,
        hits_max,
    })
}

async fn search_benchmark(n: u64) -> Result<Vec<String>> {
    println!("\n== exact-match search among {n} cases ==");
    let dir = target_dir().join("bench-data").join(format!("search-{n}"));
    let svc = search_data_set(&dir, n).await?;
    println!(
        "{SEARCH_LOOKUPS} searches for values of random cases (after {SEARCH_WARMUP} warm-ups) and \
         {SEARCH_MISSES} for values no case has, by a supervisor of the case's region:"
    );
    let mut lines = Vec::new();
    for kind in SearchKind::ALL {
        let api = measure_search(&svc, n, kind, SearchPath::Api).await?;
        let store = measure_search(&svc, n, kind, SearchPath::Store).await?;
        println!(
            "by {} ({:.2} hits per search, at most {}):",
            kind.label(),
            api.hits_mean,
            api.hits_max
        );
        for (what, f) in [
            ("domain::cases::list (API path)", &api),
            ("store query + decryption only ", &store),
        ] {
            println!(
                "  {what}: median {:.3} ms, p99 {:.3} ms, max {:.3} ms; misses: median {:.3} ms, p99 {:.3} ms",
                ms(f.found.median),
                ms(f.found.p99),
                ms(f.found.max),
                ms(f.missed.median),
                ms(f.missed.p99),
            );
        }
        lines.push(format!(
            "search among {n} cases by {}: median {:.2} ms, p99 {:.2} ms (target < {SEARCH_TARGET_MS} ms: \
             median {}, p99 {})",
            kind.label(),
            ms(api.found.median),
            ms(api.found.p99),
            verdict(ms(api.found.median) < SEARCH_TARGET_MS),
            verdict(ms(api.found.p99) < SEARCH_TARGET_MS),
        ));
    }
    for l in &lines {
        println!("{l}");
    }
    svc.store.close().await;
    Ok(lines)
}

/// Open the search data set in `dir`, building it first unless a complete one is there.
async fn search_data_set(dir: &Path, n: u64) -> Result<Services> {
    let want = Marker::new("search", n, 0);
    if !is_kept(dir, &want).await? {
        let (svc, loader, _) = build_cases(dir, n, profile()).await?;
        finish_load(&svc, loader).await?;
        want.write_to(dir)?;
    }
    Ok(services_in(dir).await?.0)
}

// ---------------------------------------------------------------------------------------------
// Synthetic cases
// ---------------------------------------------------------------------------------------------

/// Region of every case of the read benchmark.
const READ_REGION: &str = "yinzhou";

/// The search data set: all three programs, donations over the ten years to a fixed day.
fn profile() -> Profile {
    Profile {
        programs: Programs::Mixed,
        today: NaiveDate::from_ymd_opt(2025, 12, 31).expect("a valid date"),
        spread_days: 3_650,
    }
}

/// Case `s` as a client would send it.
fn case_input(s: &Synthetic, coordinator_id: &str) -> CaseInput {
    let d = &s.donor;
    CaseInput {
        program: Some(s.program.as_str().into()),
        region: Some(s.region.into()),
        coordinator_id: Some(coordinator_id.into()),
        status: None,
        donor: Some(DonorInput {
            full_name: Some(d.full_name.clone()),
            sex: d.sex.map(|s| s.as_str().into()),
            birth_date: d.birth_date.map(|x| x.to_string()),
            national_id: d.national_id.clone(),
            phone: d.phone.clone(),
            email: d.email.clone(),
            address: d.address.clone(),
            deceased: Some(d.deceased),
            death_date: d.death_date.map(|x| x.to_string()),
            language: None,
            timezone: None,
        }),
        donation: Some(DonationInput {
            date: Some(s.donation.date.to_string()),
            kind: Some(s.donation.kind.clone()),
            hospital: s.donation.hospital.clone(),
        }),
        notes: s.notes.clone(),
    }
}

// ---------------------------------------------------------------------------------------------
// Figures
// ---------------------------------------------------------------------------------------------
