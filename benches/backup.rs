//! Backup and restore of a registry: `cargo bench --bench backup`.
//!
//! The data set (built once under `target/bench-data/backup-<n>/`): `n` marrow cases
//! (`DONORCARE_BENCH_BACKUP_CASES`, default 100 000) sealed as `cases::create` seals them, each
//! with its creation audited, then materialised under the default marrow plan (ten rules: tasks
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
use std::process::Command;
use std::time::{Duration, Instant};

use age::secrecy::ExposeSecret;
use anyhow::{bail, ensure, Context, Result};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use common::{
    insert_user, seal_case, services_in, target_dir, verdict, write_batch, Dice, NewCase,
};
use donorcare::audit::AuditEntry;
use donorcare::domain::cases::{Donation, Donor};
use donorcare::domain::schedule::materialise_all;
use donorcare::domain::types::{Program, Role};
use donorcare::store::SqliteStore;

const CASES: u64 = 100_000;
const TARGET: Duration = Duration::from_secs(60);
const BATCH: u64 = 5_000;
const GENERATOR_VERSION: u32 = 1;

fn bench_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 2, 0, 0)
        .single()
        .expect("a time")
}

fn synthetic(i: u64) -> (Donor, Donation) {
    let mut d = Dice::new(i);
    let day0 = NaiveDate::from_ymd_opt(2024, 6, 1).expect("a date");
    let donated = day0 + chrono::Days::new(d.below(720));
    let donor = Donor {
        full_name: format!(
            "{}{}",
            d.pick(&["王", "李", "张", "刘", "陈", "林"]),
            d.pick(&["伟", "芳", "静", "磊", "洋", "敏"])
        ),
        sex: None,
        birth_date: NaiveDate::from_ymd_opt(
            1970 + (i % 30) as i32,
            1 + (i % 12) as u32,
            1 + (i % 28) as u32,
        ),
        national_id: None,
        phone: Some(format!(
            "139{:08}",
            i.wrapping_mul(73_939_133) % 100_000_000
        )),
        email: None,
        address: Some(format!("宁波市鄞州区中山东路{}号", i % 997)),
        deceased: false,
        death_date: None,
        language: None,
        timezone: None,
    };
    let donation = Donation {
        date: donated,
        kind: "pbsc".into(),
        hospital: Some("宁波市第一医院".into()),
    };
    (donor, donation)
}

