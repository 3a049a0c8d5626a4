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
//! The load generator is a small keep-alive HTTP/1.1 client over `tokio::net::TcpStream`
//! (no HTTP client crate is a dependency): each of C connections sends one request, reads the
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
use common::target_dir;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use axum::routing::get;
use axum::Router;
use chrono::Utc;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
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
const MAX_CONNECTIONS: usize = 1024;
const WARMUP: Duration = Duration::from_secs(1);
const DEFAULT_MEASURE_SECS: u64 = 5;
const MAX_MEASURE_SECS: u64 = 120;
/// Any single request slower than this fails the benchmark.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Receive buffer of a connection; a larger response fails the benchmark.
const CONN_BUFFER: usize = 64 * 1024;
/// Latency samples kept over all connections of one run.
const MAX_SAMPLES: usize = 2_000_000;
const CASES: usize = 8;
const USERNAME: &str = "bench-coordinator";
const PASSWORD: &str = "bench-password-1";

#[tokio::main]
async fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; any other word is a number of connections.
    let mut connections = Vec::new();
    for a in std::env::args().skip(1).filter(|a| !a.starts_with('-')) {
        let n: usize = a
            .parse()
            .ok()
            .filter(|n| (1..=MAX_CONNECTIONS).contains(n))
            .with_context(|| {
                format!("{a:?}: expected a number of connections, 1–{MAX_CONNECTIONS}")
            })?;
        connections.push(n);
    }
    if connections.is_empty() {
        connections = DEFAULT_CONNECTIONS.to_vec();
    }
    let measure = match std::env::var("DONORCARE_BENCH_SECS") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=MAX_MEASURE_SECS).contains(s))
            .map(Duration::from_secs)
            .with_context(|| {
                format!("DONORCARE_BENCH_SECS={v}: expected seconds, 1–{MAX_MEASURE_SECS}")
            })?,
        Err(_) => Duration::from_secs(DEFAULT_MEASURE_SECS),
    };

    let base = target_dir().join("bench-data");
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    let dir = tempfile::Builder::new()
        .prefix("http-")
        .tempdir_in(&base)
        .context("creating the benchmark folder")?;
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
    println!(
        "machine: {cores} cores ({}), {} {}; servers and load generator share one Tokio runtime \
         with {} workers",
        cpu_model().unwrap_or_else(|| "unknown CPU".into()),
        std::env::consts::OS,
        std::env::consts::ARCH,
        tokio::runtime::Handle::current().metrics().num_workers(),
    );
    println!(
        "store: SQLite {} (WAL, synchronous=FULL) in {}",
        sqlite_version(&cfg.database_url()).await?,
        cfg.data_dir.display()
    );
    println!(
        "each run: {} s warm-up, then {} s measured; keep-alive HTTP/1.1 over 127.0.0.1",
        WARMUP.as_secs_f64(),
        measure.as_secs_f64()
    );

    let case_app = web::app(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let bare_app = Router::new()
        .route("/", get(|| async { "ok" }))
        .into_make_service_with_connect_info::<SocketAddr>();
    let mut servers = JoinSet::new();
    let case_addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        servers.spawn(async move { axum::serve(listener, case_app).await });
        addr
    };
    let bare_addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        servers.spawn(async move { axum::serve(listener, bare_app).await });
        addr
    };

    let outcome = async {
        let (case_requests, token) = setup(&state, case_addr).await?;
        let case_bytes = case_requests.first().map_or(0, |r| r.expected.len());
        // The same headers, bearer token included, go to the bare handler.
        let bare_request = Request::new(bare_addr, "GET", "/", Some(&token), None);
        let mut probe = Conn::connect(bare_addr).await?;
        let (status, body) = probe.roundtrip(&bare_request).await?;
        ensure!(
            status == 200 && body == b"ok",
            "bare handler answered {status}"
        );
        let bare_requests = Arc::new(vec![Exchange {
            request: bare_request,
            expected: body.to_vec(),
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
/// read each case once: the view requests with the bodies they must return, and the token.
async fn setup(state: &AppState, addr: SocketAddr) -> Result<(Vec<Exchange>, String)> {
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
        .call_json(addr, "POST", "/api/v1/auth/login", None, Some(&login), 200)
        .await?;
    let token = reply["token"]
        .as_str()
        .context("login reply without a token")?
        .to_string();

    let mut exchanges = Vec::with_capacity(CASES);
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
            .call_json(
                addr,
                "POST",
                "/api/v1/cases",
                Some(&token),
                Some(&case),
                201,
            )
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
            Some(&token),
            Some(&contact),
            201,
        )
        .await?;

        let request = Request::new(
            addr,
            "GET",
            &format!("/api/v1/cases/{id}"),
            Some(&token),
            None,
        );
        let (status, body) = conn.roundtrip(&request).await?;
        ensure!(
            status == 200,
            "case view answered {status}: {}",
            snippet(body)
        );
        let expected = body.to_vec();
        let view: Value = serde_json::from_slice(&expected).context("case view JSON")?;
        ensure!(
            view["donor"]["full_name"] == name.as_str()
                && view["contacts"].as_array().map(Vec::len) == Some(1)
                && view["notes"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("bench case")),
            "case view did not return the decrypted case: {view}"
        );
        exchanges.push(Exchange { request, expected });
    }
    Ok((exchanges, token))
}

/// A request's bytes and the exact body every answer to it must carry.
struct Exchange {
    request: Request,
    expected: Vec<u8>,
}

/// One load run.
struct Run {
    /// 200 responses completed inside the measured window.
    measured: u64,
    /// Every 200 response of the run, warm-up and tail included.
    answered: u64,
    window: Duration,
    /// Latencies of the measured responses, in microseconds, sorted.
    latencies: Vec<u32>,
}

impl Run {
    fn rps(&self) -> f64 {
        self.measured as f64 / self.window.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        f64::from(self.latencies[i]) / 1000.0
    }

    fn describe(&self) -> String {
        format!(
            "{:>9.0} req/s  ({} in {:.0} s; latency p50 {:.2} ms, p99 {:.2} ms)",
            self.rps(),
            self.measured,
            self.window.as_secs_f64(),
            self.percentile_ms(0.50),
            self.percentile_ms(0.99)
        )
    }
}

/// Drive `connections` keep-alive connections against `addr` for the warm-up and `measure`,
/// each sending the exchanges in turn and checking every answer.
async fn load(
    addr: SocketAddr,
    exchanges: Arc<Vec<Exchange>>,
    connections: usize,
    measure: Duration,
) -> Result<Run> {
    ensure!(!exchanges.is_empty(), "nothing to send");
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(Conn::connect(addr).await?);
    }
    let measure_start = Instant::now() + WARMUP;
    let end = measure_start + measure;
    let max_samples = MAX_SAMPLES / connections;
    let mut tasks = JoinSet::new();
    for (i, mut conn) in conns.into_iter().enumerate() {
        let exchanges = exchanges.clone();
        tasks.spawn(async move {
            let mut measured = 0u64;
            let mut answered = 0u64;
            let mut latencies = Vec::with_capacity(max_samples.min(1 << 16));
            let mut k = i;
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let ex = &exchanges[k % exchanges.len()];
                k += 1;
                let (status, body) =
                    tokio::time::timeout(REQUEST_TIMEOUT, conn.roundtrip(&ex.request))
                        .await
                        .with_context(|| {
                            format!("connection {i}: no answer within {REQUEST_TIMEOUT:?}")
                        })?
                        .with_context(|| format!("connection {i}"))?;
                ensure!(
                    status == 200,
                    "connection {i}: status {status}: {}",
                    snippet(body)
                );
                ensure!(
                    body == ex.expected.as_slice(),
                    "connection {i}: the body changed: {}",
                    snippet(body)
                );
                answered += 1;
                let done = Instant::now();
                if done >= measure_start && done < end {
                    measured += 1;
                    if latencies.len() < max_samples {
                        let us = done.duration_since(sent).as_micros();
                        latencies.push(u32::try_from(us).unwrap_or(u32::MAX));
                    }
                }
            }
            anyhow::Ok((measured, answered, latencies))
        });
    }
    let mut run = Run {
        measured: 0,
        answered: 0,
        window: measure,
        latencies: Vec::new(),
    };
    while let Some(joined) = tasks.join_next().await {
        // Returning early drops the set, which aborts the other connections.
        let (measured, answered, latencies) = joined.context("a load task panicked")??;
        run.measured += measured;
        run.answered += answered;
        run.latencies.extend(latencies);
    }
    run.latencies.sort_unstable();
    Ok(run)
}

