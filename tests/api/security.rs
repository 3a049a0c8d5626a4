//! Throttling, TOTP, password changes, family invitations and access log, erasure.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use axum::http::header;

use crate::helpers::{organ_case, tag, TestApp, PASSWORD};
use crate::pages::{get, page, page_session, raw};

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

async fn login_raw(app: &TestApp, body: Value) -> (StatusCode, Value) {
    app.call(Method::POST, "/api/v1/auth/login", None, Some(body))
        .await
}

/// A case with one contact, and that contact's family account token.
async fn family_of(app: &TestApp, coordinator: &str) -> (String, String, String) {
    let case = app.create_case(coordinator, organ_case(&tag())).await;
    let case_id = case["id"].as_str().unwrap().to_string();
    let (_, contact) = app
        .post(
            &format!("/api/v1/cases/{case_id}/contacts"),
            coordinator,
            json!({"full_name": "刘女士", "relationship": "spouse", "preferred_channel": "portal"}),
        )
        .await;
    let contact_id = contact["id"].as_str().unwrap().to_string();
    let (status, inv) = app
        .post(
            &format!("/api/v1/contacts/{contact_id}/invite"),
            coordinator,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{inv}");
    let url = inv["invite_url"].as_str().unwrap();
    let token = url.rsplit('/').next().unwrap();
    let username = format!("fam-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let (status, user) = app
        .call(
            Method::POST,
            &format!("/api/v1/invites/{token}/accept"),
            None,
            Some(json!({"username": username, "password": "family-password-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{user}");
    assert_eq!(user["role"], "family");
    // The link works once.
    let (status, _) = app
        .call(
            Method::POST,
            &format!("/api/v1/invites/{token}/accept"),
            None,
            Some(json!({"username": "someone-else", "password": "family-password-1"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let family_token = app.login(&username, "family-password-1").await;
    (case_id, contact_id, family_token)
}

on_both_backends! {
    async fn repeated_failures_are_throttled_per_account_and_summarised(app) {
        let u = app.user("coordinator", None).await;
        let wrong = json!({"username": u.username, "password": "wrong-password"});
        let mut saw_429 = None;
        for i in 0..8 {
            let (status, body) = login_raw(&app, wrong.clone()).await;
            if status == StatusCode::TOO_MANY_REQUESTS {
                assert_eq!(body["error"]["code"], "too_many_requests");
                saw_429 = Some(i);
                break;
            }
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        assert_eq!(saw_429, Some(6), "locked after five free failures and one that starts the back-off");
        // Even the right password waits now.
        let (status, _) = login_raw(&app, json!({"username": u.username, "password": PASSWORD})).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        // Another account is not affected.
        let other = app.user("coordinator", None).await;
        assert_eq!(login_raw(&app, json!({"username": other.username, "password": PASSWORD})).await.0, StatusCode::OK);
        // The audit log has a summary, not one line per guess.
        let admin = app.user("admin", None).await;
        let (_, log) = app.get("/api/v1/audit?action=auth.login_failed&limit=200", &admin.token).await;
        let mine: Vec<&Value> = log["items"].as_array().unwrap().iter().filter(|e| e["target_id"] == u.id.as_str()).collect();
        assert_eq!(mine.len(), 2, "{mine:?}");
    }

    async fn totp_enrolment_makes_codes_required_and_each_code_works_once(app) {
        let u = app.user("supervisor", Some("yinzhou")).await;
        let (status, enrol) = app.post("/api/v1/me/totp", &u.token, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{enrol}");
        let secret = enrol["secret"].as_str().unwrap();
        assert!(enrol["otpauth_url"].as_str().unwrap().starts_with("otpauth://totp/"));
        let now = chrono::Utc::now().timestamp();
        let (status, _) = app.post("/api/v1/me/totp/confirm", &u.token, json!({"code": "000000"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _) = app.post("/api/v1/me/totp/confirm", &u.token, json!({"code": totp_code(secret, now - 30)})).await;
        assert_eq!(status, StatusCode::NO_CONTENT);

        let (status, body) = login_raw(&app, json!({"username": u.username, "password": PASSWORD})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "totp_required");
        let code = totp_code(secret, now);
        let (status, _) = login_raw(&app, json!({"username": u.username, "password": PASSWORD, "totp": code})).await;
        assert_eq!(status, StatusCode::OK);
        let (status, body) = login_raw(&app, json!({"username": u.username, "password": PASSWORD, "totp": code})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "a code works once: {body}");
        assert_eq!(app.post("/api/v1/me/totp", &u.token, json!({})).await.0, StatusCode::CONFLICT);
    }

    async fn roles_that_must_enrol_can_only_enrol(app) {
        let strict = app.sibling_with(|s| {
            s.require_totp = std::sync::Arc::new(vec![donorcare::domain::types::Role::Admin]);
        }).await;
        let admin = strict.user("admin", None).await;
        let (status, body) = strict.get("/api/v1/users", &admin.token).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"]["code"], "totp_enrolment_required");
        assert_eq!(strict.get("/api/v1/me", &admin.token).await.0, StatusCode::OK);
        let (_, enrol) = strict.post("/api/v1/me/totp", &admin.token, json!({})).await;
        let code = totp_code(enrol["secret"].as_str().unwrap(), chrono::Utc::now().timestamp());
        assert_eq!(strict.post("/api/v1/me/totp/confirm", &admin.token, json!({"code": code})).await.0, StatusCode::NO_CONTENT);
        assert_eq!(strict.get("/api/v1/users", &admin.token).await.0, StatusCode::OK);
        // Other roles are not held back.
        let c = strict.user("coordinator", None).await;
        assert_eq!(strict.get("/api/v1/cases", &c.token).await.0, StatusCode::OK);
    }

    async fn in_the_browser_too_roles_that_must_enrol_are_sent_to_enrolment(app) {
        let strict = app.sibling_with(|s| {
            s.require_totp = std::sync::Arc::new(vec![donorcare::domain::types::Role::Coordinator]);
        }).await;
        let c = strict.user("coordinator", Some("yinzhou")).await;
        let jar = page_session(&strict, &c.username).await;
        for path in ["/", "/cases", "/tasks", "/calendar"] {
            let (s, h, _) = raw(&strict, get(path, &jar)).await;
            assert_eq!(s, StatusCode::SEE_OTHER, "{path}");
            assert_eq!(h[header::LOCATION], "/account/totp", "{path}");
        }
        let (s, html) = page(&strict, "/account/totp", &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert_eq!(page(&strict, "/account", &jar).await.0, StatusCode::OK);
        // Enrolled, the pages open; a role not required to enrol was never held back.
        let (_, enrol) = strict.post("/api/v1/me/totp", &c.token, json!({})).await;
        let code = totp_code(enrol["secret"].as_str().unwrap(), chrono::Utc::now().timestamp());
        assert_eq!(strict.post("/api/v1/me/totp/confirm", &c.token, json!({"code": code})).await.0, StatusCode::NO_CONTENT);
        assert_eq!(page(&strict, "/cases", &jar).await.0, StatusCode::OK);
        let r = strict.user("ethics_reviewer", None).await;
        let jar = page_session(&strict, &r.username).await;
        assert_eq!(page(&strict, "/ethics/findings", &jar).await.0, StatusCode::OK);
    }

    async fn a_password_change_revokes_the_other_tokens(app) {
        let u = app.user("coordinator", None).await;
        let second = app.login(&u.username, PASSWORD).await;
        let (status, body) = app
            .post("/api/v1/me/password", &u.token, json!({"current_password": "nope-nope-nope", "new_password": "a-new-password-1"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["error"]["fields"]["current_password"].is_string());
        let (status, _) = app
            .post("/api/v1/me/password", &u.token, json!({"current_password": PASSWORD, "new_password": "short"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (status, _) = app
            .post("/api/v1/me/password", &u.token, json!({"current_password": PASSWORD, "new_password": "a-new-password-1"}))
            .await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        assert_eq!(app.get("/api/v1/me", &u.token).await.0, StatusCode::OK);
        assert_eq!(app.get("/api/v1/me", &second).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(login_raw(&app, json!({"username": u.username, "password": PASSWORD})).await.0, StatusCode::UNAUTHORIZED);
        app.login(&u.username, "a-new-password-1").await;
    }

    async fn a_family_sees_who_opened_its_file_including_break_glass(app) {
        let owner = app.user("coordinator", None).await;
        let (case_id, _contact, family) = family_of(&app, &owner.token).await;
        let other = app.user("coordinator", None).await;
        let (status, _) = app
            .post(&format!("/api/v1/cases/{case_id}/break-glass"), &other.token,
                  json!({"reason": "the family called the night line asking for help"}))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(app.get(&format!("/api/v1/cases/{case_id}"), &other.token).await.0, StatusCode::OK);
        // Its own coordinator opens it too, through the assignment.
        assert_eq!(app.get(&format!("/api/v1/cases/{case_id}"), &owner.token).await.0, StatusCode::OK);

        let (status, log) = app.get("/api/v1/me/access-log", &family).await;
        assert_eq!(status, StatusCode::OK, "{log}");
        let items = log["items"].as_array().unwrap();
        assert!(items.iter().any(|e| e["action"] == "case.break_glass" && e["break_glass"] == true));
        assert!(items.iter().any(|e| e["action"] == "case.view" && e["break_glass"] == true
                                   && e["staff_role"] == "coordinator" && e["staff_name"] == "Test coordinator"));
        assert!(items.iter().any(|e| e["action"] == "case.view" && e["break_glass"] == false));
        // A family sees nothing of cases, staff see no family portal.
        assert_eq!(app.get(&format!("/api/v1/cases/{case_id}"), &family).await.0, StatusCode::FORBIDDEN);
        assert_eq!(app.get("/api/v1/me/access-log", &owner.token).await.0, StatusCode::FORBIDDEN);
        let (status, _) = app.get("/api/v1/me/access-log?limit=1", &family).await;
        assert_eq!(status, StatusCode::OK);
    }

    async fn erasure_needs_a_second_pair_of_eyes_and_keeps_the_chain(app) {
        let sup = app.user("supervisor", Some("yinzhou")).await;
        let reviewer = app.user("ethics_reviewer", None).await;
        let admin = app.user("admin", None).await;
        let case = app.create_case(&sup.token, organ_case(&tag())).await;
        let id = case["id"].as_str().unwrap();
        let phone = "13900001111";
        assert_eq!(app.get(&format!("/api/v1/cases?phone={phone}"), &sup.token).await.1["items"].as_array().unwrap().len(), 1);

        let coordinator = app.user("coordinator", None).await;
        assert_eq!(app.post(&format!("/api/v1/cases/{id}/erasure-requests"), &coordinator.token, json!({})).await.0, StatusCode::FORBIDDEN);
        let (status, req) = app.post(&format!("/api/v1/cases/{id}/erasure-requests"), &sup.token, json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{req}");
        let rid = req["id"].as_str().unwrap();
        assert_eq!(app.post(&format!("/api/v1/erasure-requests/{rid}/approve"), &sup.token, json!({})).await.0, StatusCode::FORBIDDEN);
        assert_eq!(app.post(&format!("/api/v1/erasure-requests/{rid}/approve"), &admin.token, json!({})).await.0, StatusCode::FORBIDDEN);
        let (_, pending) = app.get("/api/v1/erasure-requests?status=pending", &reviewer.token).await;
        assert_eq!(pending["items"][0]["id"], rid);

        let (status, done) = app.post(&format!("/api/v1/erasure-requests/{rid}/approve"), &reviewer.token, json!({})).await;
        assert_eq!(status, StatusCode::OK, "{done}");
        assert_eq!(done["status"], "approved");
        assert_eq!(app.post(&format!("/api/v1/erasure-requests/{rid}/approve"), &reviewer.token, json!({})).await.0, StatusCode::CONFLICT);

        let (status, erased) = app.get(&format!("/api/v1/cases/{id}"), &sup.token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(erased["status"], "erased");
        assert_eq!(erased["donor"], Value::Null);
        assert_eq!(erased["notes"], Value::Null);
        assert!(app.get(&format!("/api/v1/cases?phone={phone}"), &sup.token).await.1["items"].as_array().unwrap().is_empty());
        assert_eq!(app.patch(&format!("/api/v1/cases/{id}"), &sup.token, json!({"notes": "x"})).await.0, StatusCode::CONFLICT);
        let (_, v) = app.get("/api/v1/audit/verify", &admin.token).await;
        assert_eq!(v["ok"], true, "{v}");
    }

    async fn a_family_can_ask_for_erasure(app) {
        let owner = app.user("coordinator", None).await;
        let (case_id, _, family) = family_of(&app, &owner.token).await;
        let (status, req) = app.call(Method::POST, "/api/v1/me/erasure-request", Some(&family), None).await;
        assert_eq!(status, StatusCode::CREATED, "{req}");
        assert_eq!(req["case_id"], case_id.as_str());
        assert_eq!(req["status"], "pending");
    }
}

/// A row of the audit log edited into another type in the database (SQLite keeps any type in any
/// column) is tampering: the listings that hold it answer a conflict naming no stored value, as
/// `audit verify` names the entry, where they answered 500.
#[tokio::test]
async fn sqlite_listings_holding_an_edited_entry_answer_a_conflict() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let admin = app.user("admin", None).await;
    let owner = app.user("coordinator", None).await;
    let (case_id, _, family) = family_of(&app, &owner.token).await;
    let view = format!("/api/v1/cases/{case_id}");
    assert_eq!(app.get(&view, &owner.token).await.0, StatusCode::OK);
    let (status, log) = app.get("/api/v1/me/access-log", &family).await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert!(!log["items"].as_array().unwrap().is_empty(), "{log}");

    app.exec(
        "update audit_log set at = 'not-a-time-zq' \
         where seq = (select max(seq) from audit_log where case_id = $1 and action = 'case.view') \
         and $2 = $2",
        &case_id,
        "",
    )
    .await;
    for (path, token) in [
        ("/api/v1/me/access-log".to_string(), &family),
        (format!("/api/v1/audit?case_id={case_id}"), &admin.token),
        ("/api/v1/audit".to_string(), &admin.token),
    ] {
        let (status, body) = app.get(&path, token).await;
        assert_eq!(status, StatusCode::CONFLICT, "{path}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("changed outside donorcare"),
            "{path}: {body}"
        );
        assert!(!body.to_string().contains("zq"), "no stored value: {body}");
    }
    // Pages that do not hold the entry still list; verification names it.
    let (status, _) = app
        .get("/api/v1/audit?action=auth.login", &admin.token)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, v) = app.get("/api/v1/audit/verify", &admin.token).await;
    assert_eq!(v["ok"], false, "{v}");
}
