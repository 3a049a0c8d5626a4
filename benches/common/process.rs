//! Resident memory from `/proc`, and the release binary run as an operator runs it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Reset the peak resident set of this process (`VmHWM`) to the current one; false where the
/// kernel does not allow it (the peak then counts from the start of the process).
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// A `kB` field (`VmRSS`, `VmHWM`) of `/proc/<pid>/status`; `pid` may be `"self"`.
pub fn status_kib(pid: &str, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| {
        l.strip_prefix(field)?
            .strip_prefix(':')?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()
    })
}

pub fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "unknown".into(),
        |k| format!("{:.0} MiB", k as f64 / 1024.0),
    )
}

/// What one run of the binary took.
pub struct Run {
    pub took: Duration,
    /// The child's peak resident set (`VmHWM`), read from `/proc` until it exited.
    pub peak_kib: Option<u64>,
    pub stdout: String,
}

/// Run the release binary in `dir` with `args` and no configuration from this environment,
/// watching its peak resident memory.
pub fn run_donorcare(dir: &Path, args: &[&str]) -> Result<Run> {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_donorcare"))
        .args(args)
        .current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("DONORCARE_IDENTITY")
        .env_remove("DONORCARE_DATA_DIR")
        .env("DONORCARE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running donorcare")?;
    let pid = child.id().to_string();
    // Both pipes are drained on threads of their own, so a chatty child never blocks on them.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let err = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let mut peak = None;
    let status = loop {
        if let Some(k) = status_kib(&pid, "VmHWM") {
            peak = peak.max(Some(k));
        }
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    if !status.success() {
        bail!("donorcare {args:?} failed: {stderr}");
    }
    Ok(Run {
        took,
        peak_kib: peak,
        stdout,
    })
}

/// Where `donorcare restore` puts a registry.
pub enum Destination<'a> {
    /// A new SQLite data dir, relative to the folder the binary runs in.
    Sqlite(&'a str),
    /// An empty PostgreSQL database.
    Postgres(&'a str),
}

fn path_arg(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("{}: not a UTF-8 path", p.display()))
}

/// `donorcare backup --out FILE` of the SQLite data dir `data_dir` (keys in `data_dir/keys`).
pub fn backup_sqlite(data_dir: &Path, out: &Path) -> Result<Run> {
    let args = ["backup", "--data-dir", ".", "--keys-dir", "keys", "--out"];
    run_donorcare(data_dir, &[&args[..], &[path_arg(out)?]].concat())
}

/// `donorcare backup --out FILE` of the PostgreSQL database at `url`, run in `dir` (keys in
/// `dir/keys`).
pub fn backup_postgres(dir: &Path, url: &str, out: &Path) -> Result<Run> {
    let args = ["backup", "--database-url", url, "--out", path_arg(out)?];
    run_donorcare(dir, &args)
}

/// `donorcare restore --in FILE --identity RECOVERY`, run in `dir` (the restored server's keys go
/// to `dir/keys`); fails unless the restore's own audit verification passed.
pub fn restore(dir: &Path, file: &Path, recovery: &Path, into: Destination<'_>) -> Result<Run> {
    let (flag, to) = match into {
        Destination::Sqlite(data_dir) => ("--data-dir", data_dir),
        Destination::Postgres(url) => ("--database-url", url),
    };
    let args = [
        "restore",
        "--in",
        path_arg(file)?,
        "--identity",
        path_arg(recovery)?,
        flag,
        to,
    ];
    let r = run_donorcare(dir, &args)?;
    anyhow::ensure!(
        r.stdout.contains("audit verify: ok"),
        "restore did not verify the audit log: {}",
        r.stdout
    );
    Ok(r)
}

/// A PostgreSQL database made for one run, beside the one of the admin URL.
pub struct Scratch {
    admin: sqlx::PgConnection,
    name: String,
    pub url: String,
}

impl Scratch {
    /// Create database `name` through `admin_url` (which ends in a database's name).
    pub async fn create(admin_url: &str, name: &str) -> Result<Scratch> {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .context("connecting to DONORCARE_BENCH_POSTGRES")?;
        sqlx::query(&format!("drop database if exists {name} with (force)"))
            .execute(&mut admin)
            .await?;
        sqlx::query(&format!("create database {name}"))
            .execute(&mut admin)
            .await?;
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .context("an admin URL ending in a database")?;
        Ok(Scratch {
            url: format!("{base}/{name}"),
            admin,
            name: name.into(),
        })
    }

    /// Its size on disk, as PostgreSQL counts it.
    pub async fn size_bytes(&mut self) -> Result<i64> {
        let (size,): (i64,) = sqlx::query_as("select pg_database_size($1)")
            .bind(&self.name)
            .fetch_one(&mut self.admin)
            .await?;
        Ok(size)
    }

    /// Drop it (closing whatever is still connected).
    pub async fn drop_database(mut self) -> Result<()> {
        sqlx::query(&format!(
            "drop database if exists {} with (force)",
            self.name
        ))
        .execute(&mut self.admin)
        .await?;
        Ok(())
    }
}
