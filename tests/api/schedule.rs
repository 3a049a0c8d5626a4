//! Care plans, materialisation, the send-time gate and what cancels pending messages. Delivery
//! runs in-process through `outreach::run_due` with a chosen clock and the `file` and `portal`
//! channels; email and SMS against real servers are in `delivery.rs`.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use donorcare::domain::outreach::{run_due, Channels, RunStats};
use donorcare::domain::schedule::ScheduleSettings;
use donorcare::domain::Services;

use crate::helpers::{organ_case, tag, TestApp};

async fn outreach(app: &TestApp, token: &str, case_id: &str) -> Vec<Value> {
    let (s, b) = app
        .get(
            &format!("/api/v1/cases/{case_id}/outreach?limit=200"),
            token,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"].as_array().unwrap().clone()
}

async fn tasks(app: &TestApp, token: &str, case_id: &str) -> Vec<Value> {
    let (s, b) = app
        .get(&format!("/api/v1/tasks?case_id={case_id}&limit=200"), token)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"].as_array().unwrap().clone()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Replace a programme's rules as an admin.
async fn set_plan(app: &TestApp, program: &str, rules: Value) -> Value {
    let admin = app.user("admin", None).await;
    let (_, plans) = app.get("/api/v1/care-plans", &admin.token).await;
    let version = plans["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["program"] == program)
        .unwrap()["version"]
        .clone();
    let (s, b) = app
        .call(
            Method::PUT,
            &format!("/api/v1/care-plans/{program}"),
            Some(&admin.token),
            Some(json!({"version": version, "rules": rules})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b
}

/// A rule that makes one message due at 00:00 today (the case's registration day).
fn welcome(channel: Option<&str>) -> Value {
    let mut r = json!({"id": "welcome", "kind": "offset", "anchor": "registration", "offset": "0d",
                       "action": "outreach", "template": "memorial_invitation", "time": "00:00"});
    if let Some(c) = channel {
        r["channel"] = json!(c);
    }
    r
}

/// An organ case with one spouse (email, preferred `channel`); with `consent`, an active contact
/// consent for every channel. Returns (case id, contact id).
async fn family_case(app: &TestApp, token: &str, channel: &str, consent: bool) -> (String, String) {
    let case = app.create_case(token, organ_case(&tag())).await;
    let id = case["id"].as_str().unwrap().to_string();
    let (s, c) = app
        .post(&format!("/api/v1/cases/{id}/contacts"), token,
              json!({"full_name": "陈先生", "relationship": "spouse", "email": "chen@example.org",
                     "phone": "13800001111", "address": "1 Harbour Road", "preferred_channel": channel}))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let contact = c["id"].as_str().unwrap().to_string();
    if consent {
        give_consent(app, token, &id, &contact, None).await;
    }
    (id, contact)
}

async fn give_consent(
    app: &TestApp,
    token: &str,
    case: &str,
    contact: &str,
    channels: Option<Value>,
) -> String {
    let mut body = json!({"kind": "contact", "subject": contact, "given_by": contact, "method": "electronic",
                          "document": "contact-zh-CN-v1", "signed_at": "2025-04-01"});
    if let Some(c) = channels {
        body["scope"] = json!({"channels": c});
    }
    let (s, b) = app
        .post(&format!("/api/v1/cases/{case}/consents"), token, body)
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["id"].as_str().unwrap().to_string()
}

/// The app's services with delivery settings adjusted, and an outbox folder for `file`.
fn services(app: &TestApp, adjust: impl FnOnce(&mut ScheduleSettings)) -> Services {
    let mut svc = app.state.svc.clone();
    let mut s = (*svc.schedule).clone();
    s.waking = (0, 24);
    s.outbox_dir = Some(app.data_dir().join("outbox"));
    s.mail_domain = "test.invalid".into();
    adjust(&mut s);
    svc.schedule = Arc::new(s);
    svc
}

async fn deliver(svc: &Services, at: DateTime<Utc>) -> RunStats {
    let ch = Channels::new(svc.schedule.clone()).expect("channels");
    run_due(svc, &ch, "test-worker", move || at, || false)
        .await
        .expect("run_due")
}

/// The rules of a case's open findings.
async fn open_rules(app: &TestApp, token: &str, case_id: &str) -> Vec<String> {
    let (_, f) = app
        .get(
            &format!("/api/v1/ethics/findings?case_id={case_id}&status=open"),
            token,
        )
        .await;
    f["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["rule"].as_str().unwrap().to_string())
        .collect()
}

fn by_rule<'a>(items: &'a [Value], rule: &str) -> Vec<&'a Value> {
    items.iter().filter(|t| t["rule_id"] == rule).collect()
}

on_both_backends! {
    async fn default_plans_are_seeded_and_an_admin_edits_them_with_field_errors_and_versions(app) {
        let admin = app.user("admin", None).await;
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let (s, plans) = app.get("/api/v1/care-plans", &coord.token).await;
        assert_eq!(s, StatusCode::OK, "{plans}");
        let programs: Vec<&str> = plans["items"].as_array().unwrap().iter().map(|p| p["program"].as_str().unwrap()).collect();
        assert_eq!(programs, ["body", "marrow", "organ"]);
        let marrow = plans["items"].as_array().unwrap().iter().find(|p| p["program"] == "marrow").unwrap();
        assert_eq!(marrow["rules"].as_array().unwrap().len(), 13);
        // A coordinator may read plans but not change them.
        let (s, _) = app.call(Method::PUT, "/api/v1/care-plans/marrow", Some(&coord.token),
                              Some(json!({"version": 1, "rules": []}))).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        // Bad rules: each named.
        let bad = json!([{"id": "x", "kind": "offset", "anchor": "donation", "offset": "7 days", "action": "call"},
                         {"id": "x", "kind": "festival", "festival": "christmas", "action": "outreach", "template": "qingming"},
                         {"id": "y", "kind": "cron", "cron": "* * * * * *", "action": "call"}]);
        let (s, b) = app.call(Method::PUT, "/api/v1/care-plans/marrow", Some(&admin.token),
                              Some(json!({"version": 1, "rules": bad}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        for f in ["rules[0].offset", "rules[1].id", "rules[1].festival", "rules[2].cron"] {
            assert!(b["error"]["fields"][f].is_string(), "{f} not named: {b}");
        }
        // A stale version is a conflict; nothing changed.
        let (s, b) = app.call(Method::PUT, "/api/v1/care-plans/marrow", Some(&admin.token),
                              Some(json!({"version": 7, "rules": []}))).await;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        let (_, again) = app.get("/api/v1/care-plans", &coord.token).await;
        assert_eq!(again, plans);
    }

    async fn a_stored_default_plan_follows_a_new_release_and_an_edited_one_is_left_alone(app) {
        // An installation made before the marrow rules grew: its seeded plan has ten rules.
        let admin = app.user("admin", None).await;
        let (_, plans) = app.get("/api/v1/care-plans", &admin.token).await;
        let find = |plans: &Value, p: &str| plans["items"].as_array().unwrap().iter()
            .find(|x| x["program"] == p).unwrap().clone();
        let rules = find(&plans, "marrow")["rules"].as_array().unwrap().clone();
        assert_eq!(rules.len(), 13);
        let older = serde_json::to_string(&rules[..10]).unwrap();
        app.exec("update care_plans set rules = $1 where program = $2", &older, "marrow").await;
        // An admin's own organ plan, seeded then edited.
        let organ = find(&plans, "organ");
        let mine = json!([organ["rules"][0]]);
        set_plan(&app, "organ", mine.clone()).await;

        let restarted = app.sibling().await;
        let (_, after) = restarted.get("/api/v1/care-plans", &admin.token).await;
        let marrow = find(&after, "marrow");
        assert_eq!(marrow["rules"].as_array().unwrap().len(), 13, "{marrow}");
        assert_eq!(marrow["version"], 2, "a new version, so schedules are made again");
        let organ = find(&after, "organ");
        assert_eq!(organ["rules"], mine, "the admin's plan is theirs");
        assert_eq!(find(&after, "body")["version"], 1, "an unchanged default stays as it is");
        let (_, log) = restarted.get("/api/v1/audit?action=care_plan.update&limit=50", &admin.token).await;
        assert!(log["items"].as_array().unwrap().iter().any(|e| e["actor_id"].is_null()), "{log}");
    }

    async fn materialising_is_idempotent_and_follows_plan_changes_and_anchor_moves(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let (id, _) = family_case(&app, &coord.token, "email", true).await;
        let before = tasks(&app, &coord.token, &id).await;
        let msgs_before = outreach(&app, &coord.token, &id).await;
        assert!(!by_rule(&before, "death_anniversary").is_empty(), "{before:?}");
        // Again: nothing new.
        let stats = donorcare::domain::schedule::materialise(&app.state.svc, std::slice::from_ref(&id), Utc::now())
            .await
            .unwrap();
        assert_eq!((stats.created, stats.messages, stats.cancelled), (0, 0, 0), "{stats:?}");
        assert_eq!(tasks(&app, &coord.token, &id).await.len(), before.len());
        assert_eq!(outreach(&app, &coord.token, &id).await.len(), msgs_before.len());

        // The death date moves by a day: the anniversary task and its message follow.
        let anniv = by_rule(&before, "death_anniversary")[0].clone();
        let (s, b) = app.patch(&format!("/api/v1/cases/{id}"), &coord.token,
                               json!({"donor": {"death_date": "2025-03-11"}})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let after = tasks(&app, &coord.token, &id).await;
        let moved = after.iter().find(|t| t["id"] == anniv["id"]).expect("same task, moved");
        let old: DateTime<Utc> = anniv["due_at"].as_str().unwrap().parse().unwrap();
        let new: DateTime<Utc> = moved["due_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(new - old, Duration::days(1));
        let msg = outreach(&app, &coord.token, &id).await.into_iter().find(|m| m["task_id"] == anniv["id"]).unwrap();
        let due: DateTime<Utc> = msg["due_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(due, new, "the message follows its task");

        // The plan loses its festival rules: their future tasks and messages are cancelled.
        let plan: Vec<Value> = donorcare::schedule::plan::default_rules("organ")
            .into_iter()
            .filter(|r| r.kind != "festival")
            .map(|r| serde_json::to_value(r).unwrap())
            .collect();
        set_plan(&app, "organ", json!(plan)).await;
        donorcare::domain::schedule::materialise_all(&app.state.svc, Utc::now(), 100).await.unwrap();
        let after = tasks(&app, &coord.token, &id).await;
        let qm = by_rule(&after, "qingming");
        assert!(!qm.is_empty() && qm.iter().all(|t| t["status"] == "cancelled"), "{qm:?}");
        let msgs = outreach(&app, &coord.token, &id).await;
        let qm_msgs: Vec<&Value> = msgs.iter().filter(|m| m["template"] == "qingming").collect();
        assert!(qm_msgs.iter().all(|m| m["status"] == "cancelled" && m["reason"] == "no_longer_in_plan"), "{qm_msgs:?}");
    }

    async fn families_opt_into_mourning_days_and_out_of_a_festival(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        // A recent death, so the mourning days fall in the future.
        let mut case = organ_case(&tag());
        let death = (Utc::now() - Duration::days(2)).date_naive();
        case["donor"]["death_date"] = json!(death.to_string());
        case["donation"]["date"] = json!(death.to_string());
        let case = app.create_case(&coord.token, case).await;
        let id = case["id"].as_str().unwrap();
        app.post(&format!("/api/v1/cases/{id}/contacts"), &coord.token,
                 json!({"full_name": "王女士", "relationship": "spouse", "preferred_channel": "portal"})).await;
        assert!(by_rule(&tasks(&app, &coord.token, id).await, "mourning_days").is_empty(), "opt-in only");

        let (s, b) = app.patch(&format!("/api/v1/cases/{id}/schedule"), &coord.token,
                               json!({"mourning_days": true, "skip_festivals": ["spring_festival"]})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["mourning_days"], true);
        let all = tasks(&app, &coord.token, id).await;
        let mourning: Vec<&str> = by_rule(&all, "mourning_days").iter().map(|t| t["occurrence"].as_str().unwrap()).collect();
        for k in ["d7", "d21", "d35", "d49", "d100", "y1"] {
            assert!(mourning.contains(&k), "{k} missing: {mourning:?}");
        }
        let spring = by_rule(&all, "spring_festival");
        assert!(!spring.is_empty() && spring.iter().all(|t| t["status"] == "cancelled"), "{spring:?}");
        let spring_msgs = |msgs: &[Value]| -> Vec<Value> {
            msgs.iter().filter(|m| m["template"] == "spring_festival").cloned().collect()
        };
        let dropped = spring_msgs(&outreach(&app, &coord.token, id).await);
        assert!(!dropped.is_empty() && dropped.iter().all(|m| m["status"] == "cancelled"), "{dropped:?}");

        // They change their mind: the greetings come back, with messages to send, and the
        // mourning days they no longer want go.
        let (s, b) = app.patch(&format!("/api/v1/cases/{id}/schedule"), &coord.token,
                               json!({"mourning_days": false, "skip_festivals": []})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let all = tasks(&app, &coord.token, id).await;
        let spring = by_rule(&all, "spring_festival");
        assert!(!spring.is_empty() && spring.iter().all(|t| t["status"] == "scheduled"), "{spring:?}");
        let back = spring_msgs(&outreach(&app, &coord.token, id).await);
        assert_eq!(back.len(), dropped.len(), "{back:?}");
        assert!(back.iter().all(|m| m["status"] == "scheduled"), "{back:?}");
        assert!(by_rule(&all, "mourning_days").iter().all(|t| t["status"] == "cancelled"));
        // A task staff cancelled stays cancelled whatever the family chooses.
        let first = spring[0]["id"].as_str().unwrap().to_string();
        let (s, b) = app.post(&format!("/api/v1/tasks/{first}/cancel"), &coord.token,
                              json!({"reason": "the family is travelling that week"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        for skip in [json!(["spring_festival"]), json!([])] {
            let (s, b) = app.patch(&format!("/api/v1/cases/{id}/schedule"), &coord.token,
                                   json!({"skip_festivals": skip})).await;
            assert_eq!(s, StatusCode::OK, "{b}");
        }
        let all = tasks(&app, &coord.token, id).await;
        let spring = by_rule(&all, "spring_festival");
        let status_of = |tid: &str| spring.iter().find(|t| t["id"] == tid).unwrap()["status"].clone();
        assert_eq!(status_of(&first), "cancelled");
        assert!(spring.iter().filter(|t| t["id"] != first.as_str()).all(|t| t["status"] == "scheduled"), "{spring:?}");

        let (s, b) = app.patch(&format!("/api/v1/cases/{id}/schedule"), &coord.token,
                               json!({"skip_festivals": ["easter"]})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["skip_festivals"].is_string());
    }

    async fn a_living_donor_gets_outreach_in_their_language_and_time_zone(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        // Bad values are named.
        let mut bad = crate::helpers::marrow_case(&tag(), "13900001111");
        bad["donor"]["language"] = json!("fr");
        bad["donor"]["timezone"] = json!("Mars/Olympus");
        let (s, b) = app.post("/api/v1/cases", &coord.token, bad).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        for f in ["donor.language", "donor.timezone"] {
            assert!(b["error"]["fields"][f].is_string(), "{f} not named: {b}");
        }

        set_plan(&app, "marrow", json!([{"id": "hello", "kind": "offset", "anchor": "registration",
            "offset": "1d", "action": "outreach", "template": "marrow_followup", "time": "10:00"}])).await;
        let mut case = crate::helpers::marrow_case(&tag(), "13900002222");
        case["donor"]["email"] = json!("donor@example.org");
        case["donor"]["language"] = json!("en");
        case["donor"]["timezone"] = json!("America/New_York");
        let case = app.create_case(&coord.token, case).await;
        assert_eq!(case["donor"]["language"], "en", "{case}");
        assert_eq!(case["donor"]["timezone"], "America/New_York", "{case}");
        let id = case["id"].as_str().unwrap();
        let msgs = outreach(&app, &coord.token, id).await;
        assert_eq!(msgs.len(), 1, "{msgs:?}");
        // 10:00 in New York on the day after registration.
        let created: DateTime<Utc> = case["created_at"].as_str().unwrap().parse().unwrap();
        let ny: chrono_tz::Tz = "America/New_York".parse().unwrap();
        let day = created.with_timezone(&ny).date_naive() + Duration::days(1);
        let want = day.and_hms_opt(10, 0, 0).unwrap().and_local_timezone(ny).single().unwrap().with_timezone(&Utc);
        let due: DateTime<Utc> = msgs[0]["due_at"].as_str().unwrap().parse().unwrap();
        assert_eq!(due, want, "{msgs:?}");
        let (s, p) = app.get(&format!("/api/v1/outreach/{}/preview", msgs[0]["id"].as_str().unwrap()), &coord.token).await;
        assert_eq!(s, StatusCode::OK, "{p}");
        assert_eq!(p["language"], "en", "{p}");
        // A donor without them: zh-CN, the service's zone.
        let plain = app.create_case(&coord.token, crate::helpers::marrow_case(&tag(), "13900003333")).await;
        assert!(plain["donor"].get("language").is_none(), "{plain}");
        let msgs = outreach(&app, &coord.token, plain["id"].as_str().unwrap()).await;
        let (_, p) = app.get(&format!("/api/v1/outreach/{}/preview", msgs[0]["id"].as_str().unwrap()), &coord.token).await;
        assert_eq!(p["language"], "zh-CN", "{p}");
    }

    async fn a_completed_visit_cancels_the_messages_it_makes_pointless(app) {
        let letter = |id: &str, offset: &str, skip: Option<u32>| {
            let mut r = json!({"id": id, "kind": "offset", "anchor": "registration", "offset": offset,
                               "action": "outreach", "template": "memorial_invitation", "channel": "file"});
            if let Some(d) = skip {
                r["skip_after_visit_days"] = json!(d);
            }
            r
        };
        let visit = json!({"id": "visit", "kind": "offset", "anchor": "registration", "offset": "0d",
                           "action": "visit"});
        // Only outreach rules take it.
        let mut bad = visit.clone();
        bad["skip_after_visit_days"] = json!(30);
        let admin = app.user("admin", None).await;
        let (_, plans) = app.get("/api/v1/care-plans", &admin.token).await;
        let version = plans["items"].as_array().unwrap().iter().find(|p| p["program"] == "organ").unwrap()["version"].clone();
        let (s, b) = app.call(Method::PUT, "/api/v1/care-plans/organ", Some(&admin.token),
                              Some(json!({"version": version, "rules": [bad, letter("x", "1d", Some(0))]}))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        for f in ["rules[0].skip_after_visit_days", "rules[1].skip_after_visit_days"] {
            assert!(b["error"]["fields"][f].is_string(), "{f} not named: {b}");
        }

        set_plan(&app, "organ", json!([visit, letter("soon", "10d", Some(30)), letter("later", "40d", Some(30)),
                                       letter("unlinked", "10d", None)])).await;
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let (id, _) = family_case(&app, &coord.token, "email", true).await;
        let all = tasks(&app, &coord.token, &id).await;
        let visit_id = by_rule(&all, "visit")[0]["id"].as_str().unwrap().to_string();
        let rule_of = |msg: &Value| -> String {
            all.iter().find(|t| t["id"] == msg["task_id"]).unwrap()["rule_id"].as_str().unwrap().to_string()
        };
        let before = outreach(&app, &coord.token, &id).await;
        assert_eq!(before.len(), 3, "{before:?}");
        assert!(before.iter().all(|m| m["status"] == "scheduled"), "{before:?}");

        let (s, b) = app.post(&format!("/api/v1/tasks/{visit_id}/complete"), &coord.token,
                              json!({"outcome": "visited the family at home"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let after = outreach(&app, &coord.token, &id).await;
        for m in &after {
            let (status, reason) = (m["status"].as_str().unwrap(), m["reason"].as_str());
            match rule_of(m).as_str() {
                "soon" => assert_eq!((status, reason), ("cancelled", Some("visit_done")), "{m}"),
                "later" | "unlinked" => assert_eq!(status, "scheduled", "{m}"),
                other => panic!("unexpected rule {other}"),
            }
        }

        // A contact added after the visit gets messages of their own; at send time the gate
        // finds the visit and cancels the pointless one, and sends the other.
        let (s, c) = app.post(&format!("/api/v1/cases/{id}/contacts"), &coord.token,
                              json!({"full_name": "陈女士", "relationship": "child", "email": "chen2@example.org",
                                     "preferred_channel": "email"})).await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
        let second = c["id"].as_str().unwrap().to_string();
        give_consent(&app, &coord.token, &id, &second, None).await;
        let theirs = |msgs: Vec<Value>| -> Vec<Value> {
            msgs.into_iter().filter(|m| m["recipient"] == second.as_str()).collect()
        };
        assert_eq!(theirs(outreach(&app, &coord.token, &id).await).len(), 3);
        deliver(&services(&app, |_| {}), Utc::now() + Duration::days(11)).await;
        for m in theirs(outreach(&app, &coord.token, &id).await) {
            let (status, reason) = (m["status"].as_str().unwrap(), m["reason"].as_str());
            match rule_of(&m).as_str() {
                "soon" => assert_eq!((status, reason), ("cancelled", Some("visit_done")), "{m}"),
                "unlinked" => assert_eq!(status, "sent", "{m}"),
                "later" => assert_eq!(status, "scheduled", "{m}"),
                other => panic!("unexpected rule {other}"),
            }
        }
    }

    async fn staff_list_the_messages_that_need_them_in_their_own_cases(app) {
        set_plan(&app, "organ", json!([welcome(Some("file"))])).await;
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let other = app.user("coordinator", Some("yinzhou")).await;
        let sup = app.user("supervisor", Some("yinzhou")).await;
        let far = app.user("supervisor", Some("haishu")).await;
        let (held_a, _) = family_case(&app, &coord.token, "email", false).await;
        let (held_b, _) = family_case(&app, &coord.token, "email", false).await;
        let (sent, _) = family_case(&app, &coord.token, "email", true).await;
        deliver(&services(&app, |_| {}), Utc::now()).await;

        let list = |token: String, query: &'static str| {
            let app = &app;
            async move {
                let (s, b) = app.get(&format!("/api/v1/outreach{query}"), &token).await;
                (s, b)
            }
        };
        let (s, b) = list(coord.token.clone(), "").await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let items = b["items"].as_array().unwrap();
        let cases: Vec<&str> = items.iter().map(|m| m["case_id"].as_str().unwrap()).collect();
        assert!(cases.contains(&held_a.as_str()) && cases.contains(&held_b.as_str()), "{b}");
        assert!(!cases.contains(&sent.as_str()), "{b}");
        assert!(items.iter().all(|m| m["status"] == "held"
            && m["reason"].as_str().unwrap().starts_with("no_consent")), "{b}");
        // A page at a time, in due order, without repeats.
        let (_, p1) = list(coord.token.clone(), "?limit=1").await;
        let cursor = p1["next_cursor"].as_str().expect("a second page").to_string();
        let (_, p2) = app.get(&format!("/api/v1/outreach?limit=1&cursor={}", urlencode(&cursor)), &coord.token).await;
        assert_eq!(p2["items"].as_array().unwrap().len(), 1, "{p2}");
        assert_ne!(p1["items"][0]["id"], p2["items"][0]["id"]);
        // Scope: another coordinator sees none of it; the region's supervisor sees it, another
        // region's does not.
        let (_, b) = list(other.token.clone(), "").await;
        assert_eq!(b["items"], json!([]), "{b}");
        let (_, b) = list(sup.token.clone(), "").await;
        assert_eq!(b["items"].as_array().unwrap().len(), items.len(), "{b}");
        let (_, b) = list(far.token.clone(), "").await;
        assert_eq!(b["items"], json!([]), "{b}");
        // The coordinator's home page lists them first, with why.
        let jar = crate::pages::page_session(&app, &coord.username).await;
        let (status, html) = crate::pages::page(&app, "/", &jar).await;
        assert_eq!(status, StatusCode::OK);
        let table = &html[html.find("id=\"attention\"").expect("an attention list")..];
        let table = &table[..table.find("</ul>").expect("the list's end")];
        assert!(table.contains(&held_a) && table.contains(&held_b) && table.contains("没有覆盖这个渠道的联系同意书"), "{table}");
        assert!(!table.contains(&sent), "{table}");
        let jar = crate::pages::page_session(&app, &other.username).await;
        let (_, html) = crate::pages::page(&app, "/", &jar).await;
        assert!(!html.contains("id=\"attention\""), "{html}");

        // Only the asked statuses; a bad one is named.
        let (_, b) = list(coord.token.clone(), "?status=dead,failed").await;
        assert_eq!(b["items"], json!([]), "{b}");
        let (s, b) = list(coord.token.clone(), "?status=held,lost").await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["status"].is_string(), "{b}");
    }

    async fn a_held_message_is_previewed_released_or_cancelled_from_its_page(app) {
        use crate::pages::{form as post_form, hidden, page, page_session, raw};
        set_plan(&app, "organ", json!([welcome(Some("file"))])).await;
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let other = app.user("coordinator", Some("yinzhou")).await;
        let (a, _) = family_case(&app, &coord.token, "email", false).await;
        let (b, _) = family_case(&app, &coord.token, "email", false).await;
        deliver(&services(&app, |_| {}), Utc::now()).await;
        let msg_a = outreach(&app, &coord.token, &a).await[0]["id"].as_str().unwrap().to_string();
        let msg_b = outreach(&app, &coord.token, &b).await[0]["id"].as_str().unwrap().to_string();

        // The page: who it is for, why it waits, the text as it would go, and what to do.
        let jar = page_session(&app, &coord.username).await;
        let (s, html) = page(&app, &format!("/outreach/{msg_a}"), &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("陈先生") && html.contains("没有覆盖这个渠道的联系同意书"), "{html}");
        assert!(html.contains("class=\"letter-preview\""), "{html}");
        assert!(html.contains(&format!("action=\"/outreach/{msg_a}/release\""))
            && html.contains(&format!("action=\"/outreach/{msg_a}/cancel\"")), "{html}");
        let csrf = hidden(&html, "csrf");
        // Another coordinator's case does not exist for them, on the page or in the API.
        let other_jar = page_session(&app, &other.username).await;
        let (s, _) = page(&app, &format!("/outreach/{msg_a}"), &other_jar).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = app.post(&format!("/api/v1/outreach/{msg_a}/cancel"), &other.token, json!({})).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(outreach(&app, &coord.token, &a).await[0]["status"], "held");

        // Without the form's token nothing happens.
        let (s, _, _) = raw(&app, post_form(&format!("/outreach/{msg_a}/cancel"), &jar, "csrf=forged")).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert_eq!(outreach(&app, &coord.token, &a).await[0]["status"], "held");

        // Cancel: for good, recorded, the page says so and offers nothing more.
        let (s, h, _) = raw(&app, post_form(&format!("/outreach/{msg_a}/cancel"), &jar, &format!("csrf={csrf}"))).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h["location"], format!("/outreach/{msg_a}").as_str());
        let m = &outreach(&app, &coord.token, &a).await[0];
        assert_eq!((m["status"].as_str(), m["reason"].as_str()), (Some("cancelled"), Some("cancelled by staff")), "{m}");
        let (_, html) = page(&app, &format!("/outreach/{msg_a}"), &jar).await;
        assert!(html.contains("已由工作人员取消") && !html.contains("/release\""), "{html}");
        // A cancelled message is neither released nor cancelled again; the page says why.
        let (s, _, html) = raw(&app, post_form(&format!("/outreach/{msg_a}/release"), &jar, &format!("csrf={csrf}"))).await;
        assert_eq!(s, StatusCode::CONFLICT, "{html}");
        assert!(html.contains("不在等待处理"), "{html}");
        let (s, body) = app.post(&format!("/api/v1/outreach/{msg_a}/cancel"), &coord.token, json!({})).await;
        assert_eq!(s, StatusCode::CONFLICT, "{body}");
        // The delivery run leaves it alone.
        deliver(&services(&app, |_| {}), Utc::now()).await;
        assert_eq!(outreach(&app, &coord.token, &a).await[0]["status"], "cancelled");

        // From the queue: released, back to the queue, and due again.
        let (s, html) = page(&app, "/outreach", &jar).await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains(&format!("action=\"/outreach/{msg_b}/release\"")) && !html.contains(&format!("/outreach/{msg_a}/release")), "{html}");
        let (_, case_b) = app.get(&format!("/api/v1/cases/{b}"), &coord.token).await;
        let donor = case_b["donor"]["full_name"].as_str().unwrap();
        assert!(html.contains(&format!(">{donor}</a>")), "each message is named by its donor: {html}");
        let (s, h, _) = raw(&app, post_form(&format!("/outreach/{msg_b}/release"), &jar, &format!("csrf={csrf}&return=queue"))).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h["location"], "/outreach");
        assert_eq!(outreach(&app, &coord.token, &b).await[0]["status"], "scheduled");

        // Each act is in the audit log under its own name.
        let admin = app.user("admin", None).await;
        for action in ["outreach.cancel", "outreach.release", "outreach.view"] {
            let (_, log) = app.get(&format!("/api/v1/audit?action={action}"), &admin.token).await;
            let n = log["items"].as_array().map_or(0, |v| v.len());
            assert!(n >= 1, "{action}: {log}");
        }
    }

    async fn the_gate_holds_without_consent_and_sends_with_it(app) {
        set_plan(&app, "organ", json!([welcome(Some("file"))])).await;
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let (with, _) = family_case(&app, &coord.token, "email", true).await;
        let (without, _) = family_case(&app, &coord.token, "email", false).await;
        // The reviewers see the gap before anything is sent.
        let reviewer = app.user("ethics_reviewer", None).await;
        let rules_of = |b: &Value| -> Vec<String> {
            b["items"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap().to_string()).collect()
        };
        let (_, f) = app.get(&format!("/api/v1/ethics/findings?case_id={without}&status=open"), &reviewer.token).await;
        assert!(rules_of(&f).contains(&"outreach_without_consent".to_string()), "{f}");
        let (_, f) = app.get(&format!("/api/v1/ethics/findings?case_id={with}&status=open"), &reviewer.token).await;
        assert!(!rules_of(&f).contains(&"outreach_without_consent".to_string()), "{f}");
        let svc = services(&app, |_| {});
        let stats = deliver(&svc, Utc::now()).await;
        assert_eq!((stats.sent, stats.held), (1, 1), "{stats:?}");
        let sent = outreach(&app, &coord.token, &with).await;
        assert_eq!(sent[0]["status"], "sent", "{sent:?}");
        let id = sent[0]["id"].as_str().unwrap();
        let file = std::fs::read_to_string(app.data_dir().join("outbox").join(format!("{id}.txt"))).unwrap();
        assert!(file.contains(&format!("Message-ID: <outreach-{id}@test.invalid>")), "{file}");
        assert!(file.contains("陈先生"), "rendered for the recipient: {file}");
        let held = outreach(&app, &coord.token, &without).await;
        assert_eq!(held[0]["status"], "held");
        assert!(held[0]["reason"].as_str().unwrap().starts_with("no_consent"), "{held:?}");
        // Nothing was written for the held message.
        let files = std::fs::read_dir(app.data_dir().join("outbox")).unwrap().count();
        assert_eq!(files, 1);
        // A second run finds nothing to do: nothing is sent twice.
        let again = deliver(&svc, Utc::now()).await;
        assert_eq!(again.claimed, 0);
        // The family consents later, within the grace period: the held message goes out.
        let contact = held[0]["recipient"].as_str().unwrap().to_string();
        give_consent(&app, &coord.token, &without, &contact, None).await;
        let requeued = outreach(&app, &coord.token, &without).await;
        assert_eq!(requeued[0]["status"], "scheduled", "{requeued:?}");
        let stats = deliver(&svc, Utc::now()).await;
        assert_eq!(stats.sent, 1, "{stats:?}");
        assert_eq!(outreach(&app, &coord.token, &without).await[0]["status"], "sent");
    }

    async fn a_consent_scoped_to_other_channels_an_opt_out_and_a_closed_case_each_stop_messages(app) {
        set_plan(&app, "organ", json!([welcome(None)])).await;
        let coord = app.user("coordinator", Some("yinzhou")).await;
        // Consent covers sms only; the contact prefers email.
        let (scoped, contact) = family_case(&app, &coord.token, "email", false).await;
        give_consent(&app, &coord.token, &scoped, &contact, Some(json!(["sms"]))).await;
        // Opted out after the message was scheduled.
        let (opted, opted_contact) = family_case(&app, &coord.token, "portal", true).await;
        let (s, b) = app.patch(&format!("/api/v1/contacts/{opted_contact}"), &coord.token, json!({"opted_out": true})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let m = outreach(&app, &coord.token, &opted).await;
        assert_eq!((m[0]["status"].as_str(), m[0]["reason"].as_str()), (Some("cancelled"), Some("opted_out")), "{m:?}");
        // Closed case.
        let (closed, _) = family_case(&app, &coord.token, "portal", true).await;
        let (s, b) = app.patch(&format!("/api/v1/cases/{closed}"), &coord.token, json!({"status": "closed"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let m = outreach(&app, &coord.token, &closed).await;
        assert_eq!((m[0]["status"].as_str(), m[0]["reason"].as_str()), (Some("cancelled"), Some("case_closed")), "{m:?}");
        // Do not contact until a date beyond the grace period: held with that reason.
        let (quiet, quiet_contact) = family_case(&app, &coord.token, "portal", true).await;
        let until = (Utc::now() + Duration::days(30)).date_naive().to_string();
        app.patch(&format!("/api/v1/contacts/{quiet_contact}"), &coord.token, json!({"do_not_contact_until": until})).await;

        let svc = services(&app, |_| {});
        let stats = deliver(&svc, Utc::now()).await;
        assert_eq!(stats.sent, 0, "{stats:?}");
        let m = outreach(&app, &coord.token, &scoped).await;
        assert_eq!(m[0]["status"], "held");
        assert!(m[0]["reason"].as_str().unwrap().contains("email"), "{m:?}");
        let m = outreach(&app, &coord.token, &quiet).await;
        assert_eq!(m[0]["status"], "held");
        assert!(m[0]["reason"].as_str().unwrap().starts_with("do_not_contact_until"), "{m:?}");
    }

    async fn withdrawing_contact_consent_cancels_pending_messages_in_the_same_step(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let (id, contact) = family_case(&app, &coord.token, "email", false).await;
        let email_only = give_consent(&app, &coord.token, &id, &contact, Some(json!(["email"]))).await;
        let portal_too = give_consent(&app, &coord.token, &id, &contact, Some(json!(["portal"]))).await;
        let pending = outreach(&app, &coord.token, &id).await;
        assert!(!pending.is_empty() && pending.iter().all(|m| m["status"] == "scheduled"));
        // Withdrawing the portal consent leaves email messages alone (email is still covered).
        let (s, b) = app.post(&format!("/api/v1/consents/{portal_too}/withdraw"), &coord.token, json!({"reason": "portal only by phone"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert!(outreach(&app, &coord.token, &id).await.iter().all(|m| m["status"] == "scheduled"));
        // Withdrawing the email consent cancels every pending email message at once.
        let (s, b) = app.post(&format!("/api/v1/consents/{email_only}/withdraw"), &coord.token, json!({"reason": "no more letters please"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let after = outreach(&app, &coord.token, &id).await;
        assert!(after.iter().all(|m| m["status"] == "cancelled" && m["reason"] == "consent_withdrawn"), "{after:?}");
    }

    async fn late_messages_within_grace_go_out_and_later_ones_are_skipped_and_recorded(app) {
        // Due today at 00:00 with the default grace of 7 days for outreach.
        set_plan(&app, "organ", json!([welcome(Some("file"))])).await;
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let (late, _) = family_case(&app, &coord.token, "email", true).await;
        let svc = services(&app, |_| {});
        // The service was down for 5 days: still within grace.
        let stats = deliver(&svc, Utc::now() + Duration::days(5)).await;
        assert_eq!(stats.sent, 1, "{stats:?}");
        assert_eq!(outreach(&app, &coord.token, &late).await[0]["status"], "sent");
        // Down for a month: skipped, with the reason recorded; the task is settled too.
        let (too_late, _) = family_case(&app, &coord.token, "email", true).await;
        let stats = deliver(&svc, Utc::now() + Duration::days(30)).await;
        assert_eq!((stats.sent, stats.cancelled), (0, 1), "{stats:?}");
        let m = outreach(&app, &coord.token, &too_late).await;
        assert_eq!(m[0]["status"], "cancelled");
        assert!(m[0]["reason"].as_str().unwrap().starts_with("late"), "{m:?}");
        let t = tasks(&app, &coord.token, &too_late).await;
        assert_eq!(by_rule(&t, "welcome")[0]["status"], "done", "no message pending: the task is settled");
    }

    async fn messages_wait_for_waking_hours_in_the_recipients_zone(app) {
        set_plan(&app, "organ", json!([welcome(Some("file"))])).await;
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let (id, contact) = family_case(&app, &coord.token, "email", true).await;
        app.patch(&format!("/api/v1/contacts/{contact}"), &coord.token, json!({"timezone": "America/New_York"})).await;
        let svc = services(&app, |s| s.waking = (9, 20));
        // 03:00 in New York: deferred to 09:00 there.
        let tz: chrono_tz::Tz = "America/New_York".parse().unwrap();
        let today = Utc::now().with_timezone(&tz).date_naive() + Duration::days(1);
        let three = donorcare::schedule::calendar::local_instant(tz, today, chrono::NaiveTime::from_hms_opt(3, 0, 0).unwrap());
        let stats = deliver(&svc, three).await;
        assert_eq!((stats.sent, stats.deferred), (0, 1), "{stats:?}");
        let m = outreach(&app, &coord.token, &id).await;
        assert_eq!(m[0]["status"], "scheduled");
        assert!(m[0]["reason"].as_str().unwrap().contains("waking"), "{m:?}");
        // Still night: nothing is claimed again before nine.
        assert_eq!(deliver(&svc, three + Duration::hours(2)).await.claimed, 0);
        let nine = donorcare::schedule::calendar::local_instant(tz, today, chrono::NaiveTime::from_hms_opt(9, 0, 0).unwrap());
        let stats = deliver(&svc, nine).await;
        assert_eq!(stats.sent, 1, "{stats:?}");
    }

    async fn one_family_gets_at_most_the_cap_across_channels(app) {
        // Four messages due today for one family, cap two a week.
        let rules: Vec<Value> = ["a", "b", "c", "d"].iter().map(|n| {
            let mut r = welcome(Some(if *n == "a" { "portal" } else { "file" }));
            r["id"] = json!(format!("welcome_{n}"));
            r
        }).collect();
        set_plan(&app, "organ", json!(rules)).await;
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let (id, _) = family_case(&app, &coord.token, "email", true).await;
        let svc = services(&app, |s| s.cap = 2);
        let stats = deliver(&svc, Utc::now()).await;
        assert_eq!(stats.sent, 2, "{stats:?}");
        let m = outreach(&app, &coord.token, &id).await;
        let capped: Vec<&Value> = m.iter().filter(|m| m["status"] != "sent").collect();
        assert_eq!(capped.len(), 2);
        assert!(capped.iter().all(|m| m["reason"].as_str().unwrap().starts_with("family_cap")), "{capped:?}");
    }

    async fn portal_messages_reach_the_familys_inbox_and_the_family_sets_its_preferences(app) {
        set_plan(&app, "organ", json!([welcome(Some("portal"))])).await;
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let (id, contact) = family_case(&app, &coord.token, "portal", true).await;
        let (_, inv) = app.post(&format!("/api/v1/contacts/{contact}/invite"), &coord.token, json!({})).await;
        let t = inv["invite_url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
        let username = format!("fam-{}", &tag()[..6]).to_lowercase();
        let (s, b) = app.call(Method::POST, &format!("/api/v1/invites/{t}/accept"), None,
                              Some(json!({"username": username, "password": "family-password-1"}))).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        let fam = app.login(&username, "family-password-1").await;
        deliver(&services(&app, |_| {}), Utc::now()).await;
        let (s, inbox) = app.get("/api/v1/me/outreach", &fam).await;
        assert_eq!(s, StatusCode::OK, "{inbox}");
        let item = &inbox["items"][0];
        assert_eq!(item["status"], "sent");
        assert!(item["message"]["body"].as_str().unwrap().contains("陈先生"), "{item}");
        // Reading the inbox is on the record, without showing in the family's staff access log.
        let admin = app.user("admin", None).await;
        let (_, log) = app.get(&format!("/api/v1/audit?case_id={id}&limit=200"), &admin.token).await;
        assert!(log["items"].as_array().unwrap().iter().any(|e| e["target_type"] == "outreach"
            && e["actor_role"] == "family" && e["target_id"] == contact.as_str()), "{log}");
        let (_, access) = app.get("/api/v1/me/access-log", &fam).await;
        assert!(access["items"].as_array().unwrap().iter().all(|e| e["staff_role"] != "family"), "{access}");
        // The preview of the same message renders the same text for staff.
        let (s, p) = app.get(&format!("/api/v1/outreach/{}/preview", item["id"].as_str().unwrap()), &coord.token).await;
        assert_eq!(s, StatusCode::OK, "{p}");
        assert_eq!(p["body"], item["message"]["body"]);

        let (s, prefs) = app.get("/api/v1/me/preferences", &fam).await;
        assert_eq!(s, StatusCode::OK, "{prefs}");
        assert_eq!(prefs["preferred_channel"], "portal");
        // A bad festival name changes nothing, not even the valid half of the patch.
        let (s, b) = app.patch("/api/v1/me/preferences", &fam, json!({"opted_out": true, "skip_festivals": ["easter"]})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["skip_festivals"].is_string(), "{b}");
        let (_, unchanged) = app.get("/api/v1/me/preferences", &fam).await;
        assert_eq!(unchanged, prefs);
        let (s, b) = app.patch("/api/v1/me/preferences", &fam, json!({"full_name": "someone else"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["full_name"].is_string());
        let (s, b) = app.patch("/api/v1/me/preferences", &fam,
                               json!({"opted_out": true, "mourning_days": true, "skip_festivals": ["qingming"]})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!((b["opted_out"].as_bool(), b["mourning_days"].as_bool()), (Some(true), Some(true)));
        let (_, sched) = app.get(&format!("/api/v1/cases/{id}/schedule"), &coord.token).await;
        assert_eq!(sched["skip_festivals"], json!(["qingming"]));
    }

    async fn tasks_are_rescheduled_and_cancelled_with_reasons_and_overdue_ones_are_listed(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let vol = app.user("volunteer", Some("yinzhou")).await;
        let case = app.create_case(&coord.token, organ_case(&tag())).await;
        let id = case["id"].as_str().unwrap();
        let (_, late) = app.post(&format!("/api/v1/cases/{id}/tasks"), &coord.token,
                                 json!({"kind": "call", "due_at": "2020-01-01", "assignee_id": vol.id})).await;
        let late_id = late["id"].as_str().unwrap();
        let (s, overdue) = app.get(&format!("/api/v1/tasks?status=overdue&case_id={id}"), &coord.token).await;
        assert_eq!(s, StatusCode::OK, "{overdue}");
        let ids: Vec<&str> = overdue["items"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
        assert_eq!(ids, [late_id]);
        assert_eq!(overdue["items"][0]["overdue"], true);
        // The volunteer may not move it; the coordinator must say why.
        let (s, _) = app.post(&format!("/api/v1/tasks/{late_id}/reschedule"), &vol.token,
                              json!({"due_at": "2030-01-01", "reason": "x"})).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, b) = app.post(&format!("/api/v1/tasks/{late_id}/reschedule"), &coord.token, json!({"due_at": "2030-01-01"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["reason"].is_string());
        let (s, b) = app.post(&format!("/api/v1/tasks/{late_id}/reschedule"), &coord.token,
                              json!({"due_at": "2030-01-01", "reason": "the family is travelling"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["overdue"], false);
        let (_, t) = app.get(&format!("/api/v1/tasks/{late_id}"), &coord.token).await;
        assert_eq!(t["changes"][0]["reason"], "the family is travelling");
        assert_eq!(t["due_at"], "2030-01-01T09:00:00Z");
        let (s, b) = app.post(&format!("/api/v1/tasks/{late_id}/cancel"), &coord.token, json!({"reason": "the family declined"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["status"], "cancelled");
        let (s, b) = app.post(&format!("/api/v1/tasks/{late_id}/cancel"), &coord.token, json!({"reason": "again"})).await;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        // The reasons are sealed with the task, not written in the audit log.
        let (_, audit) = app.get(&format!("/api/v1/audit?case_id={id}"), &app.user("admin", None).await.token).await;
        assert!(!audit.to_string().contains("travelling"), "{audit}");
    }

    async fn the_digest_lists_overdue_and_todays_visits_and_calls(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let case = app.create_case(&coord.token, organ_case(&tag())).await;
        let id = case["id"].as_str().unwrap();
        let (_, old) = app.post(&format!("/api/v1/cases/{id}/tasks"), &coord.token, json!({"kind": "visit", "due_at": "2021-05-01"})).await;
        let later = (Utc::now() + Duration::days(40)).to_rfc3339();
        app.post(&format!("/api/v1/cases/{id}/tasks"), &coord.token, json!({"kind": "visit", "due_at": later})).await;
        let (s, d) = app.get("/api/v1/tasks/digest", &coord.token).await;
        assert_eq!(s, StatusCode::OK, "{d}");
        let overdue: Vec<&str> = d["overdue"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
        assert!(overdue.contains(&old["id"].as_str().unwrap()), "{d}");
        assert!(d["due_today"].as_array().unwrap().iter().all(|t| t["kind"] != "outreach"));
        // Another coordinator's digest does not show this case.
        let other = app.user("coordinator", Some("yinzhou")).await;
        let (_, d) = app.get("/api/v1/tasks/digest", &other.token).await;
        assert!(!d.to_string().contains(id), "{d}");
    }

    async fn letters_print_on_demand_and_held_messages_can_be_released(app) {
        set_plan(&app, "organ", json!([welcome(Some("letter"))])).await;
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let (with, _) = family_case(&app, &coord.token, "letter", true).await;
        // The second family asked for a month without letters.
        let (without, contact) = family_case(&app, &coord.token, "letter", true).await;
        let until = (Utc::now() + Duration::days(30)).date_naive().to_string();
        let (s, b) = app.patch(&format!("/api/v1/contacts/{contact}"), &coord.token, json!({"do_not_contact_until": until})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let svc = services(&app, |_| {});
        let stats = deliver(&svc, Utc::now()).await;
        assert_eq!((stats.sent, stats.held), (1, 1), "{stats:?}");
        assert_eq!(outreach(&app, &coord.token, &with).await[0]["status"], "sent");
        let today = donorcare::schedule::calendar::local_date(svc.schedule.default_tz, Utc::now());
        let (s, page) = app.call(Method::GET, &format!("/api/v1/letters?date={today}"), Some(&coord.token), None).await;
        assert_eq!(s, StatusCode::OK);
        let html = page.as_str().unwrap_or_default().to_string();
        assert!(html.contains("陈先生") && html.contains("1 Harbour Road"), "{page}");
        assert_eq!(html.matches("class=\"letter\"").count(), 1, "only the sent letter: {html}");
        // The same batch on the page, one letter a page for printing.
        let jar = crate::pages::page_session(&app, &coord.username).await;
        let (s, html) = crate::pages::page(&app, &format!("/letters?date={today}"), &jar).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(html.matches("<article class=\"letter\"").count(), 1, "{html}");
        assert!(html.contains("陈先生") && html.contains("1 Harbour Road"), "{html}");
        let (s, _) = crate::pages::page(&app, "/letters?date=2026-02-30", &jar).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        // Another coordinator's batch is empty.
        let other = app.user("coordinator", Some("yinzhou")).await;
        let (_, page) = app.call(Method::GET, &format!("/api/v1/letters?date={today}"), Some(&other.token), None).await;
        assert!(!page.to_string().contains("陈先生"));

        // They change their mind: the coordinator clears the date and releases the held letter.
        let held = outreach(&app, &coord.token, &without).await[0].clone();
        assert!(held["reason"].as_str().unwrap().starts_with("do_not_contact_until"), "{held}");
        app.patch(&format!("/api/v1/contacts/{contact}"), &coord.token, json!({"do_not_contact_until": null})).await;
        let id = held["id"].as_str().unwrap();
        let (s, b) = app.post(&format!("/api/v1/outreach/{id}/release"), &coord.token, json!({})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["status"], "scheduled");
        let stats = deliver(&svc, Utc::now()).await;
        assert_eq!(stats.sent, 1, "{stats:?}");
        let (s, b) = app.post(&format!("/api/v1/outreach/{id}/release"), &coord.token, json!({})).await;
        assert_eq!(s, StatusCode::CONFLICT, "a sent message is not released again: {b}");
    }

    async fn concurrent_passes_over_the_same_cases_neither_fail_nor_duplicate(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let mut ids = Vec::new();
        for _ in 0..6 {
            let case = app.create_case(&coord.token, organ_case(&tag())).await;
            ids.push(case["id"].as_str().unwrap().to_string());
        }
        // Contacts added behind the API's back: their cases have outreach to make.
        let other = app.sibling().await;
        for id in &ids {
            let (s, b) = app.post(&format!("/api/v1/cases/{id}/contacts"), &coord.token,
                                  json!({"full_name": "林女士", "relationship": "spouse", "preferred_channel": "portal"})).await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
        }
        // Forget what was made, then make it twice at once, through two instances.
        let before: Vec<usize> = {
            let mut v = Vec::new();
            for id in &ids {
                v.push(outreach(&app, &coord.token, id).await.len());
            }
            v
        };
        let now = Utc::now() + Duration::days(30);
        let (a, b) = tokio::join!(
            donorcare::domain::schedule::materialise(&app.state.svc, &ids, now),
            donorcare::domain::schedule::materialise(&other.state.svc, &ids, now)
        );
        a.expect("first pass");
        b.expect("second pass");
        for (id, n) in ids.iter().zip(before) {
            let msgs = outreach(&app, &coord.token, id).await;
            let mut keys: Vec<String> = msgs.iter().map(|m| format!("{}|{}", m["task_id"], m["recipient"])).collect();
            keys.sort();
            keys.dedup();
            assert_eq!(keys.len(), msgs.len(), "one message per task and recipient");
            assert!(msgs.len() >= n);
        }
    }

    async fn coordinators_get_one_digest_email_a_day_without_personal_data(app) {
        let Some(smtp) = crate::helpers::smtp_server() else { return };
        let admin = app.user("admin", None).await;
        let name = format!("digest-{}", &tag()[..6]).to_lowercase();
        let (s, u) = app.post("/api/v1/users", &admin.token,
                              json!({"username": name, "role": "coordinator", "region": "yinzhou",
                                     "email": "coordinator@example.org", "password": "digest-password-1"})).await;
        assert_eq!(s, StatusCode::CREATED, "{u}");
        assert_eq!(u["email"], "coordinator@example.org");
        let (s, bad) = app.patch(&format!("/api/v1/users/{}", u["id"].as_str().unwrap()), &admin.token,
                                 json!({"email": "not an address"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let token = app.login(&name, "digest-password-1").await;
        // A second coordinator without an address gets nothing.
        let quiet = app.user("coordinator", Some("yinzhou")).await;
        let t = tag();
        let case = app.create_case(&token, organ_case(&t)).await;
        let id = case["id"].as_str().unwrap();
        let (_, task) = app.post(&format!("/api/v1/cases/{id}/tasks"), &token,
                                 json!({"kind": "visit", "due_at": "2021-05-01"})).await;
        let quiet_case = app.create_case(&quiet.token, organ_case(&tag())).await;
        app.post(&format!("/api/v1/cases/{}/tasks", quiet_case["id"].as_str().unwrap()), &quiet.token,
                 json!({"kind": "visit", "due_at": "2021-05-01"})).await;

        let svc = services(&app, |s| {
            s.smtp_url = Some(smtp.url());
        });
        let ch = Channels::new(svc.schedule.clone()).unwrap();
        let tz = svc.schedule.default_tz;
        let today = donorcare::schedule::calendar::local_date(tz, Utc::now());
        let at = |h| donorcare::schedule::calendar::local_instant(tz, today, chrono::NaiveTime::from_hms_opt(h, 0, 0).unwrap());
        // Before seven: nothing yet.
        assert_eq!(donorcare::domain::tasks::send_digests(&svc, &ch, at(6)).await.unwrap(), 0);
        assert_eq!(donorcare::domain::tasks::send_digests(&svc, &ch, at(8)).await.unwrap(), 1);
        // Once a day, however often the loop runs (or however many instances run it).
        assert_eq!(donorcare::domain::tasks::send_digests(&svc, &ch, at(9)).await.unwrap(), 0);
        let mails = smtp.messages();
        assert_eq!(mails.len(), 1, "{mails:?}");
        let mail = &mails[0];
        assert_eq!(mail.rcpt_to, vec!["coordinator@example.org".to_string()]);
        let expected_id = format!("<digest-{}-{today}@test.invalid>", u["id"].as_str().unwrap());
        assert_eq!(mail.message_id.as_deref(), Some(expected_id.as_str()), "{}", mail.raw);
        assert!(mail.subject.as_deref().unwrap_or_default().contains("overdue"), "{}", mail.raw);
        assert!(mail.raw.contains(task["id"].as_str().unwrap()), "{}", mail.raw);
        assert!(!mail.raw.contains(&format!("Name{t}")), "no donor name in the digest: {}", mail.raw);
    }

    async fn a_planned_publicity_use_needs_consent_and_a_withdrawal_cancels_it(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let reviewer = app.user("ethics_reviewer", None).await;
        let case = app.create_case(&coord.token, organ_case(&tag())).await;
        let id = case["id"].as_str().unwrap();
        let (s, b) = app.post(&format!("/api/v1/cases/{id}/uses"), &coord.token, json!({"kind": "fame", "planned_on": "2027-04-04"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        for f in ["kind", "description"] {
            assert!(b["error"]["fields"][f].is_string(), "{f}: {b}");
        }
        let (s, u) = app.post(&format!("/api/v1/cases/{id}/uses"), &coord.token,
                              json!({"kind": "publicity", "description": "name on the memorial wall", "planned_on": "2027-04-04"})).await;
        assert_eq!(s, StatusCode::CREATED, "{u}");
        assert_eq!(u["covered"], false);
        assert!(open_rules(&app, &reviewer.token, id).await.contains(&"use_without_consent".to_string()));
        // The donor's own publicity consent covers it; the finding closes.
        let (s, c) = app.post(&format!("/api/v1/cases/{id}/consents"), &coord.token,
                              json!({"kind": "publicity", "subject": "donor", "given_by": "donor", "method": "electronic",
                                     "document": "publicity-zh-CN-v1", "signed_at": "2025-01-02"})).await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
        assert!(!open_rules(&app, &reviewer.token, id).await.contains(&"use_without_consent".to_string()));
        let (_, uses) = app.get(&format!("/api/v1/cases/{id}/uses"), &reviewer.token).await;
        assert_eq!(uses["items"][0]["covered"], true, "{uses}");
        // Reading the sealed descriptions is audited.
        let admin = app.user("admin", None).await;
        let (_, audit) = app.get(&format!("/api/v1/audit?case_id={id}&actor_id={}", reviewer.id), &admin.token).await;
        assert!(audit["items"].as_array().unwrap().iter().any(|e| e["target_type"] == "consent_use"), "{audit}");
        // Withdrawn: the planned use is cancelled in the same step.
        let (s, w) = app.post(&format!("/api/v1/consents/{}/withdraw", c["id"].as_str().unwrap()), &coord.token,
                              json!({"reason": "the family prefers privacy"})).await;
        assert_eq!(s, StatusCode::OK, "{w}");
        let (_, uses) = app.get(&format!("/api/v1/cases/{id}/uses"), &coord.token).await;
        assert_eq!(uses["items"][0]["status"], "cancelled", "{uses}");
        assert_eq!(uses["items"][0]["reason"], "consent_withdrawn");
        assert_eq!(uses["items"][0]["description"], "name on the memorial wall");
    }
}

/// A bulk first pass (many cases never materialised) drops the indexes keyed by due time and
/// builds them again, the same as the migrations made them, making the same tasks and messages
/// as a pass case by case; an index left dropped by a crash mid-pass is rebuilt at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_first_pass_rebuilds_its_indexes_and_a_crash_mid_pass_is_repaired_at_start() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let coord = app.user("coordinator", Some("yinzhou")).await;
    for _ in 0..3 {
        family_case(&app, &coord.token, "email", true).await;
    }
    let pool = sqlx::SqlitePool::connect(&app.cfg.database_url())
        .await
        .unwrap();
    let count = |sql: &'static str| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (i64,)>(sql)
                .fetch_one(&pool)
                .await
                .unwrap()
                .0
        }
    };
    let index_sql = || {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String, String)>(
                "select name, sql from sqlite_master where type = 'index' \
                 and name in ('tasks_due', 'outreach_next') order by name",
            )
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let made = (
        count("select count(*) from tasks").await,
        count("select count(*) from outreach").await,
    );
    assert!(made.0 > 0 && made.1 > 0, "{made:?}");
    let indexes = index_sql().await;
    assert_eq!(indexes.len(), 2, "{indexes:?}");

    // Make the cases look never materialised, then pass over them as a bulk load.
    for sql in [
        "delete from outreach",
        "delete from tasks",
        "delete from case_schedules",
    ] {
        sqlx::query(sql).execute(&pool).await.unwrap();
    }
    assert_eq!(
        app.state.svc.store.never_materialised().await.unwrap(),
        (3, 3)
    );
    let mut svc = app.state.svc.clone();
    svc.schedule = Arc::new(ScheduleSettings {
        bulk_threshold: 1,
        ..ScheduleSettings::default()
    });
    let stats = donorcare::domain::schedule::materialise_all(&svc, Utc::now(), 2)
        .await
        .unwrap();
    assert_eq!(stats.cases, 3);
    let again = (
        count("select count(*) from tasks").await,
        count("select count(*) from outreach").await,
    );
    assert_eq!(
        again, made,
        "the bulk pass makes what the case-by-case passes made"
    );
    assert_eq!(index_sql().await, indexes);
    assert_eq!(count("select count(*) from bulk_dropped_indexes").await, 0);
    let (_, _, _, plan): (i64, i64, i64, String) = sqlx::query_as(
        "explain query plan select id from outreach where next_attempt_at <= '2030-01-01'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(plan.contains("outreach_next"), "{plan}");

    // A crash after the drop: the next start builds them again.
    assert!(app.state.svc.store.drop_bulk_indexes().await.unwrap());
    assert!(index_sql().await.is_empty());
    assert_eq!(count("select count(*) from bulk_dropped_indexes").await, 2);
    app.state.svc.store.migrate().await.unwrap();
    assert_eq!(index_sql().await, indexes);
    assert_eq!(count("select count(*) from bulk_dropped_indexes").await, 0);
}
