//! Page benchmark of issue 16 (custom harness: `cargo bench --bench pages [-- <connections>…]`,
//! default 1 and 16 connections).
//!
//! **A coordinator's home and a case page, p99 under 50 ms at 16 connections.** Two pages are
//! read over real HTTP as a browser reads them, signed in with a session cookie:
//!
//! 1. `GET /`, the home of a coordinator who is the primary of 2 000 cases. Behind it:
//!    the session looked up, the coordinator's tasks due by the end of today (`tasks::digest`:
//!    the first 20 overdue and 20 due today are listed, the tiles count all), the messages that
//!    need a person (held, dead, failed), the open consent findings, the case counts by
//!    programme, the listed items' donors named (`cases::names`: each case's key unwrapped and
//!    its donor decrypted, one `case.view` audit entry per case named), and the page rendered.
//! 2. `GET /cases/{id}`, the page of one of those cases whose timeline holds 200 entries (the
//!    case opened, consents, tasks, messages, findings opened and closed; checked in the page):
//!    the case, its contacts, consents, tasks, messages and findings read and decrypted, the
//!    timeline built and rendered.
//!
//! **How.** The whole application router (`donorcare::web::app`) is served by `axum::serve`
//! with connection info on a 127.0.0.1 port in this process, as `donorcare serve` does, but
//! without its background loops (materialisation, outreach, digests), so nothing else works
//! while the pages are timed. The coordinator signs in through the login form (`GET /login`
//! for the CSRF cookie and field, then `POST /login`); every request carries the session
//! cookie. The load generator is the keep-alive HTTP/1.1 client of `common/load.rs` (shared
//! with `benches/http.rs`): each of C connections sends a request, reads the whole answer, and
//! sends the next. Every answer must be a 200 holding a marker: on home the two task tiles'
//! counts (known from `tasks::digest` at set-up) and the coordinator's name, on the case page
//! the donor's name and the timeline's heading (bodies differ per request: CSRF tokens). A
//! run is a 1 s warm-up and a measured window (`DONORCARE_BENCH_SECS`, default 5 s); the rate
//! is the answers completed inside the window over its length, with their latency p50 and
//! p99. After each run the audit log must have grown by at least one entry per page answered
//! (page views are audited; home records one per case it names). The clock is fixed at
//! 2026-06-01 10:00 in Asia/Shanghai, the default zone, so "overdue" and "due today" hold the
//! same tasks whenever the benchmark runs.
//!
//! **The load.** 1 999 open marrow cases are sealed as `domain::cases::create` seals them
//! (`common::seal_case`, written in bulk by `common::write_batch`), donations spread over the
//! last two years, and their care plans materialised (`schedule::materialise_all`, as the
//! server's loop does: future calls and messages). The 2 000th, the case page's, is made
//! through `cases::create`. Through the domain API (`donorcare::domain::…`): 240 calls and
//! visits overdue (due 1 hour to 45 days ago) and 90 due later today, on random cases; 40
//! cases with a relative, each with a hand-planned message due yesterday which the outreach
//! run (`outreach::run_due`) holds for want of a contact consent (with the care-plan messages
//! due by now); verbal consents without a witness on 15 of those cases, so open findings are
//! there besides those the pending messages without consent raise. The case page's case has
//! two relatives, 60 consents of four kinds by the three people (some raising findings), 40
//! hand-planned messages to the three in turn (half of them due by now, settled by the outreach
//! run), its care plan's tasks and messages, and calls, done and upcoming, to make 200 entries.
//!
//! **Caveats.** The server and the load generator share one Tokio runtime with one worker per
//! core, and so the machine's cores (two here): at 16 connections the figures are bound by
//! throughput, and a connection's latency is mostly its wait behind the other fifteen. The
//! database lives in a fresh folder under `target/bench-data/` (a real disk, not a tmpfs, so
//! the fsync of each audit group commit costs what it costs) and is removed at the end. No
//! tracing subscriber is installed. Every name and number is invented.

#[path = "common/mod.rs"]
mod common;
use common::load::{
    bench_args, bench_folder, connections_from, contains, load, measure_window, print_setting,
    serve, snippet, Conn, Exchange, Expect, Request, Run,
};
use common::{ms, seal_case, verdict, with_check, write_batch, Dice, NewCase, SealedCase, Stats};

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde_json::json;
use sqlx::sqlite::SqlitePoolOptions;
use tokio::task::JoinSet;

