//! Login, tokens, the first-admin link and account management.

use axum::http::{Method, StatusCode};
use chrono::Utc;
use donorcare::domain::accounts;
use serde_json::json;

use crate::helpers::PASSWORD;

on_both_backends! {
    async fn unknown_user_and_wrong_password_get_the_same_answer(app) {
        let u = app.user("coordinator", None).await;
        let wrong = app
            .call(Method::POST, "/api/v1/auth/login", None,
                  Some(json!({"username": u.username, "password": "not-the-password"})))
            .await;
        let unknown = app
            .call(Method::POST, "/api/v1/auth/login", None,
                  Some(json!({"username": "nobody-here", "password": "not-the-password"})))
            .await;
        assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
        assert_eq!(wrong, unknown);
        assert_eq!(wrong.1["error"]["code"], "invalid_credentials");
    }

    async fn login_returns_token_expiry_and_user(app) {
        let u = app.user("supervisor", Some("yinzhou")).await;
        let (status, body) = app
            .call(Method::POST, "/api/v1/auth/login", None,
                  Some(json!({"username": u.username, "password": PASSWORD})))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["user"]["id"], u.id.as_str());
        assert_eq!(body["user"]["role"], "supervisor");
        assert!(body["expires_at"].as_str().unwrap().contains('T'));
        let (status, me) = app.get("/api/v1/me", body["token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["username"], u.username.as_str());
        assert!(me.get("password_hash").is_none());
    }

    async fn requests_without_a_valid_token_get_401(app) {
        for path in ["/api/v1/me", "/api/v1/cases", "/api/v1/users"] {
            let (status, body) = app.call(Method::GET, path, None, None).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
            assert_eq!(body["error"]["code"], "unauthorized");
            let (status, _) = app.get(path, "made-up-token").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        }
    }

    async fn logout_revokes_the_token(app) {
        let u = app.user("coordinator", None).await;
        let (status, _) = app.call(Method::POST, "/api/v1/auth/logout", Some(&u.token), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (status, _) = app.get("/api/v1/me", &u.token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    async fn admin_creates_lists_and_patches_accounts(app) {
        let admin = app.user("admin", None).await;
        let (status, created) = app
            .post("/api/v1/users", &admin.token, json!({
                "username": "coord.wang", "display_name": "Wang", "role": "coordinator",
                "password": "a-long-password"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["id"].as_str().unwrap().to_string();
        let (status, dup) = app
            .post("/api/v1/users", &admin.token, json!({
                "username": "coord.wang", "display_name": "Other", "role": "coordinator"}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert!(dup["error"]["fields"]["username"].is_string());

        let token = app.login("coord.wang", "a-long-password").await;
        let (status, patched) = app
            .patch(&format!("/api/v1/users/{id}"), &admin.token,
                   json!({"role": "supervisor", "region": "haishu"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{patched}");
        assert_eq!(patched["role"], "supervisor");
        assert_eq!(patched["region"], "haishu");

        let (status, list) = app.get("/api/v1/users?limit=1", &admin.token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        let cursor = list["next_cursor"].as_str().expect("a second page");
        let (_, page2) = app.get(&format!("/api/v1/users?limit=1&cursor={cursor}"), &admin.token).await;
        assert_eq!(page2["items"].as_array().unwrap().len(), 1);
        assert_ne!(page2["items"][0]["id"], list["items"][0]["id"]);

        // Disabling revokes the account's token at once.
        let (status, _) = app
            .patch(&format!("/api/v1/users/{id}"), &admin.token, json!({"disabled": true}))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(app.get("/api/v1/me", &token).await.0, StatusCode::UNAUTHORIZED);
        let (status, _) = app
            .call(Method::POST, "/api/v1/auth/login", None,
                  Some(json!({"username": "coord.wang", "password": "a-long-password"})))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }

    async fn account_input_is_validated_field_by_field(app) {
        let admin = app.user("admin", None).await;
        let (status, body) = app
            .post("/api/v1/users", &admin.token, json!({
                "username": "A B", "role": "wizard", "password": "short"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let f = &body["error"]["fields"];
        assert!(f["username"].is_string() && f["role"].is_string() && f["password"].is_string(), "{body}");
        let (status, body) = app
            .post("/api/v1/users", &admin.token, json!({"username": "sup1", "role": "supervisor"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["error"]["fields"]["region"].is_string());
    }

    async fn the_last_admin_cannot_be_disabled(app) {
        let admin = app.user("admin", None).await;
        let (status, body) = app
            .patch(&format!("/api/v1/users/{}", admin.id), &admin.token, json!({"disabled": true}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        assert_eq!(app.get("/api/v1/me", &admin.token).await.0, StatusCode::OK);
    }

    async fn only_admins_manage_accounts(app) {
        for role in ["supervisor", "coordinator", "ethics_reviewer", "volunteer", "family"] {
            let u = app.user(role, Some("yinzhou")).await;
            assert_eq!(app.get("/api/v1/users", &u.token).await.0, StatusCode::FORBIDDEN, "{role}");
            let (status, _) = app
                .post("/api/v1/users", &u.token, json!({"username": "x-y-z", "role": "admin"}))
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{role}");
        }
    }

    async fn the_setup_link_creates_the_first_admin_once(app) {
        let store = app.state.svc.store.as_ref();
        let token = accounts::issue_setup_link(store, Utc::now()).await.unwrap().expect("no accounts yet");
        let path = format!("/setup/{}", token.expose());
        let (status, page) = app.call(Method::GET, &path, None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.as_str().unwrap().contains("<form"));

        let form = |body: &str| {
            axum::http::Request::builder()
                .method(Method::POST)
                .uri(&path)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(axum::body::Body::from(body.to_string()))
                .unwrap()
        };
        let (status, page) = app.send(form("username=root&password=abc&password_confirm=abc")).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.as_str().unwrap().contains("password"));
        let (status, _) = app
            .send(form("username=first.admin&password=first-admin-pw&password_confirm=first-admin-pw"))
            .await;
        assert_eq!(status, StatusCode::OK);
        let t = app.login("first.admin", "first-admin-pw").await;
        assert_eq!(app.get("/api/v1/me", &t).await.1["role"], "admin");
        // The link is spent.
        let (status, _) = app
            .send(form("username=second&password=second-admin-pw&password_confirm=second-admin-pw"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(app.call(Method::GET, &path, None, None).await.0, StatusCode::NOT_FOUND);
        assert!(accounts::issue_setup_link(store, Utc::now()).await.unwrap().is_none());
    }
}
