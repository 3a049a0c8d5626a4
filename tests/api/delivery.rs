//! Delivery over real channels: a real SMTP server (aiosmtpd, a Maildir per test) and real
//! HTTP SMS and WeChat gateways (an axum server in the test), the send-time gate, retries and dead letters,
//! two instances sharing the outbox, and the real binary killed with SIGKILL while it delivers:
//! alone on SQLite, and as one of two `serve` instances on one PostgreSQL database.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use chrono::Utc;
use donorcare::domain::outreach::{run_due, Channels, RunStats};
use donorcare::domain::schedule::ScheduleSettings;
use donorcare::domain::Services;
use rand::Rng;
use serde_json::{json, Value};

use crate::helpers::{
    organ_case, postgres_admin_url, smtp_server, tag, Backend, PgDatabase, ReceivedMail,
    SmtpServer, TestApp,
};
use crate::running::{add_user, http, login, str_of, Server};

const MAIL_DOMAIN: &str = "test.invalid";

/// One outreach rule whose occurrence is due at once: today 00:00 on the recipient's clock
/// (registration is the case's creation date), with the default grace of 7 days. `channel`
/// `None` lets each recipient's preferred channel decide.
fn welcome_rule(channel: Option<&str>) -> Value {
    let mut r = json!({"id": "welcome", "kind": "offset", "anchor": "registration", "offset": "0d",
                       "action": "outreach", "template": "memorial_invitation", "time": "00:00"});
    if let Some(c) = channel {
        r["channel"] = json!(c);
    }
    r
}

/// Replace the organ programme's plan with `rules`, as an administrator.
async fn replace_organ_plan(app: &TestApp, rules: Vec<Value>) {
    let admin = app.user("admin", None).await;
    let (s, plans) = app.get("/api/v1/care-plans", &admin.token).await;
    assert_eq!(s, StatusCode::OK, "{plans}");
    let version = plans["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|p| p["program"] == "organ")
        .and_then(|p| p["version"].as_i64())
        .expect("the organ plan and its version");
    let (s, b) = app
        .call(
            Method::PUT,
            "/api/v1/care-plans/organ",
            Some(&admin.token),
            Some(json!({"version": version, "rules": rules})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "replace the organ plan: {b}");
}

/// Settings for an in-process worker: always waking, a short lease.
fn settings(smtp_url: Option<String>, sms_url: Option<String>) -> ScheduleSettings {
    ScheduleSettings {
        waking: (0, 24),
        smtp_url,
        sms_url,
        mail_domain: MAIL_DOMAIN.into(),
        lease: chrono::Duration::seconds(2),
        ..Default::default()
    }
}

/// The app's services with `settings`, and the channels they configure.
fn worker(app: &TestApp, settings: ScheduleSettings) -> (Services, Channels) {
    let mut svc = app.state.svc.clone();
    svc.schedule = Arc::new(settings);
    let channels = Channels::new(svc.schedule.clone()).expect("channels");
    (svc, channels)
}

/// One run of the worker at the real time.
async fn deliver(svc: &Services, ch: &Channels, owner: &str) -> RunStats {
    run_due(svc, ch, owner, Utc::now, || false)
        .await
        .expect("run_due")
}

async fn add_contact(app: &TestApp, token: &str, case_id: &str, body: Value) -> Value {
    let (s, c) = app
        .post(&format!("/api/v1/cases/{case_id}/contacts"), token, body)
        .await;
    assert_eq!(s, StatusCode::CREATED, "create contact: {c}");
    c
}

/// The contact's own consent to be contacted, on `channels` (`None`: every channel).
fn contact_consent(contact_id: &str, channels: Option<&[&str]>) -> Value {
    let mut c = json!({"kind": "contact", "subject": contact_id, "given_by": contact_id,
                       "method": "electronic", "document": "contact-en-v1", "signed_at": "2025-04-01"});
    if let Some(ch) = channels {
        c["scope"] = json!({ "channels": ch });
    }
    c
}

async fn give_consent(
    app: &TestApp,
    token: &str,
    case_id: &str,
    contact_id: &str,
    channels: Option<&[&str]>,
) {
    let (s, b) = app
        .post(
            &format!("/api/v1/cases/{case_id}/consents"),
            token,
            contact_consent(contact_id, channels),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "contact consent: {b}");
    assert_eq!(b["status"], "active", "{b}");
}

async fn outreach(app: &TestApp, token: &str, case_id: &str) -> Vec<Value> {
    let (s, b) = app
        .get(
            &format!("/api/v1/cases/{case_id}/outreach?limit=200"),
            token,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"].as_array().expect("items").clone()
}

/// The one message of `recipient` among `msgs`.
fn message_for<'a>(msgs: &'a [Value], recipient: &str) -> &'a Value {
    let mine: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["recipient"] == recipient)
        .collect();
    assert_eq!(mine.len(), 1, "one message for {recipient}: {msgs:?}");
    mine[0]
}

fn message_id(outreach_id: &str) -> String {
    format!("<outreach-{outreach_id}@{MAIL_DOMAIN}>")
}

// ---------------------------------------------------------------------------------------------
// A real HTTP gateway (SMS or WeChat: the same contract): a server on loopback that records
// every request.

#[derive(Debug, Clone)]
struct GatewayCall {
    idempotency_key: Option<String>,
    body: Value,
}

struct Gateway {
    /// The status the gateway answers with.
    status: AtomicU16,
    /// How long it takes to answer, once it has recorded a request.
    delay_ms: AtomicU64,
    calls: Mutex<Vec<GatewayCall>>,
}

struct HttpGateway {
    url: String,
    state: Arc<Gateway>,
    server: tokio::task::JoinHandle<()>,
}

impl HttpGateway {
    async fn start(status: u16) -> HttpGateway {
        async fn receive(
            State(g): State<Arc<Gateway>>,
            headers: HeaderMap,
            body: String,
        ) -> StatusCode {
            let body = serde_json::from_str(&body).unwrap_or(Value::String(body));
            let idempotency_key = headers
                .get("idempotency-key")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            g.calls.lock().unwrap().push(GatewayCall {
                idempotency_key,
                body,
            });
            let delay = g.delay_ms.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(delay)).await;
            StatusCode::from_u16(g.status.load(Ordering::SeqCst))
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        }
        let state = Arc::new(Gateway {
            status: AtomicU16::new(status),
            delay_ms: AtomicU64::new(0),
            calls: Mutex::new(Vec::new()),
        });
        let app = axum::Router::new()
            .route("/send", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the gateway");
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("gateway");
        });
        HttpGateway {
            url: format!("http://{addr}/send"),
            state,
            server,
        }
    }

    fn calls(&self) -> Vec<GatewayCall> {
        self.state.calls.lock().unwrap().clone()
    }
}

