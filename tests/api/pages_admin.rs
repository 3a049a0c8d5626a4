//! The admin's pages: accounts (create, role and region, disable, the last admin, a setup
//! link, TOTP reset), TOTP enrolment with its QR code, care plans with a preview of their
//! dates, templates on sample values, the keyring with its rotation, and who may open them.

use axum::http::{header, StatusCode};
use serde_json::Value;

use crate::helpers::{organ_case, tag, TestApp, TestUser, PASSWORD};
use crate::pages::{form, get, hidden, page, page_session, raw};

/// Every page of the admin's (GETs).
const PAGES: &[&str] = &[
    "/admin/users",
    "/admin/users/new",
    "/admin/plans",
    "/admin/plans/organ",
    "/admin/templates",
    "/admin/keys",
];

fn totp_code(secret_b32: &str, at: i64) -> String {
    let secret = totp_rs::Secret::Encoded(secret_b32.to_string())
        .to_bytes()
        .unwrap();
    totp_rs::TOTP::new_unchecked(
        totp_rs::Algorithm::SHA1,
        6,
        1,
        30,
        secret,
        None,
        String::new(),
    )
    .generate(at as u64)
}

/// A urlencoded body from pairs.
fn body(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// The `<div class="field…">` of the input named `name` (any name, brackets included).
fn field_of<'a>(html: &'a str, name: &str) -> &'a str {
    let needle = format!("name=\"{name}\"");
    let at = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no field {name} in {html}"));
    let start = html[..at].rfind("<div class=\"field").unwrap();
    let end = html[at..].find("</div>").unwrap() + at;
    &html[start..end]
}

async fn users(app: &TestApp, admin: &TestUser) -> Vec<Value> {
    let (s, b) = app.get("/api/v1/users?limit=200", &admin.token).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"].as_array().cloned().unwrap_or_default()
}

async fn user(app: &TestApp, admin: &TestUser, id: &str) -> Value {
    users(app, admin)
        .await
        .into_iter()
        .find(|u| u["id"] == id)
        .expect("the account")
}

/// An admin with a page session, and the session's CSRF token.
async fn admin_session(app: &TestApp) -> (TestUser, String, String) {
    let admin = app.user("admin", None).await;
    let jar = page_session(app, &admin.username).await;
    let (_, html) = page(app, "/admin/users", &jar).await;
    let csrf = hidden(&html, "csrf");
    (admin, jar, csrf)
}