use donorcare::audit::AuditEntry;
use donorcare::config::Config;
use donorcare::crypto::keyring::WrappedKey;
use donorcare::crypto::SecretString;
use donorcare::domain::accounts::{self, NewUserInput};
use donorcare::domain::cases::{self, Donation, Donor};
use donorcare::domain::consents::{self, ConsentFilter, ConsentInput};
use donorcare::domain::contacts::{self, ContactInput};
use donorcare::domain::findings::{self, FindingFilter};
use donorcare::domain::outreach::{self, Channels, OutreachFilter};
use donorcare::domain::schedule::materialise_all;
use donorcare::domain::tasks::{self, CompleteInput, TaskFilter, TaskInput};
use donorcare::domain::types::{Program, Sex};
use donorcare::domain::Services;
use donorcare::policy::{Action, Actor};
use donorcare::server;
use donorcare::web::AppState;

const DEFAULT_CONNECTIONS: [usize; 2] = [1, 16];
/// The aim of issue 16: p99 under this at 16 connections.
const TARGET_P99: Duration = Duration::from_millis(50);
/// The connections the aim is stated at.
const TARGET_CONNECTIONS: usize = 16;

/// The coordinator's cases, the case page's included.
const CASES: u64 = 2_000;
/// Calls and visits overdue and due later today, made by hand on random cases.
const OVERDUE: usize = 100;
const DUE_TODAY: usize = 90;
/// Cases with a relative and a held message; the first `VERBAL_FINDINGS` of them also get a
/// verbal consent without a witness.
const WITH_RELATIVE: usize = 40;
const VERBAL_FINDINGS: usize = 15;
/// Entries of the case page's timeline.
const TIMELINE: usize = 200;
/// The case page's consents and hand-planned messages (to the donor and the two relatives in
/// turn).
const TIMELINE_CONSENTS: usize = 60;
const TIMELINE_MESSAGES: usize = 40;
/// Items of each kind the case page reads (`ON_CASE_PAGE` in `src/web/pages/cases.rs`).
const ON_CASE_PAGE: usize = 100;
/// Rows `tasks::digest` reads at most; the tiles count all only below it.
const DIGEST_ROWS: usize = 500;
/// Cases per transaction of the bulk load.
const LOAD_BATCH: usize = 1_000;
/// Cases per `materialise` call, as `server::materialise_loop` passes.
const MATERIALISE_BATCH: i64 = 2_000;

const USERNAME: &str = "bench-coordinator";
const PASSWORD: &str = "bench-password-1";
const DISPLAY_NAME: &str = "Bench Coordinator";
const REGION: &str = "yinzhou";
/// The case page's donor (no synthetic name uses these characters).
const TIMELINE_DONOR: &str = "林晚舟";

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴", "徐", "孙",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "强", "磊", "军", "洋", "勇", "艳", "杰",
];

/// The fixed "now" of every figure: 2026-06-01 10:00 in Asia/Shanghai.
fn bench_now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 2, 0, 0)
        .single()
        .expect("a valid instant")
}

#[tokio::main]
async fn main() -> Result<()> {
    // `phases` times the parts of each page one by one; numbers are connections.
    let (phases, numbers): (Vec<String>, Vec<String>) =
        bench_args().into_iter().partition(|w| w == "phases");
    let connections = if !phases.is_empty() && numbers.is_empty() {
        Vec::new()
    } else {
        connections_from(&numbers, &DEFAULT_CONNECTIONS)?
    };
    let measure = measure_window()?;
    let dir = bench_folder("pages-")?;
    let result = run(dir.path(), &connections, !phases.is_empty(), measure).await;
    drop(dir);
    result
}

/// One page under load: its request and what every answer must hold.
struct Target {
    name: &'static str,
    what: String,
    exchanges: Arc<Vec<Exchange>>,
}

/// One line of the results table.
struct Figure {
    page: &'static str,
    connections: usize,
    p50: f64,
    p99: f64,
    rps: f64,
}

async fn run(dir: &Path, connections: &[usize], phases: bool, measure: Duration) -> Result<()> {
    let mut cfg = Config::new(dir.join("data"));
    cfg.keys_dir = dir.join("keys");
    let (svc, _notices) = server::open_services(&cfg).await?;
    let now = bench_now();
    let state = server::app_state_with_clock(svc, &cfg, Arc::new(move || now))?;

    println!("donorcare page benchmark (issue 16): a coordinator's home and a case page");
    print_setting(&cfg, measure).await?;
    println!("now = {} (fixed)\n", now.to_rfc3339());

    let mut servers = JoinSet::new();
    let addr = serve(&mut servers, donorcare::web::app(state.clone())).await?;
    let outcome = async {
        let started = Instant::now();
        let (actor, case) = load_data(&state.svc, &cfg, now).await?;
        let cookie = sign_in(addr).await?;
        let targets = targets(&state, &actor, &case, addr, &cookie, now).await?;
        println!("set-up took {:.1} s\n", started.elapsed().as_secs_f64());
        if phases {
            time_phases(&state.svc, &actor, &case, &targets, addr, now).await?;
        }
        if connections.is_empty() {
            return Ok(());
        }
        measure_pages(&state, addr, &targets, connections, measure).await
    }
    .await;

    servers.abort_all();
    while servers.join_next().await.is_some() {}
    state.svc.store.close().await;
    outcome
}