impl Drop for HttpGateway {
    fn drop(&mut self) {
        self.server.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// In-process workers against real channels, on both backends.

on_both_backends! {
    async fn a_worker_whose_lease_ran_out_before_sending_leaves_the_message_to_the_next(app) {
        let Some(smtp) = smtp_server() else { return };
        replace_organ_plan(&app, vec![welcome_rule(Some("email"))]).await;
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let t = tag();
        let case = app.create_case(&coord.token, organ_case(&t)).await;
        let case_id = str_of(&case, "id");
        let kin = add_contact(&app, &coord.token, case_id, json!({"full_name": format!("Kin{t}"),
            "relationship": "spouse", "email": format!("kin-{t}@example.org"), "language": "en",
            "preferred_channel": "email"})).await;
        give_consent(&app, &coord.token, case_id, str_of(&kin, "id"), Some(&["email"])).await;
        let (svc, ch) = worker(&app, ScheduleSettings {
            lease: chrono::Duration::seconds(60),
            ..settings(Some(smtp.url()), None)
        });
        // A slow worker: each look at the clock is two minutes later (a relay that took that
        // long over the messages before this one), so its lease is gone when it would send.
        let ticks = std::sync::atomic::AtomicI64::new(0);
        let start = Utc::now();
        let slow = || start + chrono::Duration::minutes(2 * ticks.fetch_add(1, Ordering::Relaxed));
        let rounds = std::sync::atomic::AtomicUsize::new(0);
        let stats = run_due(&svc, &ch, "slow-worker", slow, || rounds.fetch_add(1, Ordering::Relaxed) > 0)
            .await
            .expect("run_due");
        assert_eq!((stats.claimed, stats.sent, stats.lost), (1, 0, 1), "{stats:?}");
        assert_eq!(smtp.count(), 0, "nothing sent on a lease that ran out");
        let msgs = outreach(&app, &coord.token, case_id).await;
        assert_eq!(msgs[0]["status"], "scheduled", "{msgs:?}");
        // The next worker sends it, once.
        let later = Utc::now() + chrono::Duration::minutes(5);
        let stats = run_due(&svc, &ch, "next-worker", || later, || false).await.expect("run_due");
        assert_eq!((stats.claimed, stats.sent), (1, 1), "{stats:?}");
        assert_eq!(smtp.count(), 1);
    }

    async fn email_goes_only_to_the_contact_who_consented(app) {
        let Some(smtp) = smtp_server() else { return };
        replace_organ_plan(&app, vec![welcome_rule(Some("email"))]).await;
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let t = tag();
        let case = app.create_case(&coord.token, organ_case(&t)).await;
        let case_id = str_of(&case, "id");
        let (yes_mail, no_mail) = (format!("yes-{t}@example.org"), format!("no-{t}@example.org"));
        let yes = add_contact(&app, &coord.token, case_id, json!({"full_name": format!("Yes{t}"),
            "relationship": "spouse", "email": yes_mail, "language": "en", "preferred_channel": "email"})).await;
        let no = add_contact(&app, &coord.token, case_id, json!({"full_name": format!("No{t}"),
            "relationship": "child", "email": no_mail, "language": "en", "preferred_channel": "email"})).await;
        let (yes_id, no_id) = (str_of(&yes, "id"), str_of(&no, "id"));
        give_consent(&app, &coord.token, case_id, yes_id, Some(&["email"])).await;

        let before = outreach(&app, &coord.token, case_id).await;
        assert_eq!(before.len(), 2, "one message per contact: {before:?}");
        assert!(before.iter().all(|m| m["status"] == "scheduled"), "{before:?}");

        let (svc, ch) = worker(&app, settings(Some(smtp.url()), None));
        let stats = deliver(&svc, &ch, "owner-a").await;
        assert_eq!((stats.claimed, stats.sent, stats.held), (2, 1, 1), "{stats:?}");

        let msgs = outreach(&app, &coord.token, case_id).await;
        let sent = message_for(&msgs, yes_id);
        assert_eq!(sent["status"], "sent", "{sent}");
        assert_eq!(sent["channel"], "email", "{sent}");
        assert!(sent["sent_at"].is_string(), "{sent}");
        let held = message_for(&msgs, no_id);
        assert_eq!(held["status"], "held", "{held}");
        assert!(str_of(held, "reason").starts_with("no_consent"), "{held}");
        assert!(held["sent_at"].is_null(), "{held}");

        let mails = smtp.messages();
        assert_eq!(mails.len(), 1, "exactly one email: {mails:?}");
        let mail = &mails[0];
        assert_eq!(mail.message_id.as_deref(), Some(message_id(str_of(sent, "id")).as_str()), "{}", mail.raw);
        assert_eq!(mail.rcpt_to, vec![yes_mail.clone()], "{}", mail.raw);
        assert!(mail.to.as_deref().is_some_and(|to| to.contains(&yes_mail)), "{}", mail.raw);
        assert_eq!(mail.subject.as_deref(), Some("Invitation to the memorial ceremony"), "{}", mail.raw);
        assert!(!mail.raw.contains(&no_mail), "{}", mail.raw);

        // Settled messages are not taken again.
        let again = deliver(&svc, &ch, "owner-a").await;
        assert_eq!(again.claimed, 0, "{again:?}");
        assert_eq!(smtp.count(), 1);
    }

    async fn sms_goes_to_the_gateway_with_the_message_id_as_idempotency_key(app) {
        let gateway = HttpGateway::start(200).await;
        replace_organ_plan(&app, vec![welcome_rule(Some("sms"))]).await;
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let t = tag();
        let case = app.create_case(&coord.token, organ_case(&t)).await;
        let case_id = str_of(&case, "id");
        let contact = add_contact(&app, &coord.token, case_id, json!({"full_name": format!("Kin{t}"),
            "relationship": "spouse", "phone": "13512340000", "language": "en", "preferred_channel": "sms"})).await;
        let contact_id = str_of(&contact, "id");
        let phone = str_of(&contact, "phone").to_string();
        give_consent(&app, &coord.token, case_id, contact_id, Some(&["sms"])).await;

        let (svc, ch) = worker(&app, settings(None, Some(gateway.url.clone())));
        let stats = deliver(&svc, &ch, "owner-a").await;
        assert_eq!((stats.claimed, stats.sent), (1, 1), "{stats:?}");

        let msgs = outreach(&app, &coord.token, case_id).await;
        let msg = message_for(&msgs, contact_id);
        assert_eq!(msg["status"], "sent", "{msg}");
        assert_eq!(msg["channel"], "sms", "{msg}");
        let id = str_of(msg, "id");

        let calls = gateway.calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        let call = &calls[0];
        assert_eq!(call.idempotency_key.as_deref(), Some(id), "{call:?}");
        assert_eq!(call.body["idempotency_key"], id, "{call:?}");
        assert_eq!(call.body["to"], phone.as_str(), "{call:?}");
        let text = str_of(&call.body, "text");
        assert!(text.starts_with("Invitation to the memorial ceremony\n"), "{text}");
        assert!(text.contains(&format!("Dear Kin{t}")), "{text}");
        let mut keys: Vec<&str> = call.body.as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["idempotency_key", "text", "to"], "{call:?}");
    }

    async fn a_failing_sms_gateway_is_retried_then_dead_lettered(app) {
        let gateway = HttpGateway::start(500).await;
        replace_organ_plan(&app, vec![welcome_rule(Some("sms"))]).await;
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let t = tag();
        let case = app.create_case(&coord.token, organ_case(&t)).await;
        let case_id = str_of(&case, "id");
        let contact = add_contact(&app, &coord.token, case_id, json!({"full_name": format!("Kin{t}"),
            "relationship": "spouse", "phone": "13512340000", "language": "en", "preferred_channel": "sms"})).await;
        let contact_id = str_of(&contact, "id");
        give_consent(&app, &coord.token, case_id, contact_id, None).await;

        let (svc, ch) = worker(&app, ScheduleSettings { max_attempts: 2, ..settings(None, Some(gateway.url.clone())) });
        let first = deliver(&svc, &ch, "owner-a").await;
        assert_eq!((first.claimed, first.sent, first.failed), (1, 0, 1), "{first:?}");
        let msg = message_for(&outreach(&app, &coord.token, case_id).await, contact_id).clone();
        let id = str_of(&msg, "id").to_string();
        assert_eq!(msg["status"], "failed", "{msg}");
        assert_eq!(msg["attempts"], 1, "{msg}");
        let reason = str_of(&msg, "reason");
        assert!(reason.contains("500"), "the reason names the gateway's answer: {msg}");
        assert!(msg["sent_at"].is_null(), "{msg}");
        assert_eq!(gateway.calls().len(), 1);

        // The retry waits for its back-off: nothing is due now.
        let now = deliver(&svc, &ch, "owner-a").await;
        assert_eq!(now.claimed, 0, "{now:?}");
        assert_eq!(gateway.calls().len(), 1);

        // Ten minutes later the back-off has passed; the second failure reaches max_attempts.
        let later = || Utc::now() + chrono::Duration::minutes(10);
        let second = run_due(&svc, &ch, "owner-b", later, || false).await.expect("run_due");
        assert_eq!((second.claimed, second.sent, second.failed), (1, 0, 1), "{second:?}");
        let msg = message_for(&outreach(&app, &coord.token, case_id).await, contact_id).clone();
        assert_eq!(msg["status"], "dead", "{msg}");
        assert_eq!(msg["attempts"], 2, "{msg}");
        assert!(str_of(&msg, "reason").contains("500"), "{msg}");
        let calls = gateway.calls();
        assert_eq!(calls.len(), 2, "{calls:?}");
        for c in &calls {
            assert_eq!(c.idempotency_key.as_deref(), Some(id.as_str()), "the same key on every try: {c:?}");
            assert_eq!(c.body["idempotency_key"], id.as_str(), "{c:?}");
        }

        // A dead letter is not tried again, even once the gateway works.
        gateway.state.status.store(200, Ordering::SeqCst);
        let much_later = || Utc::now() + chrono::Duration::days(1);
        let after = run_due(&svc, &ch, "owner-b", much_later, || false).await.expect("run_due");
        assert_eq!(after.claimed, 0, "{after:?}");
        assert_eq!(gateway.calls().len(), 2);
    }

    async fn an_unconfigured_channel_holds_the_message(app) {
        // No channel in the rule: each contact's preferred one.
        replace_organ_plan(&app, vec![welcome_rule(None)]).await;
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let t = tag();
        let case = app.create_case(&coord.token, organ_case(&t)).await;
        let case_id = str_of(&case, "id");
        let by_mail = add_contact(&app, &coord.token, case_id, json!({"full_name": format!("Mail{t}"),
            "relationship": "spouse", "email": format!("m-{t}@example.org"), "language": "en", "preferred_channel": "email"})).await;
        let by_sms = add_contact(&app, &coord.token, case_id, json!({"full_name": format!("Sms{t}"),
            "relationship": "child", "phone": "13512340000", "language": "en", "preferred_channel": "sms"})).await;
        let (mail_id, sms_id) = (str_of(&by_mail, "id"), str_of(&by_sms, "id"));
        give_consent(&app, &coord.token, case_id, mail_id, None).await;
        give_consent(&app, &coord.token, case_id, sms_id, None).await;

        let (svc, ch) = worker(&app, settings(None, None));
        let stats = deliver(&svc, &ch, "owner-a").await;
        assert_eq!((stats.claimed, stats.sent, stats.held), (2, 0, 2), "{stats:?}");
        let msgs = outreach(&app, &coord.token, case_id).await;
        let mail = message_for(&msgs, mail_id);
        assert_eq!(mail["status"], "held", "{mail}");
        assert!(str_of(mail, "reason").starts_with("channel_unconfigured"), "{mail}");
        assert!(str_of(mail, "reason").contains("email"), "{mail}");
        let sms = message_for(&msgs, sms_id);
        assert_eq!(sms["status"], "held", "{sms}");
        assert!(str_of(sms, "reason").starts_with("channel_unconfigured"), "{sms}");
        assert!(str_of(sms, "reason").contains("sms"), "{sms}");
        assert_eq!(deliver(&svc, &ch, "owner-a").await.claimed, 0);
    }
}

// ---------------------------------------------------------------------------------------------
// WeChat through its HTTP gateway: the SMS gateway's contract, with the contact's WeChat ID.

mod wechat {
    use super::*;