on_both_backends! {
    async fn every_admin_page_renders_for_an_admin_in_both_languages(app) {
        let (admin, jar, _) = admin_session(&app).await;
        let mut all: Vec<String> = PAGES.iter().map(|p| p.to_string()).collect();
        all.push(format!("/admin/users/{}", admin.id));
        all.push("/".into());
        all.push("/account/totp".into());
        let catalogue = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/locales/en/admin.ftl")).unwrap();
        let keys: Vec<&str> = catalogue.lines().filter_map(|l| l.split_once(" = ")).map(|(k, _)| k).collect();
        assert!(keys.len() > 100);
        for path in &all {
            for (lang, marker) in [("zh-CN", "<html lang=\"zh-CN\">"), ("en", "<html lang=\"en\">")] {
                let sep = if path.contains('?') { '&' } else { '?' };
                let (s, h, html) = raw(&app, get(&format!("{path}{sep}lang={lang}"), &jar)).await;
                assert_eq!(s, StatusCode::OK, "{path} {lang}: {html}");
                assert_eq!(h[header::CACHE_CONTROL], "no-store");
                assert!(html.contains(marker), "{path} {lang}");
                // No catalogue key shows as text: every word was found.
                for key in &keys {
                    assert!(!html.contains(&format!(">{key}<")) && !html.contains(&format!("\"{key}\"")),
                            "{path} {lang}: a raw key {key}: {html}");
                }
            }
        }
        // The admin's home: accounts and keys, and the admin's work in the navigation.
        let (_, home) = page(&app, "/?lang=zh-CN", &jar).await;
        assert!(home.contains("id=\"home-accounts\"") && home.contains("id=\"home-keys\""), "{home}");
        assert!(home.contains("href=\"/admin/keys\""), "{home}");
        assert!(home.contains("恢复用接收者"), "{home}");
        let (_, en) = page(&app, "/admin/keys?lang=en", &jar).await;
        assert!(en.contains("Recovery recipient") && en.contains("Rotate the keyring"), "{en}");
    }

    async fn a_new_account_refused_keeps_its_values_and_saves_nothing_then_is_created(app) {
        let (admin, jar, csrf) = admin_session(&app).await;
        let before = users(&app, &admin).await.len();
        let bad = body(&[("csrf", &csrf), ("username", "Not A Name!"), ("display_name", "王主管"),
                         ("role", "supervisor"), ("region", ""), ("email", "nope")]);
        let (s, _, html) = raw(&app, form("/admin/users/new", &jar, &bad)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        for name in ["username", "region", "email"] {
            let f = field_of(&html, name);
            assert!(f.contains("aria-invalid=\"true\""), "{name}: {f}");
            assert!(f.contains(&format!("aria-describedby=\"f-{name}-hint f-{name}-error\"")) || f.contains(&format!("f-{name}-error")), "{name}: {f}");
        }
        assert!(field_of(&html, "display_name").contains("value=\"王主管\""), "values kept: {html}");
        assert!(field_of(&html, "username").contains("value=\"Not A Name!\""));
        assert_eq!(users(&app, &admin).await.len(), before, "nothing saved");

        // Without the CSRF token: refused.
        let good = |csrf: &str| body(&[("csrf", csrf), ("username", "wang_sup"), ("display_name", "王主管"),
                                       ("role", "supervisor"), ("region", "yinzhou"), ("email", "")]);
        let (s, _, _) = raw(&app, form("/admin/users/new", &jar, &good("forged"))).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(users(&app, &admin).await.len(), before);

        let (s, h, _) = raw(&app, form("/admin/users/new", &jar, &good(&csrf))).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let to = h[header::LOCATION].to_str().unwrap().to_string();
        assert!(to.starts_with("/admin/users/") && to.ends_with("?created=1"), "{to}");
        let created = users(&app, &admin).await.into_iter().find(|u| u["username"] == "wang_sup").expect("created");
        assert_eq!(created["role"], "supervisor");
        assert_eq!(created["region"], "yinzhou");
        let (s, html) = page(&app, &to, &jar).await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("账号已创建") && html.contains("wang_sup"), "{html}");
        // The same username again: named beside the field.
        let (s, _, html) = raw(&app, form("/admin/users/new", &jar, &good(&csrf))).await;
        assert_eq!(s, StatusCode::CONFLICT, "{html}");
        assert!(field_of(&html, "username").contains("aria-invalid=\"true\""), "{html}");
        // The list finds it by name and by role.
        let (_, list) = page(&app, "/admin/users?q=%E7%8E%8B%E4%B8%BB", &jar).await;
        assert!(list.contains("wang_sup") && !list.contains(&admin.username), "{list}");
        let (_, list) = page(&app, "/admin/users?role=admin", &jar).await;
        assert!(list.contains(&admin.username) && !list.contains("wang_sup"), "{list}");
        let (s, _) = page(&app, "/admin/users?role=king", &jar).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    }

    async fn role_region_and_disabling_change_an_account_but_never_the_last_admin(app) {
        let (admin, jar, csrf) = admin_session(&app).await;
        let c = app.user("coordinator", Some("yinzhou")).await;
        let path = format!("/admin/users/{}", c.id);

        // A supervisor needs a region: refused, nothing saved, the values kept.
        let b = body(&[("csrf", &csrf), ("display_name", "Test coordinator"), ("role", "supervisor"), ("region", ""), ("email", "")]);
        let (s, _, html) = raw(&app, form(&path, &jar, &b)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field_of(&html, "region").contains("aria-invalid=\"true\""), "{html}");
        assert_eq!(user(&app, &admin, &c.id).await["role"], "coordinator");

        let b = body(&[("csrf", &csrf), ("display_name", "周主管"), ("role", "supervisor"), ("region", "haishu"), ("email", "zhou@example.org")]);
        let (s, h, _) = raw(&app, form(&path, &jar, &b)).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], format!("{path}?saved=details").as_str());
        let u = user(&app, &admin, &c.id).await;
        assert_eq!((u["role"].as_str(), u["region"].as_str(), u["display_name"].as_str()),
                   (Some("supervisor"), Some("haishu"), Some("周主管")));

        // Disable: the account's token stops working; enable again.
        let (s, h, _) = raw(&app, form(&format!("{path}/disabled"), &jar, &body(&[("csrf", &csrf), ("disabled", "true")]))).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], format!("{path}?saved=disabled").as_str());
        assert_eq!(app.get("/api/v1/me", &c.token).await.0, StatusCode::UNAUTHORIZED);
        let (_, html) = page(&app, &path, &jar).await;
        assert!(html.contains("已停用") && html.contains("启用此账号"), "{html}");
        let (s, _, _) = raw(&app, form(&format!("{path}/disabled"), &jar, &body(&[("csrf", &csrf), ("disabled", "false")]))).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(user(&app, &admin, &c.id).await["disabled"], false);
        let (s, _, _) = raw(&app, form(&format!("{path}/disabled"), &jar, "disabled=true")).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "no CSRF token");
        assert_eq!(user(&app, &admin, &c.id).await["disabled"], false);

        // The last active admin can be neither disabled nor given another role.
        let own = format!("/admin/users/{}", admin.id);
        let (s, _, html) = raw(&app, form(&format!("{own}/disabled"), &jar, &body(&[("csrf", &csrf), ("disabled", "true")]))).await;
        assert_eq!(s, StatusCode::CONFLICT, "{html}");
        assert!(html.contains("最后一个在用的管理员"), "{html}");
        assert!(html.contains("aria-describedby=\"f-disabled-error\""), "{html}");
        let b = body(&[("csrf", &csrf), ("display_name", "Test admin"), ("role", "coordinator"), ("region", ""), ("email", "")]);
        let (s, _, html) = raw(&app, form(&own, &jar, &b)).await;
        assert_eq!(s, StatusCode::CONFLICT, "{html}");
        let f = field_of(&html, "role");
        assert!(f.contains("aria-invalid=\"true\"") && f.contains("最后一个在用的管理员"), "{f}");
        let me = user(&app, &admin, &admin.id).await;
        assert_eq!((me["role"].as_str(), me["disabled"].as_bool()), (Some("admin"), Some(false)));
        let (_, _, en) = raw(&app, form(&format!("{own}/disabled?lang=en"), &jar, &body(&[("csrf", &csrf), ("disabled", "true")]))).await;
        assert!(en.contains("last active administrator"), "{en}");
    }

    async fn a_setup_link_lets_the_person_set_their_password_once(app) {
        let (admin, jar, csrf) = admin_session(&app).await;
        let b = body(&[("csrf", &csrf), ("username", "li_vol"), ("display_name", "李志愿"), ("role", "volunteer"), ("region", "yinzhou")]);
        let (_, h, _) = raw(&app, form("/admin/users/new", &jar, &b)).await;
        let user_path = h[header::LOCATION].to_str().unwrap().split('?').next().unwrap().to_string();
        let id = user_path.rsplit('/').next().unwrap().to_string();

        let (s, _, html) = raw(&app, form(&format!("{user_path}/setup-link"), &jar, &body(&[("csrf", &csrf)]))).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert_eq!(s, StatusCode::OK);
        let url = hidden_value(&html, "setup-url");
        let token = url.rsplit('/').next().unwrap().to_string();
        assert!(url.contains("/setup/") && token.len() > 20, "{url}");
        // Reissued: the first link stops working.
        let (_, _, html) = raw(&app, form(&format!("{user_path}/setup-link"), &jar, &body(&[("csrf", &csrf)]))).await;
        let second = hidden_value(&html, "setup-url").rsplit('/').next().unwrap().to_string();
        assert_ne!(second, token);
        let (s, _) = page(&app, &format!("/setup/{token}"), "").await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        let setup = format!("/setup/{second}");
        let (s, html) = page(&app, &setup, "").await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("li_vol") && html.contains("name=\"password\""), "{html}");
        let (s, _, html) = raw(&app, form(&setup, "", &body(&[("password", "a-new-password-1"), ("password_confirm", "another-one-2")]))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field_of(&html, "password_confirm").contains("aria-invalid=\"true\""), "{html}");
        let (s, _, html) = raw(&app, form(&setup, "", &body(&[("password", "short"), ("password_confirm", "short")]))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field_of(&html, "password").contains("aria-invalid=\"true\""), "{html}");
        let (s, _, html) = raw(&app, form(&setup, "", &body(&[("password", "a-new-password-1"), ("password_confirm", "a-new-password-1")]))).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("密码已设定"), "{html}");
        app.login("li_vol", "a-new-password-1").await;
        let (s, _, _) = raw(&app, form(&setup, "", &body(&[("password", "a-third-password-3"), ("password_confirm", "a-third-password-3")]))).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "the link works once");
        // Audited: who issued it, and that it was used.
        let (_, log) = app.get("/api/v1/audit?action=user.setup_link", &admin.token).await;
        let issued = log["items"].as_array().unwrap();
        assert!(issued.iter().any(|e| e["target_id"] == id && e["actor_id"] == admin.id), "{log}");
        let (_, log) = app.get("/api/v1/audit?action=auth.password_set", &admin.token).await;
        assert!(log["items"].as_array().unwrap().iter().any(|e| e["target_id"] == id), "{log}");
    }

    async fn staff_enrol_totp_with_a_qr_code_and_an_admin_resets_it(app) {
        let (admin, ajar, acsrf) = admin_session(&app).await;
        let c = app.user("coordinator", Some("yinzhou")).await;
        let jar = page_session(&app, &c.username).await;
        let (s, html) = page(&app, "/account/totp", &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("action=\"/account/totp/begin\"") && !html.contains("<svg"), "{html}");
        let csrf = hidden(&html, "csrf");
        let (s, _, _) = raw(&app, form("/account/totp/begin", &jar, "")).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "no CSRF token");
        let (s, h, _) = raw(&app, form("/account/totp/begin", &jar, &body(&[("csrf", &csrf)]))).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], "/account/totp");
        let (s, h, html) = raw(&app, get("/account/totp", &jar)).await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("<svg") && html.contains("id=\"totp-qr\""), "an inline QR code: {html}");
        assert!(!html.contains("<script"), "no script");
        assert!(!h[header::CONTENT_SECURITY_POLICY].to_str().unwrap().contains("unsafe-inline"));
        let secret = hidden_value(&html, "totp-secret");
        assert!(secret.len() >= 16, "{secret}");

        let now = chrono::Utc::now().timestamp();
        let (s, _, html) = raw(&app, form("/account/totp/confirm", &jar, &body(&[("csrf", &csrf), ("code", &totp_code(&secret, now - 3600))]))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field_of(&html, "code").contains("aria-invalid=\"true\""), "{html}");
        assert!(html.contains("<svg"), "the code is shown again");
        let (s, h, _) = raw(&app, form("/account/totp/confirm", &jar, &body(&[("csrf", &csrf), ("code", &totp_code(&secret, now))]))).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], "/account/totp?done=1");
        let (_, html) = page(&app, "/account/totp", &jar).await;
        assert!(html.contains("id=\"totp-enrolled\"") && !html.contains("<svg"), "{html}");
        assert_eq!(user(&app, &admin, &c.id).await["totp_enrolled"], true);
        let (s, b) = app.call(axum::http::Method::POST, "/api/v1/auth/login", None,
            Some(serde_json::json!({"username": c.username, "password": PASSWORD}))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED, "a code is asked for now: {b}");

        // The admin's page shows it and resets it.
        let upath = format!("/admin/users/{}", c.id);
        let (_, html) = page(&app, &upath, &ajar).await;
        assert!(html.contains("id=\"reset-totp\""), "{html}");
        let (s, _, _) = raw(&app, form(&format!("{upath}/totp-reset"), &ajar, "")).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "no CSRF token");
        let (s, h, _) = raw(&app, form(&format!("{upath}/totp-reset"), &ajar, &body(&[("csrf", &acsrf)]))).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], format!("{upath}?saved=totp").as_str());
        assert_eq!(user(&app, &admin, &c.id).await["totp_enrolled"], false);
        app.login(&c.username, PASSWORD).await;
        let (_, log) = app.get("/api/v1/audit?action=user.totp_reset", &admin.token).await;
        assert!(log["items"].as_array().unwrap().iter().any(|e| e["target_id"] == c.id && e["actor_id"] == admin.id), "{log}");

        // The API's twin: only an admin may.
        let (_, enrol) = app.post("/api/v1/me/totp", &c.token, serde_json::json!({})).await;
        // The time step of the page's code is spent; the next one is still accepted.
        let code = totp_code(enrol["secret"].as_str().unwrap(), chrono::Utc::now().timestamp() + 30);
        assert_eq!(app.post("/api/v1/me/totp/confirm", &c.token, serde_json::json!({"code": code})).await.0, StatusCode::NO_CONTENT);
        let reset = format!("/api/v1/users/{}/totp-reset", c.id);
        assert_eq!(app.call(axum::http::Method::POST, &reset, Some(&c.token), None).await.0, StatusCode::FORBIDDEN);
        let (s, b) = app.call(axum::http::Method::POST, &reset, Some(&admin.token), None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["totp_enrolled"], false);
        let (s, _) = app.call(axum::http::Method::POST, "/api/v1/users/no-such-user/totp-reset", Some(&admin.token), None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    async fn a_plan_preview_shows_its_dates_and_saves_nothing_and_saving_keeps_the_change(app) {
        let (admin, jar, csrf) = admin_session(&app).await;
        let (_, plans) = app.get("/api/v1/care-plans", &admin.token).await;
        let organ = plans["items"].as_array().unwrap().iter().find(|p| p["program"] == "organ").unwrap().clone();
        let version = organ["version"].as_i64().unwrap();
        let (s, html) = page(&app, "/admin/plans/organ", &jar).await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("name=\"rules[0].id\"") && html.contains("name=\"sample.from\""), "{html}");
        let (_, list) = page(&app, "/admin/plans", &jar).await;
        assert!(list.contains("condolence_visit") && list.contains("id=\"plan-marrow\""), "{list}");

        // The plan's own rules as the form sends them, the thirty-day call moved to 45 days.
        let mut pairs: Vec<(String, String)> = vec![("csrf".into(), csrf.clone()), ("version".into(), version.to_string())];
        for (i, r) in organ["rules"].as_array().unwrap().iter().enumerate() {
            for (k, v) in r.as_object().unwrap() {
                let v = match v { Value::String(s) => s.clone(), Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "), other => other.to_string() };
                let v = if r["id"] == "call_day_30" && k == "offset" { "45d".to_string() } else { v };
                pairs.push((format!("rules[{i}].{k}"), v));
            }
        }
        for (k, v) in [("sample.death_date", "2025-04-01"), ("sample.donation_date", "2025-04-01"),
                       ("sample.donation_kind", "kidney"), ("sample.mourning_days", "true"),
                       ("sample.from", "2025-04-01"), ("sample.to", "2027-03-31")] {
            pairs.push((k.into(), v.into()));
        }
        let encode = |pairs: &[(String, String)]| form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
        let mut preview = pairs.clone();
        preview.push(("preview".into(), "1".into()));
        let (s, _, html) = raw(&app, form("/admin/plans/organ", &jar, &encode(&preview))).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("id=\"preview\""), "{html}");
        // 头七 is six days after the death; the call at +45 days; Qingming 2026 falls on 5 April;
        // the first death anniversary; lunar dates beside them.
        assert!(html.contains("datetime=\"2025-04-07\"") && html.contains("头七"), "{html}");
        assert!(html.contains("datetime=\"2025-05-16\""), "the call 45 days on: {html}");
        assert!(html.contains("datetime=\"2026-04-05\"") && html.contains("清明"), "{html}");
        assert!(html.contains("datetime=\"2026-04-01\"") && html.contains("逝世一周年"), "{html}");
        assert!(html.contains("农历"), "{html}");
        assert!(field_of(&html, "rules[1].offset").contains("45d"), "the edit is kept");
        let (_, now) = app.get("/api/v1/care-plans", &admin.token).await;
        let same = now["items"].as_array().unwrap().iter().find(|p| p["program"] == "organ").unwrap();
        assert_eq!(same["version"].as_i64(), Some(version), "a preview saves nothing");
        let (_, _, en) = raw(&app, form("/admin/plans/organ?lang=en", &jar, &encode(&preview))).await;
        assert!(en.contains("First seventh day") && en.contains("Qingming") && en.contains("lunar month"), "{en}");

        // A bad rule: named beside its field, nothing saved.
        let mut bad = pairs.clone();
        for p in bad.iter_mut() {
            if p.0 == "rules[1].offset" { p.1 = "soon".into(); }
        }
        let (s, _, html) = raw(&app, form("/admin/plans/organ", &jar, &encode(&bad))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        let f = field_of(&html, "rules[1].offset");
        assert!(f.contains("aria-invalid=\"true\"") && f.contains("value=\"soon\""), "{f}");
        let mut bad_sample = preview.clone();
        for p in bad_sample.iter_mut() {
            if p.0 == "sample.to" { p.1 = "2024-01-01".into(); }
        }
        let (s, _, html) = raw(&app, form("/admin/plans/organ", &jar, &encode(&bad_sample))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field_of(&html, "sample.to").contains("aria-invalid=\"true\""), "{html}");

        // Saved: the same rules through the API's validation.
        let mut save = pairs.clone();
        save.push(("save".into(), "1".into()));
        let (s, _, _) = raw(&app, form("/admin/plans/organ", &jar, "version=1")).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "no CSRF token");
        let (s, h, html) = raw(&app, form("/admin/plans/organ", &jar, &encode(&save))).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{html}");
        assert_eq!(h[header::LOCATION], "/admin/plans/organ?saved=1");
        let (_, now) = app.get("/api/v1/care-plans", &admin.token).await;
        let saved = now["items"].as_array().unwrap().iter().find(|p| p["program"] == "organ").unwrap().clone();
        assert_eq!(saved["version"].as_i64(), Some(version + 1));
        let call = saved["rules"].as_array().unwrap().iter().find(|r| r["id"] == "call_day_30").unwrap();
        assert_eq!(call["offset"], "45d");
        assert_eq!(saved["rules"].as_array().unwrap().len(), organ["rules"].as_array().unwrap().len());
        // The old version again: a conflict, nothing saved.
        let (s, _, html) = raw(&app, form("/admin/plans/organ", &jar, &encode(&save))).await;
        assert_eq!(s, StatusCode::CONFLICT, "{html}");
        assert!(html.contains("有人修改了这个计划"), "{html}");
    }

    async fn each_template_previews_in_both_languages_on_sample_values(app) {
        let (_, jar, _) = admin_session(&app).await;
        let (s, html) = page(&app, "/admin/templates", &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        for t in ["anniversary_letter", "qingming", "spring_festival", "mourning_day", "marrow_followup",
                  "blood_donation_reminder", "blood_donation_resume", "second_donation_window",
                  "second_donation_window_closed", "memorial_invitation", "birthday"] {
            let (s, html) = page(&app, &format!("/admin/templates?template={t}"), &jar).await;
            assert_eq!(s, StatusCode::OK, "{t}: {html}");
            assert!(html.contains("id=\"preview-zh-CN\"") && html.contains("id=\"preview-en\""), "{t}: {html}");
            assert!(html.contains("lang=\"en\""), "{t}");
        }
        let path = "/admin/templates?template=mourning_day&donor_name=%E5%BC%A0%E4%B8%89&recipient_name=%E5%BC%A0%E5%A5%B3%E5%A3%AB&mourning_day=d49&date=2026-05-01";
        let (s, html) = page(&app, path, &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("张三") && html.contains("张女士") && html.contains("七七"), "{html}");
        assert!(html.contains("forty-ninth day"), "the English one too: {html}");
        assert!(html.contains("value=\"张三\""), "the sample values stay in the form");
        let (_, html) = page(&app, "/admin/templates?template=anniversary_letter&years=3&lang=en", &jar).await;
        assert!(html.contains("3 year"), "{html}");
        let (s, html) = page(&app, "/admin/templates?template=birthday&date=2026-02-30", &jar).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field_of(&html, "date").contains("aria-invalid=\"true\""), "{html}");
        let (s, _) = page(&app, "/admin/templates?template=nonsense", &jar).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    async fn the_keys_page_shows_versions_and_recovery_and_a_rotation_runs_to_the_end(app) {
        let (admin, jar, csrf) = admin_session(&app).await;
        let c = app.user("coordinator", Some("yinzhou")).await;
        for _ in 0..3 {
            app.create_case(&c.token, organ_case(&tag())).await;
        }
        let (s, html) = page(&app, "/admin/keys", &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("id=\"key-versions\"") && html.contains("从未轮换"), "{html}");
        assert!(html.contains("全部 3 个个案密钥均由第 1 版封装"), "{html}");
        // The test keyring is sealed to the server alone: no recovery recipient, and it says so.
        assert!(html.contains("id=\"key-recovery\"") && html.contains("未设置"), "{html}");
        assert!(html.contains("本服务器"), "{html}");

        let (s, _, _) = raw(&app, form("/admin/keys/rotate", &jar, "")).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "no CSRF token");
        let (s, h, html) = raw(&app, form("/admin/keys/rotate", &jar, &body(&[("csrf", &csrf)]))).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{html}");
        assert_eq!(h[header::LOCATION], "/admin/keys?rotated=2");
        // The re-wrap runs in the background; the page reports it until it is done.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let html = loop {
            let (_, html) = page(&app, "/admin/keys?rotated=2", &jar).await;
            if html.contains("全部 3 个个案密钥均由第 2 版封装") {
                break html;
            }
            assert!(html.contains("个个案密钥中已有"), "progress while it runs: {html}");
            assert!(std::time::Instant::now() < deadline, "the re-wrap did not finish: {html}");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        };
        assert!(html.contains("新的个案密钥现在使用第 2 版"), "{html}");
        assert!(!html.contains("从未轮换"), "{html}");
        // Cases still open after the re-wrap.
        let (s, list) = app.get("/api/v1/cases", &c.token).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(list["items"].as_array().unwrap().len(), 3);
        let (_, log) = app.get("/api/v1/audit?action=keys.rotate", &admin.token).await;
        assert!(log["items"].as_array().unwrap().iter().any(|e| e["actor_id"] == admin.id), "{log}");

        // An admin with TOTP gives a fresh code to rotate.
        let (_, enrol) = app.post("/api/v1/me/totp", &admin.token, serde_json::json!({})).await;
        let secret = enrol["secret"].as_str().unwrap().to_string();
        let code = totp_code(&secret, chrono::Utc::now().timestamp() - 30);
        assert_eq!(app.post("/api/v1/me/totp/confirm", &admin.token, serde_json::json!({"code": code})).await.0, StatusCode::NO_CONTENT);
        let (s, _, html) = raw(&app, form("/admin/keys/rotate", &jar, &body(&[("csrf", &csrf)]))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field_of(&html, "totp").contains("aria-invalid=\"true\""), "{html}");
        let code = totp_code(&secret, chrono::Utc::now().timestamp() + 30);
        let (s, h, html) = raw(&app, form("/admin/keys/rotate", &jar, &body(&[("csrf", &csrf), ("totp", &code)]))).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{html}");
        assert_eq!(h[header::LOCATION], "/admin/keys?rotated=3");
    }

    async fn the_admin_pages_are_refused_to_every_other_role_and_to_the_signed_out(app) {
        let (admin, _, _) = admin_session(&app).await;
        let mut paths: Vec<String> = PAGES.iter().map(|p| p.to_string()).collect();
        paths.push(format!("/admin/users/{}", admin.id));
        let posts = [
            "/admin/users/new".to_string(),
            format!("/admin/users/{}", admin.id),
            format!("/admin/users/{}/disabled", admin.id),
            format!("/admin/users/{}/setup-link", admin.id),
            format!("/admin/users/{}/totp-reset", admin.id),
            "/admin/plans/organ".to_string(),
            "/admin/keys/rotate".to_string(),
        ];
        for role in ["coordinator", "supervisor", "volunteer", "ethics_reviewer", "family"] {
            let u = app.user(role, Some("yinzhou")).await;
            let jar = page_session(&app, &u.username).await;
            for p in &paths {
                let (s, html) = page(&app, p, &jar).await;
                assert_eq!(s, StatusCode::FORBIDDEN, "{role} {p}: {html}");
                assert!(!html.contains(&admin.username), "{role} {p}: nothing of the account shown");
            }
            // With the session's own CSRF token, still refused, and nothing changes.
            let (_, html) = page(&app, "/account", &jar).await;
            let csrf = hidden(&html, "csrf");
            for p in &posts {
                let b = body(&[("csrf", &csrf), ("disabled", "true"), ("role", "coordinator"),
                               ("username", "intruder"), ("display_name", "x"), ("version", "1")]);
                let (s, _, html) = raw(&app, form(p, &jar, &b)).await;
                assert_eq!(s, StatusCode::FORBIDDEN, "{role} POST {p}: {html}");
            }
            if role != "family" {
                let (s, _) = page(&app, "/account/totp", &jar).await;
                assert_eq!(s, StatusCode::OK, "{role} enrols TOTP");
            }
        }
        let me = user(&app, &admin, &admin.id).await;
        assert_eq!((me["role"].as_str(), me["disabled"].as_bool()), (Some("admin"), Some(false)));
        assert!(!users(&app, &admin).await.iter().any(|u| u["username"] == "intruder"));
        for p in &paths {
            let (s, h, _) = raw(&app, get(p, "")).await;
            assert_eq!(s, StatusCode::SEE_OTHER, "signed out {p}");
            assert_eq!(h[header::LOCATION], "/login");
        }
        let (s, h, _) = raw(&app, get("/account/totp", "")).await;
        assert_eq!((s, h[header::LOCATION].to_str().unwrap()), (StatusCode::SEE_OTHER, "/login"));
    }
}

/// The `value` of the element with id `id`.
fn hidden_value(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let rest = &html[at..];
    let v = rest.find("value=\"").unwrap() + 7;
    rest[v..].split('"').next().unwrap().to_string()
}
