//! HTTP benchmark for one performance target of donorcare (custom harness:
//! `cargo bench --bench http [-- <connections>…]`, default 16, 64 and 256 connections).
//!
//! **An authenticated case view with its audit entry.** The target is that
//! `GET /api/v1/cases/{id}` serves at least 25 % of the requests per second of a bare axum
//! handler (`GET /` answering `"ok"`) measured on the same machine in the same run. The case
//! view is the whole request as a client sees it: the full application router with its
//! middleware, the bearer token looked up in the database, the assignment check, the case key
//! unwrapped by the keyring, the donor, donation, notes and one contact decrypted, the JSON
//! reply, and the wait until the request's `case.view` audit entry has been group-committed to
//! the hash chain and is on disk (SQLite, WAL: the batch is written with `synchronous=NORMAL`
//! and the reply waits for the fdatasync of the WAL that follows). On SQLite the account, the
//! case, its assignments and contacts come from the reads kept in memory
//! (`store::CachedReads`), which answer only while the access generation they were read at is
//! still the database's, checked in the statement that writes the audit entry. Both apps are
//! served by `axum::serve` with connection info, as `donorcare serve` does, on their own
//! 127.0.0.1 ports in this process, so the ratio says what the case system costs over the
//! HTTP stack itself. No tracing subscriber is installed: the per-request log line of a real
//! deployment is not part of either figure.
//!
//! The load generator (`common/load.rs`, shared with `benches/pages.rs`) is a small keep-alive
//! HTTP/1.1 client over `tokio::net::TcpStream` (no HTTP client crate is a dependency): each of C connections sends one request, reads the
//! head and a `Content-Length` body, checks the status and that the body is exactly the one
//! seen during setup, and sends the next. Both apps get the same requests (same headers,
//! including the bearer token, which the bare handler ignores). A run is a warm-up followed by
//! a measured window; the rate is the responses completed inside the window divided by its
//! length, with the latency percentiles of those responses. For each number of connections the
//! bare handler and the case view alternate, three runs each, and the ratio is that of their
//! medians: the bare handler's rate moves by up to a quarter between runs on this machine. Any status other than 200, a
//! changed body, a closed connection or a request slower than 10 s stops the benchmark with
//! an error. After each case-view run the audit head must have grown by exactly the number of
//! views answered, warm-up included, which shows that every view was recorded.
//!
//! The servers and the load generator share one Tokio runtime (one worker per core) and so
//! compete for the same cores, as a load generator on the same machine would; this weighs on
//! both figures alike. Eight cases (each with one contact) are created through the API and the
//! connections read them in turn. The database lives in a fresh folder under
//! `target/bench-data/` (a real disk, not a tmpfs, so fsync costs what it costs) and is removed
//! at the end. `DONORCARE_BENCH_SECS` sets the measured window (default 5 s).

#[path = "common/mod.rs"]
mod common;
use common::load::{
    bench_args, bench_folder, connections_from, load, measure_window, print_setting, serve,
    snippet, Conn, Exchange, Expect, Request,
};

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use serde_json::{json, Value};
use tokio::task::JoinSet;

use donorcare::config::Config;
use donorcare::crypto::SecretString;
use donorcare::domain::accounts::{self, NewUserInput};
use donorcare::server;
use donorcare::web::{self, AppState};

/// The project target: case views per second over bare-handler requests per second.
const TARGET_RATIO: f64 = 0.25;
const DEFAULT_CONNECTIONS: [usize; 3] = [16, 64, 256];
/// Runs of each app per number of connections; the medians are compared.
const ROUNDS: usize = 3;
const CASES: usize = 8;
const USERNAME: &str = "bench-coordinator";
const PASSWORD: &str = "bench-password-1";

#[tokio::main]
async fn main() -> Result<()> {
    let connections = connections_from(&bench_args(), &DEFAULT_CONNECTIONS)?;
    let measure = measure_window()?;
    let dir = bench_folder("http-")?;
    let result = run(dir.path(), &connections, measure).await;
    drop(dir);
    result
}

