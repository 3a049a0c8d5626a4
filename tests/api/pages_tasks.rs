//! The task pages: a task's page for staff and for a volunteer, and logging its outcome.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;
use tower::ServiceExt;

use crate::helpers::{organ_case, tag, TestApp, TestUser};
use crate::pages::{page, page_session};

async fn post_form(app: &TestApp, path: &str, jar: &str, body: &str) -> (StatusCode, String) {
    use http_body_util::BodyExt;
    let req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", jar)
        .body(Body::from(body.to_string()))
        .unwrap();
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

fn hidden(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let i = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + needle.len();
    html[i..].split('"').next().unwrap().to_string()
}

/// A case with a contact at `address`, and a visit to them assigned to `volunteer`.
async fn visit(app: &TestApp, coord: &TestUser, volunteer: &TestUser, t: &str) -> (String, String) {
    let case = app.create_case(&coord.token, organ_case(t)).await;
    let case_id = case["id"].as_str().unwrap().to_string();
    let (s, contact) = app
        .post(
            &format!("/api/v1/cases/{case_id}/contacts"),
            &coord.token,
            json!({"full_name": format!("Kin{t}"), "relationship": "spouse", "phone": "13711112222",
                     "address": format!("{t} Lane 5"), "preferred_channel": "sms"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{contact}");
    let (s, task) = app
        .post(
            &format!("/api/v1/cases/{case_id}/tasks"),
            &coord.token,
            json!({"kind": "visit", "due_at": "2030-01-01", "contact_id": contact["id"],
                     "assignee_id": volunteer.id}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{task}");
    (case_id, task["id"].as_str().unwrap().to_string())
}

on_both_backends! {
    async fn a_volunteer_sees_the_address_never_the_national_id_and_logs_the_outcome_in_one_tap(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let vol = app.user("volunteer", Some("yinzhou")).await;
        let t = tag();
        let (_, task_id) = visit(&app, &coord, &vol, &t).await;
        let national_id = organ_case(&t)["donor"]["national_id"].as_str().unwrap().to_string();

        let jar = page_session(&app, &vol.username).await;
        let (status, html) = page(&app, &format!("/tasks/{task_id}"), &jar).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        assert!(html.contains(&format!("{t} Lane 5")), "{html}");
        assert!(html.contains("href=\"tel:13711112222\""), "{html}");
        assert!(!html.contains(&national_id), "{html}");
        assert!(!html.contains(&format!("Hospital{t}")), "{html}");
        // zh-CN: no English interface words.
        for w in ["Visited", "Nobody home", "Outcome", "Address", "Phone"] {
            assert!(!html.contains(w), "{w} in {html}");
        }
        assert!(html.contains("家中无人"), "{html}");

        // Without the CSRF token: refused, nothing done.
        let path = format!("/tasks/{task_id}/complete");
        let (status, _) = post_form(&app, &path, &jar, "outcome=x").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (_, api) = app.get(&format!("/api/v1/tasks/{task_id}"), &coord.token).await;
        assert_eq!(api["status"], "scheduled", "{api}");

        let csrf = hidden(&html, "csrf");
        let body = format!("csrf={csrf}&note=&outcome={}", urlencode("家中无人"));
        let (status, html) = post_form(&app, &path, &jar, &body).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{html}");
        let (_, api) = app.get(&format!("/api/v1/tasks/{task_id}"), &coord.token).await;
        assert_eq!(api["status"], "done", "{api}");
        assert_eq!(api["outcome"], "家中无人", "{api}");
    }

    async fn completing_without_an_outcome_answers_422_keeping_the_note(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let vol = app.user("volunteer", Some("yinzhou")).await;
        let t = tag();
        let (_, task_id) = visit(&app, &coord, &vol, &t).await;
        let jar = page_session(&app, &coord.username).await;
        let (status, html) = page(&app, &format!("/tasks/{task_id}"), &jar).await;
        assert_eq!(status, StatusCode::OK, "{html}");
        let csrf = hidden(&html, "csrf");

        let body = format!("csrf={csrf}&outcome=&note=Kept{t}");
        let (status, html) = post_form(&app, &format!("/tasks/{task_id}/complete"), &jar, &body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(html.contains(&format!("Kept{t}")), "{html}");
        assert!(html.contains("aria-invalid=\"true\""), "{html}");
        let (_, api) = app.get(&format!("/api/v1/tasks/{task_id}"), &coord.token).await;
        assert_eq!(api["status"], "scheduled", "{api}");
    }
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}