/// The bytes of one HTTP/1.1 request.
struct Request(Vec<u8>);

impl Request {
    fn new(
        addr: SocketAddr,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Self {
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\n");
        if let Some(t) = token {
            head.push_str(&format!("authorization: Bearer {t}\r\n"));
        }
        let body = body.map(Value::to_string);
        if let Some(b) = &body {
            head.push_str(&format!(
                "content-type: application/json\r\ncontent-length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if let Some(b) = body {
            bytes.extend_from_slice(b.as_bytes());
        }
        Request(bytes)
    }
}

/// A keep-alive HTTP/1.1 client connection: one request at a time, `Content-Length` bodies.
/// It uses only readiness and `try_read`/`try_write` of `TcpStream`, so it needs nothing
/// beyond Tokio's `net` feature.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` received so far.
    filled: usize,
    /// Bytes of `buf` that belong to the previous response.
    consumed: usize,
}

impl Conn {
    async fn connect(addr: SocketAddr) -> Result<Conn> {
        ensure!(
            addr.ip().is_loopback(),
            "refusing to load {addr}: loopback only"
        );
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: vec![0; CONN_BUFFER],
            filled: 0,
            consumed: 0,
        })
    }

    /// Send `request` and read its response: the status and the body.
    async fn roundtrip(&mut self, request: &Request) -> Result<(u16, &[u8])> {
        if self.consumed > 0 {
            self.buf.copy_within(self.consumed..self.filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
        self.write_all(&request.0).await?;
        let mut searched = 0;
        let head_end = loop {
            if let Some(i) = self.buf[searched..self.filled]
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
            {
                break searched + i + 4;
            }
            searched = self.filled.saturating_sub(3);
            self.fill().await?;
        };
        let (status, length) = parse_head(&self.buf[..head_end])?;
        ensure!(
            head_end + length <= self.buf.len(),
            "a response of {} bytes does not fit the {CONN_BUFFER}-byte buffer",
            head_end + length
        );
        while self.filled < head_end + length {
            self.fill().await?;
        }
        self.consumed = head_end + length;
        Ok((status, &self.buf[head_end..self.consumed]))
    }

    /// Send a JSON request and expect `status`; returns the reply as JSON.
    async fn call_json(
        &mut self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        status: u16,
    ) -> Result<Value> {
        let request = Request::new(addr, method, path, token, body);
        let (got, reply) = self.roundtrip(&request).await?;
        ensure!(
            got == status,
            "{method} {path}: expected {status}, got {got}: {}",
            snippet(reply)
        );
        serde_json::from_slice(reply).with_context(|| format!("{method} {path}: reply is not JSON"))
    }

    async fn write_all(&self, mut bytes: &[u8]) -> Result<()> {
        while !bytes.is_empty() {
            self.stream.writable().await?;
            match self.stream.try_write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e).context("sending a request"),
            }
        }
        Ok(())
    }

