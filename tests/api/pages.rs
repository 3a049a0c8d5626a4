//! The pages over HTTP: sign-in with CSRF, session cookies, security headers, sign-out.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use tower::ServiceExt;

use crate::helpers::{organ_case, tag, TestApp, PASSWORD};

/// Send a request; returns status, headers and body text.
pub async fn raw(app: &TestApp, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, String) {
    use http_body_util::BodyExt;
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

pub fn cookies(h: &axum::http::HeaderMap) -> Vec<String> {
    h.get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

pub fn cookie_value(set: &[String], name: &str) -> Option<String> {
    set.iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| c[name.len() + 1..].split(';').next().unwrap().to_string())
}

pub fn hidden(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let i = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + needle.len();
    html[i..].split('"').next().unwrap().to_string()
}

/// `s` encoded for a form body.
pub fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

pub fn form(path: &str, cookie: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .body(Body::from(body.to_string()))
        .unwrap()
}

/// Sign in through the login page as `username` (password [`PASSWORD`]); the cookie jar.
pub async fn page_session(app: &TestApp, username: &str) -> String {
    let (_, h, _) = raw(app, get("/login", "")).await;
    let login_csrf = cookie_value(&cookies(&h), "dc_login_csrf").unwrap();
    let body = format!("username={username}&password={PASSWORD}&csrf={login_csrf}");
    let (status, h, _) = raw(
        app,
        form("/login", &format!("dc_login_csrf={login_csrf}"), &body),
    )
    .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    format!(
        "dc_session={}",
        cookie_value(&cookies(&h), "dc_session").unwrap()
    )
}

/// The `<div class="field…">` holding the input with id `f-<name>`.
pub fn field<'a>(html: &'a str, name: &str) -> &'a str {
    let id = format!("id=\"f-{}\"", name.replace(['.', '_'], "-"));
    let at = html
        .find(&id)
        .unwrap_or_else(|| panic!("no field {name} in {html}"));
    let start = html[..at].rfind("<div class=\"field").unwrap();
    let end = html[at..].find("</div>").unwrap() + at;
    &html[start..end]
}

/// A page's status and text, with a session.
pub async fn page(app: &TestApp, path: &str, jar: &str) -> (StatusCode, String) {
    let (status, _, html) = raw(app, get(path, jar)).await;
    (status, html)
}

pub fn get(path: &str, cookie: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header("cookie", cookie)
        .body(Body::empty())
        .unwrap()
}

on_both_backends! {
    async fn sign_in_shows_the_coordinators_cases_and_sign_out_ends_the_session(app) {
        let c = app.user("coordinator", None).await;
        let t = tag();
        app.create_case(&c.token, organ_case(&t)).await;

        let (status, h, html) = raw(&app, get("/login", "")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(h[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("frame-ancestors 'none'"));
        assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        let set = cookies(&h);
        let login_csrf = cookie_value(&set, "dc_login_csrf").unwrap();
        assert!(set[0].contains("HttpOnly") && set[0].contains("SameSite=Strict"));
        assert_eq!(hidden(&html, "csrf"), login_csrf);

        // Without the matching CSRF token nothing happens.
        let body = format!("username={}&password={PASSWORD}&csrf=forged", c.username);
        let (status, h, _) = raw(&app, form("/login", &format!("dc_login_csrf={login_csrf}"), &body)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(cookie_value(&cookies(&h), "dc_session").is_none());
        // A wrong password is refused on the page.
        let body = format!("username={}&password=wrong-password&csrf={login_csrf}", c.username);
        let (status, _, html) = raw(&app, form("/login", &format!("dc_login_csrf={login_csrf}"), &body)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(html.contains("用户名或密码不正确"), "zh-CN by default: {html}");

        let body = format!("username={}&password={PASSWORD}&csrf={login_csrf}", c.username);
        let (status, h, _) = raw(&app, form("/login", &format!("dc_login_csrf={login_csrf}"), &body)).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let set = cookies(&h);
        let session = cookie_value(&set, "dc_session").expect("a session cookie");
        let line = set.iter().find(|c| c.starts_with("dc_session=")).unwrap();
        assert!(line.contains("HttpOnly") && line.contains("SameSite=Strict") && line.contains("Path=/"), "{line}");
        assert!(!line.contains("Secure"), "plain http in tests");

        let jar = format!("dc_session={session}");
        let (status, h, html) = raw(&app, get("/", &jar)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        assert!(html.contains("Test coordinator"));
        let (status, _, list) = raw(&app, get("/cases", &jar)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(list.contains(&format!("Name{t}")), "the case list shows the donor");
        let csrf = hidden(&html, "csrf");

        // A second sign-in gets a different session id.
        let body = format!("username={}&password={PASSWORD}&csrf={login_csrf}", c.username);
        let (_, h2, _) = raw(&app, form("/login", &format!("dc_login_csrf={login_csrf}"), &body)).await;
        assert_ne!(cookie_value(&cookies(&h2), "dc_session").unwrap(), session);

        let (status, _, _) = raw(&app, form("/logout", &jar, "csrf=forged")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, h, _) = raw(&app, form("/logout", &jar, &format!("csrf={csrf}"))).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(cookies(&h).iter().any(|c| c.starts_with("dc_session=;") && c.contains("Max-Age=0")));
        let (status, h, _) = raw(&app, get("/cases", &jar)).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "the session is gone");
        assert_eq!(h[header::LOCATION], "/login");
        let (_, _, html) = raw(&app, get("/", &jar)).await;
        assert!(html.contains("id=\"sign-in\""));
    }

    async fn a_disabled_account_loses_its_session_at_once(app) {
        let admin = app.user("admin", None).await;
        let c = app.user("coordinator", None).await;
        let (_, h, _) = raw(&app, get("/login", "")).await;
        let login_csrf = cookie_value(&cookies(&h), "dc_login_csrf").unwrap();
        let body = format!("username={}&password={PASSWORD}&csrf={login_csrf}", c.username);
        let (_, h, _) = raw(&app, form("/login", &format!("dc_login_csrf={login_csrf}"), &body)).await;
        let jar = format!("dc_session={}", cookie_value(&cookies(&h), "dc_session").unwrap());
        assert!(raw(&app, get("/", &jar)).await.2.contains("action=\"/logout\""));
        app.patch(&format!("/api/v1/users/{}", c.id), &admin.token, serde_json::json!({"disabled": true})).await;
        assert!(!raw(&app, get("/", &jar)).await.2.contains("action=\"/logout\""));
    }
}
