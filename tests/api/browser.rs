//! The pages in a real browser: headless Chromium driven over WebDriver (Debian's `chromium`
//! and `chromium-driver`), each page checked with axe-core (npm's `axe-core`, which `.ci/run`
//! installs under `target/axe`; `DONORCARE_AXE_JS` names another `axe.min.js`) at 1280 and
//! 360 px wide, with no horizontal scrolling at 360. Skipped when chromedriver is absent,
//! unless `DONORCARE_REQUIRE_CHROMIUM=1` (as `.ci/run` sets) makes that, or a missing
//! axe-core, a failure. Screenshots of every page go to `target/screenshots/`.
//!
//! axe is injected through WebDriver script execution, which the pages' CSP (no inline
//! scripts) does not govern in Chromium; the JavaScript-off flow is driven without it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{marrow_case, national_id, organ_case, tag, Backend, TestApp, PASSWORD};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
/// The widths every page is checked at: a desk, and a small phone.
const WIDE: u32 = 1280;
const NARROW: u32 = 360;

/// Pages being built elsewhere, axe-checked by the coordinator flow once their route answers
/// something other than 404 (so adding a page is one line here). `{case}` is a case of the
/// coordinator's with a contact, `{task}` a visit on it.
const MORE_PAGES: &[&str] = &[
    "/tasks",
    "/tasks/{task}",
    "/outreach",
    "/outreach/{message}",
    "/letters",
    "/calendar",
    "/cases/{case}/consents/new",
    "/cases/{case}/tasks/new",
];

fn require() -> bool {
    std::env::var("DONORCARE_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1")
}

fn chromedriver() -> Option<PathBuf> {
    let found = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() && require() {
        panic!("DONORCARE_REQUIRE_CHROMIUM=1 but chromedriver is not installed");
    }
    found
}

/// axe-core's script; `None` (the check skipped) only when Chromium is not required.
fn axe_source() -> Option<String> {
    let path = std::env::var("DONORCARE_AXE_JS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("target/axe/node_modules/axe-core/axe.min.js")
        });
    match std::fs::read_to_string(&path) {
        Ok(src) => Some(src),
        Err(e) if require() => panic!(
            "DONORCARE_REQUIRE_CHROMIUM=1 but axe-core is missing at {} ({e}): \
             npm install --no-save --prefix target/axe axe-core@4",
            path.display()
        ),
        Err(_) => {
            eprintln!(
                "axe-core not found at {}: pages not checked",
                path.display()
            );
            None
        }
    }
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
    /// axe-core's source, for a session with JavaScript on.
    axe: Option<String>,
    /// The flow's name, the screenshots' prefix.
    flow: &'static str,
    /// Serious and critical axe violations and overflow, all reported at the end.
    problems: Mutex<Vec<String>>,
    checked: Mutex<usize>,
}

