//! The pages in a real browser: headless Chromium driven over WebDriver (Debian's `chromium`
//! and `chromium-driver`). Skipped when chromedriver is absent, unless
//! `DONORCARE_REQUIRE_CHROMIUM=1` (as `.ci/run` sets) makes that a failure.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{organ_case, tag, Backend, TestApp, PASSWORD};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

fn chromedriver() -> Option<PathBuf> {
    let found = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() && std::env::var("DONORCARE_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1") {
        panic!("DONORCARE_REQUIRE_CHROMIUM=1 but chromedriver is not installed");
    }
    found
}

/// One WebDriver call over plain HTTP/1.1 to chromedriver on loopback.
async fn wd(port: u16, method: &str, path: &str, body: Option<Value>) -> Value {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("chromedriver");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // Read the headers, then exactly Content-Length bytes: chromedriver may keep the
    // connection open.
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head_end, length) = loop {
        let n = tokio::time::timeout(Duration::from_secs(60), s.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("WebDriver {method} {path}: no answer"))
            .unwrap();
        assert!(n > 0, "WebDriver {method} {path}: connection closed early");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (i + 4, length);
        }
    };
    while buf.len() < head_end + length {
        let n = tokio::time::timeout(Duration::from_secs(60), s.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("WebDriver {method} {path}: body timed out"))
            .unwrap();
        assert!(n > 0, "WebDriver {method} {path}: body cut short");
        buf.extend_from_slice(&chunk[..n]);
    }
    let payload = &buf[head_end..head_end + length];
    serde_json::from_slice(payload).unwrap_or_else(|_| {
        panic!(
            "WebDriver {method} {path}: {}",
            String::from_utf8_lossy(&buf)
        )
    })
}

struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start(driver: PathBuf) -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync",
                         format!("--user-data-dir={}", profile.path().display())]
            }
        }}});
        let created = wd(port, "POST", "/session", Some(caps)).await;
        let session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_string();
        Browser {
            driver: child,
            port,
            session,
            _profile: profile,
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        wd(
            self.port,
            method,
            &format!("/session/{}{path}", self.session),
            body,
        )
        .await["value"]
            .clone()
    }

    async fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url}))).await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call(
            "POST",
            &format!("/element/{e}/value"),
            Some(json!({"text": text})),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let e = self.find(css).await;
        self.call("POST", &format!("/element/{e}/click"), Some(json!({})))
            .await;
    }

    async fn source(&self) -> String {
        self.call("GET", "/source", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// The page source once it contains `text` (navigation after a click may still be under
    /// way); fails after 15 s.
    async fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let src = self.source().await;
            if src.contains(text) {
                return src;
            }
            assert!(
                Instant::now() < deadline,
                "page never showed {text:?}: {src}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Save a screenshot under target/screenshots for a person to look at.
    async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let png = self.call("GET", "/screenshot", None).await;
        if let Some(b64) = png.as_str() {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
            let _ = std::fs::create_dir_all(&dir);
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) {
                let _ = std::fs::write(dir.join(format!("{name}.png")), bytes);
            }
        }
    }

    async fn close(mut self) {
        self.call("DELETE", "", None).await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_signs_in_sees_their_cases_and_signs_out_in_chromium() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let c = app.user("coordinator", None).await;
    let t = tag();
    app.create_case(&c.token, organ_case(&t)).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app.router.clone();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
    });

    let browser = Browser::start(driver).await;
    // zh-CN is the default, but Chromium asks for English: the switch is remembered.
    browser.go(&format!("http://{addr}/?lang=zh-CN")).await;
    browser.click("#sign-in").await;
    browser.type_into("input[name=username]", &c.username).await;
    browser
        .type_into("input[name=password]", "wrong-password")
        .await;
    browser.click("button[type=submit]").await;
    browser.wait_for("用户名或密码不正确").await;
    browser.type_into("input[name=password]", PASSWORD).await;
    browser.click("button[type=submit]").await;
    browser.wait_for("Test coordinator").await;
    browser.go(&format!("http://{addr}/cases")).await;
    let page = browser.wait_for("id=\"cases\"").await;
    assert!(
        page.contains(&format!("Name{t}")),
        "the case list shows the donor"
    );
    browser.screenshot("home-signed-in").await;

    // The session cookie is out of the page's reach and never sent cross-site.
    let cookies = browser.call("GET", "/cookie", None).await;
    let session = cookies
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "dc_session")
        .unwrap_or_else(|| panic!("no session cookie: {cookies}"));
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Strict");

    browser.click("form[action='/logout'] button").await;
    browser.wait_for("<h1>登录</h1>").await;
    browser.go(&format!("http://{addr}/")).await;
    let page = browser.wait_for("id=\"sign-in\"").await;
    assert!(
        !page.contains(&format!("Name{t}")),
        "signed out, the cases are gone"
    );
    browser.close().await;
}
