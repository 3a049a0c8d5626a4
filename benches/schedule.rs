//! Scheduling benchmarks for two performance targets of donorcare (custom harness:
//! `cargo bench --bench schedule [-- materialise|phases|tick|variants]`; all but `variants` by
//! default).
//!
//! 1. **Materialising 100 000 cases × 10 rules in under 10 s.** Every case is an open marrow
//!    case with a living donor, so the marrow default plan applies in full: ten rules (five
//!    calls after the donation, yearly calls, two outreach messages after the donation, the
//!    birthday and the donation anniversary). Donation dates are spread over the two years
//!    before "now", so a recent donation still has most of its ten rules ahead and an older
//!    one its yearly occurrences only (3.8 tasks and 2.3 messages per case on average, within
//!    the 400-day horizon). The timed call is `domain::schedule::materialise_all(&svc, now, 2000)`,
//!    exactly as `server::materialise_loop` makes it: it selects the cases short of the horizon,
//!    reads and decrypts them (case key unwrapped by the keyring, donor and donation opened),
//!    computes the occurrences and writes the tasks, the outreach messages and the case
//!    schedules in one `synchronous=FULL` transaction per batch of 2000 cases. Each repetition
//!    starts from a fresh copy of an un-materialised database (copied before the clock starts)
//!    and reports wall time, tasks and messages created, cases per second and the peak resident
//!    set of the process during the pass (`VmHWM`, reset through `/proc/self/clear_refs` just
//!    before it, so it includes all that is resident then). The time is the median of the
//!    repetitions; the memory figure is the first repetition's, since later ones start from
//!    what the earlier ones left resident (for the whole process's maximum, run one repetition
//!    under `/usr/bin/time -v`). A second `materialise_all` on
//!    the same database then has nothing to do (every case is at the horizon) and must create
//!    nothing; a forced re-materialisation of every case through `materialise` (what a plan
//!    change costs) must create nothing either.
//! 2. **A scheduler tick with nothing due among 1M tasks in under 10 ms.** A database holds
//!    10 000 cases with 100 outreach tasks each and one outbox message per task: 70 % settled
//!    (sent, held, cancelled or dead: `next_attempt_at` is null), 30 % pending with their next
//!    attempt in the future (scheduled, or failed and waiting for a retry). Timed are
//!    `Store::outreach_due(now)` and a whole `domain::outreach::run_due(...)` (what
//!    `server::outreach_loop` runs every tick) with nothing due: medians and p99 of 200
//!    interleaved repetitions after a warm-up. That the cost follows what is due rather than
//!    what exists is shown by the query plans (`EXPLAIN QUERY PLAN`: the partial index
//!    `outreach_next`), by the same query forced off the index (`not indexed`), and by the due
//!    query and the claim's selection timed at a later "now" when many messages are due.
//!
//! `phases` replays the materialisation pass on another fresh copy, calling the parts that
//! `materialise` is made of one by one (selection, store reads, key unwrap and decryption,
//! occurrence computation, building the rows, the write transaction), to show where the time
//! goes. Its counts must equal those of `materialise_all`.
//!
//! `variants` (only when asked for: `cargo bench --bench schedule -- variants`) times the first
//! pass once per variant, each on a fresh copy: as shipped; batches of 5 000 cases instead of
//! 2 000; a 64 MiB page cache (set on every connection of a `SqliteStore::open` pool, by holding
//! all eight connections while setting them); and without the bulk load (the due-time indexes
//! kept and written batch by batch). The services are then built with `Services::new` around
//! that store, with the default settings, as `open_services` would.
//!
//! The cases are the shared synthetic registry (`common/synthetic.rs`), all of them living
//! marrow donors: sealed from the same parts `domain::cases::create` uses, with their
//! `case.create` audit entries, and written with multi-row inserts in large transactions. The tasks
//! and outbox rows of the tick data set are written straight with SQL multi-row inserts. Both
//! data sets are kept under `target/bench-data/` (`schedule-<cases>/`, `tick-<tasks>/`) and
//! reused by later runs; the materialisation runs work on copies in a temporary folder there
//! (a real disk, so each commit's fsync costs what it costs). "Now" is fixed (2026-06-01 10:00
//! in Asia/Shanghai, the default zone), so kept data sets stay valid. Sizes:
//! `DONORCARE_BENCH_SCHEDULE_CASES` (default 100 000), `DONORCARE_BENCH_TICK_TASKS` (default
//! 1 000 000, a multiple of 100), `DONORCARE_BENCH_SCHEDULE_REPS` (default 3);
//! `DONORCARE_BENCH_QUICK=1` makes the defaults 10 000 cases, 100 000 tasks and one repetition.
//! Every name, number and address is invented.

#[path = "common/mod.rs"]
mod common;
use common::process::{mib, reset_peak_rss, status_kib};
use common::synthetic::*;
use common::*;

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use chrono::{DateTime, Utc};
use sqlx::{QueryBuilder, Sqlite, SqlitePool};

use donorcare::config::Config;
use donorcare::crypto::keyring::Opened;
use donorcare::crypto::KeyService;
use donorcare::domain::cases::{self, open_row};
use donorcare::domain::outreach::{run_due, Channels};
use donorcare::domain::schedule::{materialise, materialise_all, ScheduleSettings};
use donorcare::domain::{new_id, Services};
use donorcare::schedule::calendar;
use donorcare::schedule::plan::{self, Anchors, CasePreferences, Rule};
use donorcare::store::{
    CaseRow, Materialisation, NewMessage, OutreachRow, SqliteStore, Store, TaskRow,
};

/// Default number of cases to materialise (`DONORCARE_BENCH_SCHEDULE_CASES`).
const MATERIALISE_CASES: u64 = 100_000;
const QUICK_MATERIALISE_CASES: u64 = 10_000;
/// Cases per `materialise` call, as `server::materialise_loop` passes.
const MATERIALISE_BATCH: i64 = 2000;
const MATERIALISE_REPS: usize = 3;
const MATERIALISE_TARGET: Duration = Duration::from_secs(10);
/// The target's rules a case: the marrow default plan under test has at least these (13 since
/// the marrow donor follow-up of issue 19; the figures are for all of them).
const RULES: usize = 10;