async fn run(dir: &Path, connections: &[usize], measure: Duration) -> Result<()> {
    let mut cfg = Config::new(dir.join("data"));
    cfg.keys_dir = dir.join("keys");
    let (svc, _notices) = server::open_services(&cfg).await?;
    let state = server::app_state(svc, &cfg)?;

    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("donorcare HTTP benchmark: authenticated case view with its audit entry vs a bare axum handler");
    print_setting(&cfg, measure).await?;

    let mut servers = JoinSet::new();
    let case_addr = serve(&mut servers, web::app(state.clone())).await?;
    let bare_addr = serve(
        &mut servers,
        Router::new().route("/", get(|| async { "ok" })),
    )
    .await?;

    let outcome = async {
        let (case_requests, token, case_bytes) = setup(&state, case_addr).await?;
        // The same headers, bearer token included, go to the bare handler.
        let auth = format!("Bearer {token}");
        let bare_request = Request::new(bare_addr, "GET", "/", &[("authorization", &auth)], None);
        let mut probe = Conn::connect(bare_addr).await?;
        let reply = probe.roundtrip(&bare_request).await?;
        ensure!(
            reply.status == 200 && reply.body == b"ok",
            "bare handler answered {}",
            reply.status
        );
        let bare_requests = Arc::new(vec![Exchange {
            request: bare_request,
            expected: Expect::Body(reply.body.to_vec()),
        }]);
        let case_requests = Arc::new(case_requests);
        println!(
            "case view: GET /api/v1/cases/{{id}} as an assigned coordinator, {CASES} cases with one \
             contact each, {case_bytes} bytes of JSON; bare: GET / -> \"ok\"\n"
        );

        let mut summary = Vec::new();
        for &c in connections {
            println!("{c} connections:");
            // The two alternate, ROUNDS times each, and the medians are compared: the bare
            // handler's rate on this machine moves by up to a quarter between runs.
            let mut bare_rates = Vec::with_capacity(ROUNDS);
            let mut view_rates = Vec::with_capacity(ROUNDS);
            for round in 1..=ROUNDS {
                let bare = load(bare_addr, bare_requests.clone(), c, measure).await
                    .with_context(|| format!("bare handler, {c} connections"))?;
                println!("  round {round}: bare axum handler   {}", bare.describe());
                let (before, _) = state.svc.store.audit_head().await?;
                let view = load(case_addr, case_requests.clone(), c, measure).await
                    .with_context(|| format!("case view, {c} connections"))?;
                let (after, _) = state.svc.store.audit_head().await?;
                println!("  round {round}: case view + audit   {}", view.describe());
                let growth = after - before;
                ensure!(
                    growth == view.answered as i64,
                    "the audit log grew by {growth} entries for {} case views",
                    view.answered
                );
                bare_rates.push(bare.rps());
                view_rates.push(view.rps());
            }
            println!(
                "  audit log: grew by exactly the views answered in every round (warm-up and \
                 tail included)"
            );
            let (bare, view) = (median(&mut bare_rates), median(&mut view_rates));
            let ratio = view / bare;
            let verdict = if ratio >= TARGET_RATIO { "meets" } else { "BELOW" };
            println!(
                "  medians: case view {view:.0} req/s, bare {bare:.0} req/s; ratio {:.1} % \
                 ({verdict} the target of at least {:.0} %)\n",
                ratio * 100.0,
                TARGET_RATIO * 100.0
            );
            summary.push(format!(
                "{c:>4} connections: case view {view:>8.0} req/s, bare {bare:>8.0} req/s, ratio {:>5.1} % \
                 ({verdict} target {:.0} %)",
                ratio * 100.0,
                TARGET_RATIO * 100.0
            ));
        }
        println!("summary ({cores} cores):");
        for line in &summary {
            println!("  {line}");
        }
        Ok(())
    }
    .await;

    servers.abort_all();
    while servers.join_next().await.is_some() {}
    state.svc.store.close().await;
    outcome
}

/// Create the coordinator, log in, create the cases and their contacts through the API, and
/// read each case once: the view requests with the bodies they must return, the token, and the
/// size of a view.
async fn setup(state: &AppState, addr: SocketAddr) -> Result<(Vec<Exchange>, String, usize)> {
    let row = accounts::new_user(
        &NewUserInput {
            email: None,
            username: Some(USERNAME.into()),
            display_name: Some("Bench Coordinator".into()),
            role: Some("coordinator".into()),
            region: None,
            password: Some(SecretString::new(PASSWORD.into())),
        },
        Utc::now(),
    )?;
    state.svc.store.insert_user(&row, &[]).await?;

    let mut conn = Conn::connect(addr).await?;
    let login = json!({"username": USERNAME, "password": PASSWORD});
    let reply = conn
        .call_json(addr, "POST", "/api/v1/auth/login", &[], Some(&login), 200)
        .await?;
    let token = reply["token"]
        .as_str()
        .context("login reply without a token")?
        .to_string();
    let auth = format!("Bearer {token}");
    let headers = [("authorization", auth.as_str())];

    let mut exchanges = Vec::with_capacity(CASES);
    let mut bytes = 0;
    for i in 0..CASES {
        let name = format!("Bench Donor {i}");
        let case = json!({
            "program": "marrow",
            "region": "yinzhou",
            "donor": {
                "full_name": name,
                "birth_date": "1990-02-28",
                "phone": format!("138001380{i:02}"),
                "deceased": false
            },
            "donation": {"date": "2025-05-20", "kind": "pbsc"},
            "notes": format!("bench case {i}: the family asked for calls after 6 pm")
        });
        let created = conn
            .call_json(addr, "POST", "/api/v1/cases", &headers, Some(&case), 201)
            .await?;
        let id = created["id"]
            .as_str()
            .context("created case without an id")?
            .to_string();
        let contact = json!({
            "full_name": format!("Bench Relative {i}"),
            "relationship": "spouse",
            "phone": format!("135123456{i:02}"),
            "preferred_channel": "sms"
        });
        conn.call_json(
            addr,
            "POST",
            &format!("/api/v1/cases/{id}/contacts"),
            &headers,
            Some(&contact),
            201,
        )
        .await?;

        let request = Request::new(addr, "GET", &format!("/api/v1/cases/{id}"), &headers, None);
        let reply = conn.roundtrip(&request).await?;
        ensure!(
            reply.status == 200,
            "case view answered {}: {}",
            reply.status,
            snippet(reply.body)
        );
        let expected = reply.body.to_vec();
        let view: Value = serde_json::from_slice(&expected).context("case view JSON")?;
        ensure!(
            view["donor"]["full_name"] == name.as_str()
                && view["contacts"].as_array().map(Vec::len) == Some(1)
                && view["notes"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("bench case")),
            "case view did not return the decrypted case: {view}"
        );
        if exchanges.is_empty() {
            bytes = expected.len();
        }
        exchanges.push(Exchange {
            request,
            expected: Expect::Body(expected),
        });
    }
    Ok((exchanges, token, bytes))
}

/// The median of a few rates.
fn median(rates: &mut [f64]) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}
