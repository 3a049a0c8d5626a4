//! The built binary as operators run it: commands in a folder of their own (its `data/` and
//! `keys/`), `serve` on a free port, and plain HTTP/1.1 to it. Shared by the tests that kill,
//! back up and restore real processes.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A string field of a JSON answer, or a panic naming it.
pub fn str_of<'a>(v: &'a Value, field: &str) -> &'a str {
    v[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {v}"))
}

pub const PASSWORD: &str = "delivery-test-password";

/// The built binary, run in `dir` (its `data/` and `keys/`) on SQLite there, or on
/// `database_url`.
pub fn binary(dir: &Path, database_url: Option<&str>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_donorcare"));
    if let Some(url) = database_url {
        cmd.args(["--database-url", url]);
    }
    cmd.current_dir(dir)
        .env_remove("DATABASE_URL")
        .env_remove("DONORCARE_IDENTITY")
        .env_remove("DONORCARE_DATA_DIR")
        .env_remove("DONORCARE_KEYS_DIR")
        .env_remove("DONORCARE_SMS_URL")
        .env_remove("DONORCARE_WECHAT_URL")
        .env_remove("DONORCARE_OUTBOX_DIR")
        .env_remove("DONORCARE_TIMEZONE")
        .env("DONORCARE_LOG", "warn");
    cmd
}

pub fn add_user(
    dir: &Path,
    database_url: Option<&str>,
    username: &str,
    role: &str,
    region: Option<&str>,
) {
    let mut cmd = binary(dir, database_url);
    cmd.args([
        "user",
        "add",
        "--username",
        username,
        "--role",
        role,
        "--password-stdin",
    ]);
    if let Some(r) = region {
        cmd.args(["--region", r]);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("donorcare user add");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "user add {username}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A running `donorcare serve`; killed (SIGKILL) if still running when dropped.
pub struct Server {
    child: Option<Child>,
    pub addr: String,
}

impl Server {
    /// Start `serve` on a free port with `env`, appending its standard error to `log`, and
    /// wait for the line that prints its address.
    // The child is waited for by `kill`, `terminate` or `Drop`.
    #[allow(clippy::zombie_processes)]
    pub fn start(
        dir: &Path,
        database_url: Option<&str>,
        env: &[(&str, String)],
        log: &Path,
    ) -> Server {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("server log");
        let mut cmd = binary(dir, database_url);
        cmd.args(["serve", "--addr", "127.0.0.1:0"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("spawn donorcare");
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "donorcare printed no address ({status:?}); output {lines:?}; log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            if let Some(i) = line.find("http://127.0.0.1:") {
                let addr: String = line[i + 7..]
                    .chars()
                    .take_while(|c| *c != '/' && !c.is_whitespace() && *c != ')')
                    .collect();
                // Keep draining stdout so the child never blocks on a full pipe.
                std::thread::spawn(move || for _ in reader.lines() {});
                return Server {
                    child: Some(child),
                    addr,
                };
            }
            lines.push(line);
        }
    }

    /// SIGKILL: no shutdown, no chance to settle what is in flight.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().expect("SIGKILL");
        child.wait().expect("wait");
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn terminate(mut self) {
        let mut child = self.child.take().unwrap();
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                assert!(
                    status.success(),
                    "donorcare exited with {status} on SIGTERM"
                );
                return;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("donorcare did not stop on SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One HTTP/1.1 exchange over loopback; the status and the body as JSON.
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let body = body.map(Value::to_string).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
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
    let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
    (status, value)
}

pub async fn login(addr: &str, username: &str) -> String {
    let (s, b) = http(
        addr,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(&json!({"username": username, "password": PASSWORD})),
    )
    .await;
    assert_eq!(s, 200, "login {username}: {b}");
    str_of(&b, "token").to_string()
}