async fn measure_pages(
    state: &AppState,
    addr: SocketAddr,
    targets: &[Target],
    connections: &[usize],
    measure: Duration,
) -> Result<()> {
    let mut figures = Vec::new();
    for &c in connections {
        println!("{c} connection(s):");
        for t in targets {
            let (before, _) = state.svc.store.audit_head().await?;
            let run: Run = load(addr, t.exchanges.clone(), c, measure)
                .await
                .with_context(|| format!("{}, {c} connections", t.name))?;
            let (after, _) = state.svc.store.audit_head().await?;
            let growth = after - before;
            ensure!(
                growth >= run.answered as i64,
                "{}: the audit log grew by {growth} entries for {} pages answered",
                t.name,
                run.answered
            );
            println!(
                "  {:<10} {}; audit +{growth} for {} answered",
                t.name,
                run.describe(),
                run.answered
            );
            figures.push(Figure {
                page: t.name,
                connections: c,
                p50: run.percentile_ms(0.50),
                p99: run.percentile_ms(0.99),
                rps: run.rps(),
            });
        }
    }

    println!("\npages:");
    for t in targets {
        println!("  {}: {}", t.name, t.what);
    }
    let aim = ms(TARGET_P99);
    println!("\n| Page | Connections | p50 | p99 | req/s | p99 < {aim:.0} ms |");
    println!("|---|---|---|---|---|---|");
    for f in &figures {
        println!(
            "| {} | {} | {:.1} ms | {:.1} ms | {:.0} | {} |",
            f.page,
            f.connections,
            f.p50,
            f.p99,
            f.rps,
            if f.p99 < aim { "yes" } else { "**no**" }
        );
    }
    for t in targets {
        if let Some(f) = figures
            .iter()
            .find(|f| f.page == t.name && f.connections == TARGET_CONNECTIONS)
        {
            println!(
                "aim for {} (p99 < {aim:.0} ms at {TARGET_CONNECTIONS} connections): {} \
                 (p99 {:.1} ms)",
                t.name,
                verdict(f.p99 < aim),
                f.p99
            );
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The data
// ---------------------------------------------------------------------------------------------

/// Make the coordinator and everything the two pages show; returns the coordinator and the
/// case page's case.
async fn load_data(svc: &Services, cfg: &Config, now: DateTime<Utc>) -> Result<(Actor, String)> {
    let row = accounts::new_user(
        &NewUserInput {
            email: None,
            username: Some(USERNAME.into()),
            display_name: Some(DISPLAY_NAME.into()),
            role: Some("coordinator".into()),
            region: Some(REGION.into()),
            password: Some(SecretString::new(PASSWORD.into())),
        },
        now,
    )?;
    svc.store.insert_user(&row, &[]).await?;
    let actor = accounts::actor_of(&row)?;

    let t = Instant::now();
    let ids = bulk_cases(svc, cfg, &actor, CASES - 1, now).await?;
    let stats = materialise_all(svc, now, MATERIALISE_BATCH).await?;
    println!(
        "  {} cases sealed and written, care plans materialised ({} tasks, {} messages): {:.1} s",
        ids.len(),
        stats.created,
        stats.messages,
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let mut dice = Dice::new(16);
    for i in 0..OVERDUE + DUE_TODAY {
        let case = &ids[dice.below(ids.len() as u64) as usize];
        let due = if i < OVERDUE {
            now - chrono::Duration::minutes(60 + dice.below(45 * 24 * 60) as i64)
        } else {
            // Later today: the day ends at 16:00 UTC.
            now + chrono::Duration::minutes(5 + dice.below(13 * 60) as i64)
        };
        let kind = if dice.chance(70) { "call" } else { "visit" };
        tasks::create(svc, &actor, case, hand_task(kind, due, None, None), now).await?;
    }

    for (k, case) in ids.iter().take(WITH_RELATIVE).enumerate() {
        let relative = add_relative(svc, &actor, case, k, "spouse", "sms", now).await?;
        tasks::create(
            svc,
            &actor,
            case,
            hand_task(
                "outreach",
                now - chrono::Duration::days(1),
                Some(&relative),
                Some("marrow_followup"),
            ),
            now,
        )
        .await?;
        if k < VERBAL_FINDINGS {
            let signed = now.date_naive() - chrono::Days::new(30 + k as u64);
            record_consent(
                svc,
                &actor,
                case,
                "publicity",
                &relative,
                "verbal",
                signed,
                now,
            )
            .await?;
        }
    }
    println!(
        "  {OVERDUE} overdue and {DUE_TODAY} due-today calls and visits, {WITH_RELATIVE} \
         relatives with a message each, {VERBAL_FINDINGS} verbal consents: {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let case = timeline_case(svc, &actor, now).await?;
    let channels = Channels::new(svc.schedule.clone())?;
    let settled = outreach::run_due(svc, &channels, "bench", || now, || false).await?;
    println!(
        "  the case page's case {case}: {:.1} s; outreach run: {} messages claimed, {} held",
        t.elapsed().as_secs_f64(),
        settled.claimed,
        settled.held
    );
    Ok((actor, case))
}

/// Seal `n` marrow cases created by `by` (their primary) and write them in bulk with their
/// `case.create` audit entries; returns their ids.
async fn bulk_cases(
    svc: &Services,
    cfg: &Config,
    by: &Actor,
    n: u64,
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect(&cfg.database_url())
        .await
        .context("opening the loader's connection")?;
    let ring = svc.keys.ring();
    let today = now.date_naive();
    let mut ids = Vec::with_capacity(n as usize);
    let mut batch: Vec<SealedCase> = Vec::with_capacity(LOAD_BATCH);
    for i in 0..n {
        let mut d = Dice::new(i);
        let birth = NaiveDate::from_ymd_opt(1960, 1, 1).unwrap_or_default()
            + chrono::Days::new(i * 7 % 15_000);
        let donor = Donor {
            full_name: format!("{}{}{}", d.pick(SURNAMES), d.pick(GIVEN), d.pick(GIVEN)),
            sex: Some(if d.chance(50) { Sex::Female } else { Sex::Male }),
            birth_date: Some(birth),
            national_id: Some(with_check(&format!(
                "330212{}{:03}",
                birth.format("%Y%m%d"),
                i % 1000
            ))),
            phone: Some(format!("139{:08}", 10_000_000 + i)),
            email: None,
            address: Some(format!("浙江省宁波市鄞州区天童路{}号", 1 + i % 400)),
            deceased: false,
            death_date: None,
            language: None,
            timezone: None,
        };
        let donated = today - chrono::Days::new(1 + d.below(730));
        let donation = Donation {
            date: donated,
            kind: d.pick(Program::Marrow.donation_kinds()).to_string(),
            hospital: Some("宁波市第一医院".into()),
        };
        let created_at = donated.and_hms_opt(1, 0, 0).map_or(now, |t| t.and_utc());
        batch.push(seal_case(
            &svc.keys,
            &ring.index,
            NewCase {
                program: Program::Marrow,
                region: REGION,
                created_at,
                donor: &donor,
                donation: &donation,
                notes: d.chance(40).then_some("家属希望下午六点后来电"),
            },
            by,
            i,
        ));
        if batch.len() == LOAD_BATCH || i + 1 == n {
            write_batch(&pool, &batch).await?;
            let mut audit = Vec::with_capacity(batch.len());
            for c in batch.drain(..) {
                ids.push(c.row.id);
                audit.push(c.audit);
            }
            svc.store.append_audit(&audit).await?;
        }
    }
    pool.close().await;
    Ok(ids)
}

fn hand_task(
    kind: &str,
    due: DateTime<Utc>,
    contact: Option<&str>,
    template: Option<&str>,
) -> TaskInput {
    TaskInput {
        kind: Some(kind.into()),
        due_at: Some(due.to_rfc3339()),
        assignee_id: None,
        contact_id: contact.map(str::to_string),
        template: template.map(str::to_string),
        channel: None,
    }
}

/// Add a relative to `case`; returns the contact's id.
async fn add_relative(
    svc: &Services,
    actor: &Actor,
    case: &str,
    k: usize,
    relationship: &str,
    channel: &str,
    now: DateTime<Utc>,
) -> Result<String> {
    let input = ContactInput {
        full_name: Some(format!(
            "{}{}",
            SURNAMES[k % SURNAMES.len()],
            GIVEN[(k / 3) % GIVEN.len()]
        )),
        relationship: Some(relationship.into()),
        phone: Some(format!("135{:08}", 20_000_000 + k)),
        address: Some("浙江省宁波市海曙区中山西路1号".into()),
        preferred_channel: Some(channel.into()),
        ..Default::default()
    };
    let c = contacts::create(svc, actor, case, input, "Asia/Shanghai", now).await?;
    Ok(c.id)
}

/// Record a consent of `kind` given by `who` about themselves (a contact consent covers every
/// channel); a verbal one has no witness, so it raises a finding.
#[allow(clippy::too_many_arguments)]
async fn record_consent(
    svc: &Services,
    actor: &Actor,
    case: &str,
    kind: &str,
    who: &str,
    method: &str,
    signed: NaiveDate,
    now: DateTime<Utc>,
) -> Result<()> {
    let input = ConsentInput {
        kind: Some(kind.into()),
        subject: Some(who.into()),
        given_by: Some(who.into()),
        method: Some(method.into()),
        document: Some(format!("{kind}-zh-CN-v1")),
        signed_at: Some(signed.to_string()),
        ..Default::default()
    };
    consents::record(svc, actor, case, input, now)
        .await
        .with_context(|| format!("recording a {method} {kind} consent"))?;
    Ok(())
}

/// The case page's case: made through `cases::create`, with two relatives, consents, messages
/// and calls until its timeline holds [`TIMELINE`] entries. Returns its id.
async fn timeline_case(svc: &Services, actor: &Actor, now: DateTime<Utc>) -> Result<String> {
    let input = serde_json::from_value(json!({
        "program": "marrow",
        "region": REGION,
        "donor": {
            "full_name": TIMELINE_DONOR,
            "sex": "f",
            "birth_date": "1988-04-12",
            "national_id": with_check("33021219880412062"),
            "phone": "13800138000",
            "address": "浙江省宁波市鄞州区四明中路999号",
            "deceased": false
        },
        "donation": {"date": "2025-12-01", "kind": "pbsc", "hospital": "宁波市第一医院"},
        "notes": "家属希望周末来访"
    }))?;
    let case = cases::create(svc, actor, input, now).await?.id;
    let spouse = add_relative(svc, actor, &case, 7, "spouse", "sms", now).await?;
    let parent = add_relative(svc, actor, &case, 11, "parent", "letter", now).await?;

    // Messages to the three in turn, half due in the past (settled by the outreach run), half
    // ahead.
    let people = ["donor", spouse.as_str(), parent.as_str()];
    for k in 0..TIMELINE_MESSAGES {
        let due = if k % 2 == 0 {
            now - chrono::Duration::days(1 + k as i64)
        } else {
            now + chrono::Duration::days(20 * k as i64)
        };
        let template = ["qingming", "spring_festival", "birthday", "marrow_followup"][k % 4];
        let to = Some(people[k % people.len()]).filter(|p| *p != "donor");
        tasks::create(
            svc,
            actor,
            &case,
            hand_task("outreach", due, to, Some(template)),
            now,
        )
        .await?;
    }

    // Consents of every kind by the three; every seventh verbal without a witness.
    let kinds = ["contact", "registry", "publicity", "research"];
    let first = NaiveDate::from_ymd_opt(2025, 12, 1).unwrap_or_default();
    for k in 0..TIMELINE_CONSENTS {
        let method = if k % 7 == 3 { "verbal" } else { "electronic" };
        let signed = first + chrono::Days::new(2 * k as u64);
        let (kind, who) = (kinds[k % kinds.len()], people[k % people.len()]);
        record_consent(svc, actor, &case, kind, who, method, signed, now).await?;
    }

    // Calls make up the rest: done ones in the past, upcoming ones after today.
    let have = timeline_parts(svc, actor, &case, now).await?;
    let missing = TIMELINE
        .checked_sub(have.total())
        .with_context(|| format!("the timeline already holds {}", have.describe()))?;
    ensure!(
        have.tasks + missing <= ON_CASE_PAGE,
        "{missing} calls would take the tasks past the {ON_CASE_PAGE} the page shows ({})",
        have.describe()
    );
    for k in 0..missing {
        if k % 2 == 0 {
            let due = now - chrono::Duration::days(3 + 2 * k as i64);
            let t =
                tasks::create(svc, actor, &case, hand_task("call", due, None, None), now).await?;
            let done = CompleteInput {
                outcome: Some("reached".into()),
                note: Some("通话顺利，家属一切安好".into()),
            };
            tasks::complete(svc, actor, &t.id, done, now).await?;
        } else {
            let due = now + chrono::Duration::days(2 + 3 * k as i64);
            tasks::create(svc, actor, &case, hand_task("call", due, None, None), now).await?;
        }
    }
    let have = timeline_parts(svc, actor, &case, now).await?;
    ensure!(
        have.total() == TIMELINE,
        "the timeline holds {}, expected {TIMELINE}",
        have.describe()
    );
    println!("  the case page's timeline: {}", have.describe());
    Ok(case)
}

/// What the case page's timeline is made of, read as the page reads it.
struct TimelineParts {
    consents: usize,
    tasks: usize,
    messages: usize,
    findings_opened: usize,
    findings_closed: usize,
}

impl TimelineParts {
    /// The case opened, and one entry per item (two for a closed finding).
    fn total(&self) -> usize {
        1 + self.consents + self.tasks + self.messages + self.findings_opened + self.findings_closed
    }

    fn describe(&self) -> String {
        format!(
            "{} entries (the case opened, {} consents, {} tasks, {} messages, {} findings opened, \
             {} closed)",
            self.total(),
            self.consents,
            self.tasks,
            self.messages,
            self.findings_opened,
            self.findings_closed
        )
    }
}

async fn timeline_parts(
    svc: &Services,
    actor: &Actor,
    case: &str,
    now: DateTime<Utc>,
) -> Result<TimelineParts> {
    let limit = Some(ON_CASE_PAGE as i64);
    let consents = consents::list(
        svc,
        actor,
        ConsentFilter {
            case_id: Some(case.into()),
            limit,
            ..Default::default()
        },
        now,
    )
    .await?
    .items;
    let tasks = tasks::list(
        svc,
        actor,
        TaskFilter {
            case_id: Some(case.into()),
            limit,
            ..Default::default()
        },
        now,
    )
    .await?
    .items;
    let messages = outreach::case_outreach(
        svc,
        actor,
        case,
        OutreachFilter {
            limit,
            cursor: None,
        },
        now,
    )
    .await?
    .items;
    let findings = findings::list(
        svc,
        actor,
        FindingFilter {
            case_id: Some(case.into()),
            limit,
            ..Default::default()
        },
        now,
    )
    .await?
    .items;
    Ok(TimelineParts {
        consents: consents.len(),
        tasks: tasks.len(),
        messages: messages.len(),
        findings_opened: findings.len(),
        findings_closed: findings.iter().filter(|f| f.closed_at.is_some()).count(),
    })
}

// ---------------------------------------------------------------------------------------------
// Signing in and the pages' requests
// ---------------------------------------------------------------------------------------------

/// Sign in through the login form, as a browser does; returns the `Cookie` header's value.
async fn sign_in(addr: SocketAddr) -> Result<String> {
    let mut conn = Conn::connect(addr).await?;
    let form = conn
        .roundtrip(&Request::new(addr, "GET", "/login", &[], None))
        .await?;
    ensure!(form.status == 200, "GET /login answered {}", form.status);
    let csrf = form
        .set_cookie("dc_login_csrf")
        .context("GET /login set no login CSRF cookie")?
        .to_string();
    ensure!(
        contains(
            form.body,
            format!("name=\"csrf\" value=\"{csrf}\"").as_bytes()
        ),
        "the login form's CSRF field is not the cookie's token"
    );
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("username", USERNAME)
        .append_pair("password", PASSWORD)
        .append_pair("csrf", &csrf)
        .finish();
    let jar = format!("dc_login_csrf={csrf}");
    let posted = conn
        .roundtrip(&Request::new(
            addr,
            "POST",
            "/login",
            &[("cookie", &jar)],
            Some(("application/x-www-form-urlencoded", body.as_bytes())),
        ))
        .await?;
    ensure!(
        posted.status == 303,
        "POST /login answered {}: {}",
        posted.status,
        snippet(posted.body)
    );
    let session = posted
        .set_cookie("dc_session")
        .context("POST /login set no session cookie")?;
    Ok(format!("dc_session={session}"))
}

/// The two pages' requests with their markers, each read once to check it.
async fn targets(
    state: &AppState,
    actor: &Actor,
    case: &str,
    addr: SocketAddr,
    cookie: &str,
    now: DateTime<Utc>,
) -> Result<Vec<Target>> {
    let svc = &state.svc;
    let digest = tasks::digest(svc, actor, now).await?;
    let (overdue, today) = (digest.overdue.len(), digest.due_today.len());
    ensure!(
        overdue >= OVERDUE && today >= DUE_TODAY && overdue + today < DIGEST_ROWS,
        "the digest holds {overdue} overdue and {today} due today"
    );
    let held = outreach::attention(
        svc,
        actor,
        outreach::AttentionFilter {
            status: Some("held".into()),
            limit: Some(100),
            cursor: None,
        },
        now,
    )
    .await?;
    let held = format!(
        "{}{}",
        held.items.len(),
        if held.next_cursor.is_some() { "+" } else { "" }
    );
    let open_findings = findings::list(
        svc,
        actor,
        FindingFilter {
            status: Some("open".into()),
            limit: Some(100),
            ..Default::default()
        },
        now,
    )
    .await?;
    let findings_shown = if open_findings.next_cursor.is_some() {
        "100+".to_string()
    } else {
        open_findings.items.len().to_string()
    };

    let headers = [("cookie", cookie)];
    let home = Exchange {
        request: Request::new(addr, "GET", "/", &headers, None),
        expected: Expect::Contains(vec![
            format!("<span class=\"n\">{overdue}</span>"),
            format!("<span class=\"n\">{today}</span>"),
            DISPLAY_NAME.to_string(),
        ]),
    };
    let case_page = Exchange {
        request: Request::new(addr, "GET", &format!("/cases/{case}"), &headers, None),
        expected: Expect::Contains(vec![
            TIMELINE_DONOR.to_string(),
            "id=\"timeline\"".to_string(),
        ]),
    };

    let mut conn = Conn::connect(addr).await?;
    let reply = conn.roundtrip(&home.request).await?;
    let home_bytes = checked(&home, reply.status, reply.body, "GET /")?.len();
    let reply = conn.roundtrip(&case_page.request).await?;
    let body = checked(&case_page, reply.status, reply.body, "GET /cases/{id}")?;
    let entries = timeline_entries(body);
    ensure!(
        entries == TIMELINE,
        "the case page's timeline shows {entries} entries, expected {TIMELINE}"
    );
    let case_bytes = body.len();

    Ok(vec![
        Target {
            name: "home",
            what: format!(
                "GET / as the primary coordinator of {CASES} cases: {overdue} overdue and \
                 {today} due today (20 of each listed), {held} held messages, {findings_shown} \
                 open findings; {home_bytes} bytes of HTML"
            ),
            exchanges: Arc::new(vec![home]),
        },
        Target {
            name: "case page",
            what: format!(
                "GET /cases/{{id}} for a case whose timeline holds {entries} entries; \
                 {case_bytes} bytes of HTML"
            ),
            exchanges: Arc::new(vec![case_page]),
        },
    ])
}

/// The body of a 200 answer that passes `ex`'s check.
fn checked<'a>(ex: &Exchange, status: u16, body: &'a [u8], what: &str) -> Result<&'a [u8]> {
    ensure!(status == 200, "{what} answered {status}: {}", snippet(body));
    ex.expected
        .check(body)
        .with_context(|| format!("{what}: {}", snippet(body)))?;
    Ok(body)
}

/// The entries of the case page's timeline: the items of its `<ol class="timeline">`.
fn timeline_entries(body: &[u8]) -> usize {
    let html = String::from_utf8_lossy(body);
    html.split_once("<ol class=\"timeline\">")
        .and_then(|(_, rest)| rest.split_once("</ol>"))
        .map_or(0, |(list, _)| list.matches("<li").count())
}

// ---------------------------------------------------------------------------------------------
// Phases: the parts of each page, one by one
// ---------------------------------------------------------------------------------------------

/// Repetitions of each timed part (after one warm-up call).
const PHASE_REPS: usize = 40;

async fn timed<T, F, Fut>(mut f: F) -> Result<Stats>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    f().await?;
    let mut took = Vec::with_capacity(PHASE_REPS);
    for _ in 0..PHASE_REPS {
        let t = Instant::now();
        f().await?;
        took.push(t.elapsed());
    }
    Ok(Stats::of(took))
}

fn phase(name: &str, s: &Stats) {
    println!(
        "  {name:<64} median {:>7.2} ms  p99 {:>7.2} ms",
        ms(s.median),
        ms(s.p99)
    );
}

/// The whole page over HTTP, one request at a time.
async fn page_alone(addr: SocketAddr, target: &Target) -> Result<Stats> {
    let mut conn = Conn::connect(addr).await?;
    let ex = &target.exchanges[0];
    let mut took = Vec::with_capacity(PHASE_REPS);
    for _ in 0..=PHASE_REPS {
        let t = Instant::now();
        let reply = conn.roundtrip(&ex.request).await?;
        checked(ex, reply.status, reply.body, target.name)?;
        took.push(t.elapsed());
    }
    took.remove(0);
    Ok(Stats::of(took))
}

/// Time, one call at a time, the domain calls each page makes, as its handler makes them
/// (`src/web/pages/home.rs`, `cases.rs`), and the three steps of naming the home's donors.
async fn time_phases(
    svc: &Services,
    actor: &Actor,
    case: &str,
    targets: &[Target],
    addr: SocketAddr,
    now: DateTime<Utc>,
) -> Result<()> {
    println!("phases, one call at a time ({PHASE_REPS} repetitions each):");
    let [home, case_page] = targets else {
        anyhow::bail!("expected two pages");
    };
    phase(
        "home: the whole page over HTTP",
        &page_alone(addr, home).await?,
    );
    phase(
        "  tasks::digest (due by the end of today)",
        &timed(|| async { Ok(tasks::digest(svc, actor, now).await?) }).await?,
    );
    let attention = || async {
        let f = outreach::AttentionFilter {
            status: Some("held,dead,failed".into()),
            limit: Some(100),
            cursor: None,
        };
        Ok(outreach::attention(svc, actor, f, now).await?)
    };
    phase(
        "  outreach::attention (held, dead, failed; 100)",
        &timed(attention).await?,
    );
    let open_findings = || async {
        let f = FindingFilter {
            status: Some("open".into()),
            limit: Some(12),
            ..Default::default()
        };
        Ok(findings::list(svc, actor, f, now).await?)
    };
    phase("  findings::list (open, 12)", &timed(open_findings).await?);
    phase(
        "  cases::counts",
        &timed(|| async { Ok(cases::counts(svc, actor).await?) }).await?,
    );

    // The cases the home names: its listed tasks, messages and findings.
    let digest = tasks::digest(svc, actor, now).await?;
    let ids: Vec<String> = digest
        .overdue
        .iter()
        .take(20)
        .chain(digest.due_today.iter().take(20))
        .map(|t| t.case_id.clone())
        .chain(
            attention()
                .await?
                .items
                .into_iter()
                .take(12)
                .map(|m| m.case_id),
        )
        .chain(open_findings().await?.items.into_iter().map(|f| f.case_id))
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    let n = unique.len();
    phase(
        &format!("  cases::names ({} items, {n} cases)", ids.len()),
        &timed(|| async { Ok(cases::names(svc, actor, &ids, now).await?) }).await?,
    );
    let read = || async {
        let mut rows = Vec::with_capacity(n);
        for id in &unique {
            rows.push(svc.store.case_with_assignments(id).await?);
        }
        Ok(rows)
    };
    phase(
        &format!("    the {n} cases with their assignments, one read each"),
        &timed(read).await?,
    );
    let rows: Vec<_> = read()
        .await?
        .into_iter()
        .flatten()
        .map(|(r, _)| r)
        .collect();
    let ring = svc.keys.ring();
    let open = || async {
        for row in &rows {
            let wrapped = WrappedKey {
                version: row.key_version.context("a case without its key")?,
                bytes: row.wrapped_key.clone().context("a case without its key")?,
            };
            let key = svc.keys.unwrap_with(&ring, &row.id, &wrapped)?;
            cases::open_row(&key, row)?;
        }
        Ok(())
    };
    phase(
        &format!("    the {n} case keys unwrapped and donors opened"),
        &timed(open).await?,
    );
    let commit = || async {
        let entries = unique
            .iter()
            .map(|id| {
                AuditEntry::new(Some(actor), Action::ReadCase.as_str(), "case", now)
                    .target(id)
                    .case(id)
                    .reason("list")
            })
            .collect();
        Ok(svc.audit.record(entries).await?)
    };
    phase(
        &format!("    the {n} view entries committed (one audit batch)"),
        &timed(commit).await?,
    );

    phase(
        "case page: the whole page over HTTP",
        &page_alone(addr, case_page).await?,
    );
    phase(
        "  cases::get (case, contacts)",
        &timed(|| async { Ok(cases::get(svc, actor, case, now).await?) }).await?,
    );
    let limit = Some(ON_CASE_PAGE as i64);
    let of_case = || ConsentFilter {
        case_id: Some(case.into()),
        limit,
        ..Default::default()
    };
    phase(
        "  consents::list",
        &timed(|| async { Ok(consents::list(svc, actor, of_case(), now).await?) }).await?,
    );
    let task_filter = || TaskFilter {
        case_id: Some(case.into()),
        limit,
        ..Default::default()
    };
    phase(
        "  tasks::list",
        &timed(|| async { Ok(tasks::list(svc, actor, task_filter(), now).await?) }).await?,
    );
    let messages = || async {
        let f = OutreachFilter {
            limit,
            cursor: None,
        };
        Ok(outreach::case_outreach(svc, actor, case, f, now).await?)
    };
    phase("  outreach::case_outreach", &timed(messages).await?);
    let case_findings = || async {
        let f = FindingFilter {
            case_id: Some(case.into()),
            limit,
            ..Default::default()
        };
        Ok(findings::list(svc, actor, f, now).await?)
    };
    phase(
        "  findings::list (the case's)",
        &timed(case_findings).await?,
    );
    let grants = || async {
        Ok(svc
            .store
            .list_break_glass(None, Some(case), false, None, 20)
            .await?)
    };
    phase("  the case's break-glass grants", &timed(grants).await?);
    println!();
    Ok(())
}