/// Rules of the plan under test (the marrow default plan).
fn rules() -> usize {
    plan::default_rules("marrow").len()
}
/// Donation dates fall in the last this many days.
const DONATION_SPREAD_DAYS: u64 = 730;

/// Default number of tasks (and outbox messages) of the tick data set
/// (`DONORCARE_BENCH_TICK_TASKS`).
const TICK_TASKS: u64 = 1_000_000;
const QUICK_TICK_TASKS: u64 = 100_000;
const TASKS_PER_CASE: u64 = 100;
const TICK_WARMUP: usize = 20;
const TICK_REPS: usize = 200;
const TICK_TARGET: Duration = Duration::from_millis(10);
/// Share of the outbox still pending (next attempt in the future), in percent.
const PENDING_PERCENT: u64 = 30;
/// Repetitions of the unindexed contrast query (a full scan each).
const SCAN_REPS: usize = 5;

/// Cases whose tasks and messages go in one transaction of the tick loader.
const TICK_LOAD_CASES: usize = 100;

struct Sizes {
    cases: u64,
    tick_tasks: u64,
    reps: usize,
}

fn env_number(name: &str, default: u64, min: u64) -> Result<u64> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse::<u64>()
            .ok()
            .filter(|n| *n >= min)
            .with_context(|| format!("{name}={v}: expected a number >= {min}")),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; any other word selects the parts to run.
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let quick = std::env::var("DONORCARE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let sizes = Sizes {
        cases: env_number(
            "DONORCARE_BENCH_SCHEDULE_CASES",
            if quick {
                QUICK_MATERIALISE_CASES
            } else {
                MATERIALISE_CASES
            },
            1_000,
        )?,
        tick_tasks: env_number(
            "DONORCARE_BENCH_TICK_TASKS",
            if quick { QUICK_TICK_TASKS } else { TICK_TASKS },
            10_000,
        )?,
        reps: env_number(
            "DONORCARE_BENCH_SCHEDULE_REPS",
            if quick { 1 } else { MATERIALISE_REPS as u64 },
            1,
        )? as usize,
    };
    ensure!(
        sizes.tick_tasks % TASKS_PER_CASE == 0,
        "DONORCARE_BENCH_TICK_TASKS must be a multiple of {TASKS_PER_CASE}"
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "donorcare scheduling benchmarks: {cores} cores{}, SQLite {}, now = {} (fixed){}",
        load_average(),
        sqlite_version().await?,
        bench_now().to_rfc3339(),
        if quick { ", quick mode" } else { "" }
    );

    let mut table = Vec::new();
    let asked = |part: &str| parts.iter().any(|p| p == part);
    if run("materialise") || run("phases") || asked("variants") {
        let dir = target_dir()
            .join("bench-data")
            .join(format!("schedule-{}", sizes.cases));
        materialise_data_set(&dir, sizes.cases).await?;
        if run("materialise") {
            table.extend(materialise_benchmark(&dir, sizes.cases, sizes.reps).await?);
        }
        if run("phases") {
            table.extend(phases_benchmark(&dir, sizes.cases).await?);
        }
        if asked("variants") {
            table.extend(variants_benchmark(&dir, sizes.cases).await?);
        }
    }
    if run("tick") {
        table.extend(tick_benchmark(sizes.tick_tasks).await?);
    }

    println!(
        "\nresults ({cores} cores{}, SQLite WAL, synchronous=FULL):\n",
        load_average()
    );
    println!("| Measure | Data | Result | Target | Met |");
    println!("|---|---|---|---|---|");
    for row in &table {
        println!(
            "| {} | {} | {} | {} | {} |",
            row.measure, row.data, row.result, row.target, row.met
        );
    }
    Ok(())
}

/// One line of the results table.
struct Row {
    measure: String,
    data: String,
    result: String,
    target: String,
    met: String,
}

fn row(measure: impl Into<String>, data: impl Into<String>, result: impl Into<String>) -> Row {
    Row {
        measure: measure.into(),
        data: data.into(),
        result: result.into(),
        target: "–".into(),
        met: "–".into(),
    }
}