    /// Settings with only the WeChat gateway (`None`: not configured).
    fn wechat_settings(url: Option<String>) -> ScheduleSettings {
        ScheduleSettings {
            wechat_url: url,
            ..settings(None, None)
        }
    }

    /// A contact who prefers WeChat (reads English), with a contact consent on `channels`.
    async fn wechat_contact(
        app: &TestApp,
        token: &str,
        case_id: &str,
        wechat_id: &str,
        channels: Option<&[&str]>,
    ) -> String {
        let c = add_contact(
            app,
            token,
            case_id,
            json!({"full_name": format!("Kin{}", tag()),
            "relationship": "spouse", "wechat_id": wechat_id, "phone": "13512340000",
            "language": "en", "preferred_channel": "wechat"}),
        )
        .await;
        assert_eq!(c["wechat_id"], wechat_id, "{c}");
        let id = str_of(&c, "id").to_string();
        give_consent(app, token, case_id, &id, channels).await;
        id
    }

    /// Every call carries `key`, in its header and its body.
    fn assert_keyed(calls: &[GatewayCall], key: &str) {
        for c in calls {
            assert_eq!(
                c.idempotency_key.as_deref(),
                Some(key),
                "the same key on every try: {c:?}"
            );
            assert_eq!(c.body["idempotency_key"], key, "{c:?}");
        }
    }