/// Build the data set in `dir` unless a complete one is there; the recovery identity's file.
async fn data_set(dir: &Path, n: u64) -> Result<PathBuf> {
    let marker = dir.join("complete.txt");
    let want = format!("{n} {GENERATOR_VERSION}");
    let recovery = dir.join("recovery.txt");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(want.as_str()) {
        println!("reusing the data set in {}", dir.display());
        return Ok(recovery);
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    println!("building the data set in {} ({n} cases)", dir.display());
    let started = Instant::now();
    let (svc, url) = services_in(dir).await?;
    let coord = insert_user(
        &svc,
        "bench-coordinator",
        Role::Coordinator,
        "yinzhou",
        bench_now(),
    )
    .await?;
    let raw = SqliteStore::open(&url).await?;
    let ring = svc.keys.ring();
    let mut start = 0;
    while start < n {
        let end = (start + BATCH).min(n);
        let cases: Vec<(Donor, Donation)> = (start..end).map(synthetic).collect();
        let batch: Vec<_> = cases
            .iter()
            .zip(start..end)
            .map(|((donor, donation), i)| {
                seal_case(
                    &svc.keys,
                    &ring.index,
                    NewCase {
                        program: Program::Marrow,
                        region: "yinzhou",
                        created_at: bench_now() - chrono::Duration::days(400),
                        donor,
                        donation,
                        notes: Some("家属希望每年清明节前收到纪念活动的通知。"),
                    },
                    &coord,
                    i,
                )
            })
            .collect();
        write_batch(raw.pool(), &batch).await?;
        let audit: Vec<AuditEntry> = batch.into_iter().map(|c| c.audit).collect();
        svc.store.append_audit(&audit).await?;
        start = end;
    }
    raw.pool().close().await;
    let s = materialise_all(&svc, bench_now(), 2000).await?;
    println!(
        "  {n} cases sealed and materialised ({} tasks, {} messages) in {:.1} s",
        s.created,
        s.messages,
        started.elapsed().as_secs_f64()
    );
    let id = age::x25519::Identity::generate();
    std::fs::write(&recovery, format!("{}\n", id.to_string().expose_secret()))?;
    let mut recipients = svc.keys.current_recipients()?;
    recipients.push(id.to_public().to_string());
    svc.keys.set_recipients(recipients).await?;
    svc.store.checkpoint().await?;
    svc.store.close().await;
    std::fs::write(&marker, want)?;
    Ok(recovery)
}

/// What one run of the binary took.
struct Run {
    took: Duration,
    peak_kib: u64,
    stdout: String,
}

fn vm_hwm(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Run the binary in `dir` with `args`, watching its peak resident memory.
fn run(dir: &Path, args: &[&str]) -> Result<Run> {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_donorcare"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("DONORCARE_IDENTITY")
        .env_remove("DONORCARE_DATA_DIR")
        .env("DONORCARE_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running donorcare")?;
    let pid = child.id();
    let mut peak = 0;
    let stderr = child.stderr.take();
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut e) = stderr {
            use std::io::Read;
            let _ = e.read_to_string(&mut s);
        }
        s
    });
    loop {
        if let Some(k) = vm_hwm(pid) {
            peak = peak.max(k);
        }
        if child.try_wait()?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = started.elapsed();
    let out = child.wait_with_output()?;
    let stderr = errors.join().unwrap_or_default();
    if !out.status.success() {
        bail!("donorcare {args:?} failed: {stderr}");
    }
    Ok(Run {
        took,
        peak_kib: peak,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
    })
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
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
    let file_s = file.to_str().context("a UTF-8 path")?.to_string();
    let recovery_s = recovery.to_str().context("a UTF-8 path")?.to_string();
    let mut rows = Vec::new();

    let b = run(
        &dir,
        &[
            "backup",
            "--data-dir",
            ".",
            "--keys-dir",
            "keys",
            "--out",
            &file_s,
        ],
    )?;
    let size = std::fs::metadata(&file)?.len();
    println!(
        "backup (SQLite): {:.1} s, peak RSS {:.0} MiB, {:.0} MB; {}",
        b.took.as_secs_f64(),
        mib(b.peak_kib),
        size as f64 / 1e6,
        b.stdout.trim()
    );
    rows.push(("backup, SQLite", b.took, b.peak_kib, size));

    let target = work.join("restored");
    std::fs::create_dir_all(&target)?;
    let r = run(
        &target,
        &[
            "restore",
            "--in",
            &file_s,
            "--identity",
            &recovery_s,
            "--data-dir",
            "data",
        ],
    )?;
    ensure!(r.stdout.contains("audit verify: ok"), "{}", r.stdout);
    println!(
        "restore (SQLite): {:.1} s, peak RSS {:.0} MiB",
        r.took.as_secs_f64(),
        mib(r.peak_kib)
    );
    rows.push(("restore, into SQLite", r.took, r.peak_kib, size));

    if let Ok(admin) = std::env::var("DONORCARE_BENCH_POSTGRES") {
        use sqlx::Connection;
        let name = format!("bench_backup_{}", std::process::id());
        let mut c = sqlx::PgConnection::connect(&admin).await?;
        sqlx::query(&format!("create database {name}"))
            .execute(&mut c)
            .await?;
        let base = admin
            .rsplit_once('/')
            .map(|(b, _)| b)
            .context("an admin URL ending in a database")?;
        let url = format!("{base}/{name}");
        let pg = work.join("pg");
        std::fs::create_dir_all(&pg)?;
        let result = (|| -> Result<()> {
            let r = run(
                &pg,
                &[
                    "restore",
                    "--in",
                    &file_s,
                    "--identity",
                    &recovery_s,
                    "--database-url",
                    &url,
                ],
            )?;
            ensure!(r.stdout.contains("audit verify: ok"), "{}", r.stdout);
            println!(
                "restore (PostgreSQL): {:.1} s, peak RSS {:.0} MiB",
                r.took.as_secs_f64(),
                mib(r.peak_kib)
            );
            rows.push(("restore, into PostgreSQL", r.took, r.peak_kib, size));
            let out = pg.join("from-pg.age");
            let b = run(
                &pg,
                &[
                    "backup",
                    "--database-url",
                    &url,
                    "--out",
                    out.to_str().unwrap_or_default(),
                ],
            )?;
            let size = std::fs::metadata(&out)?.len();
            println!(
                "backup (PostgreSQL): {:.1} s, peak RSS {:.0} MiB",
                b.took.as_secs_f64(),
                mib(b.peak_kib)
            );
            rows.push(("backup, PostgreSQL", b.took, b.peak_kib, size));
            Ok(())
        })();
        sqlx::query(&format!("drop database if exists {name} with (force)"))
            .execute(&mut c)
            .await?;
        result?;
    }

    println!("\n| what | {n} cases | peak RSS | file | < 60 s |\n|---|---|---|---|---|");
    for (what, took, peak, size) in rows {
        println!(
            "| {what} | {:.1} s | {:.0} MiB | {:.0} MB | {} |",
            took.as_secs_f64(),
            mib(peak),
            size as f64 / 1e6,
            verdict(took < TARGET)
        );
    }
    Ok(())
}