impl Browser {
    async fn start(driver: PathBuf, flow: &'static str, javascript: bool) -> Browser {
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
        let mut options = json!({
            "binary": "/usr/bin/chromium",
            // en-US: Chromium's own language (the pages' switch is what makes them zh-CN),
            // and the order a date field takes its digits in (month, day, year).
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--lang=en-US",
                     format!("--window-size={WIDE},900"),
                     format!("--user-data-dir={}", profile.path().display())],
        });
        if !javascript {
            options["prefs"] = json!({"profile.managed_default_content_settings.javascript": 2});
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": options,
            "timeouts": {"script": 60_000, "pageLoad": 30_000},
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
            axe: if javascript { axe_source() } else { None },
            flow,
            problems: Mutex::new(Vec::new()),
            checked: Mutex::new(0),
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

    async fn try_find(&self, css: &str) -> Option<String> {
        let v = self
            .call(
                "POST",
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        v[ELEMENT].as_str().map(str::to_string)
    }

    async fn find(&self, css: &str) -> String {
        self.try_find(css)
            .await
            .unwrap_or_else(|| panic!("no element {css} in the {} flow", self.flow))
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

    /// Empty a field, then type into it.
    async fn replace(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        self.call("POST", &format!("/element/{e}/clear"), Some(json!({})))
            .await;
        self.type_into(css, text).await;
    }

    /// A date field, `yyyy-mm-dd`, typed as Chromium's en-US field takes it.
    async fn type_date(&self, css: &str, date: &str) {
        let [y, m, d] = [&date[..4], &date[5..7], &date[8..10]];
        self.type_into(css, &format!("{m}{d}{y}")).await;
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

    async fn url(&self) -> String {
        self.call("GET", "/url", None)
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
                "page never showed {text:?} ({}): {src}",
                self.url().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn script(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": args})),
        )
        .await
    }

    async fn width(&self, width: u32) {
        self.call(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": 900})),
        )
        .await;
    }

    /// Save a screenshot under target/screenshots for a person to look at.
    async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let png = self.call("GET", "/screenshot", None).await;
        if let Some(b64) = png.as_str() {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
            let _ = std::fs::create_dir_all(&dir);
            if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64) {
                let _ = std::fs::write(dir.join(format!("{}-{name}.png", self.flow)), bytes);
            }
        }
    }

    /// axe-core on the page as it is: its serious and critical violations, one line each.
    async fn axe(&self, src: &str) -> Vec<String> {
        let loaded = self
            .script(
                &format!("if (!window.axe) {{ {src}\n }} return typeof window.axe;"),
                json!([]),
            )
            .await;
        assert_eq!(loaded, "object", "axe-core did not load: {loaded}");
        let found = self
            .call(
                "POST",
                "/execute/async",
                Some(json!({"args": [], "script": r#"
                    const done = arguments[arguments.length - 1];
                    axe.run(document, {resultTypes: ['violations']})
                      .then(r => done(r.violations.map(v => ({
                        id: v.id, impact: v.impact, help: v.help,
                        nodes: v.nodes.map(n => n.target.join(' '))}))))
                      .catch(e => done('axe failed: ' + e));"#})),
            )
            .await;
        let Some(list) = found.as_array() else {
            panic!("axe-core: {found}");
        };
        list.iter()
            .filter(|v| matches!(v["impact"].as_str(), Some("serious" | "critical")))
            .map(|v| {
                format!(
                    "{} ({}): {} — {}",
                    v["id"].as_str().unwrap_or_default(),
                    v["impact"].as_str().unwrap_or_default(),
                    v["help"].as_str().unwrap_or_default(),
                    v["nodes"]
                )
            })
            .collect()
    }

    /// The page now shown, at both widths: axe (with JavaScript on), no sideways scrolling
    /// at 360 px, and a screenshot of each. What is wrong is kept for [`Browser::finish`].
    async fn check(&self, name: &str) {
        let url = self.url().await;
        let mut problems = Vec::new();
        for width in [WIDE, NARROW] {
            self.width(width).await;
            if let Some(src) = &self.axe {
                for v in self.axe(src).await {
                    problems.push(format!("{name} ({url}) at {width} px: {v}"));
                }
                if width == NARROW {
                    let w = self
                        .script(
                            "return [document.documentElement.scrollWidth, window.innerWidth];",
                            json!([]),
                        )
                        .await;
                    let (scroll, inner) = (w[0].as_i64().unwrap(), w[1].as_i64().unwrap());
                    assert_eq!(inner, i64::from(NARROW), "the window is {NARROW} px wide");
                    if scroll > inner {
                        problems.push(format!(
                            "{name} ({url}) at {width} px: {scroll} px wide, scrolls sideways"
                        ));
                    }
                }
            }
            self.screenshot(&format!("{name}-{width}")).await;
        }
        self.width(WIDE).await;
        *self.checked.lock().unwrap() += 1;
        self.problems.lock().unwrap().extend(problems);
    }

    /// Sign in through the login page.
    async fn sign_in(&self, addr: SocketAddr, username: &str) {
        self.go(&format!("http://{addr}/login")).await;
        self.type_into("input[name=username]", username).await;
        self.type_into("input[name=password]", PASSWORD).await;
        self.click("form[action='/login'] button[type=submit]")
            .await;
        self.wait_for("action=\"/logout\"").await;
    }

    async fn sign_out(&self) {
        self.click("form[action='/logout'] button").await;
        self.wait_for("action=\"/login\"").await;
    }

    /// Close the session; fails with every problem the checks found.
    async fn finish(mut self) {
        self.call("DELETE", "", None).await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let problems = std::mem::take(&mut *self.problems.lock().unwrap());
        eprintln!(
            "{} flow: {} pages checked{}",
            self.flow,
            self.checked.lock().unwrap(),
            if self.axe.is_some() {
                " with axe-core"
            } else {
                ""
            }
        );
        assert!(
            problems.is_empty(),
            "{} flow: {} problem(s):\n{}",
            self.flow,
            problems.len(),
            problems.join("\n")
        );
    }
}

/// The app over real HTTP on loopback.
async fn serve(app: &TestApp) -> SocketAddr {
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
    addr
}

/// The status `path` answers with the browser's session cookie, asked of the app directly
/// (the pages' CSP leaves the page no `fetch`).
async fn status_of(app: &TestApp, b: &Browser, path: &str) -> u16 {
    use tower::ServiceExt;
    let cookies = b.call("GET", "/cookie", None).await;
    let jar = cookies
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={}",
                c["name"].as_str().unwrap_or(""),
                c["value"].as_str().unwrap_or("")
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let req = axum::http::Request::builder()
        .uri(path)
        .header("cookie", jar)
        .body(axum::body::Body::empty())
        .unwrap();
    app.router
        .clone()
        .oneshot(req)
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The case id in a case page's URL.
fn case_id_of(url: &str) -> String {
    let rest = url
        .split("/cases/")
        .nth(1)
        .unwrap_or_else(|| panic!("not a case page: {url}"));
    rest.split(['/', '#', '?']).next().unwrap().to_string()
}

/// The coordinator's flow through the forms; with JavaScript off, no axe and no fetch.
async fn coordinator_flow(driver: PathBuf, flow: &'static str, javascript: bool) {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let c = app.user("coordinator", Some("yinzhou")).await;
    let t = tag();
    let seeded = app.create_case(&c.token, organ_case(&t)).await;
    let seeded_id = seeded["id"].as_str().unwrap().to_string();
    let addr = serve(&app).await;
    let b = Browser::start(driver, flow, javascript).await;

    if !javascript {
        // JavaScript really is off in this session.
        b.go("data:text/html,<p id=js>off</p><script>document.getElementById('js').textContent='on'</script>")
            .await;
        assert!(b.source().await.contains(">off<"), "JavaScript is off");
    }

    // zh-CN is the default, but Chromium asks for English: the switch is remembered.
    b.go(&format!("http://{addr}/?lang=zh-CN")).await;
    b.wait_for("lang=\"zh-CN\"").await;
    b.check("signed-out").await;
    b.click("#sign-in").await;
    b.wait_for("name=\"username\"").await;
    b.check("login").await;
    b.type_into("input[name=username]", &c.username).await;
    b.type_into("input[name=password]", "wrong-password").await;
    b.click("form[action='/login'] button[type=submit]").await;
    b.wait_for("用户名或密码不正确").await;
    b.check("login-refused").await;
    b.type_into("input[name=password]", PASSWORD).await;
    b.click("form[action='/login'] button[type=submit]").await;
    b.wait_for("Test coordinator").await;
    b.check("home").await;

    if javascript {
        // The session cookie is out of the page's reach and never sent cross-site.
        let cookies = b.call("GET", "/cookie", None).await;
        let session = cookies
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "dc_session")
            .unwrap_or_else(|| panic!("no session cookie: {cookies}"));
        assert_eq!(session["httpOnly"], true);
        assert_eq!(session["sameSite"], "Strict");
    }

    // The case list, searched by the donor's exact name.
    b.go(&format!("http://{addr}/cases")).await;
    b.wait_for("id=\"cases\"").await;
    b.check("cases").await;
    b.type_into("input[name=q]", &format!("Name{t}")).await;
    b.click("form.search button[type=submit]").await;
    let list = b.wait_for("q=Name").await;
    let list = if list.contains("id=\"cases\"") {
        list
    } else {
        b.wait_for("id=\"cases\"").await
    };
    assert!(
        list.contains(&format!("Name{t}")),
        "the search finds the donor"
    );
    b.check("cases-searched").await;

    // A new case, with a bad national id first: 422, the value kept and marked.
    b.go(&format!("http://{addr}/cases/new")).await;
    b.wait_for("name=\"donor.full_name\"").await;
    b.check("case-new").await;
    b.click("input[name=program][value=marrow]").await;
    b.type_into("input[name='donor.full_name']", &format!("New{t}"))
        .await;
    b.type_into("input[name='donor.national_id']", "12345")
        .await;
    b.type_date("input[name='donation.date']", "2025-03-11")
        .await;
    b.click("select[name='donation.kind'] option[value=pbsc]")
        .await;
    b.click("form[action='/cases/new'] button[type=submit]")
        .await;
    let page = b.wait_for("aria-invalid=\"true\"").await;
    assert!(page.contains("value=\"12345\""), "the bad value is kept");
    assert!(
        page.contains(&format!("value=\"New{t}\"")),
        "the other values are kept"
    );
    assert!(
        page.contains("value=\"2025-03-11\""),
        "the date typed is kept: {page}"
    );
    let field = b.find("#f-donor-national-id").await;
    let invalid = b
        .call(
            "GET",
            &format!("/element/{field}/attribute/aria-invalid"),
            None,
        )
        .await;
    assert_eq!(invalid, "true");
    let described = b
        .call(
            "GET",
            &format!("/element/{field}/attribute/aria-describedby"),
            None,
        )
        .await;
    assert!(
        described
            .as_str()
            .unwrap_or_default()
            .contains("f-donor-national-id-error"),
        "the message is tied to the field: {described}"
    );
    assert!(
        b.try_find("#f-donor-national-id-error").await.is_some(),
        "the message is shown"
    );
    b.check("case-new-invalid").await;
    b.replace(
        "input[name='donor.national_id']",
        &national_id("1961-07-04", 18),
    )
    .await;
    b.click("form[action='/cases/new'] button[type=submit]")
        .await;
    let page = b.wait_for("/summary").await;
    assert!(
        page.contains(&format!("New{t}")),
        "the case page shows the donor"
    );
    let case_id = case_id_of(&b.url().await);
    b.check("case").await;

    // Edit it.
    b.go(&format!("http://{addr}/cases/{case_id}/edit")).await;
    b.wait_for("name=\"donation.hospital\"").await;
    b.check("case-edit").await;
    b.replace("input[name='donation.hospital']", &format!("Clinic{t}"))
        .await;
    b.click(&format!(
        "form[action='/cases/{case_id}/edit'] button[type=submit]"
    ))
    .await;
    b.wait_for(&format!("Clinic{t}")).await;
    assert!(
        b.url().await.ends_with(&format!("/cases/{case_id}")),
        "back on the case page"
    );

    // A contact.
    b.go(&format!("http://{addr}/cases/{case_id}/contacts/new"))
        .await;
    b.wait_for("name=\"full_name\"").await;
    b.check("contact-new").await;
    b.type_into("input[name=full_name]", &format!("Kin{t}"))
        .await;
    b.click("select[name=relationship] option[value=spouse]")
        .await;
    b.click("select[name=preferred_channel] option[value=sms]")
        .await;
    b.type_into("input[name=phone]", "13711112222").await;
    b.click(&format!(
        "form[action='/cases/{case_id}/contacts/new'] button[type=submit]"
    ))
    .await;
    b.wait_for(&format!("Kin{t}")).await;
    b.check("case-with-contact").await;

    Box::pin(consent_with_scan(&app, &b, addr, &c.token, &case_id, &t)).await;

    // The printable summary.
    b.go(&format!("http://{addr}/cases/{case_id}/summary"))
        .await;
    b.wait_for(&format!("New{t}")).await;
    b.check("case-summary").await;

    // The rest of the care pages, each checked with axe-core at both widths.
    if javascript {
        let (_, contact) = app
            .post(
                &format!("/api/v1/cases/{seeded_id}/contacts"),
                &c.token,
                json!({"full_name": format!("Kin{t}"), "relationship": "spouse",
                         "phone": "13711112222", "preferred_channel": "sms"}),
            )
            .await;
        let (_, task) = app
            .post(
                &format!("/api/v1/cases/{seeded_id}/tasks"),
                &c.token,
                json!({"kind": "visit", "due_at": "2030-01-01", "contact_id": contact["id"]}),
            )
            .await;
        let task_id = task["id"].as_str().unwrap_or("none");
        let (_, message) = app
            .post(
                &format!("/api/v1/cases/{seeded_id}/tasks"),
                &c.token,
                json!({"kind": "outreach", "due_at": "2030-01-01", "contact_id": contact["id"],
                       "template": "qingming"}),
            )
            .await;
        let (_, messages) = app
            .get(&format!("/api/v1/cases/{seeded_id}/outreach"), &c.token)
            .await;
        let message_id = messages["items"][0]["id"].as_str().unwrap_or("none");
        assert_ne!(
            message_id, "none",
            "an outreach message: {message} {messages}"
        );
        for path in MORE_PAGES {
            let path = path
                .replace("{case}", &seeded_id)
                .replace("{task}", task_id)
                .replace("{message}", message_id);
            let status = status_of(&app, &b, &path).await;
            assert_eq!(status, 200, "{path}");
            b.go(&format!("http://{addr}{path}")).await;
            b.wait_for("</main>").await;
            let name = path
                .trim_start_matches('/')
                .replace(&seeded_id, "id")
                .replace(task_id, "id")
                .replace(message_id, "id")
                .replace('/', "-");
            b.check(&name).await;
        }
    }

    b.go(&format!("http://{addr}/")).await;
    b.wait_for("action=\"/logout\"").await;
    b.sign_out().await;
    let page = b.source().await;
    assert!(
        !page.contains(&format!("Name{t}")),
        "signed out, the cases are gone"
    );
    b.go(&format!("http://{addr}/cases/{case_id}")).await;
    b.wait_for("name=\"password\"").await;
    b.finish().await;
}

/// A consent with its signed scan, through the real file field (multipart from Chromium), on
/// the case whose last contact was just added.
async fn consent_with_scan(
    app: &TestApp,
    b: &Browser,
    addr: SocketAddr,
    token: &str,
    case_id: &str,
    t: &str,
) {
    b.go(&format!("http://{addr}/cases/{case_id}/consents/new"))
        .await;
    b.wait_for("name=\"attachment\"").await;
    b.check("consent-new").await;
    let scan = std::env::temp_dir().join(format!("donorcare-scan-{t}.pdf"));
    std::fs::write(&scan, b"%PDF-1.4\n%%EOF\n").unwrap();
    b.click("select[name=kind] option[value=contact]").await;
    b.click("select[name=document] option[value='contact-zh-CN-v1']")
        .await;
    // The people: the donor, then the contact just added.
    b.click("select[name=subject] option:last-child").await;
    b.click("select[name=given_by] option:last-child").await;
    b.click("input[name='scope.channels'][value=sms]").await;
    b.type_into("input[name=attachment]", &scan.to_string_lossy())
        .await;
    b.click(&format!(
        "form[action='/cases/{case_id}/consents/new'] button[type=submit]"
    ))
    .await;
    b.wait_for("id=\"consents-h\"").await;
    let _ = std::fs::remove_file(&scan);
    assert!(
        b.url().await.contains(&format!("/cases/{case_id}")),
        "back on the case page after the consent"
    );
    let (_, list) = app
        .get(&format!("/api/v1/consents?case_id={case_id}"), token)
        .await;
    let consent = list["items"][0]["id"]
        .as_str()
        .expect("the consent recorded")
        .to_string();
    let (status, _) = app.get(&format!("/api/v1/consents/{consent}"), token).await;
    assert_eq!(status, 200);
    assert!(
        app.state
            .svc
            .store
            .attachment(&consent)
            .await
            .unwrap()
            .is_some(),
        "the scan was stored with it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coordinator_works_a_case_through_the_pages_in_chromium() {
    let Some(driver) = chromedriver() else {
        return;
    };
    Box::pin(coordinator_flow(driver, "coordinator", true)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_coordinators_pages_work_with_javascript_off() {
    let Some(driver) = chromedriver() else {
        return;
    };
    Box::pin(coordinator_flow(driver, "nojs", false)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervisor_a_volunteer_and_break_glass_in_chromium() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let owner = app.user("coordinator", None).await;
    let other = app.user("coordinator", None).await;
    let supervisor = app.user("supervisor", Some("yinzhou")).await;
    let volunteer = app.user("volunteer", None).await;
    let reviewer = app.user("ethics_reviewer", None).await;
    let t = tag();
    let case = app.create_case(&owner.token, organ_case(&t)).await;
    let id = case["id"].as_str().unwrap().to_string();
    let addr = serve(&app).await;
    let b = Browser::start(driver, "roles", true).await;
    b.go(&format!("http://{addr}/?lang=zh-CN")).await;

    // A supervisor: home, and a case whose timeline says who opened it.
    b.sign_in(addr, &supervisor.username).await;
    b.check("supervisor-home").await;
    b.go(&format!("http://{addr}/cases/{id}")).await;
    let page = b.wait_for(&format!("Name{t}")).await;
    assert!(
        page.contains("Test supervisor"),
        "the timeline shows who opened the case: {page}"
    );
    b.check("supervisor-case").await;
    b.sign_out().await;

    // A coordinator on a case not theirs: break-glass, a reason too short first.
    b.sign_in(addr, &other.username).await;
    b.go(&format!("http://{addr}/cases/{id}")).await;
    b.wait_for("name=\"reason\"").await;
    assert!(
        !b.source().await.contains(&format!("Name{t}")),
        "nothing of the case shown"
    );
    b.check("break-glass").await;
    b.type_into("textarea[name=reason]", "why").await;
    b.click(&format!(
        "form[action='/cases/{id}/break-glass'] button[type=submit]"
    ))
    .await;
    b.wait_for("id=\"f-reason-error\"").await;
    b.check("break-glass-invalid").await;
    b.replace(
        "textarea[name=reason]",
        "The family called the hotline and the assigned coordinator is on leave today",
    )
    .await;
    b.click(&format!(
        "form[action='/cases/{id}/break-glass'] button[type=submit]"
    ))
    .await;
    let page = b.wait_for("banner break-glass").await;
    assert!(page.contains(&format!("Name{t}")), "the case is open");
    let banner = b.find(".banner.break-glass").await;
    let text = b
        .call("GET", &format!("/element/{banner}/text"), None)
        .await;
    assert!(
        text.as_str()
            .unwrap_or_default()
            .chars()
            .any(|c| c.is_ascii_digit()),
        "the banner shows the minutes left: {text}"
    );
    b.check("break-glass-case").await;
    b.sign_out().await;

    // An ethics reviewer: the findings queue is home; a finding decided; the break-glass use
    // just made, with its reason; the audit log.
    b.sign_in(addr, &reviewer.username).await;
    b.wait_for("id=\"findings\"").await;
    b.check("ethics-findings").await;
    b.click("#findings .title a").await;
    b.wait_for("name=\"finding\"").await;
    b.check("ethics-finding").await;
    b.click("input[name=finding][value=verified]").await;
    b.click("form[action$='/decision'] button[type=submit]")
        .await;
    b.wait_for("status-closed").await;
    b.go(&format!("http://{addr}/ethics/break-glass")).await;
    b.wait_for("assigned coordinator is on leave").await;
    b.check("ethics-break-glass").await;
    b.go(&format!("http://{addr}/audit?case_id={id}")).await;
    b.wait_for("id=\"audit\"").await;
    b.check("audit").await;
    b.sign_out().await;

    // A volunteer.
    b.sign_in(addr, &volunteer.username).await;
    b.wait_for("Test volunteer").await;
    b.check("volunteer-home").await;
    b.sign_out().await;
    b.finish().await;
}

/// A marrow donor's adverse events in Chromium: the case page's section, the form refused once
/// and then saved, its edit form, and the list across cases for a coordinator, a supervisor
/// (with the registry's CSV) and an ethics reviewer; each checked with axe-core at both widths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adverse_events_of_a_marrow_donor_through_the_pages_in_chromium() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let coordinator = app.user("coordinator", Some("yinzhou")).await;
    let supervisor = app.user("supervisor", Some("yinzhou")).await;
    let reviewer = app.user("ethics_reviewer", None).await;
    let t = tag();
    let case = app
        .create_case(&coordinator.token, marrow_case(&t, "13900008888"))
        .await;
    let id = case["id"].as_str().unwrap().to_string();
    let addr = serve(&app).await;
    let b = Browser::start(driver, "marrow", true).await;
    b.go(&format!("http://{addr}/?lang=zh-CN")).await;
    b.sign_in(addr, &coordinator.username).await;

    b.go(&format!("http://{addr}/cases/{id}")).await;
    b.wait_for("id=\"adverse-events\"").await;
    b.check("marrow-case").await;
    b.go(&format!("http://{addr}/cases/{id}/adverse-events/new"))
        .await;
    b.wait_for("name=\"description\"").await;
    b.check("adverse-event-new").await;
    let submit = format!("form[action='/cases/{id}/adverse-events/new'] button[type=submit]");
    b.click("select[name=category] option[value=pain]").await;
    b.click("input[name=grade][value='2']").await;
    b.click("select[name=outcome] option[value=recovering]")
        .await;
    b.click(&submit).await;
    b.wait_for("id=\"f-description-error\"").await;
    b.check("adverse-event-invalid").await;
    b.type_into("textarea[name=description]", &format!("采集后腰痛 {t}"))
        .await;
    b.click("select[name=relation] option[value=possibly]")
        .await;
    b.click(&submit).await;
    // The case page shows it (the form held the same words while it was typed).
    b.wait_for(&format!("<p class=\"pre\">采集后腰痛 {t}"))
        .await;
    b.check("marrow-case-with-event").await;

    b.click("#adverse-events a[href$='/edit']").await;
    b.wait_for("name=\"reported_on\"").await;
    b.check("adverse-event-edit").await;
    b.click("select[name=outcome] option[value=resolved]").await;
    b.click("form[action$='/edit'] button[type=submit]").await;
    b.wait_for("已痊愈").await;
    b.go(&format!("http://{addr}/adverse-events")).await;
    b.wait_for("id=\"adverse-events\"").await;
    b.check("adverse-events").await;
    b.go(&format!("http://{addr}/adverse-events?lang=en")).await;
    b.wait_for("Adverse events").await;
    b.check("adverse-events-en").await;
    b.go(&format!("http://{addr}/adverse-events?lang=zh-CN"))
        .await;
    b.sign_out().await;

    b.sign_in(addr, &supervisor.username).await;
    b.go(&format!("http://{addr}/adverse-events")).await;
    b.wait_for("adverse-events.csv").await;
    b.check("adverse-events-supervisor").await;
    b.sign_out().await;

    b.sign_in(addr, &reviewer.username).await;
    b.go(&format!("http://{addr}/adverse-events")).await;
    let page = b.wait_for("id=\"adverse-events\"").await;
    assert!(!page.contains(&t), "no descriptions for an ethics reviewer");
    b.check("adverse-events-ethics").await;
    b.sign_out().await;
    b.finish().await;
}

/// Memorial events in Chromium: a coordinator plans one through its form (refused once, then
/// saved), invites the families, records a reply and puts a name forward; the case page's
/// section; the supervisor's engraver sheet; and the family's invitations and reply form.
/// Each checked with axe-core at both widths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memorial_events_through_the_pages_in_chromium() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let coordinator = app.user("coordinator", Some("yinzhou")).await;
    let supervisor = app.user("supervisor", Some("yinzhou")).await;
    let case = app
        .create_case(&coordinator.token, organ_case(&tag()))
        .await;
    let id = case["id"].as_str().unwrap().to_string();
    let (s, c) = app
        .post(
            &format!("/api/v1/cases/{id}/contacts"),
            &coordinator.token,
            json!({"full_name": "林女士", "relationship": "spouse", "phone": "13800001111",
                   "preferred_channel": "portal"}),
        )
        .await;
    assert_eq!(s, axum::http::StatusCode::CREATED, "{c}");
    let contact = c["id"].as_str().unwrap().to_string();
    let (family, _) = app.family_account(&coordinator.token, &contact).await;
    let addr = serve(&app).await;
    let b = Browser::start(driver, "memorials", true).await;
    b.go(&format!("http://{addr}/?lang=zh-CN")).await;
    b.sign_in(addr, &coordinator.username).await;

    b.go(&format!("http://{addr}/memorials")).await;
    b.wait_for("memorials/new").await;
    b.check("memorials-empty").await;
    b.go(&format!("http://{addr}/memorials/new")).await;
    b.wait_for("name=\"starts_at\"").await;
    b.check("memorial-new").await;
    let submit = "form[action='/memorials/new'] button[type=submit]";
    b.click("select[name=kind] option[value=qingming]").await;
    b.type_into("input[name=place]", "福泉山纪念园").await;
    b.click(submit).await;
    b.wait_for("id=\"f-title-error\"").await;
    b.check("memorial-invalid").await;
    b.type_into("input[name=title]", "清明缅怀活动").await;
    let day = (chrono::Utc::now() + chrono::Duration::days(30)).date_naive();
    // A datetime-local input takes its digits in the order the locale shows them; set the
    // value directly, as a picker would.
    b.script(
        &format!("document.querySelector('input[name=starts_at]').value = '{day}T09:30'"),
        json!([]),
    )
    .await;
    b.click(submit).await;
    b.wait_for("id=\"guests\"").await;
    b.check("memorial").await;
    b.click("form[action$='/invitations'] button[type=submit]")
        .await;
    b.wait_for("notice-ok").await;
    b.check("memorial-invited").await;
    b.click("#guests a[href$='/reply']").await;
    b.wait_for("name=\"party_size\"").await;
    b.check("memorial-reply").await;
    b.click("input[name=reply][value=coming]").await;
    b.type_into("input[name=party_size]", "3").await;
    b.click("form[action$='/reply'] button[type=submit]").await;
    b.wait_for("id=\"guests\"").await;
    b.click("#guests form[action$='/names'] button[type=submit]")
        .await;
    b.wait_for("/remove\"").await;
    b.go(&format!("http://{addr}/cases/{id}")).await;
    b.wait_for("id=\"memorials\"").await;
    b.check("memorial-case").await;
    b.go(&format!("http://{addr}/memorials?lang=en")).await;
    b.wait_for("Memorial events").await;
    b.check("memorials-en").await;
    b.go(&format!("http://{addr}/memorials?lang=zh-CN")).await;
    b.sign_out().await;

    b.sign_in(addr, &supervisor.username).await;
    b.go(&format!("http://{addr}/memorials")).await;
    b.click("#memorial-events a").await;
    b.wait_for("names.csv").await;
    b.check("memorial-supervisor").await;
    b.click("a[href$='/names/print']").await;
    b.wait_for("roll-sheet").await;
    b.check("memorial-names-print").await;
    b.sign_out().await;

    b.sign_in(addr, &family).await;
    b.go(&format!("http://{addr}/me/memorials")).await;
    b.wait_for("清明缅怀活动").await;
    b.check("family-memorials").await;
    b.click("#memorials a[href$='/reply']").await;
    b.wait_for("name=\"needs\"").await;
    b.check("family-memorial-reply").await;
    b.click("input[name=reply][value=not_coming]").await;
    b.click("form[action$='/reply'] button[type=submit]").await;
    b.wait_for("id=\"memorials\"").await;
    b.check("family-memorials-replied").await;
    b.sign_out().await;
    b.finish().await;
}

/// Letters with a recipient in Chromium: the case page's section, the recording page refused
/// once and then saved, the review page with what identifies marked, the version passed on,
/// the queue for a coordinator and an ethics reviewer, and the family's letters; each checked
/// with axe-core at both widths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn letters_with_a_recipient_through_the_pages_in_chromium() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let coordinator = app.user("coordinator", Some("yinzhou")).await;
    let reviewer = app.user("ethics_reviewer", None).await;
    let case = app
        .create_case(&coordinator.token, organ_case(&tag()))
        .await;
    let id = case["id"].as_str().unwrap().to_string();
    let (_, kin) = app
        .post(
            &format!("/api/v1/cases/{id}/contacts"),
            &coordinator.token,
            json!({"full_name": "陈晓红", "relationship": "child", "phone": "13800001111",
                   "preferred_channel": "portal"}),
        )
        .await;
    let kin = kin["id"].as_str().unwrap().to_string();
    let (_, p) = app
        .post(
            &format!("/api/v1/cases/{id}/correspondents"),
            &coordinator.token,
            json!({"label": "受者 A", "role": "recipient", "consented_on": "2025-05-01"}),
        )
        .await;
    let recipient = p["id"].as_str().unwrap().to_string();
    let (s, b) = app
        .post(
            &format!("/api/v1/cases/{id}/consents"),
            &coordinator.token,
            json!({"kind": "correspondence", "subject": kin, "given_by": kin,
                   "method": "electronic", "document": "correspondence-zh-CN-v1",
                   "signed_at": "2025-04-01"}),
        )
        .await;
    assert_eq!(s, axum::http::StatusCode::CREATED, "{b}");
    let (family, _) = app.family_account(&coordinator.token, &kin).await;
    let addr = serve(&app).await;
    let b = Browser::start(driver, "correspondence", true).await;
    b.go(&format!("http://{addr}/?lang=zh-CN")).await;
    b.sign_in(addr, &coordinator.username).await;

    b.go(&format!("http://{addr}/cases/{id}")).await;
    b.wait_for("id=\"correspondence\"").await;
    b.check("correspondence-case").await;
    b.go(&format!("http://{addr}/cases/{id}/correspondence/new"))
        .await;
    b.wait_for("name=\"text\"").await;
    b.check("correspondence-new").await;
    let submit = format!("form[action='/cases/{id}/correspondence/new'] button[type=submit]");
    b.click(&submit).await;
    b.wait_for("id=\"f-text-error\"").await;
    b.check("correspondence-new-invalid").await;
    b.click(&format!(
        "select[name=correspondent_id] option[value='{recipient}']"
    ))
    .await;
    b.click("input[name=direction][value=to_family]").await;
    b.click(&format!("select[name=addressee] option[value='{kin}']"))
        .await;
    b.type_into(
        "textarea[name=text]",
        "亲爱的陈晓红：2025年3月11日我接受了移植，谢谢你们一家。",
    )
    .await;
    b.click(&submit).await;
    b.wait_for("<mark title=").await;
    b.check("correspondence-show").await;
    // The proposed version stands in the field: saved as it is.
    let url = b.url().await;
    let letter = url.rsplit('/').next().unwrap().to_string();
    b.click(&format!("form[action='/correspondence/{letter}'] button"))
        .await;
    b.wait_for("已隐去身份信息").await;
    b.click("form[action$='/release'] button").await;
    b.wait_for("已转交").await;
    b.check("correspondence-released").await;
    b.go(&format!("http://{addr}/correspondence")).await;
    b.wait_for("id=\"correspondence\"").await;
    b.check("correspondence-queue").await;
    b.sign_out().await;

    b.sign_in(addr, &reviewer.username).await;
    b.go(&format!("http://{addr}/correspondence")).await;
    let page = b.wait_for("id=\"correspondence\"").await;
    assert!(
        !page.contains("谢谢你们一家"),
        "no text for an ethics reviewer"
    );
    b.check("correspondence-ethics").await;
    b.sign_out().await;

    b.sign_in(addr, &family).await;
    b.go(&format!("http://{addr}/me/letters")).await;
    let page = b.wait_for("id=\"letters\"").await;
    assert!(
        page.contains("谢谢你们一家") && !page.contains("陈晓红"),
        "{page}"
    );
    b.check("me-letters").await;
    b.go(&format!("http://{addr}/me/letters/new")).await;
    b.wait_for("name=\"text\"").await;
    b.check("me-letter-new").await;
    b.click(&format!(
        "input[name=correspondent_id][value='{recipient}']"
    ))
    .await;
    b.type_into("textarea[name=text]", "我们也常常想起你。")
        .await;
    b.click("form[action='/me/letters/new'] button[type=submit]")
        .await;
    b.wait_for("role=\"status\"").await;
    b.sign_out().await;
    b.finish().await;
}

/// The admin's pages in Chromium: home, an account created through its form (refused once),
/// its page with a setup link, the care plans with a preview of the dates, the templates and
/// the keys page with a rotation; each checked with axe-core at both widths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_manages_accounts_plans_templates_and_keys_in_chromium() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let admin = app.user("admin", None).await;
    let owner = app.user("coordinator", None).await;
    app.create_case(&owner.token, organ_case(&tag())).await;
    let addr = serve(&app).await;
    let b = Browser::start(driver, "admin", true).await;
    b.go(&format!("http://{addr}/?lang=zh-CN")).await;
    b.sign_in(addr, &admin.username).await;
    b.wait_for("id=\"home-keys\"").await;
    b.check("admin-home").await;

    b.go(&format!("http://{addr}/admin/users/new")).await;
    b.wait_for("action=\"/admin/users/new\"").await;
    b.check("admin-user-new").await;
    b.type_into("input[name=username]", "Bad Name").await;
    b.click("select[name=role] option[value=supervisor]").await;
    b.click("form[action='/admin/users/new'] button[type=submit]")
        .await;
    b.wait_for("id=\"f-username-error\"").await;
    b.check("admin-user-new-invalid").await;
    b.replace("input[name=username]", "zhou_sup").await;
    b.type_into("input[name=display_name]", "周主管").await;
    b.type_into("input[name=region]", "yinzhou").await;
    b.click("form[action='/admin/users/new'] button[type=submit]")
        .await;
    b.wait_for("id=\"issue-setup-link\"").await;
    b.check("admin-user").await;
    b.click("#issue-setup-link").await;
    b.wait_for("id=\"setup-url\"").await;
    b.check("admin-user-setup-link").await;

    b.go(&format!("http://{addr}/admin/users")).await;
    b.wait_for("zhou_sup").await;
    b.check("admin-users").await;

    b.go(&format!("http://{addr}/admin/plans")).await;
    b.wait_for("id=\"plan-organ\"").await;
    b.check("admin-plans").await;
    b.go(&format!("http://{addr}/admin/plans/organ")).await;
    b.wait_for("name=\"sample.from\"").await;
    b.check("admin-plan").await;
    b.click("button[name=preview]").await;
    b.wait_for("id=\"preview\"").await;
    b.check("admin-plan-preview").await;

    b.go(&format!(
        "http://{addr}/admin/templates?template=mourning_day&mourning_day=d49"
    ))
    .await;
    b.wait_for("id=\"preview-en\"").await;
    b.check("admin-templates").await;

    b.go(&format!("http://{addr}/admin/keys")).await;
    b.wait_for("id=\"key-versions\"").await;
    b.check("admin-keys").await;
    b.click("#f-rotate").await;
    b.wait_for("id=\"rewrap-status\"").await;
    b.check("admin-keys-rotated").await;

    b.go(&format!("http://{addr}/reports?period=2026")).await;
    b.wait_for("id=\"trend-h\"").await;
    b.check("reports-year").await;
    b.click("details.no-print > summary").await;
    b.check("reports-year-months").await;

    b.go(&format!("http://{addr}/account/totp")).await;
    b.click("form[action='/account/totp/begin'] button").await;
    b.wait_for("id=\"totp-qr\"").await;
    b.check("account-totp").await;
    b.sign_out().await;
    b.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_accepts_its_invitation_and_uses_its_portal_in_chromium() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let c = app.user("coordinator", Some("yinzhou")).await;
    let case = app.create_case(&c.token, organ_case(&tag())).await;
    let id = case["id"].as_str().unwrap().to_string();
    let (_, contact) = app
        .post(
            &format!("/api/v1/cases/{id}/contacts"),
            &c.token,
            json!({"full_name": "陈先生", "relationship": "spouse", "phone": "13800001111",
                   "preferred_channel": "portal"}),
        )
        .await;
    let contact = contact["id"].as_str().unwrap().to_string();
    let (_, consent) = app
        .post(
            &format!("/api/v1/cases/{id}/consents"),
            &c.token,
            json!({"kind": "contact", "subject": contact, "given_by": contact,
                   "method": "electronic", "document": "contact-zh-CN-v1",
                   "signed_at": "2025-04-01", "scope": {"channels": ["sms", "portal"]}}),
        )
        .await;
    let consent = consent["id"].as_str().unwrap().to_string();
    // Something coming, and a staff member who opened the file.
    let due = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    app.post(
        &format!("/api/v1/cases/{id}/tasks"),
        &c.token,
        json!({"kind": "outreach", "due_at": due, "contact_id": contact,
               "template": "memorial_invitation", "channel": "sms"}),
    )
    .await;
    app.get(&format!("/api/v1/cases/{id}"), &c.token).await;
    // A portal message delivered already, to be read on the messages page.
    app.post(
        &format!("/api/v1/cases/{id}/tasks"),
        &c.token,
        json!({"kind": "outreach", "due_at": chrono::Utc::now().to_rfc3339(),
               "contact_id": contact, "template": "memorial_invitation", "channel": "portal"}),
    )
    .await;
    let mut svc = app.state.svc.clone();
    let mut settings = (*svc.schedule).clone();
    settings.waking = (0, 24);
    svc.schedule = std::sync::Arc::new(settings);
    let channels = donorcare::domain::outreach::Channels::new(svc.schedule.clone()).unwrap();
    donorcare::domain::outreach::run_due(&svc, &channels, "browser", chrono::Utc::now, || false)
        .await
        .unwrap();
    let (_, inv) = app
        .post(
            &format!("/api/v1/contacts/{contact}/invite"),
            &c.token,
            json!({}),
        )
        .await;
    let token = inv["invite_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let username = format!("fam_{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let addr = serve(&app).await;
    let b = Browser::start(driver, "family", true).await;

    // The invitation, signed out.
    b.go(&format!("http://{addr}/invite/{token}?lang=zh-CN"))
        .await;
    b.wait_for("name=\"password_confirm\"").await;
    b.check("invite").await;
    b.type_into("input[name=username]", &username).await;
    b.type_into("input[name=password]", PASSWORD).await;
    b.type_into("input[name=password_confirm]", PASSWORD).await;
    b.click(&format!(
        "form[action='/invite/{token}'] button[type=submit]"
    ))
    .await;
    b.wait_for("action=\"/login\"").await;

    // Signed in, the portal is home.
    b.sign_in(addr, &username).await;
    b.wait_for("id=\"coming\"").await;
    b.check("home").await;
    for (path, mark, name) in [
        ("/me/messages", "class=\"family-letter\"", "messages"),
        ("/me/messages?show=coming", "id=\"messages\"", "coming"),
        ("/me/consents", "id=\"consents\"", "consents"),
        (
            &format!("/me/consents/{consent}/withdraw"),
            "name=\"reason\"",
            "withdraw",
        ),
        ("/me/access-log", "id=\"access\"", "access-log"),
        ("/account", "name=\"new_password\"", "account"),
    ] {
        b.go(&format!("http://{addr}{path}")).await;
        b.wait_for(mark).await;
        b.check(name).await;
    }

    // A preference changed through the form.
    b.go(&format!("http://{addr}/me/preferences")).await;
    b.wait_for("name=\"preferred_channel\"").await;
    b.check("preferences").await;
    b.click("input[name=skip_festivals][value=qingming]").await;
    b.click("input[name=mourning_days]").await;
    b.click("form[action='/me/preferences'] button[type=submit]")
        .await;
    b.wait_for("notice-ok").await;
    b.check("preferences-saved").await;
    let fam = app.login(&username, PASSWORD).await;
    let (_, prefs) = app.get("/api/v1/me/preferences", &fam).await;
    assert_eq!(prefs["skip_festivals"], json!(["qingming"]), "{prefs}");
    assert_eq!(prefs["mourning_days"], true, "{prefs}");
    b.sign_out().await;
    b.finish().await;
}
