//! The family portal's pages: what is coming and what was sent (a portal message read there),
//! preferences with the one form convention, consents and withdrawing one after being told what
//! it changes, who opened the file, signing out on every device, and that a family reaches
//! nothing of another's while staff and strangers are refused.

use std::sync::Arc;

use axum::http::{header, StatusCode};
use chrono::{Duration, Utc};
use serde_json::{json, Value};

use donorcare::domain::outreach::{run_due, Channels};
use donorcare::domain::Services;

use crate::helpers::{organ_case, tag, TestApp, TestUser};
use crate::pages::{cookie_value, cookies, enc, field, form, get, hidden, page, page_session, raw};

/// A family: the coordinator of its case, the case, the contact (a spouse with a phone and no
/// email, writing preference `channel`) with a contact consent for SMS and the portal, and the
/// contact's family account, signed in through the API (`token`) and the pages (`jar`).
struct Family {
    coord: TestUser,
    case: String,
    contact: String,
    username: String,
    token: String,
    jar: String,
    consent: String,
}

async fn family(app: &TestApp, name: &str) -> Family {
    let coord = app.user("coordinator", Some("yinzhou")).await;
    let case = app.create_case(&coord.token, organ_case(&tag())).await;
    let case = case["id"].as_str().unwrap().to_string();
    let (s, c) = app
        .post(
            &format!("/api/v1/cases/{case}/contacts"),
            &coord.token,
            json!({"full_name": name, "relationship": "spouse", "phone": "13800001111",
                   "preferred_channel": "portal"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let contact = c["id"].as_str().unwrap().to_string();
    let (s, cc) = app
        .post(
            &format!("/api/v1/cases/{case}/consents"),
            &coord.token,
            json!({"kind": "contact", "subject": contact, "given_by": contact,
                   "method": "electronic", "document": "contact-zh-CN-v1",
                   "signed_at": "2025-04-01", "scope": {"channels": ["sms", "portal"]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{cc}");
    let (username, token) = app.family_account(&coord.token, &contact).await;
    let jar = page_session(app, &username).await;
    Family {
        coord,
        case,
        contact,
        username,
        token,
        jar,
        consent: cc["id"].as_str().unwrap().to_string(),
    }
}

/// Plan one message to the family's contact, `days` from now, on `channel`; its id.
async fn plan_message(app: &TestApp, f: &Family, days: i64, channel: &str) -> String {
    let due = (Utc::now() + Duration::days(days)).to_rfc3339();
    let (s, t) = app
        .post(
            &format!("/api/v1/cases/{}/tasks", f.case),
            &f.coord.token,
            json!({"kind": "outreach", "due_at": due, "contact_id": f.contact,
                   "template": "memorial_invitation", "channel": channel}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{t}");
    let (_, list) = app
        .get(
            &format!("/api/v1/cases/{}/outreach?limit=200", f.case),
            &f.coord.token,
        )
        .await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["task_id"] == t["id"])
        .expect("the task's message")["id"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Deliver what is due now, at any hour, through the in-process channels.
async fn deliver(app: &TestApp) {
    let mut svc: Services = app.state.svc.clone();
    let mut s = (*svc.schedule).clone();
    s.waking = (0, 24);
    svc.schedule = Arc::new(s);
    let ch = Channels::new(svc.schedule.clone()).expect("channels");
    run_due(&svc, &ch, "test-worker", Utc::now, || false)
        .await
        .expect("run_due");
}

async fn message_status(app: &TestApp, f: &Family, id: &str) -> String {
    let (_, list) = app
        .get(
            &format!("/api/v1/cases/{}/outreach?limit=200", f.case),
            &f.coord.token,
        )
        .await;
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .expect("the message")["status"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn consent_status(app: &TestApp, f: &Family, id: &str) -> Value {
    let (s, c) = app
        .get(&format!("/api/v1/consents/{id}"), &f.coord.token)
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    c["status"].clone()
}

/// A publicity consent the family's contact gave for the donor; its id.
async fn publicity(app: &TestApp, f: &Family) -> String {
    let (s, c) = app
        .post(
            &format!("/api/v1/cases/{}/consents", f.case),
            &f.coord.token,
            json!({"kind": "publicity", "subject": "donor", "given_by": f.contact,
                   "method": "written", "document": "publicity-zh-CN-v1",
                   "signed_at": "2025-04-02"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    c["id"].as_str().unwrap().to_string()
}

/// Every page of the portal, for a family with consent `consent`.
fn portal_pages(consent: &str) -> Vec<String> {
    vec![
        "/me".into(),
        "/me/messages".into(),
        "/me/messages?show=coming".into(),
        "/me/preferences".into(),
        "/me/consents".into(),
        format!("/me/consents/{consent}/withdraw"),
        "/me/access-log".into(),
    ]
}

on_both_backends! {
    async fn every_portal_page_renders_for_the_family_in_chinese_and_in_english(app) {
        let f = family(&app, "陈先生").await;
        plan_message(&app, &f, 20, "sms").await;
        let zh = [
            ("/me", "我们与您的联系"),
            ("/me/messages", "我们还没有给您寄过消息"),
            ("/me/messages?show=coming", "通过短信"),
            ("/me/preferences", "您希望我们用哪种方式联系您"),
            ("/me/consents", "同意我们与您联系"),
            (&format!("/me/consents/{}/withdraw", f.consent), "撤回之后会有这些变化"),
            ("/me/access-log", "我们只显示他们的职务和名字"),
        ];
        for (path, words) in zh {
            let (s, h, html) = raw(&app, get(path, &f.jar)).await;
            assert_eq!(s, StatusCode::OK, "{path}: {html}");
            assert_eq!(h[header::CACHE_CONTROL], "no-store", "{path}");
            assert!(html.contains("<html lang=\"zh-CN\">"), "{path}");
            assert!(html.contains(words), "{path} says {words:?}: {html}");
            // The family's navigation, the page's own item current.
            assert!(html.contains("href=\"/me/access-log\""), "{path}");
            let current = html.matches("aria-current=\"page\"").count();
            assert!(current <= 2, "{path}: one navigation item current (and a tab): {html}");
            for english in ["Messages", "Consents", "Coming up", "Sign out on every device"] {
                assert!(!html.contains(english), "{path}: no English ({english}) on a zh-CN page");
            }
        }
        let en = [
            ("/me?lang=en", "Keeping in touch"),
            ("/me/messages?lang=en", "We have not sent you anything yet"),
            ("/me/messages?show=coming&lang=en", "by text message"),
            ("/me/preferences?lang=en", "How would you like us to contact you?"),
            ("/me/consents?lang=en", "Consent for us to contact you"),
            (&format!("/me/consents/{}/withdraw?lang=en", f.consent), "What changes when you withdraw"),
            ("/me/access-log?lang=en", "We show only their role and name"),
        ];
        for (path, words) in en {
            let (s, html) = page(&app, path, &f.jar).await;
            assert_eq!(s, StatusCode::OK, "{path}: {html}");
            assert!(html.contains("<html lang=\"en\">"), "{path}");
            assert!(html.contains(words), "{path} says {words:?}: {html}");
        }
        // Signed in through the pages, the family's home is the portal.
        let (s, h, _) = raw(&app, get("/", &f.jar)).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], "/me");
    }

    async fn a_family_may_choose_wechat_once_their_coordinator_has_their_wechat_id(app) {
        let f = family(&app, "周女士").await;
        let (s, html) = page(&app, "/me/preferences", &f.jar).await;
        assert_eq!(s, StatusCode::OK);
        let way = field(&html, "preferred_channel");
        assert!(way.contains("value=\"wechat\"") && way.contains("微信"), "{way}");
        let csrf = hidden(&html, "csrf");
        let wechat = format!("csrf={csrf}&preferred_channel=wechat&language=zh-CN");

        // No WeChat ID on file: said on the choice of way, nothing saved.
        let (s, _, html) = raw(&app, form("/me/preferences", &f.jar, &wechat)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        let way = field(&html, "preferred_channel");
        assert!(way.contains("aria-invalid=\"true\"") && way.contains("还没有您的微信号"), "{way}");
        assert_eq!(app.get("/api/v1/me/preferences", &f.token).await.1["preferred_channel"], "portal");

        let (s, b) = app.patch(&format!("/api/v1/contacts/{}", f.contact), &f.coord.token,
            json!({"wechat_id": "zhou_li_1975"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, _, _) = raw(&app, form("/me/preferences", &f.jar, &wechat)).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(app.get("/api/v1/me/preferences", &f.token).await.1["preferred_channel"], "wechat");
        let (_, html) = page(&app, "/me/preferences", &f.jar).await;
        assert!(field(&html, "preferred_channel").contains("value=\"wechat\" checked"), "{html}");
    }

    async fn refused_preferences_keep_their_values_and_save_nothing_then_they_are_saved(app) {
        let f = family(&app, "陈先生").await;
        let (_, before) = app.get("/api/v1/me/preferences", &f.token).await;
        let (s, html) = page(&app, "/me/preferences", &f.jar).await;
        assert_eq!(s, StatusCode::OK);
        assert!(field(&html, "preferred_channel").contains("value=\"portal\" checked"), "{html}");
        for name in ["preferred_channel", "language", "mourning_days", "skip_festivals",
                     "do_not_contact_until", "opted_out"] {
            let f = field(&html, name);
            assert!(f.contains("<label") || f.contains("<legend"), "{name} has a visible label");
        }
        let csrf = hidden(&html, "csrf");

        // A date that is not one: 422, the values kept, the message beside the field.
        let bad = format!("csrf={csrf}&preferred_channel=sms&language=zh-CN&mourning_days=true\
                           &skip_festivals=qingming&skip_festivals=mid_autumn\
                           &do_not_contact_until=2026-02-30&opted_out=true");
        let (s, _, html) = raw(&app, form("/me/preferences", &f.jar, &bad)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        let date = field(&html, "do_not_contact_until");
        assert!(date.contains("aria-invalid=\"true\""), "{date}");
        assert!(date.contains("aria-describedby=\"f-do-not-contact-until-hint f-do-not-contact-until-error\""), "{date}");
        assert!(date.contains("id=\"f-do-not-contact-until-error\"") && date.contains("有效的日期"), "{date}");
        assert!(date.contains("value=\"2026-02-30\""), "the value is kept: {date}");
        assert!(field(&html, "preferred_channel").contains("value=\"sms\" checked"), "{html}");
        assert!(field(&html, "opted_out").contains("checked"), "{html}");
        assert!(field(&html, "mourning_days").contains("checked"), "{html}");
        let festivals = field(&html, "skip_festivals");
        assert!(festivals.contains("value=\"qingming\" checked") && festivals.contains("value=\"mid_autumn\" checked"), "{festivals}");
        assert!(html.contains("error-summary"), "{html}");
        let (_, after) = app.get("/api/v1/me/preferences", &f.token).await;
        assert_eq!(after, before, "nothing saved");

        // A way we have no address for is said on the choice of way.
        let no_email = format!("csrf={csrf}&preferred_channel=email&language=zh-CN");
        let (s, _, html) = raw(&app, form("/me/preferences", &f.jar, &no_email)).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        let way = field(&html, "preferred_channel");
        assert!(way.contains("aria-invalid=\"true\"") && way.contains("还没有您的电子邮箱"), "{way}");
        assert_eq!(app.get("/api/v1/me/preferences", &f.token).await.1, before, "nothing saved");

        // Without the CSRF token: refused, nothing saved.
        let good = "preferred_channel=sms&language=en&mourning_days=true\
                    &skip_festivals=qingming&do_not_contact_until=2030-01-31&opted_out=true";
        let (s, _, _) = raw(&app, form("/me/preferences", &f.jar, good)).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(app.get("/api/v1/me/preferences", &f.token).await.1, before, "nothing saved");

        // Saved: 303 back with a notice, and the API reads the same.
        let (s, h, _) = raw(&app, form("/me/preferences", &f.jar, &format!("csrf={csrf}&{good}"))).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], "/me/preferences?saved=1");
        assert_eq!(cookie_value(&cookies(&h), "dc_lang").as_deref(), Some("en"), "the pages follow");
        let (_, prefs) = app.get("/api/v1/me/preferences", &f.token).await;
        assert_eq!(prefs["preferred_channel"], "sms");
        assert_eq!(prefs["language"], "en");
        assert_eq!(prefs["opted_out"], true);
        assert_eq!(prefs["mourning_days"], true);
        assert_eq!(prefs["do_not_contact_until"], "2030-01-31");
        assert_eq!(prefs["skip_festivals"], json!(["qingming"]));
        let (_, html) = page(&app, "/me/preferences?saved=1", &f.jar).await;
        assert!(html.contains("<html lang=\"en\">"), "the contact's language is the pages'");
        assert!(html.contains("Your choices are saved."), "{html}");
        assert!(field(&html, "do_not_contact_until").contains("value=\"2030-01-31\""), "{html}");
        let (_, home) = page(&app, "/me", &f.jar).await;
        assert!(home.contains("You have asked us not to contact you"), "{home}");

        // Unticking everything and clearing the date: back in touch.
        let back = format!("csrf={csrf}&preferred_channel=portal&language=zh-CN&do_not_contact_until=");
        let (s, _, html) = raw(&app, form("/me/preferences", &f.jar, &back)).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{html}");
        let (_, prefs) = app.get("/api/v1/me/preferences", &f.token).await;
        assert_eq!((prefs["opted_out"].as_bool(), prefs["mourning_days"].as_bool()), (Some(false), Some(false)));
        assert_eq!(prefs["do_not_contact_until"], Value::Null);
        assert_eq!(prefs["skip_festivals"], json!([]));
    }

    async fn a_portal_message_is_read_on_the_messages_page_and_what_is_coming_is_on_the_home(app) {
        let f = family(&app, "陈先生").await;
        let sent = plan_message(&app, &f, 0, "portal").await;
        deliver(&app).await;
        assert_eq!(message_status(&app, &f, &sent).await, "sent");
        plan_message(&app, &f, 30, "sms").await;

        let (_, inbox) = app.get("/api/v1/me/outreach", &f.token).await;
        let item = inbox["items"].as_array().unwrap().iter().find(|m| m["id"] == sent.as_str()).unwrap().clone();
        let body = item["message"]["body"].as_str().unwrap();
        let subject = item["message"]["subject"].as_str().unwrap();
        let (s, html) = page(&app, "/me/messages", &f.jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        let first_line = body.lines().find(|l| !l.trim().is_empty()).unwrap().trim();
        assert!(html.contains(&handlebars::html_escape(first_line)), "the text is read here: {html}");
        assert!(html.contains(&handlebars::html_escape(subject)), "{html}");
        assert!(html.contains("陈先生"), "{html}");
        assert!(html.contains("在这个网站上"), "{html}");

        let (_, home) = page(&app, "/me", &f.jar).await;
        assert!(home.contains("id=\"coming\"") && home.contains("通过短信"), "what is coming: {home}");
        assert!(home.contains("纪念活动邀请"), "what it is: {home}");
        assert!(home.contains(&format!("href=\"/me/messages#m-{sent}\"")), "what was sent: {home}");
        let (_, coming) = page(&app, "/me/messages?show=coming", &f.jar).await;
        assert!(coming.contains("通过短信") && !coming.contains(&handlebars::html_escape(first_line)), "{coming}");
        // Nonsense paging is the first page, never an error.
        let (s, _) = page(&app, "/me/messages?page=zz", &f.jar).await;
        assert_eq!(s, StatusCode::OK);
        let (s, _) = page(&app, "/me/messages?page=999", &f.jar).await;
        assert_eq!(s, StatusCode::OK);
    }

    async fn a_family_is_told_what_withdrawing_changes_then_the_withdrawal_takes_effect(app) {
        let f = family(&app, "陈先生").await;
        let pending = plan_message(&app, &f, 30, "portal").await;
        let named = publicity(&app, &f).await;
        let (s, donation) = app
            .post(&format!("/api/v1/cases/{}/consents", f.case), &f.coord.token,
                  json!({"kind": "donation", "subject": "donor", "given_by": f.contact, "method": "written",
                         "document": "donation-zh-CN-v1", "signed_at": "2025-03-10T10:00:00+08:00"}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{donation}");
        let donation = donation["id"].as_str().unwrap().to_string();

        let (_, list) = page(&app, "/me/consents", &f.jar).await;
        assert!(list.contains(&format!("href=\"/me/consents/{}/withdraw\"", f.consent)), "{list}");
        assert!(list.contains(&format!("href=\"/me/consents/{named}/withdraw\"")), "{list}");
        assert!(!list.contains(&format!("/me/consents/{donation}/withdraw")), "a donation is withdrawn with the coordinator");
        assert!(list.contains("可以联系的方式：短信、本网站"), "{list}");

        // Before confirming: in plain words what changes.
        let path = format!("/me/consents/{}/withdraw", f.consent);
        let (s, html) = page(&app, &path, &f.jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("我们将不再通过短信、本网站与您联系。"), "{html}");
        assert!(html.contains("已经安排好、还没有寄出的消息会一并取消。"), "{html}");
        assert!(field(&html, "reason").contains("<label"), "{html}");
        let (_, html2) = page(&app, &format!("/me/consents/{named}/withdraw"), &f.jar).await;
        assert!(html2.contains("捐献者的姓名将不再出现在纪念活动、网站和宣传材料中。"), "{html2}");
        let (_, html3) = page(&app, &format!("/me/consents/{named}/withdraw?lang=en"), &f.jar).await;
        assert!(html3.contains("The donor&#x27;s name will no longer appear"), "{html3}");
        let (s, other) = page(&app, &format!("/me/consents/{donation}/withdraw"), &f.jar).await;
        assert_eq!(s, StatusCode::OK);
        assert!(other.contains("请联系您的协调员") && !other.contains("name=\"reason\""), "{other}");

        // No reason: 422 beside the field, nothing withdrawn; no CSRF token: 403.
        let csrf = hidden(&html, "csrf");
        let (s, _, html) = raw(&app, form(&path, &f.jar, &format!("csrf={csrf}&reason=+"))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field(&html, "reason").contains("aria-invalid=\"true\""), "{html}");
        assert!(html.contains("我们将不再通过短信、本网站与您联系。"), "the same confirmation: {html}");
        let (s, _, _) = raw(&app, form(&path, &f.jar, "reason=stop")).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(consent_status(&app, &f, &f.consent).await, "active");

        // Confirmed: withdrawn, and the planned portal message is cancelled with it.
        let body = format!("csrf={csrf}&reason={}", enc("暂时不想收到消息"));
        let (s, h, _) = raw(&app, form(&path, &f.jar, &body)).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], "/me/consents?withdrawn=1");
        assert_eq!(consent_status(&app, &f, &f.consent).await, "withdrawn");
        assert_eq!(message_status(&app, &f, &pending).await, "cancelled");
        let (_, list) = page(&app, "/me/consents?withdrawn=1", &f.jar).await;
        assert!(list.contains("已经为您撤回") && list.contains("已撤回"), "{list}");
        assert!(!list.contains(&format!("href=\"/me/consents/{}/withdraw\"", f.consent)), "{list}");
        let (_, again) = page(&app, &path, &f.jar).await;
        assert!(again.contains("这份同意已经撤回或已到期") && !again.contains("name=\"reason\""), "{again}");
        let (s, _, _) = raw(&app, form(&path, &f.jar, &body)).await;
        assert_eq!(s, StatusCode::CONFLICT);
    }

    async fn the_access_log_says_who_opened_the_file_by_role_and_name_and_break_glass_plainly(app) {
        let f = family(&app, "陈先生").await;
        let (s, _) = app.get(&format!("/api/v1/cases/{}", f.case), &f.coord.token).await;
        assert_eq!(s, StatusCode::OK);
        let other = app.user("coordinator", None).await;
        let (s, g) = app.post(&format!("/api/v1/cases/{}/break-glass", f.case), &other.token,
                              json!({"reason": "the family called the hotline and the coordinator is away"})).await;
        assert_eq!(s, StatusCode::OK, "{g}");
        let (s, _) = app.get(&format!("/api/v1/cases/{}", f.case), &other.token).await;
        assert_eq!(s, StatusCode::OK);

        let (s, html) = page(&app, "/me/access-log", &f.jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("协调员 Test coordinator"), "{html}");
        assert!(html.contains("查看了您家的档案"), "{html}");
        assert!(html.contains("因为紧急情况打开了您家的档案"), "{html}");
        assert!(html.contains("这是一次紧急访问"), "{html}");
        assert!(html.contains("is-break-glass"), "{html}");
        for who in [&f.coord, &other] {
            assert!(!html.contains(&who.username), "no staff username: {html}");
            assert!(!html.contains(&who.id), "no staff id: {html}");
        }
        assert!(!html.contains("hotline"), "no break-glass reason: {html}");
        assert!(!html.contains('@'), "no email address: {html}");
        // Paged: a cursor not of the listing is the first page.
        let (s, h, _) = raw(&app, get("/me/access-log?cursor=nope", &f.jar)).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], "/me/access-log");
    }

    async fn signing_out_on_every_device_ends_the_other_sessions_and_tokens(app) {
        let f = family(&app, "陈先生").await;
        let other_device = page_session(&app, &f.username).await;
        let (_, html) = page(&app, "/me", &f.jar).await;
        assert!(html.contains("href=\"/account\""), "the password is changed on the account page");
        let csrf = hidden(&html, "csrf");
        let (s, _, _) = raw(&app, form("/me/sign-out-everywhere", &f.jar, "")).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "no CSRF token");
        assert_eq!(page(&app, "/me", &other_device).await.0, StatusCode::OK, "still signed in");

        let (s, h, _) = raw(&app, form("/me/sign-out-everywhere", &f.jar, &format!("csrf={csrf}"))).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], "/login");
        assert_eq!(cookie_value(&cookies(&h), "dc_session").as_deref(), Some(""));
        for jar in [&f.jar, &other_device] {
            let (s, h, _) = raw(&app, get("/me", jar)).await;
            assert_eq!(s, StatusCode::SEE_OTHER);
            assert_eq!(h[header::LOCATION], "/login");
        }
        assert_eq!(app.get("/api/v1/me/preferences", &f.token).await.0, StatusCode::UNAUTHORIZED);
        // On the record.
        let admin = app.user("admin", None).await;
        let (_, log) = app.get("/api/v1/audit?action=auth.sessions_ended", &admin.token).await;
        assert!(log["items"].as_array().unwrap().iter().any(|e| e["target_id"].as_str().is_some()), "{log}");
        // Signing in again works.
        assert_eq!(page(&app, "/me", &page_session(&app, &f.username).await).await.0, StatusCode::OK);
    }

    async fn a_family_reaches_nothing_of_another_and_staff_and_strangers_are_refused(app) {
        let a = family(&app, "陈先生").await;
        let b = family(&app, "林女士").await;
        let b_msg = plan_message(&app, &b, 0, "portal").await;
        deliver(&app).await;
        assert_eq!(message_status(&app, &b, &b_msg).await, "sent");
        let b_named = publicity(&app, &b).await;

        // Family A: B's messages are not on A's pages; B's consents are not found.
        for path in ["/me", "/me/messages", "/me/messages?show=coming"] {
            let (s, html) = page(&app, path, &a.jar).await;
            assert_eq!(s, StatusCode::OK);
            assert!(!html.contains("林女士") && !html.contains(&b_msg), "{path}: {html}");
        }
        let (_, consents) = page(&app, "/me/consents", &a.jar).await;
        assert!(!consents.contains(&b.consent) && !consents.contains(&b_named), "{consents}");
        let (_, html) = page(&app, "/me", &a.jar).await;
        let csrf = hidden(&html, "csrf");
        for id in [&b.consent, &b_named] {
            let path = format!("/me/consents/{id}/withdraw");
            assert_eq!(page(&app, &path, &a.jar).await.0, StatusCode::NOT_FOUND, "{path}");
            let (s, _, _) = raw(&app, form(&path, &a.jar, &format!("csrf={csrf}&reason=stop"))).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(consent_status(&app, &b, id).await, "active");
        }
        assert_eq!(page(&app, "/me/consents/nonexistent/withdraw", &a.jar).await.0, StatusCode::NOT_FOUND);

        // Staff: every portal page is refused (403), and so is every form.
        let pages = portal_pages(&a.consent);
        for role in ["admin", "supervisor", "coordinator", "ethics_reviewer", "volunteer"] {
            let u = app.user(role, Some("yinzhou")).await;
            let jar = page_session(&app, &u.username).await;
            for path in &pages {
                let (s, html) = page(&app, path, &jar).await;
                assert_eq!(s, StatusCode::FORBIDDEN, "{role} {path}: {html}");
            }
            let (_, html) = page(&app, "/account", &jar).await;
            let csrf = hidden(&html, "csrf");
            for (path, body) in [
                ("/me/preferences".to_string(), format!("csrf={csrf}&preferred_channel=sms")),
                (format!("/me/consents/{}/withdraw", a.consent), format!("csrf={csrf}&reason=stop")),
                ("/me/sign-out-everywhere".to_string(), format!("csrf={csrf}")),
            ] {
                let (s, _, html) = raw(&app, form(&path, &jar, &body)).await;
                assert_eq!(s, StatusCode::FORBIDDEN, "{role} POST {path}: {html}");
            }
            assert_eq!(page(&app, "/account", &jar).await.0, StatusCode::OK, "{role} still signed in");
        }
        assert_eq!(consent_status(&app, &a, &a.consent).await, "active");

        // Signed out: to the sign-in page, for reading and for forms alike.
        for path in &pages {
            let (s, h, _) = raw(&app, get(path, "")).await;
            assert_eq!(s, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(h[header::LOCATION], "/login", "{path}");
        }
        for path in ["/me/preferences", "/me/sign-out-everywhere"] {
            let (s, h, _) = raw(&app, form(path, "", "preferred_channel=sms")).await;
            assert_eq!(s, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(h[header::LOCATION], "/login", "{path}");
        }
    }
}
