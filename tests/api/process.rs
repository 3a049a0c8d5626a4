//! The `donorcare` binary as an operator runs it: first start, `--demo`, SIGTERM, a missing
//! identity, and the command-line account tool.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn donorcare(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_donorcare"));
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("DONORCARE_IDENTITY")
        .env_remove("DONORCARE_DATA_DIR")
        .env_remove("DONORCARE_KEYS_DIR")
        .env("DONORCARE_LOG", "warn");
    cmd
}

/// Start `serve` on a free port and wait for the line that prints its address. The child is
/// handed to the caller, which stops and waits for it with [`terminate`].
#[allow(clippy::zombie_processes)]
fn start(dir: &Path, extra: &[&str]) -> (Child, String, Vec<String>) {
    let mut child = donorcare(dir)
        .args(["serve", "--addr", "127.0.0.1:0"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn donorcare");
    let stdout = child.stdout.take().unwrap();
    let mut lines = Vec::new();
    let mut reader = BufReader::new(stdout);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || Instant::now() > deadline {
            let _ = child.kill();
            let status = child.wait();
            panic!("donorcare printed no address ({status:?}); output so far: {lines:?}");
        }
        lines.push(line.trim_end().to_string());
        if let Some(i) = line.find("http://127.0.0.1:") {
            let rest = &line[i + 7..];
            let addr: String = rest
                .chars()
                .take_while(|c| *c != '/' && !c.is_whitespace() && *c != ')')
                .collect();
            // Keep draining stdout so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in reader.lines() {});
            return (child, addr, lines);
        }
    }
}

fn terminate(mut child: Child) -> std::process::ExitStatus {
    let pid = child.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "donorcare did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A minimal HTTP/1.1 exchange over loopback: returns the status code and the body.
async fn http(addr: &str, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
    exchange(addr, method, path, None, body).await
}

/// One HTTP/1.1 request over loopback, optionally with a bearer token; status and body.
async fn exchange(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn first_start_prints_a_setup_link_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr, lines) = start(dir.path(), &[]);
    let all = lines.join("\n");
    assert!(all.contains("identity"), "{all}");
    assert!(all.contains("/setup/"), "{all}");
    assert_eq!(
        http(&addr, "GET", "/healthz", None).await,
        (200, "ok".into())
    );
    let link = lines.iter().find(|l| l.contains("/setup/")).unwrap();
    let path = &link[link.find("/setup/").unwrap()..];
    assert_eq!(http(&addr, "GET", path.trim(), None).await.0, 200);
    assert!(terminate(child).success(), "graceful exit on SIGTERM");
    assert!(dir.path().join("keys/identity.txt").exists());
    assert!(dir.path().join("data/donorcare.db").exists());
}

#[tokio::test]
async fn demo_mode_loads_cases_that_its_logins_can_read() {
    let dir = tempfile::tempdir().unwrap();
    let (child, addr, lines) = start(dir.path(), &["--demo"]);
    assert!(lines.join("\n").contains("demo-coordinator"), "{lines:?}");
    let (status, body) = http(
        &addr,
        "POST",
        "/api/v1/auth/login",
        Some(&format!(
            "{{\"username\":\"demo-coordinator\",\"password\":\"{}\"}}",
            donorcare::demo::DEMO_PASSWORD
        )),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, body) = http_as(&addr, "GET", "/api/v1/cases?limit=200", &token, None).await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 24);
    assert!(terminate(child).success());
}

#[tokio::test]
async fn start_up_without_the_identity_fails_with_one_line_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _, _) = start(dir.path(), &[]);
    assert!(terminate(child).success());
    let identity = dir.path().join("keys/identity.txt");
    let db = dir.path().join("data/donorcare.db");
    let db_before = std::fs::read(&db).unwrap();
    let aside = dir.path().join("identity.backup");
    std::fs::rename(&identity, &aside).unwrap();

    let out = donorcare(dir.path())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(
        lines[0].contains("keys/identity.txt") && lines[0].contains("not found"),
        "{stderr}"
    );
    assert!(!identity.exists(), "no new identity was created");
    assert!(
        std::fs::read(&db).unwrap() == db_before,
        "the database file changed"
    );

    std::fs::rename(&aside, &identity).unwrap();
    let (child, addr, _) = start(dir.path(), &[]);
    assert_eq!(http(&addr, "GET", "/healthz", None).await.0, 200);
    assert!(terminate(child).success());
}

