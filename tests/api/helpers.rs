//! Shared test helpers: a fresh app per test on SQLite or PostgreSQL, requests through the
//! router, accounts and sample cases.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use chrono::Utc;
use donorcare::config::Config;
use donorcare::crypto::SecretString;
use donorcare::domain::accounts::{self, NewUserInput};
use donorcare::domain::types::national_id_check;
use donorcare::server;
use donorcare::web::{self, AppState};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const PASSWORD: &str = "test-password-123";

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub cfg: Config,
    /// Holds the data and key folders until the test ends.
    _dir: tempfile::TempDir,
    pub backend: Backend,
    pg: Option<PgDatabase>,
}

/// The PostgreSQL admin URL, or `None` (skip) when absent and not required.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("DONORCARE_TEST_POSTGRES") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("DONORCARE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("DONORCARE_REQUIRE_POSTGRES=1 but DONORCARE_TEST_POSTGRES is not set");
            }
            None
        }
    }
}

/// A database of its own on the test PostgreSQL server, dropped with the test.
pub struct PgDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(admin_url: &str) -> PgDatabase {
        use sqlx::Connection;
        let name = format!("dc_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("connecting to DONORCARE_TEST_POSTGRES");
        sqlx::query(&format!("create database {name}"))
            .execute(&mut conn)
            .await
            .expect("create database");
        conn.close().await.ok();
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .expect("admin URL ends with a database name");
        PgDatabase {
            admin_url: admin_url.to_string(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside async code: use a thread with its own small runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&url).await.ok()?;
                sqlx::query(&format!("drop database if exists {name} with (force)"))
                    .execute(&mut c)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

impl TestApp {
    /// A fresh app on `backend`; `None` when PostgreSQL is not configured (and not required).
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        // Internal errors (and anything DONORCARE_LOG asks for) show in a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("DONORCARE_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
            )
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = Config::new(dir.path().join("data"));
        cfg.keys_dir = dir.path().join("keys");
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let admin = postgres_admin_url()?;
                let db = PgDatabase::create(&admin).await;
                cfg.database_url = Some(db.url.clone());
                Some(db)
            }
        };
        let (svc, _notices) = server::open_services(&cfg).await.expect("open services");
        let state = server::app_state(svc, &cfg).expect("app state");
        Some(TestApp {
            router: web::app(state.clone()),
            state,
            cfg,
            _dir: dir,
            backend,
            pg,
        })
    }

    /// An app on a database and keys made elsewhere (a restore), as `serve` would open them.
    pub async fn open(cfg: Config, backend: Backend) -> TestApp {
        let (svc, _notices) = server::open_services(&cfg).await.expect("open services");
        let state = server::app_state(svc, &cfg).expect("app state");
        TestApp {
            router: web::app(state.clone()),
            state,
            cfg,
            _dir: tempfile::tempdir().expect("tempdir"),
            backend,
            pg: None,
        }
    }

    /// A second, independent app (own key service and pool) on the same database and keys,
    /// as a second instance or an operator command would have.
    pub async fn sibling(&self) -> TestApp {
        self.sibling_with(|_| {}).await
    }

    /// A sibling whose clock stands still at `now` (pages that read "today").
    pub async fn sibling_at(&self, now: chrono::DateTime<Utc>) -> TestApp {
        let clock: donorcare::web::Clock = std::sync::Arc::new(move || now);
        self.sibling_built(|_| {}, clock).await
    }

    /// A sibling whose services are adjusted first (e.g. a shorter break-glass).
    pub async fn sibling_with(
        &self,
        adjust: impl FnOnce(&mut donorcare::domain::Services),
    ) -> TestApp {
        self.sibling_built(adjust, web::system_clock()).await
    }

    async fn sibling_built(
        &self,
        adjust: impl FnOnce(&mut donorcare::domain::Services),
        clock: donorcare::web::Clock,
    ) -> TestApp {
        let (mut svc, _) = server::open_services(&self.cfg)
            .await
            .expect("open services");
        adjust(&mut svc);
        let state = server::app_state_with_clock(svc, &self.cfg, clock).expect("app state");
        TestApp {
            router: web::app(state.clone()),
            state,
            cfg: self.cfg.clone(),
            _dir: tempfile::tempdir().expect("tempdir"),
            backend: self.backend,
            pg: None,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.cfg.data_dir.clone()
    }

    /// Run the `donorcare` binary against this app's database and keys.
    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_donorcare"));
        cmd.arg("--data-dir")
            .arg(&self.cfg.data_dir)
            .arg("--keys-dir")
            .arg(&self.cfg.keys_dir)
            .arg("--database-url")
            .arg(self.cfg.database_url())
            .env_remove("DONORCARE_IDENTITY")
            .env("DONORCARE_LOG", "warn");
        cmd
    }

    /// Run one statement with two text parameters directly on the test database.
    pub async fn exec(&self, sql: &str, a: &str, b: &str) {
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.cfg.database_url())
                    .await
                    .unwrap();
                sqlx::query(sql)
                    .bind(a)
                    .bind(b)
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(self.pg_url().unwrap()).await.unwrap();
                sqlx::query(sql)
                    .bind(a)
                    .bind(b)
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
        }
    }

    pub fn pg_url(&self) -> Option<&str> {
        self.pg.as_ref().map(|p| p.url.as_str())
    }

    /// Send a request; returns the status and the body as JSON (a string if it is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.router.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    /// Create an account directly in the store and log it in through the API.
    pub async fn user(&self, role: &str, region: Option<&str>) -> TestUser {
        let username = format!("{role}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let row = accounts::new_user(
            &NewUserInput {
                email: None,
                username: Some(username.clone()),
                display_name: Some(format!("Test {role}")),
                role: Some(role.into()),
                region: region.map(str::to_string),
                password: Some(SecretString::new(PASSWORD.into())),
            },
            Utc::now(),
        )
        .expect("valid account");
        self.state
            .svc
            .store
            .insert_user(&row, &[])
            .await
            .expect("insert account");
        let token = self.login(&username, PASSWORD).await;
        TestUser {
            id: row.id,
            username,
            token,
        }
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login {username}: {body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// The family account of `contact`, made through its invite (sent by `coord`), logged in
    /// through the API: (username, token).
    pub async fn family_account(&self, coord: &str, contact: &str) -> (String, String) {
        let (s, inv) = self
            .post(
                &format!("/api/v1/contacts/{contact}/invite"),
                coord,
                json!({}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{inv}");
        let url = inv["invite_url"].as_str().expect("invite_url");
        let t = url.rsplit('/').next().expect("the token");
        let username = format!("fam_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let (s, b) = self
            .call(
                Method::POST,
                &format!("/api/v1/invites/{t}/accept"),
                None,
                Some(json!({"username": username, "password": PASSWORD})),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let token = self.login(&username, PASSWORD).await;
        (username, token)
    }

    /// Create a case as `token`, expecting 201; returns the case.
    pub async fn create_case(&self, token: &str, case: Value) -> Value {
        let (status, body) = self.post("/api/v1/cases", token, case).await;
        assert_eq!(status, StatusCode::CREATED, "create case: {body}");
        body
    }

    pub async fn count_cases(&self) -> i64 {
        let rows = self
            .state
            .svc
            .store
            .list_cases(&donorcare::store::CaseQuery {
                consent_in_force: None,
                scope: donorcare::store::CaseScope::All,
                program: None,
                status: None,
                term: None,
                after: None,
                limit: 100_000,
            })
            .await
            .expect("list");
        rows.len() as i64
    }
}

pub struct TestUser {
    pub id: String,
    pub username: String,
    pub token: String,
}

/// A valid national ID built from a birth date and a sequence number.
pub fn national_id(birth: &str, seq: u32) -> String {
    let first17 = format!("330203{}{:03}", birth.replace('-', ""), seq % 1000);
    format!(
        "{first17}{}",
        national_id_check(&first17).expect("17 digits")
    )
}

/// A valid organ-donor case whose personal values all contain `tag`.
pub fn organ_case(tag: &str) -> Value {
    json!({
        "program": "organ",
        "region": "yinzhou",
        "donor": {
            "full_name": format!("Name{tag}"),
            "sex": "f",
            "birth_date": "1961-07-04",
            "national_id": national_id("1961-07-04", 17),
            "phone": "+86 139 0000 1111",
            "email": format!("mail{tag}@example.org"),
            "address": format!("{tag} Harbour Road, Ningbo"),
            "deceased": true,
            "death_date": "2025-03-10"
        },
        "donation": {"date": "2025-03-11", "kind": "kidney", "hospital": format!("Hospital{tag}")},
        "notes": format!("Note{tag}: the family asked for calls after 6 pm")
    })
}

/// A valid marrow-donor case.
pub fn marrow_case(name: &str, phone: &str) -> Value {
    json!({
        "program": "marrow",
        "region": "yinzhou",
        "donor": {
            "full_name": name,
            "birth_date": "1990-02-28",
            "phone": phone,
            "deceased": false
        },
        "donation": {"date": "2025-05-20", "kind": "pbsc"}
    })
}

/// A random tag that appears nowhere else.
pub fn tag() -> String {
    format!("Zq{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

// ---------------------------------------------------------------------------------------------
// A real SMTP server: Debian's python3-aiosmtpd, storing each message in a Maildir.

const PYTHON: &str = "/usr/bin/python3";

/// A free TCP port on loopback (bound, read, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// An aiosmtpd server on loopback whose Mailbox handler stores every message it accepts as one
/// file in `<maildir>/new/` (before it answers 250). Killed when dropped.
pub struct SmtpServer {
    child: std::process::Child,
    pub port: u16,
    pub maildir: PathBuf,
    _dir: tempfile::TempDir,
}

/// One message as the SMTP server stored it.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The `Message-ID:` header, angle brackets included.
    pub message_id: Option<String>,
    /// The envelope recipients (`RCPT TO`, recorded by aiosmtpd as `X-RcptTo`).
    pub rcpt_to: Vec<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
    pub raw: String,
}

impl ReceivedMail {
    fn parse(raw: String) -> ReceivedMail {
        let text = raw.replace("\r\n", "\n");
        let head = text.split("\n\n").next().unwrap_or("");
        // Unfold continuation lines, then split "Name: value".
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some(last) = headers.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        ReceivedMail {
            message_id: header("message-id"),
            rcpt_to: header("x-rcptto")
                .map(|v| v.split(',').map(|s| s.trim().to_string()).collect())
                .unwrap_or_default(),
            from: header("from"),
            to: header("to"),
            subject: header("subject"),
            raw,
        }
    }
}

impl SmtpServer {
    /// The URL for `DONORCARE_SMTP_URL` (plain SMTP, no TLS).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every message stored so far, in no particular order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            // Maildir delivers through tmp/ and a rename: a file in new/ is complete.
            if let Ok(bytes) = std::fs::read(e.path()) {
                out.push(ReceivedMail::parse(
                    String::from_utf8_lossy(&bytes).into_owned(),
                ));
            }
        }
        out
    }

    /// How many messages are stored (cheaper than reading them).
    pub fn count(&self) -> usize {
        std::fs::read_dir(self.maildir.join("new"))
            .map(|d| d.flatten().count())
            .unwrap_or(0)
    }

    /// The `Message-ID` of every stored message (a message without one counts as `""`).
    pub fn message_ids(&self) -> Vec<String> {
        self.messages()
            .into_iter()
            .map(|m| m.message_id.unwrap_or_default())
            .collect()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start an SMTP server on a free loopback port, or `None` (skip) when `/usr/bin/python3`
/// cannot import aiosmtpd, unless `DONORCARE_REQUIRE_SMTP=1` makes that a failure.
pub fn smtp_server() -> Option<SmtpServer> {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let available = Command::new(PYTHON)
        .args(["-c", "import aiosmtpd.handlers"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        if std::env::var("DONORCARE_REQUIRE_SMTP").is_ok_and(|v| v == "1") {
            panic!(
                "DONORCARE_REQUIRE_SMTP=1 but {PYTHON} cannot import aiosmtpd (python3-aiosmtpd)"
            );
        }
        eprintln!("skipped: {PYTHON} cannot import aiosmtpd (install python3-aiosmtpd)");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let maildir = dir.path().join("maildir");
    let mut last_error = String::new();
    // The port is free when read but could be taken before the server binds it: try again.
    for _ in 0..5 {
        let port = free_port();
        let log =
            std::fs::File::create(dir.path().join(format!("smtpd-{port}.log"))).expect("smtpd log");
        let mut child = Command::new(PYTHON)
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn aiosmtpd");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                last_error = format!(
                    "aiosmtpd exited ({status}): {}",
                    std::fs::read_to_string(dir.path().join(format!("smtpd-{port}.log")))
                        .unwrap_or_default()
                );
                break;
            }
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return Some(SmtpServer {
                    child,
                    port,
                    maildir,
                    _dir: dir,
                });
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                last_error = format!("aiosmtpd did not accept connections on port {port}");
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    panic!("could not start the SMTP server: {last_error}");
}
