//! Backup and restore of a registry: `cargo bench --bench backup`.
//!
//! The data set (built once under `target/bench-data/backup-<n>/`): `n` marrow cases of the
//! shared synthetic registry (`common/synthetic.rs`; `DONORCARE_BENCH_BACKUP_CASES`, default
//! 100 000) sealed as `cases::create` seals them, each with its creation audited, then materialised under the default marrow plan (ten rules: tasks
//! and messages up to the 400-day horizon), and a recovery recipient added to the keyring.
//! Then the release binary, as an operator runs it:
//! 1. `donorcare backup --out FILE` from SQLite: time, file size, peak resident memory;
//! 2. `donorcare restore --in FILE --identity RECOVERY` into a fresh folder (SQLite): the same;
//! 3. with `DONORCARE_BENCH_POSTGRES` (an admin URL), the restore into a fresh PostgreSQL
//!    database and a backup from there.
//!
//! Before those, the monthly and yearly reports (`domain::reports::compute`) over the same data
//! set, in process: median of five of each (target: under 2 s over 100k cases).
//!
//! Peak memory is the child's `VmHWM`, read from `/proc` until it exits. Targets (DESIGN.md):
//! backup and restore of 100k cases in under 60 s each, with flat memory.

#[path = "common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Result;
use common::process::{backup_postgres, backup_sqlite, mib, restore, Destination, Scratch};
use common::synthetic::{add_recovery_recipient, build_cases, Marker, Profile};
use common::{bench_now, services_in, target_dir, verdict};
use donorcare::domain::schedule::materialise_all;

const CASES: u64 = 100_000;
const TARGET: Duration = Duration::from_secs(60);

/// Build the data set in `dir` unless a complete one is there; the recovery identity's file.
async fn data_set(dir: &Path, n: u64) -> Result<PathBuf> {
    let want = Marker::new("backup-materialised", n, 0);
    let recovery = dir.join("recovery.txt");
    if want.is_in(dir) {
        println!("reusing the data set in {}", dir.display());
        return Ok(recovery);
    }
    let started = Instant::now();
    let (svc, loader, _) = build_cases(dir, n, Profile::marrow(730)).await?;
    loader.close().await;
    let s = materialise_all(&svc, bench_now(), 2000).await?;
    println!(
        "  {n} cases sealed and materialised ({} tasks, {} messages) in {:.1} s",
        s.created,
        s.messages,
        started.elapsed().as_secs_f64()
    );
    add_recovery_recipient(&svc, &recovery).await?;
    svc.store.checkpoint().await?;
    svc.store.close().await;
    want.write_to(dir)?;
    Ok(recovery)
}

/// The reports of a year and of a month over the data set: median and slowest of five each.
async fn reports(dir: &Path) -> Result<()> {
    use donorcare::domain::reports::{compute, Checked, Period};
    let (svc, _) = services_in(dir).await?;
    for period in ["2025", "2026", "2025-06"] {
        let c = Checked {
            period: Period::parse(period).map_err(anyhow::Error::msg)?,
            program: None,
            region: None,
        };
        let mut times = Vec::new();
        let mut due = 0;
        for _ in 0..5 {
            let started = Instant::now();
            let r = compute(&svc, &c, bench_now()).await?;
            times.push(started.elapsed());
            due = r.totals.followups_due;
        }
        times.sort();
        println!(
            "report {period}: median {:.0} ms, slowest {:.0} ms ({} follow-ups due in it); \
             target < 2 s: {}",
            times[2].as_secs_f64() * 1e3,
            times[4].as_secs_f64() * 1e3,
            due,
            verdict(times[4] < Duration::from_secs(2))
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let n = std::env::var("DONORCARE_BENCH_BACKUP_CASES")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(CASES);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!(
        "donorcare backup benchmark: {cores} cores{}, {n} cases",
        common::load_average()
    );
    let dir = target_dir().join("bench-data").join(format!("backup-{n}"));
    let recovery = data_set(&dir, n).await?;
    reports(&dir).await?;
    let work = dir.join("runs");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let file = work.join("registry.age");
    let mut rows = Vec::new();

    let b = backup_sqlite(&dir, &file)?;
    let size = std::fs::metadata(&file)?.len();
    println!(
        "backup (SQLite): {:.1} s, peak RSS {}, {:.0} MB; {}",
        b.took.as_secs_f64(),
        mib(b.peak_kib),
        size as f64 / 1e6,
        b.stdout.trim()
    );
    rows.push(("backup, SQLite", b.took, b.peak_kib, size));

    let target = work.join("restored");
    std::fs::create_dir_all(&target)?;
    let r = restore(&target, &file, &recovery, Destination::Sqlite("data"))?;
    println!(
        "restore (SQLite): {:.1} s, peak RSS {}",
        r.took.as_secs_f64(),
        mib(r.peak_kib)
    );
    rows.push(("restore, into SQLite", r.took, r.peak_kib, size));

    if let Ok(admin) = std::env::var("DONORCARE_BENCH_POSTGRES") {
        let db = Scratch::create(&admin, &format!("bench_backup_{}", std::process::id())).await?;
        let pg = work.join("pg");
        std::fs::create_dir_all(&pg)?;
        let result = (|| -> Result<()> {
            let r = restore(&pg, &file, &recovery, Destination::Postgres(&db.url))?;
            println!(
                "restore (PostgreSQL): {:.1} s, peak RSS {}",
                r.took.as_secs_f64(),
                mib(r.peak_kib)
            );
            rows.push(("restore, into PostgreSQL", r.took, r.peak_kib, size));
            let out = pg.join("from-pg.age");
            let b = backup_postgres(&pg, &db.url, &out)?;
            let size = std::fs::metadata(&out)?.len();
            println!(
                "backup (PostgreSQL): {:.1} s, peak RSS {}",
                b.took.as_secs_f64(),
                mib(b.peak_kib)
            );
            rows.push(("backup, PostgreSQL", b.took, b.peak_kib, size));
            Ok(())
        })();
        db.drop_database().await?;
        result?;
    }

    println!("\n| what | {n} cases | peak RSS | file | < 60 s |\n|---|---|---|---|---|");
    for (what, took, peak, size) in rows {
        println!(
            "| {what} | {:.1} s | {} | {:.0} MB | {} |",
            took.as_secs_f64(),
            mib(peak),
            size as f64 / 1e6,
            verdict(took < TARGET)
        );
    }
    Ok(())
}