fn row_with_target(
    measure: impl Into<String>,
    data: impl Into<String>,
    result: impl Into<String>,
    target: impl Into<String>,
    met: bool,
) -> Row {
    Row {
        target: target.into(),
        met: if met { "yes" } else { "**no**" }.into(),
        ..row(measure, data, result)
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Materialising N cases × 10 rules
// ---------------------------------------------------------------------------------------------

/// What one materialisation repetition measured.
struct MaterialiseRun {
    took: Duration,
    cases: usize,
    tasks: usize,
    messages: usize,
    peak_rss_kib: Option<u64>,
    rss_before_kib: Option<u64>,
    second: Duration,
    forced: Duration,
}

async fn materialise_benchmark(cached: &Path, n: u64, reps: usize) -> Result<Vec<Row>> {
    println!(
        "\n== materialise {n} cases × {} rules (materialise_all, batches of \
         {MATERIALISE_BATCH}), {reps} repetition(s) on fresh copies ==",
        rules()
    );
    let now = bench_now();
    let mut runs = Vec::with_capacity(reps);
    for rep in 0..reps {
        let work = fresh_copy(cached, "schedule-run-")?;
        let (svc, url) = services_in(work.path()).await?;
        check_plan(&svc).await?;

        let peak_reset = reset_peak_rss();
        let rss_before = status_kib("self", "VmRSS");
        let t = Instant::now();
        let s = materialise_all(&svc, now, MATERIALISE_BATCH).await?;
        let took = t.elapsed();
        let peak = if peak_reset {
            status_kib("self", "VmHWM")
        } else {
            None
        };
        ensure!(
            s.cases as u64 == n,
            "materialise_all took {} cases, expected {n}",
            s.cases
        );
        ensure!(
            s.moved == 0 && s.cancelled == 0,
            "a first pass moved {} and cancelled {} tasks",
            s.moved,
            s.cancelled
        );
        let (tasks, msgs) = counts(&url).await?;
        ensure!(
            tasks as usize == s.created && msgs as usize == s.messages,
            "the database holds {tasks} tasks and {msgs} messages; the pass reported {} and {}",
            s.created,
            s.messages
        );

        // Nothing to do: every case is at the horizon.
        let t = Instant::now();
        let again = materialise_all(&svc, now, MATERIALISE_BATCH).await?;
        let second = t.elapsed();
        ensure!(
            again.cases == 0 && again.created == 0 && again.messages == 0,
            "the second pass took {} cases and created {} tasks and {} messages, expected none",
            again.cases,
            again.created,
            again.messages
        );

        // Forced: every case again through `materialise`, as after a plan change.
        let ids = case_ids(&url).await?;
        let t = Instant::now();
        let mut forced = donorcare::domain::schedule::Stats::default();
        for chunk in ids.chunks(MATERIALISE_BATCH as usize) {
            let f = materialise(&svc, chunk, now).await?;
            forced.cases += f.cases;
            forced.created += f.created;
            forced.messages += f.messages;
            forced.moved += f.moved;
            forced.cancelled += f.cancelled;
        }
        let forced_took = t.elapsed();
        ensure!(
            forced.cases as u64 == n
                && forced.created == 0
                && forced.messages == 0
                && forced.moved == 0
                && forced.cancelled == 0,
            "re-materialising every case: {forced:?}, expected {n} cases and no change"
        );
        let (tasks_after, msgs_after) = counts(&url).await?;
        ensure!(
            (tasks_after, msgs_after) == (tasks, msgs),
            "re-materialising changed the counts"
        );

        println!(
            "  run {}: {:.2} s, {} tasks and {} messages created ({:.0} cases/s), peak RSS {}; \
             second pass {:.1} ms (0 created); forced re-materialisation {:.2} s (0 created)",
            rep + 1,
            took.as_secs_f64(),
            s.created,
            s.messages,
            s.cases as f64 / took.as_secs_f64(),
            mib(peak),
            ms(second),
            forced_took.as_secs_f64()
        );
        runs.push(MaterialiseRun {
            took,
            cases: s.cases,
            tasks: s.created,
            messages: s.messages,
            peak_rss_kib: peak,
            rss_before_kib: rss_before,
            second,
            forced: forced_took,
        });
        svc.store.close().await;
        drop(work);
    }

    let median = |f: fn(&MaterialiseRun) -> Duration| Stats::of(runs.iter().map(f).collect());
    let took = median(|r| r.took);
    let second = median(|r| r.second).median;
    let forced = median(|r| r.forced).median;
    let first = &runs[0];
    // The first run's: later runs start from what the earlier ones left resident.
    let peak = first.peak_rss_kib;
    let before = first.rss_before_kib;
    let met = took.median < MATERIALISE_TARGET;
    let data = format!("{} cases × {} rules", thousands(n), rules());
    println!(
        "materialise {n} cases: median {:.2} s (min {:.2} s, max {:.2} s) over {reps} run(s), \
         {} tasks, {} messages, {:.0} cases/s, peak RSS of the first run {} (RSS before it {}); target < {} s: {}",
        took.median.as_secs_f64(),
        took.min.as_secs_f64(),
        took.max.as_secs_f64(),
        first.tasks,
        first.messages,
        first.cases as f64 / took.median.as_secs_f64(),
        mib(peak),
        mib(before),
        MATERIALISE_TARGET.as_secs(),
        verdict(met)
    );
    let spread = if reps > 1 {
        format!(
            " (median of {reps}; min {:.2} s, max {:.2} s)",
            took.min.as_secs_f64(),
            took.max.as_secs_f64()
        )
    } else {
        String::new()
    };
    Ok(vec![
        row_with_target(
            "Materialise: `materialise_all(now, 2000)`, first pass",
            data.clone(),
            format!("{:.2} s{spread}", took.median.as_secs_f64()),
            format!("< {} s", MATERIALISE_TARGET.as_secs()),
            met,
        ),
        row(
            "… tasks / outreach messages created",
            data.clone(),
            format!(
                "{} / {}",
                thousands(first.tasks as u64),
                thousands(first.messages as u64)
            ),
        ),
        row(
            "… throughput",
            data.clone(),
            format!(
                "{} cases/s, {} tasks/s",
                thousands((first.cases as f64 / took.median.as_secs_f64()) as u64),
                thousands((first.tasks as f64 / took.median.as_secs_f64()) as u64)
            ),
        ),
        row(
            "… peak RSS of the process during the first pass",
            data.clone(),
            format!("{} (before: {})", mib(peak), mib(before)),
        ),
        row(
            "Second `materialise_all` (all at the horizon)",
            data.clone(),
            format!("{:.1} ms, 0 cases taken, 0 created", ms(second)),
        ),
        row(
            "Forced re-materialisation of every case (`materialise`, 500 per call)",
            data,
            format!(
                "{:.2} s, 0 created / moved / cancelled",
                forced.as_secs_f64()
            ),
        ),
    ])
}

/// The stored marrow plan must be the default one, of at least the target's ten rules.
async fn check_plan(svc: &Services) -> Result<()> {
    let defaults = plan::default_rules("marrow");
    ensure!(
        defaults.len() >= RULES,
        "the marrow default plan has {} rules, fewer than the target's {RULES}",
        defaults.len()
    );
    let stored = svc.store.care_plans().await?;
    let marrow = stored
        .iter()
        .find(|p| p.program == "marrow")
        .context("no marrow plan stored")?;
    let rules: Vec<Rule> = serde_json::from_str(&marrow.rules)?;
    ensure!(
        rules == defaults,
        "the stored marrow plan is not the default"
    );
    Ok(())
}

async fn counts(url: &str) -> Result<(i64, i64)> {
    let raw = SqliteStore::open(url).await?;
    let (tasks,): (i64,) = sqlx::query_as("select count(*) from tasks")
        .fetch_one(raw.pool())
        .await?;
    let (msgs,): (i64,) = sqlx::query_as("select count(*) from outreach")
        .fetch_one(raw.pool())
        .await?;
    raw.pool().close().await;
    Ok((tasks, msgs))
}

async fn case_ids(url: &str) -> Result<Vec<String>> {
    let raw = SqliteStore::open(url).await?;
    let ids: Vec<(String,)> = sqlx::query_as("select id from cases order by id")
        .fetch_all(raw.pool())
        .await?;
    raw.pool().close().await;
    Ok(ids.into_iter().map(|(id,)| id).collect())
}

// ---------------------------------------------------------------------------------------------
// Where the materialisation time goes
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Phases {
    select: Duration,
    plans: Duration,
    read_cases: Duration,
    read_others: Duration,
    unwrap: Duration,
    open: Duration,
    occurrences: Duration,
    build: Duration,
    write: Duration,
    batches: usize,
    cases: usize,
    occurrences_n: usize,
    tasks: usize,
    messages: usize,
}

/// Replay `materialise_all` part by part on a fresh copy (the same calls and the same logic as
/// `domain::schedule::materialise` for cases with nothing materialised yet).
async fn phases_benchmark(cached: &Path, n: u64) -> Result<Vec<Row>> {
    println!("\n== where the time goes: the materialisation of {n} cases, part by part ==");
    let work = fresh_copy(cached, "schedule-run-")?;
    let (svc, _url) = services_in(work.path()).await?;
    let now = bench_now();
    let settings = svc.schedule.clone();
    let select_horizon = calendar::local_date(settings.default_tz, now)
        + chrono::Duration::days(settings.horizon_days - 1);
    let mut p = Phases::default();
    let started = Instant::now();
    let mut after = String::new();
    loop {
        let t = Instant::now();
        let ids = svc
            .store
            .cases_to_materialise(select_horizon, &after, MATERIALISE_BATCH)
            .await?;
        p.select += t.elapsed();
        let Some(last) = ids.last().cloned() else {
            break;
        };
        p.batches += 1;

        let t = Instant::now();
        let plans: HashMap<String, (i64, Vec<Rule>)> = svc
            .store
            .care_plans()
            .await?
            .into_iter()
            .map(|r| Ok((r.program, (r.version, serde_json::from_str(&r.rules)?))))
            .collect::<Result<_>>()?;
        p.plans += t.elapsed();

        let t = Instant::now();
        let rows = svc.store.cases_by_ids(&ids).await?;
        p.read_cases += t.elapsed();
        let t = Instant::now();
        let contacts = svc.store.contacts_for_cases(&ids).await?;
        let schedules = svc.store.case_schedules(&ids).await?;
        let existing = svc
            .store
            .plan_tasks(&ids, now - chrono::Duration::days(401))
            .await?;
        let existing_msgs = svc.store.scheduled_outreach(&ids).await?;
        p.read_others += t.elapsed();
        ensure!(
            contacts.is_empty()
                && schedules.is_empty()
                && existing.is_empty()
                && existing_msgs.is_empty(),
            "the copy is not un-materialised"
        );

        let mut m = Materialisation {
            now,
            ..Default::default()
        };
        for row in &rows {
            ensure!(row.status == "open", "case {} is not open", row.id);
            let (version, rules) = plans.get(&row.program).context("no plan")?;
            let t = Instant::now();
            let key = cases::case_key(&svc, row)
                .await?
                .context("a case without its key")?;
            p.unwrap += t.elapsed();
            let t = Instant::now();
            let opened = open_row(&key, row)?;
            p.open += t.elapsed();

            let t = Instant::now();
            let tz = settings.default_tz; // a marrow case's one recipient is the donor
            let anchors = Anchors {
                donation: Some(opened.donation.date),
                death: opened.donor.death_date.or(if opened.donor.deceased {
                    Some(opened.donation.date)
                } else {
                    None
                }),
                registration: Some(row.created_at.date_naive()),
                birth: opened.donor.birth_date,
                donation_kind: Some(opened.donation.kind.clone()),
            };
            let today = calendar::local_date(tz, now);
            let horizon = today + chrono::Duration::days(settings.horizon_days);
            let occ = plan::occurrences(
                rules,
                &anchors,
                &CasePreferences::default(),
                today - chrono::Duration::days(400),
                horizon,
                settings.waking_start(),
                tz,
            );
            p.occurrences += t.elapsed();
            p.occurrences_n += occ.len();

            let t = Instant::now();
            build_rows(row, &occ, tz, now, &mut m);
            m.schedules.push((row.id.clone(), horizon, *version));
            p.build += t.elapsed();
            p.cases += 1;
        }
        p.tasks += m.new_tasks.len();
        p.messages += m.new_outreach.len();
        let t = Instant::now();
        svc.store.apply_materialisation(&m).await?;
        p.write += t.elapsed();
        after = last;
    }
    let total = started.elapsed();
    ensure!(
        p.cases as u64 == n,
        "the replay took {} cases, expected {n}",
        p.cases
    );
    svc.store.close().await;
    drop(work);

    let parts: [(&str, Duration); 9] = [
        (
            "select the cases short of the horizon (`cases_to_materialise`)",
            p.select,
        ),
        ("read and parse the care plans", p.plans),
        (
            "read the cases with their wrapped keys (`cases_by_ids`)",
            p.read_cases,
        ),
        (
            "read contacts, schedules, scheduled tasks and messages",
            p.read_others,
        ),
        ("unwrap the case keys (`cases::case_key`)", p.unwrap),
        ("open donor and donation (`open_row`)", p.open),
        (
            "compute the occurrences (`plan::occurrences`)",
            p.occurrences,
        ),
        ("build the task and message rows", p.build),
        (
            "write tasks, messages, schedules (`apply_materialisation`)",
            p.write,
        ),
    ];
    let accounted: Duration = parts.iter().map(|(_, d)| *d).sum();
    println!(
        "replayed in {:.2} s ({} batches, {} cases, {} occurrences, {} tasks, {} messages):",
        total.as_secs_f64(),
        p.batches,
        p.cases,
        p.occurrences_n,
        p.tasks,
        p.messages
    );
    for (what, d) in &parts {
        println!(
            "  {:>8.1} ms {:>5.1} %  {what}",
            ms(*d),
            100.0 * d.as_secs_f64() / total.as_secs_f64()
        );
    }
    println!(
        "  {:>8.1} ms {:>5.1} %  the rest (loop, allocation, awaiting)",
        ms(total.saturating_sub(accounted)),
        100.0 * total.saturating_sub(accounted).as_secs_f64() / total.as_secs_f64()
    );
    let per_case = |d: Duration| us(d) / p.cases.max(1) as f64;
    let mut rows = vec![row(
        "Replay of the pass, part by part (total)",
        format!("{} cases", thousands(n)),
        format!(
            "{:.2} s: {} tasks, {} messages",
            total.as_secs_f64(),
            thousands(p.tasks as u64),
            thousands(p.messages as u64)
        ),
    )];
    for (what, d) in parts {
        rows.push(row(
            format!("… {what}"),
            format!("{} cases", thousands(n)),
            format!(
                "{:.0} ms ({:.1} %, {:.1} µs per case)",
                ms(d),
                100.0 * d.as_secs_f64() / total.as_secs_f64(),
                per_case(d)
            ),
        ));
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// What the write would cost with other connection settings (opt-in: `-- variants`)
// ---------------------------------------------------------------------------------------------

/// One variant: pragmas set on every connection of the store's pool, the batch size, and
/// whether the pass may be a bulk load.
struct Variant {
    name: &'static str,
    pragmas: &'static [&'static str],
    /// Cases per `materialise` call.
    batch: i64,
    /// Whether the pass may be a bulk load (drop and rebuild the due-time indexes).
    bulk: bool,
}

/// What `SqliteStore::open` sets on every connection: (`cache_size`, `temp_store`).
const SHIPPED_PRAGMAS: (i64, i64) = (-2000, 2);
const BIG_CACHE: &[&str] = &["pragma cache_size = -65536"];

const VARIANTS: [Variant; 4] = [
    Variant {
        name: "as shipped",
        pragmas: &[],
        batch: MATERIALISE_BATCH,
        bulk: true,
    },
    Variant {
        name: "as shipped, batches of 5 000",
        pragmas: &[],
        batch: 5_000,
        bulk: true,
    },
    Variant {
        name: "`cache_size = -65536` (64 MiB)",
        pragmas: BIG_CACHE,
        batch: MATERIALISE_BATCH,
        bulk: true,
    },
    Variant {
        name: "no bulk load (the due-time indexes kept and written batch by batch)",
        pragmas: &[],
        batch: MATERIALISE_BATCH,
        bulk: false,
    },
];

/// The first pass under each variant, once each, on fresh copies: what the suggested fixes in
/// `src/` would gain, measured through the same `materialise_all`.
async fn variants_benchmark(cached: &Path, n: u64) -> Result<Vec<Row>> {
    println!("\n== materialise {n} cases under other SQLite settings (one run each) ==");
    let now = bench_now();
    let mut rows = Vec::new();
    let mut baseline = None;
    for v in &VARIANTS {
        let work = fresh_copy(cached, "schedule-run-")?;
        let url = format!("sqlite://{}", work.path().join("donorcare.db").display());
        let store = SqliteStore::open(&url).await?;
        // Hold every connection the pool may open (8) and set the pragmas on each.
        let mut conns = Vec::new();
        for _ in 0..8 {
            conns.push(store.pool().acquire().await?);
        }
        for c in conns.iter_mut() {
            for p in v.pragmas {
                sqlx::query(p).execute(&mut **c).await?;
            }
            let (cache,): (i64,) = sqlx::query_as("pragma cache_size")
                .fetch_one(&mut **c)
                .await?;
            let (temp,): (i64,) = sqlx::query_as("pragma temp_store")
                .fetch_one(&mut **c)
                .await?;
            let want_cache = if v.pragmas.iter().any(|p| p.contains("cache_size")) {
                -65536
            } else {
                SHIPPED_PRAGMAS.0
            };
            let want_temp = SHIPPED_PRAGMAS.1;
            ensure!(
                (cache, temp) == (want_cache, want_temp),
                "a connection has cache_size {cache} and temp_store {temp}"
            );
        }
        drop(conns);
        let store: Arc<dyn Store> = Arc::new(store);
        let mut cfg = Config::new(work.path().to_path_buf());
        cfg.keys_dir = work.path().join("keys");
        let keys = match KeyService::start(store.clone(), cfg.key_paths(), Utc::now()).await? {
            Opened::Existing(k) => k,
            Opened::Created { .. } => bail!("the copy has no keyring"),
        };
        let mut svc = Services::new(store, Arc::new(keys));
        if !v.bulk {
            svc.schedule = Arc::new(ScheduleSettings {
                bulk_threshold: i64::MAX,
                ..ScheduleSettings::default()
            });
        }
        let t = Instant::now();
        let s = materialise_all(&svc, now, v.batch).await?;
        let took = t.elapsed();
        ensure!(s.cases as u64 == n, "the pass took {} cases", s.cases);
        let base = *baseline.get_or_insert(took);
        println!(
            "  {:.2} s ({:.2}× as shipped), {} tasks, {} messages: {}",
            took.as_secs_f64(),
            took.as_secs_f64() / base.as_secs_f64(),
            s.created,
            s.messages,
            v.name
        );
        rows.push(row_with_target(
            format!("Variant: {}", v.name),
            format!("{} cases × {} rules", thousands(n), rules()),
            format!(
                "{:.2} s ({:.2}× as shipped)",
                took.as_secs_f64(),
                took.as_secs_f64() / base.as_secs_f64()
            ),
            format!("< {} s", MATERIALISE_TARGET.as_secs()),
            took < MATERIALISE_TARGET,
        ));
        svc.store.close().await;
        drop(work);
    }
    Ok(rows)
}

/// The rows `materialise_case` makes for occurrences that have no task yet (a marrow case: one
/// recipient, the donor, in the default zone).
fn build_rows(
    row: &CaseRow,
    occurrences: &[plan::Occurrence],
    tz: chrono_tz::Tz,
    now: DateTime<Utc>,
    m: &mut Materialisation,
) {
    for o in occurrences {
        let due = plan::due_at(o, tz);
        let grace_until = due + o.grace;
        if grace_until < now {
            continue;
        }
        let id = new_id();
        m.new_tasks.push(TaskRow {
            id: id.clone(),
            case_id: row.id.clone(),
            kind: o.action.clone(),
            due_at: due,
            assignee_id: None,
            contact_id: None,
            template: o.template.clone(),
            status: "scheduled".into(),
            details: None,
            created_by: row.created_by.clone(),
            created_at: now,
            updated_at: now,
            completed_at: None,
            completed_by: None,
            rule_id: Some(o.rule_id.clone()),
            occurrence: Some(o.key.clone()),
            grace_until: Some(grace_until),
            cancel_reason: None,
            region: row.region.clone(),
        });
        if o.action != "outreach" {
            continue;
        }
        let due = calendar::local_to_utc(tz, o.local);
        m.new_outreach.push(OutreachRow::scheduled(
            NewMessage {
                id: new_id(),
                task_id: &id,
                case_id: &row.id,
                recipient: "donor",
                channel: o.channel.clone(),
                template: o.template.clone().unwrap_or_default(),
                due_at: due,
                grace_until: due + o.grace,
            },
            now,
        ));
    }
}

/// The un-materialised data set of `n` marrow cases in `dir`, built unless a complete one is
/// there.
async fn materialise_data_set(dir: &Path, n: u64) -> Result<()> {
    let want = Marker::new("schedule", n, 0);
    if is_kept(dir, &want).await? {
        return Ok(());
    }
    let (svc, loader, _) = build_cases(dir, n, Profile::marrow(DONATION_SPREAD_DAYS)).await?;
    finish_load(&svc, loader).await?;
    want.write_to(dir)
}

// ---------------------------------------------------------------------------------------------
// 2. A scheduler tick with nothing due among 1M tasks
// ---------------------------------------------------------------------------------------------

/// `Store::outreach_due`'s query (`src/store/schedule.rs`).
const DUE_SQL: &str = "select id from outreach where next_attempt_at <= $1 \
     and (lease_until is null or lease_until < $1) order by next_attempt_at limit 1";
/// The same, kept off every index.
const DUE_SQL_NOT_INDEXED: &str = "select id from outreach not indexed where \
     next_attempt_at <= $1 and (lease_until is null or lease_until < $1) \
     order by next_attempt_at limit 1";
/// The selection inside `SQLITE_CLAIM` (`$2` now, `$4` limit), read only.
const CLAIM_SELECT_SQL: &str = "select id from outreach where next_attempt_at <= $1 \
     and (lease_until is null or lease_until < $1) order by next_attempt_at limit 4";

async fn tick_benchmark(tasks: u64) -> Result<Vec<Row>> {
    let n_cases = tasks / TASKS_PER_CASE;
    println!(
        "\n== scheduler tick with nothing due: {n_cases} cases, {tasks} tasks, {tasks} outbox \
         messages =="
    );
    let dir = target_dir()
        .join("bench-data")
        .join(format!("tick-{tasks}"));
    tick_data_set(&dir, tasks).await?;
    let (svc, url) = services_in(&dir).await?;
    let raw = SqliteStore::open(&url).await?;
    let pool = raw.pool();
    let now = bench_now();
    let later = now + chrono::Duration::days(200);

    let (n_tasks,): (i64,) = sqlx::query_as("select count(*) from tasks")
        .fetch_one(pool)
        .await?;
    let (n_msgs,): (i64,) = sqlx::query_as("select count(*) from outreach")
        .fetch_one(pool)
        .await?;
    let (pending,): (i64,) =
        sqlx::query_as("select count(*) from outreach where next_attempt_at is not null")
            .fetch_one(pool)
            .await?;
    let count_due = |at: DateTime<Utc>| async move {
        let (k,): (i64,) =
            sqlx::query_as("select count(*) from outreach where next_attempt_at <= $1")
                .bind(at)
                .fetch_one(pool)
                .await?;
        anyhow::Ok(k)
    };
    let due_now = count_due(now).await?;
    let due_later = count_due(later).await?;
    ensure!(
        n_tasks as u64 == tasks && n_msgs as u64 == tasks,
        "the data set holds {n_tasks} tasks and {n_msgs} messages, expected {tasks} of each"
    );
    ensure!(
        due_now == 0,
        "{due_now} messages are due at the bench's now"
    );
    println!(
        "{n_tasks} tasks, {n_msgs} messages: {pending} pending (in the partial index \
         outreach_next), {} settled; due now: {due_now}; due at now + 200 days: {due_later}",
        n_msgs - pending
    );

    println!("\nquery plans:");
    let due_plan = explain(pool, DUE_SQL, now).await?;
    let claim_plan = explain(pool, CLAIM_SELECT_SQL, now).await?;
    let scan_plan = explain(pool, DUE_SQL_NOT_INDEXED, now).await?;
    for (what, plan) in [
        ("Store::outreach_due", &due_plan),
        ("claim_outreach's selection", &claim_plan),
        ("the due query forced off the index", &scan_plan),
    ] {
        println!("  {what}:");
        for line in plan.iter() {
            println!("    {line}");
        }
    }
    let uses_index = |p: &[String]| p.iter().any(|l| l.contains("outreach_next"));
    ensure!(
        uses_index(&due_plan) && uses_index(&claim_plan),
        "the due query or the claim does not use the partial index outreach_next"
    );

    let channels = Channels::new(Arc::new(ScheduleSettings::default()))?;
    let owner = new_id();
    // Warm-up, then interleaved repetitions.
    let mut due_times = Vec::with_capacity(TICK_REPS);
    let mut tick_times = Vec::with_capacity(TICK_REPS);
    for rep in 0..TICK_WARMUP + TICK_REPS {
        let t = Instant::now();
        let due = svc.store.outreach_due(now).await?;
        let d = t.elapsed();
        ensure!(!due, "outreach_due found something due");
        let t = Instant::now();
        let s = run_due(&svc, &channels, &owner, || now, || false).await?;
        let r = t.elapsed();
        ensure!(s.claimed == 0, "run_due claimed {} messages", s.claimed);
        if rep >= TICK_WARMUP {
            due_times.push(d);
            tick_times.push(r);
        }
    }
    let due = Stats::of(due_times);
    let tick = Stats::of(tick_times);

    // Contrast: the same question without the index, and the index with many messages due.
    let mut scan_times = Vec::with_capacity(SCAN_REPS);
    for _ in 0..SCAN_REPS {
        let t = Instant::now();
        let found: Option<(String,)> = sqlx::query_as(DUE_SQL_NOT_INDEXED)
            .bind(now)
            .fetch_optional(pool)
            .await?;
        scan_times.push(t.elapsed());
        ensure!(found.is_none(), "the full scan found a due message");
    }
    let scan = Stats::of(scan_times);
    let mut later_due_times = Vec::with_capacity(TICK_REPS);
    let mut later_claim_times = Vec::with_capacity(TICK_REPS);
    for rep in 0..TICK_WARMUP + TICK_REPS {
        let t = Instant::now();
        let due = svc.store.outreach_due(later).await?;
        let d = t.elapsed();
        ensure!(due, "nothing due at now + 200 days");
        let t = Instant::now();
        let ids: Vec<(String,)> = sqlx::query_as(CLAIM_SELECT_SQL)
            .bind(later)
            .fetch_all(pool)
            .await?;
        let c = t.elapsed();
        ensure!(ids.len() == 4, "the claim's selection found {}", ids.len());
        black_box(ids);
        if rep >= TICK_WARMUP {
            later_due_times.push(d);
            later_claim_times.push(c);
        }
    }
    let later_due = Stats::of(later_due_times);
    let later_claim = Stats::of(later_claim_times);

    println!(
        "\n{TICK_REPS} interleaved repetitions after {TICK_WARMUP} warm-ups (median / p99 / max):"
    );
    println!(
        "  Store::outreach_due, nothing due:        {:>8.1} / {:>8.1} / {:>8.1} µs",
        us(due.median),
        us(due.p99),
        us(due.max)
    );
    println!(
        "  run_due (a whole tick), nothing due:     {:>8.1} / {:>8.1} / {:>8.1} µs",
        us(tick.median),
        us(tick.p99),
        us(tick.max)
    );
    println!(
        "  outreach_due at now + 200 days ({due_later} due): {:>8.1} / {:>8.1} / {:>8.1} µs",
        us(later_due.median),
        us(later_due.p99),
        us(later_due.max)
    );
    println!(
        "  claim's selection of 4 at now + 200 days:      {:>8.1} / {:>8.1} / {:>8.1} µs",
        us(later_claim.median),
        us(later_claim.p99),
        us(later_claim.max)
    );
    println!(
        "  the due query forced off the index ({SCAN_REPS} runs): median {:.1} ms",
        ms(scan.median)
    );
    let met_due = due.p99 < TICK_TARGET;
    let met_tick = tick.p99 < TICK_TARGET;
    println!(
        "tick with nothing due among {tasks} tasks: run_due median {:.3} ms, p99 {:.3} ms \
         (target < {} ms: {})",
        ms(tick.median),
        ms(tick.p99),
        TICK_TARGET.as_millis(),
        verdict(met_tick)
    );
    raw.pool().close().await;
    svc.store.close().await;

    let data = format!(
        "{} tasks, {} messages ({} pending)",
        thousands(tasks),
        thousands(tasks),
        thousands(pending as u64)
    );
    let target = format!("< {} ms", TICK_TARGET.as_millis());
    let fmt = |s: &Stats| format!("median {:.3} ms, p99 {:.3} ms", ms(s.median), ms(s.p99));
    Ok(vec![
        row_with_target(
            "Tick: `Store::outreach_due(now)`, nothing due",
            data.clone(),
            fmt(&due),
            target.clone(),
            met_due,
        ),
        row_with_target(
            "Tick: `outreach::run_due(...)`, nothing due",
            data.clone(),
            fmt(&tick),
            target,
            met_tick,
        ),
        row(
            "`outreach_due` at now + 200 days",
            format!("{} due", thousands(due_later as u64)),
            fmt(&later_due),
        ),
        row(
            "Claim's selection (4 oldest due) at now + 200 days",
            format!("{} due", thousands(due_later as u64)),
            fmt(&later_claim),
        ),
        row(
            "Due query forced off the index (`not indexed`), for contrast",
            data,
            format!("median {:.1} ms (full scan)", ms(scan.median)),
        ),
        row(
            "Plan of the due query",
            "",
            format!("`{}`", due_plan.join("; ")),
        ),
    ])
}

/// `EXPLAIN QUERY PLAN` of a statement of one parameter, bound to `now`.
async fn explain(pool: &SqlitePool, sql: &str, now: DateTime<Utc>) -> Result<Vec<String>> {
    let rows: Vec<(i64, i64, i64, String)> = sqlx::query_as(&format!("explain query plan {sql}"))
        .bind(now)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(|r| r.3).collect())
}

/// The tick data set of `tasks` tasks in `dir`, built unless a complete one is there.
async fn tick_data_set(dir: &Path, tasks: u64) -> Result<()> {
    let n_cases = tasks / TASKS_PER_CASE;
    let want = Marker::new("tick", n_cases, tasks);
    if is_kept(dir, &want).await? {
        return Ok(());
    }
    let started = Instant::now();
    let (svc, loader, cases) = build_cases(dir, n_cases, Profile::marrow(3_650)).await?;
    let now = bench_now();
    let mut written = 0u64;
    for chunk in cases.chunks(TICK_LOAD_CASES) {
        let mut tasks_rows = Vec::with_capacity(chunk.len() * TASKS_PER_CASE as usize);
        let mut msgs = Vec::with_capacity(tasks_rows.capacity());
        for c in chunk {
            for k in 0..TASKS_PER_CASE {
                let (t, o) = synthetic_task(&c.id, &c.created_by, c.number, k, now);
                tasks_rows.push(t);
                msgs.push(o);
            }
        }
        write_tasks(&loader, &tasks_rows, &msgs).await?;
        written += tasks_rows.len() as u64;
        if written % PROGRESS_EVERY == 0 || written == tasks {
            let secs = started.elapsed().as_secs_f64();
            println!("  {written:>8} / {tasks} tasks and messages  {secs:>6.1} s");
        }
    }
    ensure!(written == tasks, "wrote {written} tasks, expected {tasks}");
    finish_load(&svc, loader).await?;
    println!(
        "built the tick data set in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    want.write_to(dir)
}

/// Task `k` of case number `i` and its one outbox message: settled in the past, or pending
/// with its next attempt in the future.
fn synthetic_task(
    case_id: &str,
    created_by: &str,
    i: u64,
    k: u64,
    now: DateTime<Utc>,
) -> (TaskRow, OutreachRow) {
    let mut d = Dice::new(i * TASKS_PER_CASE + k + 0x7a5c);
    let id = new_id();
    let template = ["anniversary_letter", "birthday", "marrow_followup"][(k % 3) as usize];
    let pending = d.chance(PENDING_PERCENT);
    let minutes = |m: u64| chrono::Duration::minutes(m as i64);
    let (due, task_status, status, reason, next, attempts, sent_at) = if pending {
        if d.chance(5) {
            // Failed once or twice, retried soon.
            let due = now - minutes(1 + d.below(600));
            let next = now + minutes(1 + d.below(60));
            (
                due,
                "scheduled",
                "failed",
                Some("smtp: 451 try again later".to_string()),
                Some(next),
                1 + d.below(2) as i64,
                None,
            )
        } else {
            let due = now + minutes(60 + d.below(400 * 24 * 60));
            (due, "scheduled", "scheduled", None, Some(due), 0, None)
        }
    } else {
        let due = now - minutes(60 + d.below(730 * 24 * 60));
        match d.below(100) {
            0..=79 => (
                due,
                "done",
                "sent",
                None,
                None,
                1,
                Some(due + minutes(d.below(30))),
            ),
            80..=89 => (
                due,
                "done",
                "held",
                Some("no_consent: no active contact consent covers the sms channel".to_string()),
                None,
                1,
                None,
            ),
            90..=97 => (
                due,
                "done",
                "cancelled",
                Some("late: past the rule's grace period, skipped".to_string()),
                None,
                1,
                None,
            ),
            _ => (
                due,
                "done",
                "dead",
                Some("sms: gateway refused".to_string()),
                None,
                8,
                None,
            ),
        }
    };
    let grace = chrono::Duration::days(7);
    let created = due - chrono::Duration::days(400);
    let settled_at = sent_at.unwrap_or(due);
    let task = TaskRow {
        id: id.clone(),
        case_id: case_id.into(),
        kind: "outreach".into(),
        due_at: due,
        assignee_id: None,
        contact_id: None,
        template: Some(template.into()),
        status: task_status.into(),
        details: None,
        created_by: created_by.into(),
        created_at: created,
        updated_at: if pending { created } else { settled_at },
        completed_at: (!pending).then_some(settled_at),
        completed_by: None,
        rule_id: Some(format!("bench_rule_{}", k % 10)),
        occurrence: Some(format!("n{k}")),
        grace_until: Some(due + grace),
        cancel_reason: None,
        region: String::new(),
    };
    let msg = OutreachRow {
        id: new_id(),
        task_id: id,
        case_id: case_id.into(),
        recipient: "donor".into(),
        channel: d.chance(50).then(|| "sms".to_string()),
        template: template.into(),
        status: status.into(),
        reason,
        due_at: due,
        grace_until: due + grace,
        next_attempt_at: next,
        attempts,
        lease_owner: None,
        lease_until: None,
        sent_at,
        created_at: created,
        updated_at: if pending { created } else { settled_at },
    };
    (task, msg)
}

/// Insert tasks and their messages in one transaction of multi-row inserts.
async fn write_tasks(pool: &SqlitePool, tasks: &[TaskRow], msgs: &[OutreachRow]) -> Result<()> {
    let mut tx = pool.begin().await?;
    for chunk in tasks.chunks(ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "insert into tasks (id, case_id, kind, due_at, template, status, created_by, \
             created_at, updated_at, completed_at, rule_id, occurrence, grace_until) ",
        );
        q.push_values(chunk, |mut b, t| {
            b.push_bind(&t.id)
                .push_bind(&t.case_id)
                .push_bind(&t.kind)
                .push_bind(t.due_at)
                .push_bind(&t.template)
                .push_bind(&t.status)
                .push_bind(&t.created_by)
                .push_bind(t.created_at)
                .push_bind(t.updated_at)
                .push_bind(t.completed_at)
                .push_bind(&t.rule_id)
                .push_bind(&t.occurrence)
                .push_bind(t.grace_until);
        });
        q.build().execute(&mut *tx).await?;
    }
    for chunk in msgs.chunks(ROWS_PER_INSERT) {
        let mut q = QueryBuilder::<Sqlite>::new(
            "insert into outreach (id, task_id, case_id, recipient, channel, template, status, \
             reason, due_at, grace_until, next_attempt_at, attempts, sent_at, created_at, \
             updated_at) ",
        );
        q.push_values(chunk, |mut b, o| {
            b.push_bind(&o.id)
                .push_bind(&o.task_id)
                .push_bind(&o.case_id)
                .push_bind(&o.recipient)
                .push_bind(&o.channel)
                .push_bind(&o.template)
                .push_bind(&o.status)
                .push_bind(&o.reason)
                .push_bind(o.due_at)
                .push_bind(o.grace_until)
                .push_bind(o.next_attempt_at)
                .push_bind(o.attempts)
                .push_bind(o.sent_at)
                .push_bind(o.created_at)
                .push_bind(o.updated_at);
        });
        q.build().execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}
