//! The care team's pages over HTTP: the one form convention (the API's names and domain code,
//! 422 with values kept and messages beside fields, 303, CSRF), the language, the case page and
//! its timeline, break-glass, contacts, search and the calendar feed.

use axum::http::{header, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{organ_case, tag, TestApp};
use crate::pages::{enc, field, form, get, hidden, page, page_session, raw};

/// A form body from its fields (encoded), as a browser sends it.
pub fn body(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The CSRF token of the signed-in page at `path`.
async fn csrf(app: &TestApp, jar: &str, path: &str) -> String {
    let (status, html) = page(app, path, jar).await;
    assert_eq!(status, StatusCode::OK, "{path}: {html}");
    hidden(&html, "csrf")
}

/// The words a person reads: the text between tags, without scripts and attributes.
fn visible_text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// English words of three or more letters in `text`, once the data values are taken out.
fn english_words(text: &str, data: &[&str]) -> Vec<String> {
    let mut t = text.to_string();
    for d in data {
        t = t.replace(d, " ");
    }
    t.split(|c: char| !c.is_ascii_alphabetic())
        .filter(|w| w.len() >= 3)
        .map(str::to_string)
        .collect()
}

fn case_form(t: &str, date: &str) -> Vec<(String, String)> {
    [
        ("program", "organ".to_string()),
        ("donor.full_name", format!("王芳{t}")),
        ("donor.sex", "f".into()),
        ("donor.birth_date", "1961-07-04".into()),
        ("donor.phone", "139 0000 2222".into()),
        ("donor.deceased", "true".into()),
        ("donor.death_date", "2025-03-10".into()),
        ("donation.date", date.into()),
        ("donation.kind", "kidney".into()),
        ("notes", "".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

on_both_backends! {
    async fn home_lists_the_first_twenty_overdue_and_links_to_all_of_them(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        let t = tag();
        let case = app.create_case(&c.token, organ_case(&t)).await;
        let id = case["id"].as_str().unwrap();
        for day in 1..=23 {
            let (s, b) = app.post(&format!("/api/v1/cases/{id}/tasks"), &c.token,
                                  json!({"kind": "call", "due_at": format!("2021-03-{day:02}")})).await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
        }
        let jar = page_session(&app, &c.username).await;
        let (s, html) = page(&app, "/", &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        let list = &html[html.find("id=\"overdue\"").expect("the overdue list")..];
        let list = &list[..list.find("</ul>").unwrap()];
        assert_eq!(list.matches("<li>").count(), 20, "{list}");
        assert!(list.contains(&format!(">Name{t}</a>")), "named by the donor: {list}");
        assert!(html.contains("href=\"/tasks?status=overdue\">查看全部 23 项逾期任务"), "{html}");
    }

    async fn a_case_made_in_the_form_is_the_case_the_api_makes(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        let jar = page_session(&app, &c.username).await;
        let token = csrf(&app, &jar, "/cases/new").await;
        let t = tag();
        let before = app.count_cases().await;

        // A date that does not exist: 422, the values kept, the message beside the field.
        let mut f = case_form(&t, "2025-02-30");
        f.push(("csrf".into(), token.clone()));
        let (status, _, html) = raw(&app, form("/cases/new", &jar, &body(&pairs(&f)))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        let date = field(&html, "donation.date");
        assert!(date.contains("aria-invalid=\"true\"") && date.contains("value=\"2025-02-30\""), "{date}");
        assert!(date.contains("aria-describedby=\"f-donation-date-error\"") && date.contains("id=\"f-donation-date-error\""), "{date}");
        assert!(date.contains("请填写有效日期"), "the message in zh-CN: {date}");
        assert!(field(&html, "donor.full_name").contains(&format!("value=\"王芳{t}\"")), "values kept");
        assert!(!field(&html, "donor.full_name").contains("aria-invalid"), "only bad fields are marked");
        assert!(html.contains("class=\"error-summary\""), "{html}");
        assert_eq!(app.count_cases().await, before, "nothing saved");

        // Without the CSRF token: 403, nothing saved.
        let good = case_form(&t, "2025-03-11");
        let (status, _, _) = raw(&app, form("/cases/new", &jar, &body(&pairs(&good)))).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(app.count_cases().await, before);

        let mut good = good;
        good.push(("csrf".into(), token));
        let (status, h, _) = raw(&app, form("/cases/new", &jar, &body(&pairs(&good)))).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let location = h[header::LOCATION].to_str().unwrap().to_string();
        let id = location.strip_prefix("/cases/").expect("to the case page").to_string();
        let (status, case) = app.get(&format!("/api/v1/cases/{id}"), &c.token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(case["donor"]["full_name"], format!("王芳{t}"));
        assert_eq!(case["donation"]["date"], "2025-03-11");
        assert_eq!(case["donor"]["deceased"], true);
        assert!(case["notes"].is_null(), "a blank field is absent: {case}");

        // Edited in the form: a blank optional field is cleared; the status changes.
        let token = csrf(&app, &jar, &format!("/cases/{id}/edit")).await;
        let (_, html) = page(&app, &format!("/cases/{id}/edit"), &jar).await;
        assert!(field(&html, "donor.full_name").contains(&format!("value=\"王芳{t}\"")), "the form holds the case");
        let mut edit: Vec<(String, String)> = case_form(&t, "2025-03-11").into_iter().filter(|(k, _)| k != "program").collect();
        edit.retain(|(k, _)| k != "donor.phone" && k != "notes");
        edit.push(("donor.phone".into(), "".into()));
        edit.push(("status".into(), "open".into()));
        edit.push(("notes".into(), "电话请在晚上六点后".into()));
        edit.push(("csrf".into(), token));
        let (status, _, html) = raw(&app, form(&format!("/cases/{id}/edit"), &jar, &body(&pairs(&edit)))).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
        let (_, case) = app.get(&format!("/api/v1/cases/{id}"), &c.token).await;
        assert!(case["donor"]["phone"].is_null(), "{case}");
        assert_eq!(case["notes"], "电话请在晚上六点后");

        // Exact search from the one box: by phone digits, by the whole name.
        let (_, list) = page(&app, &format!("/cases?q={}", enc(&format!("王芳{t}"))), &jar).await;
        assert!(list.contains(&format!("/cases/{id}\"")), "found by name: {list}");
        let (_, list) = page(&app, &format!("/cases?q={}", enc(&format!("王芳{}", &t[..4]))), &jar).await;
        assert!(!list.contains(&format!("/cases/{id}\"")), "only exact matches");
    }

    async fn pages_speak_zh_cn_unless_asked_and_remember_the_switch(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        let t = tag();
        let case = app.create_case(&c.token, organ_case(&t)).await;
        let id = case["id"].as_str().unwrap();
        let jar = page_session(&app, &c.username).await;
        let (status, html) = page(&app, &format!("/cases/{id}"), &jar).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("<html lang=\"zh-CN\">"));
        let donor = &case["donor"];
        let data: Vec<String> = [
            donor["full_name"].as_str().unwrap(), donor["email"].as_str().unwrap(),
            donor["address"].as_str().unwrap(), case["notes"].as_str().unwrap(),
            case["donation"]["hospital"].as_str().unwrap(), "yinzhou", "Test coordinator", "English",
        ].iter().map(|s| s.to_string()).collect();
        let data: Vec<&str> = data.iter().map(String::as_str).collect();
        let words = english_words(&visible_text(&html), &data);
        assert!(words.is_empty(), "English on a zh-CN page: {words:?}");

        // ?lang=en switches and is remembered in a cookie.
        let (status, h, html) = raw(&app, get(&format!("/cases/{id}?lang=en"), &jar)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains("<html lang=\"en\">") && html.contains("Timeline"), "{html}");
        let set = crate::pages::cookies(&h);
        let remembered = set.iter().find(|c| c.starts_with("dc_lang=en")).expect("the language cookie");
        assert!(remembered.contains("SameSite=Strict"));
        let (_, html) = page(&app, "/cases", &format!("{jar}; dc_lang=en")).await;
        assert!(html.contains("<html lang=\"en\">"));
        // Accept-Language chooses when nothing else does.
        let req = axum::http::Request::builder().uri("/login").header("accept-language", "en-GB,en;q=0.8")
            .body(axum::body::Body::empty()).unwrap();
        let (_, _, html) = raw(&app, req).await;
        assert!(html.contains("<html lang=\"en\">"));
    }

    async fn the_case_page_holds_one_timeline_and_supervisors_see_who_opened_it(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        let sup = app.user("supervisor", Some("yinzhou")).await;
        let t = tag();
        let case = app.create_case(&c.token, organ_case(&t)).await;
        let id = case["id"].as_str().unwrap();
        let (status, contact) = app.post(&format!("/api/v1/cases/{id}/contacts"), &c.token, json!({
            "full_name": format!("李明{t}"), "relationship": "spouse", "preferred_channel": "letter",
            "address": "宁波市海曙区一号"})).await;
        assert_eq!(status, StatusCode::CREATED, "{contact}");
        let due = (chrono::Utc::now() + chrono::Duration::days(3)).to_rfc3339();
        let (status, task) = app.post(&format!("/api/v1/cases/{id}/tasks"), &c.token,
            json!({"kind": "visit", "due_at": due, "contact_id": contact["id"]})).await;
        assert_eq!(status, StatusCode::CREATED, "{task}");

        let jar = page_session(&app, &c.username).await;
        let (_, html) = page(&app, &format!("/cases/{id}"), &jar).await;
        assert!(html.contains(&format!("李明{t}")), "the contact");
        let timeline = &html[html.find("class=\"timeline\"").expect("a timeline")..];
        assert!(timeline.contains("建立个案") && timeline.contains("安排探访"), "{timeline}");
        assert!(timeline.contains(&format!("/tasks/{}", task["id"].as_str().unwrap())));
        assert!(!timeline.contains("查看了个案"), "coordinators do not see the views");

        let sjar = page_session(&app, &sup.username).await;
        let (status, html) = page(&app, &format!("/cases/{id}"), &sjar).await;
        assert_eq!(status, StatusCode::OK);
        let timeline = &html[html.find("class=\"timeline\"").unwrap()..];
        assert!(timeline.contains("协调员 Test coordinator 查看了个案"), "{timeline}");

        // The printable summary holds the case and never the national ID.
        let (status, html) = page(&app, &format!("/cases/{id}/summary"), &jar).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(&format!("李明{t}")) && html.contains("class=\"printable summary\""));
        assert!(!html.contains(case["donor"]["national_id"].as_str().unwrap()));
    }

    async fn another_coordinator_opens_a_case_only_by_break_glass(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        let other = app.user("coordinator", Some("yinzhou")).await;
        let t = tag();
        let case = app.create_case(&c.token, organ_case(&t)).await;
        let id = case["id"].as_str().unwrap();
        let jar = page_session(&app, &other.username).await;
        let (status, html) = page(&app, &format!("/cases/{id}"), &jar).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(!html.contains(&format!("Name{t}")), "nothing of the case");
        assert!(html.contains(&format!("action=\"/cases/{id}/break-glass\"")), "the form: {html}");
        let token = hidden(&html, "csrf");

        let (status, _, html) = raw(&app, form(&format!("/cases/{id}/break-glass"), &jar,
            &body(&[("reason", "看看"), ("csrf", &token)]))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(field(&html, "reason").contains("aria-invalid=\"true\""), "{html}");
        assert!(field(&html, "reason").contains("value") || field(&html, "reason").contains("看看"));

        let reason = "家属来电询问探访安排，负责的协调员今天休假";
        let (status, _, _) = raw(&app, form(&format!("/cases/{id}/break-glass"), &jar,
            &body(&[("reason", reason), ("csrf", &token)]))).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (status, html) = page(&app, &format!("/cases/{id}"), &jar).await;
        assert_eq!(status, StatusCode::OK);
        assert!(html.contains(&format!("Name{t}")));
        let banner = &html[html.find("class=\"banner break-glass\"").expect("the banner")..];
        assert!(banner.contains("还剩") && banner.contains("分钟"), "{banner}");
    }

    async fn contacts_are_added_and_edited_with_the_familys_wishes(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        let t = tag();
        let case = app.create_case(&c.token, organ_case(&t)).await;
        let id = case["id"].as_str().unwrap();
        let jar = page_session(&app, &c.username).await;
        let token = csrf(&app, &jar, &format!("/cases/{id}/contacts/new")).await;
        let mut f = vec![
            ("full_name", format!("李明{t}")), ("relationship", "spouse".into()),
            ("preferred_channel", "email".into()), ("email", "not-an-address".into()),
            ("language", "zh-CN".into()), ("timezone", "Asia/Shanghai".into()),
            ("opted_out", "true".into()), ("do_not_contact_until", "2027-04-05".into()),
            ("csrf", token.clone()),
        ];
        let as_body = |f: &[(&str, String)]| body(&f.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>());
        let (status, _, html) = raw(&app, form(&format!("/cases/{id}/contacts/new"), &jar, &as_body(&f))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(field(&html, "email").contains("aria-invalid=\"true\""));
        assert!(field(&html, "opted_out").contains("checked"), "the tick is kept");
        f[3].1 = format!("li{t}@example.org");
        let (status, _, _) = raw(&app, form(&format!("/cases/{id}/contacts/new"), &jar, &as_body(&f))).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, case) = app.get(&format!("/api/v1/cases/{id}"), &c.token).await;
        let contact = case["contacts"].as_array().unwrap().iter()
            .find(|k| k["full_name"] == format!("李明{t}")).expect("the contact").clone();
        assert_eq!(contact["opted_out"], true);
        assert_eq!(contact["do_not_contact_until"], "2027-04-05");

        // Edited: the tick taken away and the pause cleared.
        let cid = contact["id"].as_str().unwrap();
        let (_, html) = page(&app, &format!("/contacts/{cid}/edit"), &jar).await;
        assert!(field(&html, "opted_out").contains("checked"));
        let f: Vec<(&str, String)> = f.into_iter()
            .filter(|(k, _)| *k != "opted_out" && *k != "do_not_contact_until")
            .chain([("do_not_contact_until", String::new())])
            .collect();
        let (status, _, html) = raw(&app, form(&format!("/contacts/{cid}/edit"), &jar, &as_body(&f))).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
        let (_, case) = app.get(&format!("/api/v1/cases/{id}"), &c.token).await;
        let contact: &Value = case["contacts"].as_array().unwrap().iter().find(|k| k["id"] == cid).unwrap();
        assert_eq!(contact["opted_out"], false);
        assert!(contact["do_not_contact_until"].is_null(), "{contact}");
    }

    async fn the_calendar_feed_is_secret_revocable_and_holds_nothing_personal(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        let t = tag();
        let case = app.create_case(&c.token, organ_case(&t)).await;
        let id = case["id"].as_str().unwrap();
        let due = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
        let (status, task) = app.post(&format!("/api/v1/cases/{id}/tasks"), &c.token,
            json!({"kind": "visit", "due_at": due})).await;
        assert_eq!(status, StatusCode::CREATED, "{task}");
        let jar = page_session(&app, &c.username).await;
        let token = csrf(&app, &jar, "/calendar").await;
        let (status, _, html) = raw(&app, form("/calendar/token", &jar, &format!("csrf={token}"))).await;
        assert_eq!(status, StatusCode::OK);
        let at = html.find("/calendar/feed/").expect("the address");
        let feed = html[at..].split('"').next().unwrap().to_string();
        assert!(feed.ends_with(".ics"));

        let (status, h, ics) = raw(&app, get(&feed, "")).await;
        assert_eq!(status, StatusCode::OK, "{ics}");
        assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/calendar"));
        assert!(ics.contains("BEGIN:VEVENT") && ics.contains(&format!("UID:{}@donorcare", task["id"].as_str().unwrap())), "{ics}");
        assert!(ics.contains("SUMMARY:探访"), "{ics}");
        for secret in [format!("Name{t}"), case["donor"]["national_id"].as_str().unwrap().to_string(), format!("{t} Harbour")] {
            assert!(!ics.contains(&secret), "the feed holds {secret}");
        }

        // A new address ends the old one; turning the feed off ends the new one.
        let (_, _, html) = raw(&app, form("/calendar/token", &jar, &format!("csrf={token}"))).await;
        let at = html.find("/calendar/feed/").unwrap();
        let second = html[at..].split('"').next().unwrap().to_string();
        assert_ne!(second, feed);
        assert_eq!(raw(&app, get(&feed, "")).await.0, StatusCode::NOT_FOUND);
        assert_eq!(raw(&app, get(&second, "")).await.0, StatusCode::OK);
        let (status, _, _) = raw(&app, form("/calendar/revoke", &jar, "csrf=forged")).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _, _) = raw(&app, form("/calendar/revoke", &jar, &format!("csrf={token}"))).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(raw(&app, get(&second, "")).await.0, StatusCode::NOT_FOUND);
        assert_eq!(raw(&app, get("/calendar/feed/nonsense.ics", "")).await.0, StatusCode::NOT_FOUND);
    }

    async fn roles_reach_only_their_pages(app) {
        let v = app.user("volunteer", Some("yinzhou")).await;
        let r = app.user("ethics_reviewer", None).await;
        for (user, path, want) in [
            (&v, "/cases", StatusCode::FORBIDDEN),
            (&v, "/cases/new", StatusCode::FORBIDDEN),
            (&r, "/cases", StatusCode::FORBIDDEN),
            (&v, "/calendar", StatusCode::OK),
            (&r, "/calendar", StatusCode::FORBIDDEN),
        ] {
            let jar = page_session(&app, &user.username).await;
            let (status, html) = page(&app, path, &jar).await;
            assert_eq!(status, want, "{} {path}: {html}", user.username);
        }
        // Signed out, a page sends the browser to sign in.
        let (status, h, _) = raw(&app, get("/cases", "")).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], "/login");
    }

    async fn staff_choose_their_language_and_change_their_password_on_the_account_page(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        let jar = page_session(&app, &c.username).await;
        let other = page_session(&app, &c.username).await;
        let token = csrf(&app, &jar, "/account").await;
        let (status, _, html) = raw(&app, form("/account/language", &jar, &format!("csrf={token}&language=fr"))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(field(&html, "language").contains("aria-invalid=\"true\""), "{html}");
        let (status, _, _) = raw(&app, form("/account/language", &jar, &format!("csrf={token}&language=en"))).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        // The account's choice holds without the switch's cookie, over Accept-Language.
        let req = axum::http::Request::builder().uri("/cases").header("cookie", &jar)
            .header("accept-language", "zh-CN").body(axum::body::Body::empty()).unwrap();
        let (_, _, html) = raw(&app, req).await;
        assert!(html.contains("<html lang=\"en\">"), "{html}");

        // A wrong current password is named; a good change keeps this session and ends the other.
        let bad = body(&[("csrf", &token), ("current_password", "nope"), ("new_password", "a new long password 2026"),
                         ("new_password_confirm", "a new long password 2026")]);
        let (status, _, html) = raw(&app, form("/account/password", &jar, &bad)).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(field(&html, "current_password").contains("aria-invalid=\"true\""));
        let good = body(&[("csrf", &token), ("current_password", crate::helpers::PASSWORD),
                          ("new_password", "a new long password 2026"), ("new_password_confirm", "a new long password 2026")]);
        let (status, _, _) = raw(&app, form("/account/password", &jar, &good)).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(page(&app, "/cases", &jar).await.0, StatusCode::OK, "this session stays");
        assert_eq!(raw(&app, get("/cases", &other)).await.0, StatusCode::SEE_OTHER, "the other session ended");
        app.login(&c.username, "a new long password 2026").await;
    }

    async fn tasks_are_planned_previewed_moved_and_cancelled_in_the_browser(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        let t = tag();
        let case = app.create_case(&c.token, organ_case(&t)).await;
        let id = case["id"].as_str().unwrap();
        let (_, contact) = app.post(&format!("/api/v1/cases/{id}/contacts"), &c.token, json!({
            "full_name": format!("李明{t}"), "relationship": "spouse", "preferred_channel": "letter",
            "address": "宁波市海曙区一号", "language": "zh-CN"})).await;
        let cid = contact["id"].as_str().unwrap().to_string();
        let jar = page_session(&app, &c.username).await;
        let new = format!("/cases/{id}/tasks/new");
        let token = csrf(&app, &jar, &new).await;
        async fn count(app: &TestApp, token: String, case: &str) -> usize {
            let path = format!("/api/v1/tasks?case_id={case}&limit=200");
            app.get(&path, &token).await.1["items"].as_array().unwrap().len()
        }
        let before = count(&app, c.token.clone(), id).await;

        // A preview of an outreach: the letter as the contact will read it, and nothing saved.
        let day = (chrono::Utc::now() + chrono::Duration::days(5)).date_naive().to_string();
        let f = [("csrf", token.as_str()), ("kind", "outreach"), ("due_at", &day), ("contact_id", &cid),
                 ("template", "anniversary_letter"), ("preview", "1")];
        let (status, _, html) = raw(&app, form(&new, &jar, &body(&f))).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        let preview = &html[html.find("class=\"panel preview\"").expect("the preview")..];
        assert!(preview.contains(&format!("李明{t}")) || preview.contains(&format!("Name{t}")), "{preview}");
        assert!(preview.contains("农历"), "the lunar date beside the day: {preview}");
        assert_eq!(count(&app, c.token.clone(), id).await, before, "a preview saves nothing");

        // A bad day: 422 with the value kept.
        let f = [("csrf", token.as_str()), ("kind", "visit"), ("due_at", "2026-13-01"), ("contact_id", &cid)];
        let (status, _, html) = raw(&app, form(&new, &jar, &body(&f))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field(&html, "due_at").contains("aria-invalid=\"true\"") && field(&html, "due_at").contains("2026-13-01"), "{html}");
        assert_eq!(count(&app, c.token.clone(), id).await, before);

        // A bad time is named beside the time, not the day.
        let f = [("csrf", token.as_str()), ("kind", "visit"), ("due_at", &day), ("due_time", "25:99"), ("contact_id", &cid)];
        let (status, _, html) = raw(&app, form(&new, &jar, &body(&f))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        let time = field(&html, "due_time");
        assert!(time.contains("aria-invalid=\"true\"") && time.contains("25:99") && time.contains("09:30"), "{time}");
        assert!(!field(&html, "due_at").contains("aria-invalid"), "the day was fine: {html}");
        assert_eq!(count(&app, c.token.clone(), id).await, before);

        let f = [("csrf", token.as_str()), ("kind", "visit"), ("due_at", &day), ("due_time", "14:30"), ("contact_id", &cid)];
        let (status, h, _) = raw(&app, form(&new, &jar, &body(&f))).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let task = h[header::LOCATION].to_str().unwrap().to_string();
        let tid = task.strip_prefix("/tasks/").unwrap().to_string();
        let (_, got) = app.get(&format!("/api/v1/tasks/{tid}"), &c.token).await;
        assert!(got["due_at"].as_str().unwrap().contains("T06:30:00"), "14:30 in Shanghai: {got}");
        let (_, list) = page(&app, "/tasks", &jar).await;
        assert!(list.contains(&format!("/tasks/{tid}\"")), "{list}");
        assert!(list.contains(&format!(">Name{t}</a>")), "each task is named by its donor: {list}");

        // Reschedule without a reason: 422; with one: moved. Then cancelled.
        let later = (chrono::Utc::now() + chrono::Duration::days(9)).date_naive().to_string();
        let path = format!("/tasks/{tid}/reschedule");
        let token = csrf(&app, &jar, &path).await;
        let (status, _, html) = raw(&app, form(&path, &jar, &body(&[("csrf", &token), ("due_at", &later)]))).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(field(&html, "reason").contains("aria-invalid=\"true\""));
        let (status, _, _) = raw(&app, form(&path, &jar, &body(&[("csrf", &token), ("due_at", &later), ("reason", "家属外出")]))).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, got) = app.get(&format!("/api/v1/tasks/{tid}"), &c.token).await;
        assert!(got["due_at"].as_str().unwrap().starts_with(&later), "{got}");
        let path = format!("/tasks/{tid}/cancel");
        let (status, _, _) = raw(&app, form(&path, &jar, &body(&[("csrf", &token), ("reason", "家属婉拒探访")]))).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let (_, got) = app.get(&format!("/api/v1/tasks/{tid}"), &c.token).await;
        assert_eq!(got["status"], "cancelled");
    }
}
