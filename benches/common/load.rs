//! The HTTP benchmarks' load generator: a small keep-alive HTTP/1.1 client over
//! `tokio::net::TcpStream` (no HTTP client crate is a dependency), the servers it loads, and
//! the command line and window the HTTP benches share. Each of C connections sends one request,
//! reads the head and a `Content-Length` body, checks the status and the body (the exact bytes,
//! or markers that must appear in it), and sends the next. A run is a warm-up followed by a
//! measured window; its rate is the responses completed inside the window divided by its
//! length, with the latency percentiles of those responses. Any status other than 200, a body
//! that fails its check, a closed connection or a request slower than [`REQUEST_TIMEOUT`] stops
//! the run with an error.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use axum::Router;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

pub const MAX_CONNECTIONS: usize = 1024;
pub const WARMUP: Duration = Duration::from_secs(1);
pub const DEFAULT_MEASURE_SECS: u64 = 5;
pub const MAX_MEASURE_SECS: u64 = 120;
/// Any single request slower than this fails the benchmark.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Initial receive buffer of a connection; it grows to fit a larger response.
const CONN_BUFFER: usize = 64 * 1024;
/// The largest response (head and body) a connection accepts.
const MAX_RESPONSE: usize = 16 * 1024 * 1024;
/// Latency samples kept over all connections of one run.
const MAX_SAMPLES: usize = 2_000_000;

/// The words on the command line (`cargo bench` passes `--bench`, which is left out).
pub fn bench_args() -> Vec<String> {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect()
}

/// `words` as numbers of connections, else `default`.
pub fn connections_from(words: &[String], default: &[usize]) -> Result<Vec<usize>> {
    let mut connections = Vec::new();
    for a in words {
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
        connections = default.to_vec();
    }
    Ok(connections)
}

/// The measured window: `DONORCARE_BENCH_SECS`, else [`DEFAULT_MEASURE_SECS`].
pub fn measure_window() -> Result<Duration> {
    match std::env::var("DONORCARE_BENCH_SECS") {
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=MAX_MEASURE_SECS).contains(s))
            .map(Duration::from_secs)
            .with_context(|| {
                format!("DONORCARE_BENCH_SECS={v}: expected seconds, 1–{MAX_MEASURE_SECS}")
            }),
        Err(_) => Ok(Duration::from_secs(DEFAULT_MEASURE_SECS)),
    }
}

/// Serve `app` with connection info, as `donorcare serve` does, on a fresh 127.0.0.1 port in
/// `servers`; returns its address.
pub async fn serve(servers: &mut JoinSet<std::io::Result<()>>, app: Router) -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    servers.spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

/// What every answer to a request must carry besides status 200.
pub enum Expect {
    /// Exactly these bytes.
    Body(Vec<u8>),
    /// Each of these somewhere in the body (pages differ per request: CSRF tokens).
    Contains(Vec<String>),
}