    /// Read more of the response into the buffer.
    async fn fill(&mut self) -> Result<()> {
        ensure!(
            self.filled < self.buf.len(),
            "a response head does not fit the {CONN_BUFFER}-byte buffer"
        );
        loop {
            self.stream.readable().await?;
            match self.stream.try_read(&mut self.buf[self.filled..]) {
                Ok(0) => bail!("the server closed the connection"),
                Ok(n) => {
                    self.filled += n;
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e).context("reading a response"),
            }
        }
    }
}

/// The status and `Content-Length` of a response head; anything this client cannot follow
/// (chunked bodies, a closing connection) is an error.
fn parse_head(head: &[u8]) -> Result<(u16, usize)> {
    let text = std::str::from_utf8(head).context("response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let status = match (parts.next(), parts.next()) {
        (Some("HTTP/1.1"), Some(code)) => code.parse::<u16>().ok(),
        _ => None,
    }
    .with_context(|| format!("unexpected status line {status_line:?}"))?;
    let mut length = None;
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line
            .split_once(':')
            .with_context(|| format!("malformed header {line:?}"))?;
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().context("Content-Length")?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("unsupported Transfer-Encoding: {value}");
        } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            bail!("the server closes the connection (status {status})");
        }
    }
    let length = match (length, status) {
        (Some(n), _) => n,
        (None, 204 | 304) => 0,
        (None, _) => bail!("response {status} without Content-Length"),
    };
    Ok((status, length))
}

/// The median of a few rates.
fn median(rates: &mut [f64]) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// The start of a body, for error messages.
fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

async fn sqlite_version(url: &str) -> Result<String> {
    let pool = sqlx::SqlitePool::connect(url).await?;
    let (v,): (String,) = sqlx::query_as("select sqlite_version()")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    Ok(v)
}

fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
}