#[tokio::test]
async fn user_add_reads_the_password_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], password: &str| {
        let mut child = donorcare(dir.path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(password.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let out = run(
        &[
            "user",
            "add",
            "--username",
            "ops.admin",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "an-admin-password\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ops.admin"));
    let out = run(
        &[
            "user",
            "add",
            "--username",
            "ops.admin",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "an-admin-password\n",
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("taken"));
    let out = run(
        &[
            "user",
            "add",
            "--username",
            "sup",
            "--role",
            "supervisor",
            "--password-stdin",
        ],
        "short\n",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("password") && err.contains("region"), "{err}");
    let out = donorcare(dir.path())
        .args(["keys", "status"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("current data-key version: 1") && text.contains("this server"),
        "{text}"
    );
}

/// An HTTP exchange with a bearer token; returns status and body.
async fn http_as(
    addr: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&str>,
) -> (u16, String) {
    exchange(addr, method, path, Some(token), body).await
}

#[tokio::test]
async fn the_logs_carry_no_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    for (user, role) in [
        ("log.admin", "admin"),
        ("log.coord", "coordinator"),
        ("log.other", "coordinator"),
    ] {
        let mut child = donorcare(dir.path())
            .args([
                "user",
                "add",
                "--username",
                user,
                "--role",
                role,
                "--password-stdin",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"log-test-password\n")
            .unwrap();
        assert!(child.wait().unwrap().success());
    }
    let mut child = donorcare(dir.path())
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("DONORCARE_LOG", "info,donorcare=debug")
        .env("DONORCARE_LOG_FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    let addr = loop {
        first.clear();
        assert!(
            stdout.read_line(&mut first).unwrap() > 0,
            "no address printed"
        );
        if let Some(i) = first.find("http://127.0.0.1:") {
            break first[i + 7..]
                .split(['/', ' ', ')'])
                .next()
                .unwrap()
                .trim()
                .to_string();
        }
    };
    let stderr = child.stderr.take().unwrap();
    let collected = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut BufReader::new(stderr), &mut s);
        s
    });

    let login = |u: &'static str| {
        let addr = addr.clone();
        async move {
            let (status, body) = http(
                &addr,
                "POST",
                "/api/v1/auth/login",
                Some(&format!(
                    "{{\"username\":\"{u}\",\"password\":\"log-test-password\"}}"
                )),
            )
            .await;
            assert_eq!(status, 200, "{body}");
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["token"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let coord = login("log.coord").await;
    let other = login("log.other").await;
    // The same values as the integration suite uses, all carrying this tag.
    let t = "Lg7Qw9";
    let values = [
        format!("Name{t}"),
        format!("mail{t}@example.org"),
        format!("{t} Harbour Road, Ningbo"),
        format!("Hospital{t}"),
        format!("Note{t}"),
        "13900001111".to_string(),
        "139 0000 1111".to_string(),
        crate::helpers::national_id("1961-07-04", 17),
        format!("Kin{t}"),
        "13512340000".to_string(),
        "log-test-password".to_string(),
        "the family called at night".to_string(),
    ];
    let case = crate::helpers::organ_case(t).to_string();
    let (status, body) = http_as(&addr, "POST", "/api/v1/cases", &coord, Some(&case)).await;
    assert_eq!(status, 201, "{body}");
    let id = serde_json::from_str::<serde_json::Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let contact = format!("{{\"full_name\":\"Kin{t}\",\"relationship\":\"child\",\"phone\":\"13512340000\",\"preferred_channel\":\"sms\"}}");
    assert_eq!(
        http_as(
            &addr,
            "POST",
            &format!("/api/v1/cases/{id}/contacts"),
            &coord,
            Some(&contact)
        )
        .await
        .0,
        201
    );
    assert_eq!(
        http_as(&addr, "GET", &format!("/api/v1/cases/{id}"), &coord, None)
            .await
            .0,
        200
    );
    assert_eq!(
        http_as(
            &addr,
            "GET",
            "/api/v1/cases?phone=13900001111",
            &coord,
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        http_as(
            &addr,
            "GET",
            &format!("/api/v1/cases?name=Name{t}"),
            &coord,
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        http_as(
            &addr,
            "GET",
            "/api/v1/cases?phone=13512340000",
            &other,
            None
        )
        .await
        .0,
        200
    );
    assert_eq!(
        http_as(&addr, "GET", &format!("/api/v1/cases/{id}"), &other, None)
            .await
            .0,
        404
    );
    let patch =
        format!("{{\"notes\":\"Note{t} again\",\"donor\":{{\"birth_date\":\"2025-02-30\"}}}}");
    assert_eq!(
        http_as(
            &addr,
            "PATCH",
            &format!("/api/v1/cases/{id}"),
            &coord,
            Some(&patch)
        )
        .await
        .0,
        422
    );
    let glass = "{\"reason\":\"the family called at night\"}";
    assert_eq!(
        http_as(
            &addr,
            "POST",
            &format!("/api/v1/cases/{id}/break-glass"),
            &other,
            Some(glass)
        )
        .await
        .0,
        200
    );
    let (status, _) = http(
        &addr,
        "POST",
        "/api/v1/auth/login",
        Some("{\"username\":\"log.coord\",\"password\":\"13900001111\"}"),
    )
    .await;
    assert_eq!(status, 401);

    assert!(terminate(child).success());
    let logs = collected.join().unwrap();
    assert!(
        logs.contains("case created") && logs.contains(&id),
        "the logs carry ids: {logs}"
    );
    for v in &values {
        assert!(!logs.contains(v.as_str()), "{v:?} is in the logs:\n{logs}");
    }
}

/// The sequence number of the newest signed checkpoint in the default file, once it reaches
/// `seq` (polled for up to `wait`); what it is by then otherwise.
fn checkpointed(dir: &Path, seq: i64, wait: Duration) -> Option<i64> {
    signed_in(&dir.join("keys/audit-checkpoints.jsonl"), seq, wait)
}

/// The sequence number in the last line of a checkpoint file, once it reaches `seq` (polled
/// for up to `wait`); what it is by then otherwise.
fn signed_in(path: &Path, seq: i64, wait: Duration) -> Option<i64> {
    let deadline = Instant::now() + wait;
    loop {
        let last = std::fs::read_to_string(path).ok().and_then(|t| {
            let line = t.lines().rev().find(|l| !l.trim().is_empty())?.to_string();
            serde_json::from_str::<serde_json::Value>(&line).ok()?["seq"].as_i64()
        });
        if last.is_some_and(|s| s >= seq) || Instant::now() > deadline {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A failed login: one audit entry, written while the server runs.
async fn fail_login(addr: &str) {
    let login = r#"{"username":"nobody-here","password":"not-the-password"}"#;
    let (status, body) = http(addr, "POST", "/api/v1/auth/login", Some(login)).await;
    assert_eq!(status, 401, "{body}");
}

/// The head `audit verify` reports: its number of entries.
fn verified_entries(dir: &Path) -> i64 {
    let out = donorcare(dir).args(["audit", "verify"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("ok <entries> <head>")
}

#[tokio::test]
async fn a_killed_server_s_entries_are_checkpointed_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let wait = Duration::from_secs(20);
    let (child, addr, _) = start(dir.path(), &[]);
    // The start-up checkpoint covers what the first start wrote (the keyring's creation).
    let started = checkpointed(dir.path(), 1, wait).expect("a checkpoint at start-up");
    // A failed login is an entry after it; then the server dies without its shutdown checkpoint.
    fail_login(&addr).await;
    let mut child = child;
    child.kill().unwrap();
    child.wait().unwrap();
    let head = verified_entries(dir.path());
    assert!(
        head > started,
        "the failed login was recorded after the checkpoint"
    );
    assert_eq!(
        checkpointed(dir.path(), head, Duration::ZERO),
        Some(started)
    );

    // The next start signs the head at once, long before the first minute is up.
    let (child, _, _) = start(dir.path(), &[]);
    let signed = checkpointed(dir.path(), head, wait);
    assert!(signed.is_some_and(|s| s >= head), "{signed:?} after {head}");
    assert!(terminate(child).success());
}

#[tokio::test]
async fn a_tail_cut_while_the_server_runs_is_caught_after_a_few_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, addr, _) = start(dir.path(), &[]);
    // The start-up checkpoint first, so the failed login is surely after it.
    let started = checkpointed(dir.path(), 1, Duration::from_secs(20)).expect("a checkpoint");
    fail_login(&addr).await;
    let head = verified_entries(dir.path());
    // Within a tick (5 s) the server signs the new head into the latest-checkpoint file; the
    // checkpoint file itself still ends at the start-up checkpoint, before the failed login.
    let latest = dir.path().join("keys/audit-checkpoints.jsonl.latest");
    assert_eq!(
        signed_in(&latest, head, Duration::from_secs(20)),
        Some(head)
    );
    assert!(head > started);
    assert_eq!(
        checkpointed(dir.path(), head, Duration::ZERO),
        Some(started)
    );
    child.kill().unwrap();
    child.wait().unwrap();

    // Cut the failed login off and make the head agree: the chain alone still verifies.
    let url = format!(
        "sqlite://{}",
        dir.path().join("data/donorcare.db").display()
    );
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("delete from audit_log where seq = ?1")
        .bind(head)
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "update audit_head set seq = ?1 - 1, hash = (select hash from audit_log where seq = ?1 - 1) \
         where id = 1",
    )
    .bind(head)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let out = donorcare(dir.path())
        .args(["audit", "verify"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("checkpoint") && err.contains("cut"), "{err}");
}