impl Expect {
    pub fn check(&self, body: &[u8]) -> Result<()> {
        match self {
            Expect::Body(b) => ensure!(body == b.as_slice(), "the body changed"),
            Expect::Contains(markers) => {
                for m in markers {
                    ensure!(contains(body, m.as_bytes()), "the body lacks {m:?}");
                }
            }
        }
        Ok(())
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// A request's bytes and what every answer to it must carry.
pub struct Exchange {
    pub request: Request,
    pub expected: Expect,
}

/// One load run.
pub struct Run {
    /// 200 responses completed inside the measured window.
    pub measured: u64,
    /// Every 200 response of the run, warm-up and tail included.
    pub answered: u64,
    pub window: Duration,
    /// Latencies of the measured responses, in microseconds, sorted.
    pub latencies: Vec<u32>,
}

impl Run {
    pub fn rps(&self) -> f64 {
        self.measured as f64 / self.window.as_secs_f64()
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        f64::from(self.latencies[i]) / 1000.0
    }

    pub fn describe(&self) -> String {
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
pub async fn load(
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
                let reply = tokio::time::timeout(REQUEST_TIMEOUT, conn.roundtrip(&ex.request))
                    .await
                    .with_context(|| {
                        format!("connection {i}: no answer within {REQUEST_TIMEOUT:?}")
                    })?
                    .with_context(|| format!("connection {i}"))?;
                ensure!(
                    reply.status == 200,
                    "connection {i}: status {}: {}",
                    reply.status,
                    snippet(reply.body)
                );
                ex.expected
                    .check(reply.body)
                    .with_context(|| format!("connection {i}: {}", snippet(reply.body)))?;
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
pub struct Request(Vec<u8>);

impl Request {
    /// `headers` are sent as given (`authorization`, `cookie`, …); a body goes with its
    /// content type.
    pub fn new(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &[u8])>,
    ) -> Self {
        let mut head = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if let Some((content_type, b)) = body {
            head.push_str(&format!(
                "content-type: {content_type}\r\ncontent-length: {}\r\n",
                b.len()
            ));
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if let Some((_, b)) = body {
            bytes.extend_from_slice(b);
        }
        Request(bytes)
    }

    /// A request with a JSON body, or none.
    pub fn json(
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Self {
        let body = body.map(Value::to_string);
        let body = body.as_deref().map(|b| ("application/json", b.as_bytes()));
        Request::new(addr, method, path, headers, body)
    }
}

/// A response as a connection read it; borrowed from the connection's buffer.
pub struct Reply<'a> {
    pub status: u16,
    /// The head: status line and headers (checked to be UTF-8).
    pub head: &'a [u8],
    pub body: &'a [u8],
}

impl Reply<'_> {
    /// The value of the cookie `name` the response sets, if it sets one.
    pub fn set_cookie(&self, name: &str) -> Option<&str> {
        std::str::from_utf8(self.head)
            .ok()?
            .split("\r\n")
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case("set-cookie"))
            .filter_map(|(_, v)| v.trim().split(';').next()?.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }
}

/// A keep-alive HTTP/1.1 client connection: one request at a time, `Content-Length` bodies.
/// It uses only readiness and `try_read`/`try_write` of `TcpStream`, so it needs nothing
/// beyond Tokio's `net` feature.
pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` received so far.
    filled: usize,
    /// Bytes of `buf` that belong to the previous response.
    consumed: usize,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Result<Conn> {
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

    /// Send `request` and read its response.
    pub async fn roundtrip(&mut self, request: &Request) -> Result<Reply<'_>> {
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
        let end = head_end + length;
        ensure!(
            end <= MAX_RESPONSE,
            "a response of {end} bytes is larger than the {MAX_RESPONSE} bytes accepted"
        );
        if end > self.buf.len() {
            self.buf.resize(end, 0);
        }
        while self.filled < end {
            self.fill().await?;
        }
        self.consumed = end;
        Ok(Reply {
            status,
            head: &self.buf[..head_end],
            body: &self.buf[head_end..end],
        })
    }

    /// Send a JSON request and expect `status`; returns the reply as JSON.
    pub async fn call_json(
        &mut self,
        addr: SocketAddr,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
        status: u16,
    ) -> Result<Value> {
        let request = Request::json(addr, method, path, headers, body);
        let reply = self.roundtrip(&request).await?;
        ensure!(
            reply.status == status,
            "{method} {path}: expected {status}, got {}: {}",
            reply.status,
            snippet(reply.body)
        );
        serde_json::from_slice(reply.body)
            .with_context(|| format!("{method} {path}: reply is not JSON"))
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
            "a response head does not fit the {}-byte buffer",
            self.buf.len()
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

/// The start of a body, for error messages.
pub fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned()
}

/// The CPU's model name, where the system says.
pub fn cpu_model() -> Option<String> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    info.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
}

/// The machine the figures come from, and that servers and load generator share it.
pub fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!(
        "{cores} cores ({}), {} {}; servers and load generator share one Tokio runtime with {} \
         workers",
        cpu_model().unwrap_or_else(|| "unknown CPU".into()),
        std::env::consts::OS,
        std::env::consts::ARCH,
        tokio::runtime::Handle::current().metrics().num_workers(),
    )
}

/// What one run is made of.
pub fn describe_runs(measure: Duration) -> String {
    format!(
        "each run: {} s warm-up, then {} s measured; keep-alive HTTP/1.1 over 127.0.0.1",
        WARMUP.as_secs_f64(),
        measure.as_secs_f64()
    )
}

/// SQLite's version as the database at `url` reports it.
pub async fn sqlite_version_at(url: &str) -> Result<String> {
    let pool = sqlx::SqlitePool::connect(url).await?;
    let (v,): (String,) = sqlx::query_as("select sqlite_version()")
        .fetch_one(&pool)
        .await?;
    pool.close().await;
    Ok(v)
}

/// The heading lines every HTTP bench prints: the machine, the store and the runs' shape.
pub async fn print_setting(cfg: &donorcare::config::Config, measure: Duration) -> Result<()> {
    println!("machine: {}", machine());
    println!(
        "store: SQLite {} (WAL, synchronous=FULL) in {}",
        sqlite_version_at(&cfg.database_url()).await?,
        cfg.data_dir.display()
    );
    println!("{}", describe_runs(measure));
    Ok(())
}

/// A fresh folder `<prefix>…` under `target/bench-data/`, removed when dropped.
pub fn bench_folder(prefix: &str) -> Result<tempfile::TempDir> {
    let base = super::target_dir().join("bench-data");
    std::fs::create_dir_all(&base).with_context(|| format!("creating {}", base.display()))?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(&base)
        .context("creating the benchmark folder")
}