    on_both_backends! {
        async fn wechat_goes_to_its_gateway_once_with_the_message_id_as_idempotency_key(app) {
            let (wechat, sms) = (HttpGateway::start(200).await, HttpGateway::start(200).await);
            // No channel in the rule: the contact's preferred one.
            replace_organ_plan(&app, vec![welcome_rule(None)]).await;
            let coord = app.user("coordinator", Some("yinzhou")).await;
            let case = app.create_case(&coord.token, organ_case(&tag())).await;
            let case_id = str_of(&case, "id");
            let contact_id = wechat_contact(&app, &coord.token, case_id, "wxid_li-hua_1988", Some(&["wechat"])).await;

            let (svc, ch) = worker(&app, ScheduleSettings {
                wechat_url: Some(wechat.url.clone()),
                ..settings(None, Some(sms.url.clone()))
            });
            let stats = deliver(&svc, &ch, "owner-a").await;
            assert_eq!((stats.claimed, stats.sent), (1, 1), "{stats:?}");
            let msgs = outreach(&app, &coord.token, case_id).await;
            let msg = message_for(&msgs, &contact_id);
            assert_eq!(msg["status"], "sent", "{msg}");
            assert_eq!(msg["channel"], "wechat", "{msg}");
            let id = str_of(msg, "id");

            let calls = wechat.calls();
            assert_eq!(calls.len(), 1, "{calls:?}");
            assert_keyed(&calls, id);
            assert_eq!(calls[0].body["to"], "wxid_li-hua_1988", "{calls:?}");
            let text = str_of(&calls[0].body, "text");
            assert!(text.starts_with("Invitation to the memorial ceremony\n"), "{text}");
            assert!(text.contains("Dear Kin"), "{text}");
            let mut keys: Vec<&str> = calls[0].body.as_object().unwrap().keys().map(String::as_str).collect();
            keys.sort();
            assert_eq!(keys, ["idempotency_key", "text", "to"], "{calls:?}");
            assert!(sms.calls().is_empty(), "nothing went by SMS: {:?}", sms.calls());

            // Settled: not taken again.
            assert_eq!(deliver(&svc, &ch, "owner-a").await.claimed, 0);
            assert_eq!(wechat.calls().len(), 1);
        }

        async fn a_failing_wechat_gateway_is_retried_under_the_same_key_until_it_takes_the_message(app) {
            let gateway = HttpGateway::start(503).await;
            replace_organ_plan(&app, vec![welcome_rule(Some("wechat"))]).await;
            let coord = app.user("coordinator", Some("yinzhou")).await;
            let case = app.create_case(&coord.token, organ_case(&tag())).await;
            let case_id = str_of(&case, "id");
            let contact_id = wechat_contact(&app, &coord.token, case_id, "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o", None).await;

            let (svc, ch) = worker(&app, ScheduleSettings { max_attempts: 3, ..wechat_settings(Some(gateway.url.clone())) });
            let first = deliver(&svc, &ch, "owner-a").await;
            assert_eq!((first.claimed, first.sent, first.failed), (1, 0, 1), "{first:?}");
            let msg = message_for(&outreach(&app, &coord.token, case_id).await, &contact_id).clone();
            let id = str_of(&msg, "id").to_string();
            assert_eq!((msg["status"].as_str(), msg["attempts"].as_i64()), (Some("failed"), Some(1)), "{msg}");
            assert!(str_of(&msg, "reason").contains("wechat gateway answered 503"), "{msg}");
            assert!(!str_of(&msg, "reason").contains("oUpF8"), "the reason holds no address: {msg}");

            // Nothing before the back-off has passed.
            assert_eq!(deliver(&svc, &ch, "owner-a").await.claimed, 0);
            assert_eq!(gateway.calls().len(), 1);

            // A second failure, ten minutes on; then the gateway works, and an hour later the
            // third try goes through.
            let later = || Utc::now() + chrono::Duration::minutes(10);
            let second = run_due(&svc, &ch, "owner-b", later, || false).await.expect("run_due");
            assert_eq!((second.claimed, second.failed), (1, 1), "{second:?}");
            gateway.state.status.store(200, Ordering::SeqCst);
            let hour = || Utc::now() + chrono::Duration::hours(1);
            let third = run_due(&svc, &ch, "owner-c", hour, || false).await.expect("run_due");
            assert_eq!((third.claimed, third.sent), (1, 1), "{third:?}");
            let msg = message_for(&outreach(&app, &coord.token, case_id).await, &contact_id).clone();
            assert_eq!((msg["status"].as_str(), msg["attempts"].as_i64()), (Some("sent"), Some(3)), "{msg}");

            let calls = gateway.calls();
            assert_eq!(calls.len(), 3, "{calls:?}");
            assert_keyed(&calls, &id);
            let much_later = || Utc::now() + chrono::Duration::days(1);
            assert_eq!(run_due(&svc, &ch, "owner-c", much_later, || false).await.expect("run_due").claimed, 0);
            assert_eq!(gateway.calls().len(), 3, "a sent message is not sent again");
        }

        async fn wechat_is_held_when_unconfigured_without_a_wechat_id_or_without_consent(app) {
            replace_organ_plan(&app, vec![welcome_rule(Some("wechat"))]).await;
            let coord = app.user("coordinator", Some("yinzhou")).await;
            let case = app.create_case(&coord.token, organ_case(&tag())).await;
            let case_id = str_of(&case, "id");
            let reachable = wechat_contact(&app, &coord.token, case_id, "li_hua_88", None).await;
            // No WeChat ID: SMS is their way, but the rule asks for WeChat.
            let no_id = add_contact(&app, &coord.token, case_id, json!({"full_name": format!("Kin{}", tag()),
                "relationship": "child", "phone": "13512340001", "language": "en", "preferred_channel": "sms"})).await;
            let no_id = str_of(&no_id, "id").to_string();
            give_consent(&app, &coord.token, case_id, &no_id, None).await;
            // Consented to SMS only.
            let sms_only = wechat_contact(&app, &coord.token, case_id, "wang_wei_66", Some(&["sms"])).await;

            // Without DONORCARE_WECHAT_URL.
            let (svc, ch) = worker(&app, wechat_settings(None));
            let stats = deliver(&svc, &ch, "owner-a").await;
            assert_eq!((stats.claimed, stats.sent, stats.held), (3, 0, 3), "{stats:?}");
            let msgs = outreach(&app, &coord.token, case_id).await;
            for who in [&reachable, &no_id] {
                let m = message_for(&msgs, who);
                assert_eq!(m["status"], "held", "{m}");
                assert_eq!(str_of(m, "reason"), "channel_unconfigured: wechat (DONORCARE_WECHAT_URL is not set)", "{m}");
            }
            let m = message_for(&msgs, &sms_only);
            assert_eq!(m["status"], "held", "{m}");
            assert!(str_of(m, "reason").starts_with("no_consent"), "{m}");
            assert!(str_of(m, "reason").contains("wechat"), "{m}");

            // Configured, the held ones released: the one with an ID goes, the other waits
            // for an address.
            let gateway = HttpGateway::start(200).await;
            let (svc, ch) = worker(&app, wechat_settings(Some(gateway.url.clone())));
            for who in [&reachable, &no_id, &sms_only] {
                let id = str_of(message_for(&msgs, who), "id");
                let (s, b) = app.post(&format!("/api/v1/outreach/{id}/release"), &coord.token, json!({})).await;
                assert_eq!(s, StatusCode::OK, "{b}");
            }
            let stats = deliver(&svc, &ch, "owner-a").await;
            assert_eq!((stats.claimed, stats.sent, stats.held), (3, 1, 2), "{stats:?}");
            let msgs = outreach(&app, &coord.token, case_id).await;
            let sent = message_for(&msgs, &reachable);
            assert_eq!(sent["status"], "sent", "{sent}");
            let held = message_for(&msgs, &no_id);
            assert_eq!(held["status"], "held", "{held}");
            assert_eq!(str_of(held, "reason"), "no_address: the recipient has no WeChat ID", "{held}");
            assert!(str_of(message_for(&msgs, &sms_only), "reason").starts_with("no_consent"));
            let calls = gateway.calls();
            assert_eq!(calls.len(), 1, "only the consented contact with an ID: {calls:?}");
            assert_eq!(calls[0].body["to"], "li_hua_88", "{calls:?}");
        }

        async fn a_worker_that_dies_while_the_gateway_answers_leaves_one_key_for_the_gateway(app) {
            let gateway = HttpGateway::start(200).await;
            // The gateway takes the message but is slow to say so: the worker dies meanwhile.
            gateway.state.delay_ms.store(10_000, Ordering::SeqCst);
            replace_organ_plan(&app, vec![welcome_rule(Some("wechat"))]).await;
            let coord = app.user("coordinator", Some("yinzhou")).await;
            let case = app.create_case(&coord.token, organ_case(&tag())).await;
            let case_id = str_of(&case, "id");
            let contact_id = wechat_contact(&app, &coord.token, case_id, "li_hua_88", None).await;

            let (svc, ch) = worker(&app, wechat_settings(Some(gateway.url.clone())));
            let dying = {
                let svc = svc.clone();
                tokio::spawn(async move {
                    let ch = Channels::new(svc.schedule.clone()).expect("channels");
                    run_due(&svc, &ch, "dies", Utc::now, || false).await
                })
            };
            let start = Instant::now();
            while gateway.calls().is_empty() {
                assert!(start.elapsed() < Duration::from_secs(20), "the first worker never sent");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            dying.abort();
            let _ = dying.await;
            let msg = message_for(&outreach(&app, &coord.token, case_id).await, &contact_id).clone();
            assert_ne!(msg["status"], "sent", "the dead worker settled nothing: {msg}");

            // Once its lease has run out, the next worker sends it again, under the same key.
            gateway.state.delay_ms.store(0, Ordering::SeqCst);
            let after_lease = || Utc::now() + chrono::Duration::seconds(30);
            let stats = run_due(&svc, &ch, "next", after_lease, || false).await.expect("run_due");
            assert_eq!((stats.claimed, stats.sent), (1, 1), "{stats:?}");
            let msg = message_for(&outreach(&app, &coord.token, case_id).await, &contact_id).clone();
            assert_eq!(msg["status"], "sent", "{msg}");
            let calls = gateway.calls();
            assert_eq!(calls.len(), 2, "the message in flight, and its retry: {calls:?}");
            assert_keyed(&calls, str_of(&msg, "id"));
            let keys: HashSet<&str> = calls.iter().filter_map(|c| c.idempotency_key.as_deref()).collect();
            assert_eq!(keys.len(), 1, "one message, one key: the gateway drops the repeat");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Outreach planned by hand: the same message, gate and delivery as one a plan made.

/// An organ case under an empty plan (so every message is the hand-made one) with one contact
/// who reads English and has consented to email; returns (case id, contact id, address).
async fn case_with_an_email_contact(app: &TestApp, token: &str) -> (String, String, String) {
    replace_organ_plan(app, vec![]).await;
    let t = tag();
    let case = app.create_case(token, organ_case(&t)).await;
    let case_id = str_of(&case, "id").to_string();
    let mail = format!("kin-{t}@example.org");
    let contact = add_contact(
        app,
        token,
        &case_id,
        json!({"full_name": format!("Kin{t}"),
        "relationship": "spouse", "email": mail, "language": "en", "preferred_channel": "email"}),
    )
    .await;
    let contact_id = str_of(&contact, "id").to_string();
    give_consent(app, token, &case_id, &contact_id, Some(&["email"])).await;
    (case_id, contact_id, mail)
}

/// Plan an outreach task by hand, expecting 201; returns the task.
async fn plan_outreach(app: &TestApp, token: &str, case_id: &str, body: Value) -> Value {
    let (s, task) = app
        .post(&format!("/api/v1/cases/{case_id}/tasks"), token, body)
        .await;
    assert_eq!(s, StatusCode::CREATED, "plan outreach: {task}");
    task
}

/// In a module of their own: `on_both_backends!` makes one `sqlite` and one `postgres` module.
mod by_hand {
    use super::*;

    on_both_backends! {
        async fn an_outreach_planned_by_hand_is_delivered_exactly_once(app) {
            let Some(smtp) = smtp_server() else { return };
            let coord = app.user("coordinator", Some("yinzhou")).await;
            let (case_id, contact_id, mail) = case_with_an_email_contact(&app, &coord.token).await;
            assert!(outreach(&app, &coord.token, &case_id).await.is_empty(), "the empty plan makes no message");

            let task = plan_outreach(&app, &coord.token, &case_id, json!({"kind": "outreach",
                "contact_id": contact_id, "template": "anniversary_letter", "due_at": Utc::now().to_rfc3339()})).await;
            let task_id = str_of(&task, "id");

            // The task has its message, in the outbox, before anything is sent.
            let msgs = outreach(&app, &coord.token, &case_id).await;
            let msg = message_for(&msgs, &contact_id).clone();
            assert_eq!(msgs.len(), 1, "{msgs:?}");
            assert_eq!(msg["task_id"], task_id, "{msg}");
            assert_eq!(msg["status"], "scheduled", "{msg}");
            assert_eq!(msg["template"], "anniversary_letter", "{msg}");
            let id = str_of(&msg, "id").to_string();

            // The coordinator can read it before it goes, in the contact's language.
            let (s, preview) = app.get(&format!("/api/v1/outreach/{id}/preview"), &coord.token).await;
            assert_eq!(s, StatusCode::OK, "{preview}");
            assert_eq!(preview["language"], "en", "{preview}");
            assert!(str_of(&preview, "subject").starts_with("Remembering Name"), "{preview}");

            let (svc, ch) = worker(&app, settings(Some(smtp.url()), None));
            let stats = deliver(&svc, &ch, "owner-a").await;
            assert_eq!((stats.claimed, stats.sent), (1, 1), "{stats:?}");
            let sent = message_for(&outreach(&app, &coord.token, &case_id).await, &contact_id).clone();
            assert_eq!(sent["status"], "sent", "{sent}");
            assert_eq!(sent["channel"], "email", "{sent}");

            let mails = smtp.messages();
            assert_eq!(mails.len(), 1, "exactly one email: {mails:?}");
            assert_eq!(mails[0].message_id.as_deref(), Some(message_id(&id).as_str()), "{}", mails[0].raw);
            assert_eq!(mails[0].rcpt_to, vec![mail], "{}", mails[0].raw);
            assert!(mails[0].subject.as_deref().is_some_and(|s| s.starts_with("Remembering Name")), "{}", mails[0].raw);

            // Sent once: nothing is taken again.
            assert_eq!(deliver(&svc, &ch, "owner-a").await.claimed, 0);
            assert_eq!(smtp.count(), 1);
        }

        async fn a_hand_planned_outreach_without_a_contact_goes_to_the_living_marrow_donor(app) {
            let coord = app.user("coordinator", Some("yinzhou")).await;
            let case = app.create_case(&coord.token, crate::helpers::marrow_case("Donor", "13800001111")).await;
            let case_id = str_of(&case, "id");
            let before = outreach(&app, &coord.token, case_id).await.len();
            let task = plan_outreach(&app, &coord.token, case_id, json!({"kind": "outreach",
                "template": "marrow_followup", "due_at": "2031-06-01"})).await;
            let msgs: Vec<Value> = outreach(&app, &coord.token, case_id).await
                .into_iter().filter(|m| m["task_id"] == task["id"]).collect();
            assert_eq!(msgs.len(), 1, "{msgs:?}");
            assert_eq!(msgs[0]["recipient"], "donor", "{msgs:?}");
            // A date alone is the start of waking hours on the donor's clock (Asia/Shanghai).
            assert_eq!(msgs[0]["due_at"], "2031-06-01T01:00:00Z", "{msgs:?}");
            assert_eq!(task["due_at"], msgs[0]["due_at"], "{task}");
            assert_eq!(outreach(&app, &coord.token, case_id).await.len(), before + 1);
        }

        async fn a_hand_planned_outreach_goes_through_the_same_gate(app) {
            let coord = app.user("coordinator", Some("yinzhou")).await;
            let (case_id, contact_id, _) = case_with_an_email_contact(&app, &coord.token).await;
            let (svc, ch) = worker(&app, settings(None, None));
            // Consent covers email only: an SMS asked for by hand is held, with the reason.
            let sms = plan_outreach(&app, &coord.token, &case_id, json!({"kind": "outreach",
                "contact_id": contact_id, "template": "qingming", "channel": "sms",
                "due_at": Utc::now().to_rfc3339()})).await;
            assert_eq!(sms["kind"], "outreach", "{sms}");
            let stats = deliver(&svc, &ch, "owner-a").await;
            assert_eq!((stats.claimed, stats.sent, stats.held), (1, 0, 1), "{stats:?}");
            let held = message_for(&outreach(&app, &coord.token, &case_id).await, &contact_id).clone();
            assert_eq!(held["status"], "held", "{held}");
            assert!(str_of(&held, "reason").starts_with("no_consent"), "{held}");
            assert!(str_of(&held, "reason").contains("sms"), "{held}");
            assert_eq!(held["channel"], "sms", "the channel asked for: {held}");

            // After the contact opts out, an email (which consent covers) is held too.
            let (s, b) = app.call(Method::PATCH, &format!("/api/v1/contacts/{contact_id}"), Some(&coord.token),
                Some(json!({"opted_out": true}))).await;
            assert_eq!(s, StatusCode::OK, "{b}");
            let email = plan_outreach(&app, &coord.token, &case_id, json!({"kind": "outreach",
                "contact_id": contact_id, "template": "anniversary_letter", "due_at": Utc::now().to_rfc3339()})).await;
            let stats = deliver(&svc, &ch, "owner-a").await;
            assert_eq!((stats.claimed, stats.sent, stats.held), (1, 0, 1), "{stats:?}");
            let msgs = outreach(&app, &coord.token, &case_id).await;
            let m = msgs.iter().find(|m| m["task_id"] == email["id"]).expect("the email's message");
            assert_eq!(m["status"], "held", "{m}");
            assert!(str_of(m, "reason").starts_with("opted_out"), "{m}");
        }

        async fn cancelling_or_moving_a_hand_planned_outreach_does_the_same_to_its_message(app) {
            let coord = app.user("coordinator", Some("yinzhou")).await;
            let (case_id, contact_id, _) = case_with_an_email_contact(&app, &coord.token).await;
            let due = Utc::now() + chrono::Duration::days(3);
            let moved = plan_outreach(&app, &coord.token, &case_id, json!({"kind": "outreach",
                "contact_id": contact_id, "template": "anniversary_letter", "due_at": due.to_rfc3339()})).await;
            let dropped = plan_outreach(&app, &coord.token, &case_id, json!({"kind": "outreach",
                "contact_id": contact_id, "template": "spring_festival", "due_at": due.to_rfc3339()})).await;

            let later = due + chrono::Duration::days(2);
            let (s, b) = app.post(&format!("/api/v1/tasks/{}/reschedule", str_of(&moved, "id")), &coord.token,
                json!({"due_at": later.to_rfc3339(), "reason": "the family is travelling"})).await;
            assert_eq!(s, StatusCode::OK, "{b}");
            let (s, b) = app.post(&format!("/api/v1/tasks/{}/cancel", str_of(&dropped, "id")), &coord.token,
                json!({"reason": "sent a card instead"})).await;
            assert_eq!(s, StatusCode::OK, "{b}");

            let msgs = outreach(&app, &coord.token, &case_id).await;
            let of = |task: &Value| -> Value {
                msgs.iter().find(|m| m["task_id"] == task["id"]).cloned().unwrap_or_else(|| panic!("a message of {task}: {msgs:?}"))
            };
            let m = of(&moved);
            assert_eq!(m["status"], "scheduled", "{m}");
            let at = chrono::DateTime::parse_from_rfc3339(str_of(&m, "due_at")).expect("due_at").with_timezone(&Utc);
            assert!((at - later).num_seconds().abs() < 2, "the message moved with its task: {m}");
            let c = of(&dropped);
            assert_eq!(c["status"], "cancelled", "{c}");
            assert_eq!(c["reason"], "task_cancelled", "{c}");

            // Nothing is sent early, and the cancelled message never.
            let (svc, ch) = worker(&app, settings(None, None));
            assert_eq!(deliver(&svc, &ch, "owner-a").await.claimed, 0);
        }

        async fn a_hand_planned_outreach_with_bad_values_is_refused_and_nothing_is_made(app) {
            let coord = app.user("coordinator", Some("yinzhou")).await;
            let (case_id, contact_id, _) = case_with_an_email_contact(&app, &coord.token).await;
            let other = app.create_case(&coord.token, organ_case(&tag())).await;
            let other_contact = add_contact(&app, &coord.token, str_of(&other, "id"), json!({"full_name": "Other",
                "relationship": "child", "language": "zh-CN", "preferred_channel": "sms", "phone": "13512340001"})).await;
            let now = Utc::now().to_rfc3339();
            let cases = [
                (json!({"kind": "outreach", "contact_id": contact_id, "due_at": now}), "template"),
                (json!({"kind": "outreach", "contact_id": contact_id, "due_at": now, "template": "no_such_letter"}), "template"),
                (json!({"kind": "outreach", "contact_id": str_of(&other_contact, "id"), "due_at": now, "template": "qingming"}), "contact_id"),
                (json!({"kind": "outreach", "contact_id": contact_id, "due_at": now, "template": "qingming", "channel": "pigeon"}), "channel"),
                (json!({"kind": "visit", "due_at": now, "channel": "email"}), "channel"),
            ];
            for (body, field) in cases {
                let (s, b) = app.post(&format!("/api/v1/cases/{case_id}/tasks"), &coord.token, body.clone()).await;
                assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {b}");
                assert!(b["error"]["fields"][field].is_string(), "{field} is named for {body}: {b}");
            }
            let (s, tasks) = app.get(&format!("/api/v1/tasks?case_id={case_id}"), &coord.token).await;
            assert_eq!(s, StatusCode::OK, "{tasks}");
            assert_eq!(tasks["items"].as_array().map(Vec::len), Some(0), "{tasks}");
            assert!(outreach(&app, &coord.token, &case_id).await.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Two instances on one PostgreSQL outbox.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_the_outbox_without_sending_anything_twice() {
    let Some(app) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let Some(smtp) = smtp_server() else { return };
    replace_organ_plan(&app, vec![welcome_rule(Some("email"))]).await;
    let coord = app.user("coordinator", Some("yinzhou")).await;
    // 20 families of 3 contacts: 60 messages due now.
    let mut expected: HashMap<String, String> = HashMap::new();
    let mut cases = Vec::new();
    for i in 0..20 {
        let t = tag();
        let case = app.create_case(&coord.token, organ_case(&t)).await;
        let case_id = str_of(&case, "id").to_string();
        let mut contacts = Vec::new();
        for (j, rel) in ["spouse", "child", "sibling"].into_iter().enumerate() {
            let c = add_contact(
                &app,
                &coord.token,
                &case_id,
                json!({"full_name": format!("Kin{j}{t}"), "relationship": rel,
                       "email": format!("kin{i}-{j}-{t}@example.org"), "language": "en",
                       "preferred_channel": "email"}),
            )
            .await;
            give_consent(&app, &coord.token, &case_id, str_of(&c, "id"), None).await;
            contacts.push((
                str_of(&c, "id").to_string(),
                str_of(&c, "email").to_string(),
            ));
        }
        let msgs = outreach(&app, &coord.token, &case_id).await;
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        for (contact_id, email) in contacts {
            let m = message_for(&msgs, &contact_id);
            assert_eq!(m["status"], "scheduled", "{m}");
            expected.insert(message_id(str_of(m, "id")), email);
        }
        cases.push(case_id);
    }
    assert_eq!(expected.len(), 60);

    // Two instances, each with its own pool and channels, start claiming at the same moment.
    let s = ScheduleSettings {
        cap: 100,
        lease: chrono::Duration::seconds(60),
        ..settings(Some(smtp.url()), None)
    };
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let mut runs = Vec::new();
    for owner in ["instance-a", "instance-b"] {
        let s = s.clone();
        let other = app
            .sibling_with(move |svc| svc.schedule = Arc::new(s))
            .await;
        let barrier = barrier.clone();
        runs.push(tokio::spawn(async move {
            let svc = other.state.svc.clone();
            let ch = Channels::new(svc.schedule.clone()).expect("channels");
            barrier.wait().await;
            let stats = run_due(&svc, &ch, owner, Utc::now, || false)
                .await
                .expect("run_due");
            drop(other);
            stats
        }));
    }
    let mut stats = Vec::new();
    for r in runs {
        stats.push(r.await.expect("worker task"));
    }
    eprintln!("two instances: {stats:?}");
    assert_eq!(
        stats.iter().map(|s| s.claimed).sum::<usize>(),
        60,
        "each message claimed once: {stats:?}"
    );
    assert_eq!(stats.iter().map(|s| s.sent).sum::<usize>(), 60, "{stats:?}");
    assert!(
        stats.iter().all(|s| s.sent > 0),
        "both instances delivered: {stats:?}"
    );

    let mails = smtp.messages();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for m in &mails {
        let id = m.message_id.clone().unwrap_or_default();
        let email = expected
            .get(&id)
            .unwrap_or_else(|| panic!("a Message-ID that is not ours: {id:?}\n{}", m.raw));
        assert_eq!(&m.rcpt_to, &vec![email.clone()], "{}", m.raw);
        *seen.entry(id).or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "sent more than once: {twice:?}");
    assert_eq!(seen.len(), 60, "every message arrived");
    assert_eq!(mails.len(), 60);
    for case_id in &cases {
        for m in outreach(&app, &coord.token, case_id).await {
            assert_eq!(m["status"], "sent", "{m}");
            assert_eq!(m["attempts"], 1, "{m}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The real binary, killed with SIGKILL again and again while it delivers.

/// Poll `done` every 5 ms until it is true; panic with `what()` after `timeout`.
async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {}", what());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Message-ID → how many times the SMTP server got it.
fn delivered(smtp: &SmtpServer) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for id in smtp.message_ids() {
        *seen.entry(id).or_default() += 1;
    }
    seen
}

/// Whether every message of `expected` (Message-ID → address) has arrived.
fn all_arrived(smtp: &SmtpServer, expected: &HashMap<String, String>) -> bool {
    smtp.count() >= expected.len() && {
        let seen = delivered(smtp);
        expected.keys().all(|k| seen.contains_key(k))
    }
}

/// What the SMTP server received, against `expected` (Message-ID → address).
struct Tally {
    /// Message-ID of ours → how many times it arrived.
    seen: HashMap<String, usize>,
    /// Message-IDs that are not ours.
    strangers: Vec<String>,
}

impl Tally {
    /// Count `mails`, asserting that each of ours went to its address and nowhere else.
    fn of(mails: &[ReceivedMail], expected: &HashMap<String, String>) -> Tally {
        let mut seen: HashMap<String, usize> = HashMap::new();
        let mut strangers = Vec::new();
        for m in mails {
            let id = m.message_id.clone().unwrap_or_default();
            match expected.get(&id) {
                Some(email) => {
                    assert_eq!(&m.rcpt_to, &vec![email.clone()], "{}", m.raw);
                    *seen.entry(id).or_default() += 1;
                }
                None => strangers.push(id),
            }
        }
        Tally { seen, strangers }
    }

    /// Deliveries beyond the first of each message.
    fn duplicates(&self) -> usize {
        self.seen.values().map(|n| n - 1).sum()
    }

    /// The messages that arrived more than once.
    fn repeated(&self) -> HashSet<&String> {
        self.seen
            .iter()
            .filter(|(_, n)| **n > 1)
            .map(|(k, _)| k)
            .collect()
    }

    /// All `cases` messages arrived, no other, and none more than once but one per kill (the
    /// message in flight); at least half the `planned` kills landed while messages were
    /// outstanding.
    fn assert_at_most_one_repeat_per_kill(
        &self,
        cases: usize,
        kills: usize,
        mid_delivery: usize,
        planned: usize,
    ) {
        assert!(
            self.strangers.is_empty(),
            "Message-IDs that are not ours: {:?}",
            self.strangers
        );
        assert_eq!(self.seen.len(), cases, "every message arrived");
        let duplicates = self.duplicates();
        assert!(
            duplicates <= kills,
            "{duplicates} duplicate deliveries after {kills} kills: {:?}",
            self.repeated()
        );
        assert!(
            mid_delivery >= planned / 2,
            "the kills must land while messages are outstanding ({mid_delivery} did)"
        );
    }
}

/// Wait until every message of `expected` has arrived; `log` tells what the servers said.
async fn wait_until_all_arrived(
    smtp: &SmtpServer,
    expected: &HashMap<String, String>,
    log: impl Fn() -> String,
) {
    wait_until(
        Duration::from_secs(90),
        || all_arrived(smtp, expected),
        || {
            let seen = delivered(smtp);
            let missing = expected.keys().filter(|k| !seen.contains_key(*k)).count();
            format!(
                "{missing} of {} messages never arrived; log:\n{}",
                expected.len(),
                log()
            )
        },
    )
    .await;
}

/// A `serve` that delivers email to `smtp` at any hour, looking for due messages every `tick_ms`.
fn serve_env(smtp: &SmtpServer, tick_ms: u64) -> Vec<(&'static str, String)> {
    vec![
        ("DONORCARE_SMTP_URL", smtp.url()),
        ("DONORCARE_WAKING_HOURS", "00-24".to_string()),
        ("DONORCARE_OUTREACH_LEASE_SECS", "2".to_string()),
        ("DONORCARE_OUTREACH_TICK_MS", tick_ms.to_string()),
        ("DONORCARE_MAIL_DOMAIN", MAIL_DOMAIN.to_string()),
        ("DONORCARE_OUTREACH_CAP", "100".to_string()),
    ]
}

/// Replace the organ programme's plan with `rules` over HTTP, as `admin`; returns its new version.
async fn put_organ_plan(addr: &str, admin: &str, rules: Vec<Value>) -> i64 {
    let (s, plans) = http(addr, "GET", "/api/v1/care-plans", Some(admin), None).await;
    assert_eq!(s, 200, "{plans}");
    let version = plans["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["program"] == "organ")
        .and_then(|p| p["version"].as_i64())
        .expect("organ plan");
    let (s, b) = http(
        addr,
        "PUT",
        "/api/v1/care-plans/organ",
        Some(admin),
        Some(&json!({"version": version, "rules": rules})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    b["version"].as_i64().expect("the new version")
}

/// Case number `i` over HTTP as `coord`: an organ case with one contact who has consented to
/// email. Returns the case id, the contact id and the contact's address.
async fn create_email_case(addr: &str, coord: &str, i: usize) -> (String, String, String) {
    let t = tag();
    let (s, case) = http(
        addr,
        "POST",
        "/api/v1/cases",
        Some(coord),
        Some(&organ_case(&t)),
    )
    .await;
    assert_eq!(s, 201, "{case}");
    let case_id = str_of(&case, "id").to_string();
    let email = format!("kin{i}-{t}@example.org");
    let (s, contact) = http(
        addr,
        "POST",
        &format!("/api/v1/cases/{case_id}/contacts"),
        Some(coord),
        Some(
            &json!({"full_name": format!("Kin{t}"), "relationship": "spouse",
                     "email": email, "language": "en", "preferred_channel": "email"}),
        ),
    )
    .await;
    assert_eq!(s, 201, "{contact}");
    let contact_id = str_of(&contact, "id").to_string();
    let (s, consent) = http(
        addr,
        "POST",
        &format!("/api/v1/cases/{case_id}/consents"),
        Some(coord),
        Some(&contact_consent(&contact_id, Some(&["email"]))),
    )
    .await;
    assert_eq!(s, 201, "{consent}");
    (case_id, contact_id, email)
}

/// Wait until the one message of each of `cases` is recorded as sent (it may arrive a moment
/// before it is settled); returns the attempts recorded in all.
async fn wait_until_recorded_sent(addr: &str, coord: &str, cases: &[String]) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut attempts_total = 0;
    let mut pending = cases.to_vec();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for case_id in &pending {
            let (s, page) = http(
                addr,
                "GET",
                &format!("/api/v1/cases/{case_id}/outreach"),
                Some(coord),
                None,
            )
            .await;
            assert_eq!(s, 200, "{page}");
            let msgs = page["items"].as_array().expect("items");
            assert_eq!(msgs.len(), 1, "one message for the case: {msgs:?}");
            let m = &msgs[0];
            match str_of(m, "status") {
                "sent" => attempts_total += m["attempts"].as_i64().unwrap_or(0),
                "scheduled" => still.push(case_id.clone()),
                other => panic!("message ended {other}: {m}"),
            }
        }
        pending = still;
        if !pending.is_empty() {
            assert!(
                Instant::now() < deadline,
                "{} messages arrived but are not recorded as sent",
                pending.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    attempts_total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_delivering_loses_nothing_and_repeats_at_most_one_message_per_kill() {
    const CASES: usize = 200;
    const KILLS: usize = 10;
    let Some(smtp) = smtp_server() else { return };
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    add_user(dir.path(), None, "ops.admin", "admin", None);
    add_user(dir.path(), None, "coord", "coordinator", Some("yinzhou"));

    // Setup on a server whose worker looks only at start (before any case exists) and then
    // not again for ten minutes.
    let setup_started = Instant::now();
    let server = Server::start(dir.path(), None, &serve_env(&smtp, 600_000), &log);
    let addr = server.addr.clone();
    let admin = login(&addr, "ops.admin").await;
    let coord = login(&addr, "coord").await;
    put_organ_plan(&addr, &admin, vec![welcome_rule(Some("email"))]).await;

    // Message-ID → the contact's address.
    let mut expected: HashMap<String, String> = HashMap::new();
    let mut cases = Vec::new();
    for i in 0..CASES {
        let (case_id, contact_id, email) = create_email_case(&addr, &coord, i).await;
        let (s, page) = http(
            &addr,
            "GET",
            &format!("/api/v1/cases/{case_id}/outreach"),
            Some(&coord),
            None,
        )
        .await;
        assert_eq!(s, 200, "{page}");
        let msgs = page["items"].as_array().unwrap();
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        assert_eq!(msgs[0]["status"], "scheduled", "{msgs:?}");
        assert_eq!(msgs[0]["recipient"], contact_id.as_str(), "{msgs:?}");
        expected.insert(message_id(str_of(&msgs[0], "id")), email);
        cases.push(case_id);
    }
    server.terminate();
    assert_eq!(expected.len(), CASES);
    assert_eq!(smtp.count(), 0, "nothing was sent during the setup");
    let setup_time = setup_started.elapsed();

    // Start with a fast tick, let it deliver a random few messages, then SIGKILL it at a random
    // moment of its delivery cycle (send, then settle); again and again. Counting deliveries
    // rather than sleeping keeps every kill inside delivery whatever the machine's speed.
    let delivering_started = Instant::now();
    let mut rng = rand::thread_rng();
    let mut kills = 0;
    let mut kills_mid_delivery = 0;
    let mut per_life = Vec::new();
    for _ in 0..KILLS {
        let before = smtp.count();
        let wanted = before + rng.gen_range(1..=8usize);
        let server = Server::start(dir.path(), None, &serve_env(&smtp, 50), &log);
        wait_until(
            Duration::from_secs(60),
            || smtp.count() >= wanted || all_arrived(&smtp, &expected),
            || {
                format!(
                    "no delivery after a restart; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..=100))).await;
        let outstanding = !all_arrived(&smtp, &expected);
        server.kill();
        kills += 1;
        if outstanding {
            kills_mid_delivery += 1;
        }
        per_life.push(smtp.count() - before);
        if !outstanding {
            break;
        }
    }

    // One more life, left to finish: every message arrives and is recorded as sent.
    let last_before = smtp.count();
    let last_started = Instant::now();
    let server = Server::start(dir.path(), None, &serve_env(&smtp, 50), &log);
    wait_until_all_arrived(&smtp, &expected, || {
        std::fs::read_to_string(&log).unwrap_or_default()
    })
    .await;
    let last_life = (smtp.count() - last_before, last_started.elapsed());
    let attempts_total = wait_until_recorded_sent(&server.addr, &coord, &cases).await;
    server.terminate();
    let delivering_time = delivering_started.elapsed();

    let mails = smtp.messages();
    let tally = Tally::of(&mails, &expected);
    let duplicates = tally.duplicates();
    eprintln!(
        "sigkill: {CASES} messages, {kills} kills ({kills_mid_delivery} mid-delivery), \
         delivered by each killed life {per_life:?}, {} emails received, {duplicates} \
         duplicates {:?}, {attempts_total} attempts recorded; the last life delivered \
         {} in {:.1}s; setup {:.1}s, delivery {:.1}s",
        mails.len(),
        tally.repeated(),
        last_life.0,
        last_life.1.as_secs_f64(),
        setup_time.as_secs_f64(),
        delivering_time.as_secs_f64()
    );
    tally.assert_at_most_one_repeat_per_kill(CASES, kills, kills_mid_delivery, KILLS);
}

// ---------------------------------------------------------------------------------------------
// Two real `serve` instances on one PostgreSQL database, one or the other killed while both
// deliver.

/// The events of a log written with `DONORCARE_LOG_FORMAT=json` (other lines are skipped).
fn log_events(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The scheduler passes a log records: one event per pass that took any case.
fn passes(log: &Path) -> Vec<Value> {
    log_events(log)
        .into_iter()
        .filter(|e| e["message"] == "care plans materialised")
        .collect()
}

/// How many of the emails received were sent as `from` (the `DONORCARE_SMTP_FROM` of one
/// instance).
fn sent_by(smtp: &SmtpServer, from: &str) -> usize {
    smtp.messages()
        .iter()
        .filter(|m| m.from.as_deref() == Some(from))
        .count()
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_serve_instances_on_one_postgres_share_the_scheduler_and_the_outbox_through_sigkills() {
    const CASES: usize = 240;
    const KILLS: usize = 4;
    let Some(admin_url) = postgres_admin_url() else {
        return;
    };
    let Some(smtp) = smtp_server() else { return };
    let db = PgDatabase::create(&admin_url).await;
    let url = Some(db.url.as_str());
    let pool = sqlx::PgPool::connect(&db.url)
        .await
        .expect("the test database");
    // One folder for both instances: they must share the identity the keyring is sealed to.
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), url, "ops.admin", "admin", None);
    add_user(dir.path(), url, "coord", "coordinator", Some("yinzhou"));

    // Setup on a server whose worker looks only at start: cases made under an empty plan have
    // nothing to send, until the welcome rule comes and every case's schedule is out of date.
    let setup_started = Instant::now();
    let setup_log = dir.path().join("setup.log");
    let server = Server::start(dir.path(), url, &serve_env(&smtp, 600_000), &setup_log);
    let admin = login(&server.addr, "ops.admin").await;
    let coord = login(&server.addr, "coord").await;
    put_organ_plan(&server.addr, &admin, vec![]).await;
    let mut email_of: HashMap<String, String> = HashMap::new();
    let mut cases = Vec::new();
    for i in 0..CASES {
        let (case_id, _, email) = create_email_case(&server.addr, &coord, i).await;
        email_of.insert(case_id.clone(), email);
        cases.push(case_id);
    }
    let welcome = vec![welcome_rule(Some("email"))];
    let mut version = put_organ_plan(&server.addr, &admin, welcome.clone()).await;
    server.terminate();
    assert_eq!(count(&pool, "select count(*) from tasks").await, 0);
    assert_eq!(count(&pool, "select count(*) from outreach").await, 0);
    let setup_time = setup_started.elapsed();

    // Both instances start together, and their first scheduler passes are made to meet: a lock
    // that lets reads through but not writes holds each at its first insert into tasks, so both
    // compute every case's welcome task and message from the same empty schedule.
    let names = ["instance-a", "instance-b"];
    let from = names.map(|n| format!("{n}@{MAIL_DOMAIN}"));
    let logs = names.map(|n| dir.path().join(format!("{n}.log")));
    let env_of = |i: usize| {
        let mut env = serve_env(&smtp, 50);
        env.extend([
            ("DONORCARE_SMTP_FROM", from[i].clone()),
            (
                "DONORCARE_LOG",
                "warn,donorcare::domain::schedule=info".into(),
            ),
            ("DONORCARE_LOG_FORMAT", "json".into()),
        ]);
        env
    };
    let start = |i: usize| Server::start(dir.path(), url, &env_of(i), &logs[i]);
    let logs_text = || {
        logs.iter()
            .map(|l| std::fs::read_to_string(l).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let delivering_started = Instant::now();
    let mut gate = pool.begin().await.unwrap();
    sqlx::query("lock table tasks in exclusive mode")
        .execute(&mut *gate)
        .await
        .unwrap();
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| start(0));
        let b = s.spawn(|| start(1));
        (a.join().unwrap(), b.join().unwrap())
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = sqlx::query_scalar(
            "select count(*) from pg_stat_activity where datname = $1 \
             and wait_event_type = 'Lock' and query like 'insert into tasks%'",
        )
        .bind(&db.name)
        .fetch_one(&pool)
        .await
        .unwrap();
        if waiting == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the two first passes did not both reach their insert ({waiting} did); logs:\n{}",
            logs_text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    gate.commit().await.unwrap();
    wait_until(
        Duration::from_secs(30),
        || logs.iter().all(|l| !passes(l).is_empty()),
        || format!("a first pass did not finish; logs:\n{}", logs_text()),
    )
    .await;
    for (name, log) in names.iter().zip(&logs) {
        let p = &passes(log)[0];
        assert_eq!(
            (&p["cases"], &p["created"], &p["messages"]),
            (&json!(CASES), &json!(CASES), &json!(CASES)),
            "{name}'s first pass made every welcome task and message: {p}"
        );
    }
    // Yet each occurrence has one task and one message: the pass that came second kept the
    // first one's.
    let made: Vec<(String, String)> = sqlx::query_as("select id, case_id from outreach")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(made.len(), CASES, "one message per case");
    let expected: HashMap<String, String> = made
        .iter()
        .map(|(id, case_id)| (message_id(id), email_of[case_id].clone()))
        .collect();
    assert_eq!(
        made.iter().map(|(_, c)| c).collect::<HashSet<_>>().len(),
        CASES
    );
    assert_eq!(
        count(&pool, "select count(*) from tasks").await,
        CASES as i64
    );

    // While both deliver (each has sent in its current life), SIGKILL one at a random moment,
    // A and B in turn; before restarting it, change the plan's version through the other, so the
    // restarted instance's first pass takes every case again while the other delivers.
    let mut rng = rand::thread_rng();
    let mut servers = [Some(a), Some(b)];
    let mut lives = [1usize, 1];
    let mut life_started_at = [0usize, 0];
    let mut kills = 0;
    let mut kills_mid_delivery = 0;
    let mut per_life = Vec::new();
    for k in 0..KILLS {
        let v = k % 2;
        let wanted = smtp.count() + rng.gen_range(2..=8usize);
        wait_until(
            Duration::from_secs(60),
            || {
                all_arrived(&smtp, &expected)
                    || (smtp.count() >= wanted
                        && passes(&logs[v]).len() >= lives[v]
                        && (0..2).all(|i| sent_by(&smtp, &from[i]) > life_started_at[i]))
            },
            || {
                format!(
                    "not both sending ({} in its life {}); logs:\n{}",
                    names[v],
                    lives[v],
                    logs_text()
                )
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..=50))).await;
        let outstanding = !all_arrived(&smtp, &expected);
        servers[v].take().expect("running").kill();
        kills += 1;
        per_life.push((names[v], sent_by(&smtp, &from[v]) - life_started_at[v]));
        if !outstanding {
            break;
        }
        kills_mid_delivery += 1;
        let other = servers[1 - v].as_ref().expect("running");
        version = put_organ_plan(&other.addr, &admin, welcome.clone()).await;
        life_started_at[v] = sent_by(&smtp, &from[v]);
        servers[v] = Some(start(v));
        lives[v] += 1;
    }

    // Left to finish: every message arrives, is recorded as sent, and every life's pass is done.
    wait_until_all_arrived(&smtp, &expected, logs_text).await;
    wait_until(
        Duration::from_secs(30),
        || (0..2).all(|i| passes(&logs[i]).len() >= lives[i]),
        || {
            format!(
                "a restarted instance's pass did not finish; logs:\n{}",
                logs_text()
            )
        },
    )
    .await;
    let running = servers.iter().flatten().next().expect("one is running");
    let attempts_total = wait_until_recorded_sent(&running.addr, &coord, &cases).await;
    for s in servers.into_iter().flatten() {
        s.terminate();
    }
    let delivering_time = delivering_started.elapsed();

    let mails = smtp.messages();
    let tally = Tally::of(&mails, &expected);
    let duplicates = tally.duplicates();
    let by = from.each_ref().map(|f| sent_by(&smtp, f));
    let all_passes: Vec<Vec<Value>> = logs.iter().map(|l| passes(l)).collect();
    let later: Vec<(&Value, &Value)> = all_passes
        .iter()
        .flat_map(|p| p.iter().skip(1))
        .map(|p| (&p["created"], &p["messages"]))
        .collect();
    eprintln!(
        "two instances: {CASES} messages, {kills} kills ({kills_mid_delivery} mid-delivery), \
         sent by each killed life {per_life:?}, by instance {by:?}, {} emails received, \
         {duplicates} duplicates {:?}, {attempts_total} attempts recorded; the restarted \
         passes made (tasks, messages) {later:?}; setup {:.1}s, delivery {:.1}s",
        mails.len(),
        tally.repeated(),
        setup_time.as_secs_f64(),
        delivering_time.as_secs_f64()
    );

    // Nothing lost, nothing sent twice but a killed instance's message in flight.
    tally.assert_at_most_one_repeat_per_kill(CASES, kills, kills_mid_delivery, KILLS);
    // Both delivered, and nobody else.
    assert!(by.iter().all(|n| *n > 0), "both instances sent: {by:?}");
    assert_eq!(
        by.iter().sum::<usize>(),
        mails.len(),
        "every email came from one of the two"
    );

    // The scheduler is shared: every life's first pass took every case, and still each case has
    // one welcome task, done, and one message, sent, under the latest plan.
    let total: usize = all_passes.iter().map(Vec::len).sum();
    assert_eq!(
        total,
        lives.iter().sum::<usize>(),
        "one pass per life: {all_passes:?}"
    );
    for p in all_passes.iter().flatten() {
        assert_eq!(p["cases"], CASES, "{p}");
    }
    let n = CASES as i64;
    assert_eq!(count(&pool, "select count(*) from tasks").await, n);
    assert_eq!(
        count(
            &pool,
            "select count(*) from tasks where rule_id = 'welcome' and status = 'done'"
        )
        .await,
        n
    );
    assert_eq!(count(&pool, "select count(*) from outreach").await, n);
    assert_eq!(
        count(&pool, "select count(*) from outreach where status = 'sent'").await,
        n
    );
    let current: i64 =
        sqlx::query_scalar("select count(*) from case_schedules where plan_version = $1")
            .bind(version)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        current, n,
        "every case materialised under plan version {version}"
    );
    // No instance warned: no failed pass, no lease lost by a live instance.
    let warnings: Vec<Value> = logs
        .iter()
        .flat_map(|l| log_events(l))
        .filter(|e| e["level"] == "WARN" || e["level"] == "ERROR")
        .collect();
    assert!(warnings.is_empty(), "{warnings:?}");
    pool.close().await;
}
