//! Memorial events through the API: planned in a region with each bad field named, families
//! invited through outreach (so the send-time gate decides, and a second invitation is never
//! made), the invitation's text naming the day and place, replies from the family and from
//! staff with a decline cancelling the reminder, the names list showing and exporting a name
//! only while publicity consent is in force, cancellation stopping what has not gone, and the
//! region and programme keeping everyone else out.

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::{Duration, Utc};
use serde_json::{json, Value};

use donorcare::domain::outreach::{run_due, Channels};
use donorcare::domain::Services;

use crate::helpers::{marrow_case, organ_case, tag, TestApp, TestUser};

/// An organ case of `coord` with one adult contact (portal) and, when `consent`, a contact
/// consent for the portal: (case id, contact id).
async fn family_case(app: &TestApp, coord: &TestUser, consent: bool) -> (String, String) {
    let case = app.create_case(&coord.token, organ_case(&tag())).await;
    let case = case["id"].as_str().unwrap().to_string();
    let (s, c) = app
        .post(
            &format!("/api/v1/cases/{case}/contacts"),
            &coord.token,
            json!({"full_name": format!("Spouse{}", tag()), "relationship": "spouse",
                   "phone": "13800001111", "preferred_channel": "portal"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{c}");
    let contact = c["id"].as_str().unwrap().to_string();
    if consent {
        let (s, cc) = app
            .post(
                &format!("/api/v1/cases/{case}/consents"),
                &coord.token,
                json!({"kind": "contact", "subject": contact, "given_by": contact,
                       "method": "electronic", "document": "contact-zh-CN-v1",
                       "signed_at": "2025-04-01", "scope": {"channels": ["portal"]}}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{cc}");
    }
    (case, contact)
}

/// An event `days` ahead (at 09:30 office time), as `who`.
async fn plan(app: &TestApp, who: &TestUser, days: i64, extra: Value) -> Value {
    let day = (Utc::now() + Duration::days(days)).date_naive();
    let mut body = json!({"kind": "qingming", "title": format!("Qingming {}", tag()),
                          "starts_at": format!("{day}T09:30"),
                          "place": "Fuquan Hill memorial garden", "details": "Coach from the gate",
                          "reply_by": (day - Duration::days(5)).to_string()});
    if let (Value::Object(b), Value::Object(x)) = (&mut body, extra) {
        b.extend(x);
    }
    let (s, e) = app.post("/api/v1/memorial-events", &who.token, body).await;
    assert_eq!(s, StatusCode::CREATED, "{e}");
    e
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

async fn guests(app: &TestApp, who: &TestUser, event: &str) -> Vec<Value> {
    let (s, g) = app
        .get(
            &format!("/api/v1/memorial-events/{event}/invitations"),
            &who.token,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{g}");
    g["items"].as_array().unwrap().clone()
}

/// The engraver's CSV as `token`: (status, body).
async fn csv(app: &TestApp, path: &str, token: &str) -> (StatusCode, String) {
    let req = axum::http::Request::get(path)
        .header("authorization", format!("Bearer {token}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let (s, _, body) = crate::pages::raw(app, req).await;
    (s, body)
}

fn statuses(invitation: &Value) -> Vec<(String, String)> {
    invitation["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["template"].as_str().unwrap().to_string(),
                m["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

on_both_backends! {
    async fn families_are_invited_once_through_outreach_and_read_the_day_and_place(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let (case, contact) = family_case(&app, &coord, true).await;
        let e = plan(&app, &coord, 30, json!({})).await;
        let id = e["id"].as_str().unwrap();
        assert_eq!(e["status"], "planned");
        assert_eq!(e["region"], "yinzhou");
        assert_eq!(e["reminder_days"], 3);

        let path = format!("/api/v1/memorial-events/{id}/invitations");
        let (s, r) = app.post(&path, &coord.token, json!({})).await;
        assert_eq!(s, StatusCode::OK, "{r}");
        assert_eq!((r["invited"].as_u64(), r["already_invited"].as_u64()), (Some(1), Some(0)), "{r}");
        let (_, again) = app.post(&path, &coord.token, json!({})).await;
        assert_eq!((again["invited"].as_u64(), again["already_invited"].as_u64()), (Some(0), Some(1)), "{again}");

        let g = guests(&app, &coord, id).await;
        assert_eq!(g.len(), 1);
        assert_eq!(g[0]["case_id"], case);
        let mut st = statuses(&g[0]);
        st.sort();
        assert_eq!(st, [
            ("memorial_event_invitation".to_string(), "scheduled".to_string()),
            ("memorial_event_reminder".to_string(), "scheduled".to_string()),
        ]);

        deliver(&app).await;
        let st = statuses(&guests(&app, &coord, id).await[0]);
        assert!(st.contains(&("memorial_event_invitation".into(), "sent".into())), "{st:?}");
        assert!(st.contains(&("memorial_event_reminder".into(), "scheduled".into())), "the reminder waits: {st:?}");

        // The family reads the invitation in its portal, with the event's day, time and place.
        let (_, fam) = app.family_account(&coord.token, &contact).await;
        let (s, inbox) = app.get("/api/v1/me/outreach?limit=50", &fam).await;
        assert_eq!(s, StatusCode::OK, "{inbox}");
        let sent = inbox["items"].as_array().unwrap().iter()
            .find(|m| m["template"] == "memorial_event_invitation").expect("the invitation").clone();
        let body = sent["message"]["body"].as_str().unwrap_or_default().to_string();
        let day = e["starts_local"].as_str().unwrap();
        assert!(body.contains("Fuquan Hill memorial garden"), "{sent}");
        assert!(body.contains(&day[..10]) && body.contains("09:30"), "{sent}");
        assert!(body.contains("Coach from the gate"), "{sent}");
    }

    async fn an_events_invitation_replaces_the_plans_general_one_before_it(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let (case, _) = family_case(&app, &coord, true).await;
        let plan_invitations = |list: &Value| -> Vec<String> {
            list["items"].as_array().unwrap().iter()
                .filter(|m| m["template"] == "memorial_invitation")
                .map(|m| m["status"].as_str().unwrap().to_string())
                .collect()
        };
        let (_, before) = app.get(&format!("/api/v1/cases/{case}/outreach?limit=200"), &coord.token).await;
        assert_eq!(plan_invitations(&before), ["scheduled"], "the plan's yearly invitation: {before}");
        // An event a year ahead: the plan's invitation (each 1 March) falls before it.
        let e = plan(&app, &coord, 370, json!({})).await;
        let id = e["id"].as_str().unwrap();
        app.post(&format!("/api/v1/memorial-events/{id}/invitations"), &coord.token, json!({})).await;
        let (_, after) = app.get(&format!("/api/v1/cases/{case}/outreach?limit=200"), &coord.token).await;
        assert_eq!(plan_invitations(&after), ["cancelled"], "{after}");
    }

    async fn the_send_time_gate_holds_an_invitation_without_contact_consent(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let (case, _) = family_case(&app, &coord, false).await;
        let e = plan(&app, &coord, 20, json!({})).await;
        let id = e["id"].as_str().unwrap();
        let (s, r) = app.post(&format!("/api/v1/memorial-events/{id}/invitations"), &coord.token,
                              json!({"case_ids": [case]})).await;
        assert_eq!(s, StatusCode::OK, "{r}");
        assert_eq!(r["invited"], 1);
        deliver(&app).await;
        let g = guests(&app, &coord, id).await;
        let invitation = g[0]["messages"].as_array().unwrap().iter()
            .find(|m| m["template"] == "memorial_event_invitation").unwrap().clone();
        assert_eq!(invitation["status"], "held", "{invitation}");
        assert!(invitation["reason"].as_str().unwrap().starts_with("no_consent"), "{invitation}");
    }

    async fn a_family_replies_and_a_decline_cancels_the_reminder(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let (_, contact) = family_case(&app, &coord, true).await;
        let e = plan(&app, &coord, 30, json!({})).await;
        let id = e["id"].as_str().unwrap();
        app.post(&format!("/api/v1/memorial-events/{id}/invitations"), &coord.token, json!({})).await;
        let (_, fam) = app.family_account(&coord.token, &contact).await;

        let (s, mine) = app.get("/api/v1/me/memorial-invitations", &fam).await;
        assert_eq!(s, StatusCode::OK, "{mine}");
        let mine = mine.as_array().unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0]["open"], true);
        let inv = mine[0]["id"].as_str().unwrap().to_string();
        let reply = format!("/api/v1/me/memorial-invitations/{inv}/reply");

        let (s, b) = app.post(&reply, &fam, json!({"reply": "coming"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["party_size"].is_string(), "{b}");
        let (s, b) = app.post(&reply, &fam, json!({"reply": "perhaps", "party_size": 99})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["reply"].is_string() && b["error"]["fields"]["party_size"].is_string(), "{b}");

        let (s, b) = app.post(&reply, &fam, json!({"reply": "coming", "party_size": 3,
                                                   "needs": "a wheelchair for grandmother"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!((b["reply"].as_str(), b["party_size"].as_i64()), (Some("coming"), Some(3)));
        let (_, ev) = app.get(&format!("/api/v1/memorial-events/{id}"), &coord.token).await;
        assert_eq!(ev["head_count"], json!({"invited": 1, "coming": 1, "not_coming": 0, "no_reply": 0, "people": 3, "with_needs": 1}));
        let g = guests(&app, &coord, id).await;
        assert_eq!(g[0]["needs"], "a wheelchair for grandmother");

        // Staff record a change of plan heard on the phone: the reminder is cancelled.
        let (s, b) = app.post(&format!("/api/v1/memorial-invitations/{}/reply", g[0]["id"].as_str().unwrap()),
                              &coord.token, json!({"reply": "not_coming"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let st = statuses(&guests(&app, &coord, id).await[0]);
        assert!(st.contains(&("memorial_event_reminder".into(), "cancelled".into())), "{st:?}");
        let (_, ev) = app.get(&format!("/api/v1/memorial-events/{id}"), &coord.token).await;
        assert_eq!((ev["head_count"]["coming"].as_i64(), ev["head_count"]["people"].as_i64()), (Some(0), Some(0)));

        // The family of another case cannot answer this invitation.
        let (_, other_contact) = family_case(&app, &coord, true).await;
        let (_, stranger) = app.family_account(&coord.token, &other_contact).await;
        let (s, _) = app.post(&reply, &stranger, json!({"reply": "coming", "party_size": 1})).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    async fn the_guest_list_shows_the_families_of_one_reply_each_with_its_own_messages(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let mut cases = Vec::new();
        for _ in 0..4 {
            cases.push(family_case(&app, &coord, true).await.0);
        }
        let e = plan(&app, &coord, 30, json!({})).await;
        let id = e["id"].as_str().unwrap();
        app.post(&format!("/api/v1/memorial-events/{id}/invitations"), &coord.token, json!({})).await;
        let all = guests(&app, &coord, id).await;
        assert_eq!(all.len(), 4);
        let of = |case: &str| all.iter().find(|g| g["case_id"] == case).unwrap()["id"].as_str().unwrap().to_string();
        let reply = |inv: String, body: Value| {
            let app = &app;
            let token = coord.token.clone();
            async move {
                let (s, b) = app.post(&format!("/api/v1/memorial-invitations/{inv}/reply"), &token, body).await;
                assert_eq!(s, StatusCode::OK, "{b}");
            }
        };
        reply(of(&cases[0]), json!({"reply": "coming", "party_size": 2, "needs": "a lift from the station"})).await;
        reply(of(&cases[1]), json!({"reply": "coming", "party_size": 1})).await;
        reply(of(&cases[2]), json!({"reply": "not_coming"})).await;

        let filtered = |reply: &'static str| {
            let app = &app;
            let token = coord.token.clone();
            async move {
                let (s, g) = app.get(&format!("/api/v1/memorial-events/{id}/invitations?reply={reply}"), &token).await;
                assert_eq!(s, StatusCode::OK, "{g}");
                let mut c: Vec<String> = g["items"].as_array().unwrap().iter()
                    .map(|i| i["case_id"].as_str().unwrap().to_string()).collect();
                c.sort();
                c
            }
        };
        let sorted = |mut v: Vec<String>| { v.sort(); v };
        assert_eq!(filtered("no_reply").await, vec![cases[3].clone()]);
        assert_eq!(filtered("coming").await, sorted(vec![cases[0].clone(), cases[1].clone()]));
        assert_eq!(filtered("not_coming").await, vec![cases[2].clone()]);
        assert_eq!(filtered("needs").await, vec![cases[0].clone()]);
        let (_, ev) = app.get(&format!("/api/v1/memorial-events/{id}"), &coord.token).await;
        assert_eq!(ev["head_count"], json!({"invited": 4, "coming": 2, "not_coming": 1, "no_reply": 1, "people": 3, "with_needs": 1}));

        // Each family's row carries its own invitation and reminder messages, none of another's
        // (the list reads them all at once).
        let all = guests(&app, &coord, id).await;
        let mut seen = std::collections::HashSet::new();
        for g in &all {
            let (_, mine) = app.get(&format!("/api/v1/cases/{}/outreach", g["case_id"].as_str().unwrap()), &coord.token).await;
            let mine: Vec<&Value> = mine["items"].as_array().unwrap().iter().map(|m| &m["id"]).collect();
            let msgs = g["messages"].as_array().unwrap();
            let templates: Vec<&str> = msgs.iter().map(|m| m["template"].as_str().unwrap()).collect();
            assert!(templates.contains(&"memorial_event_invitation"), "{g}");
            for m in msgs {
                assert!(mine.contains(&&m["id"]), "a message of another case on {g}");
                assert!(seen.insert(m["id"].to_string()), "a message on two rows: {m}");
            }
        }

        // A filter the list does not know is named, and the page of another filter with it.
        let (s, b) = app.get(&format!("/api/v1/memorial-events/{id}/invitations?reply=maybe"), &coord.token).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["reply"].as_str().unwrap().contains("no_reply"), "{b}");
    }

    async fn each_bad_event_field_is_named_and_nothing_is_saved(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let (s, b) = app.post("/api/v1/memorial-events", &coord.token, json!({})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        for f in ["kind", "title", "starts_at", "place"] {
            assert!(b["error"]["fields"][f].is_string(), "{f}: {b}");
        }
        let (s, b) = app.post("/api/v1/memorial-events", &coord.token, json!({
            "kind": "picnic", "title": " ", "starts_at": "2020-04-04T09:30", "place": "Hill",
            "program": "marrow", "reply_by": "2020-05-01", "reminder_days": 99})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        for f in ["kind", "title", "starts_at", "program", "reminder_days"] {
            assert!(b["error"]["fields"][f].is_string(), "{f}: {b}");
        }
        let day = (Utc::now() + Duration::days(10)).date_naive();
        let (s, b) = app.post("/api/v1/memorial-events", &coord.token, json!({
            "kind": "ceremony", "title": "T", "starts_at": format!("{day}T10:00"), "place": "Hill",
            "reply_by": (day + Duration::days(1)).to_string()})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["reply_by"].is_string(), "{b}");
        let (s, list) = app.get("/api/v1/memorial-events", &coord.token).await;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(list["items"].as_array().unwrap().len(), 0, "nothing saved: {list}");
    }

    async fn a_name_is_shown_and_exported_only_while_publicity_consent_is_in_force(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let sup = app.user("supervisor", Some("yinzhou")).await;
        let (case, contact) = family_case(&app, &coord, true).await;
        let (_, c) = app.get(&format!("/api/v1/cases/{case}"), &coord.token).await;
        let name = c["donor"]["full_name"].as_str().unwrap().to_string();
        let e = plan(&app, &coord, 40, json!({"kind": "memorial_wall", "program": "organ"})).await;
        let id = e["id"].as_str().unwrap();

        let (s, n) = app.post(&format!("/api/v1/memorial-events/{id}/names"), &coord.token,
                              json!({"case_id": case})).await;
        assert_eq!(s, StatusCode::CREATED, "{n}");
        assert!(n["full_name"].is_null(), "no consent yet: {n}");
        assert_eq!(n["publicity_consent"], false);
        let csv_path = format!("/api/v1/memorial-events/{id}/names.csv");
        let (s, body) = csv(&app, &csv_path, &sup.token).await;
        assert_eq!(s, StatusCode::OK);
        assert!(!body.contains(&name), "{body}");
        let (s, _) = csv(&app, &csv_path, &coord.token).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "the engraver's list is the supervisor's");

        let (s, p) = app.post(&format!("/api/v1/cases/{case}/consents"), &coord.token, json!({
            "kind": "publicity", "subject": "donor", "given_by": contact, "method": "written",
            "document": "publicity-zh-CN-v1", "signed_at": "2025-04-01"})).await;
        assert_eq!(s, StatusCode::CREATED, "{p}");
        let (_, names) = app.get(&format!("/api/v1/memorial-events/{id}/names"), &coord.token).await;
        assert_eq!(names[0]["full_name"], name, "{names}");
        let (_, body) = csv(&app, &csv_path, &sup.token).await;
        assert!(body.lines().any(|l| l.starts_with(&format!("{name},organ,2025"))), "{body}");

        let (s, w) = app.post(&format!("/api/v1/consents/{}/withdraw", p["id"].as_str().unwrap()),
                              &coord.token, json!({"reason": "the family changed its mind"})).await;
        assert_eq!(s, StatusCode::OK, "{w}");
        let (_, names) = app.get(&format!("/api/v1/memorial-events/{id}/names"), &coord.token).await;
        assert!(names[0]["full_name"].is_null(), "{names}");
        let (_, body) = csv(&app, &csv_path, &sup.token).await;
        assert!(!body.contains(&name), "withdrawn: {body}");

        // A marrow donor is thanked on the honour roll, not on a memorial wall.
        let marrow = app.create_case(&coord.token, marrow_case(&format!("M{}", tag()), "13900004444")).await;
        let (s, b) = app.post(&format!("/api/v1/memorial-events/{id}/names"), &coord.token,
                              json!({"case_id": marrow["id"]})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    }

    async fn a_cancelled_event_stops_its_messages_and_a_fixed_time_cannot_move(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        family_case(&app, &coord, true).await;
        let e = plan(&app, &coord, 30, json!({})).await;
        let id = e["id"].as_str().unwrap();
        app.post(&format!("/api/v1/memorial-events/{id}/invitations"), &coord.token, json!({})).await;
        let later = (Utc::now() + Duration::days(31)).date_naive();
        let (s, b) = app.patch(&format!("/api/v1/memorial-events/{id}"), &coord.token,
                               json!({"starts_at": format!("{later}T09:30")})).await;
        assert_eq!(s, StatusCode::CONFLICT, "{b}");
        let (s, b) = app.patch(&format!("/api/v1/memorial-events/{id}"), &coord.token,
                               json!({"place": "The new hall", "details": null})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["place"], "The new hall");
        assert!(b["details"].is_null(), "{b}");

        let (s, b) = app.post(&format!("/api/v1/memorial-events/{id}/cancel"), &coord.token, json!({})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["status"], "cancelled");
        let g = guests(&app, &coord, id).await;
        assert!(statuses(&g[0]).iter().all(|(_, s)| s == "cancelled"), "{:?}", statuses(&g[0]));
        let (s, _) = app.post(&format!("/api/v1/memorial-invitations/{}/reply", g[0]["id"].as_str().unwrap()),
                              &coord.token, json!({"reply": "coming", "party_size": 2})).await;
        assert_eq!(s, StatusCode::CONFLICT);
        let (s, _) = app.post(&format!("/api/v1/memorial-events/{id}/cancel"), &coord.token, json!({})).await;
        assert_eq!(s, StatusCode::CONFLICT);
    }

    async fn another_regions_team_and_other_roles_reach_nothing(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let (case, _) = family_case(&app, &coord, true).await;
        let e = plan(&app, &coord, 30, json!({})).await;
        let id = e["id"].as_str().unwrap();
        let there = app.user("coordinator", Some("haishu")).await;
        let (s, _) = app.get(&format!("/api/v1/memorial-events/{id}"), &there.token).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (_, list) = app.get("/api/v1/memorial-events", &there.token).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 0);
        // A colleague in the region sees the event but not another coordinator's families.
        let colleague = app.user("coordinator", Some("yinzhou")).await;
        let (s, r) = app.post(&format!("/api/v1/memorial-events/{id}/invitations"), &colleague.token,
                              json!({"case_ids": [case]})).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{r}");
        let (_, r) = app.post(&format!("/api/v1/memorial-events/{id}/invitations"), &colleague.token, json!({})).await;
        assert_eq!(r["invited"], 0, "{r}");
        for role in ["admin", "volunteer", "ethics_reviewer"] {
            let u = app.user(role, Some("yinzhou")).await;
            let (s, _) = app.get("/api/v1/memorial-events", &u.token).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{role}");
            let (s, _) = app.get(&format!("/api/v1/memorial-events/{id}"), &u.token).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{role}");
        }
        // Every invitation is on the case's audit trail.
        let admin = app.user("admin", None).await;
        let (_, log) = app.get(&format!("/api/v1/audit?case_id={case}&action=memorial.invite"), &admin.token).await;
        assert!(log["items"].as_array().unwrap().iter().any(|e| e["outcome"] == "denied"), "{log}");
    }
}
