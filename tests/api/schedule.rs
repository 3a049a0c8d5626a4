//! Care plans, materialisation, the send-time gate and delivery.

use axum::http::StatusCode;
use serde_json::{json, Value};

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

on_both_backends! {
    async fn an_organ_case_with_family_gets_its_plan_materialised(app) {
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let t = tag();
        let case = app.create_case(&coord.token, organ_case(&t)).await;
        let id = case["id"].as_str().unwrap();
        let (s, c) = app
            .post(&format!("/api/v1/cases/{id}/contacts"), &coord.token,
                  json!({"full_name": format!("Kin{t}"), "relationship": "spouse", "email": "kin@example.org", "preferred_channel": "email"}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{c}");
        donorcare::domain::schedule::materialise(&app.state.svc, &[id.to_string()], chrono::Utc::now())
            .await
            .expect("materialise");
        let msgs = outreach(&app, &coord.token, id).await;
        assert!(!msgs.is_empty(), "no outreach materialised");
        let (s, tasks) = app.get(&format!("/api/v1/tasks?case_id={id}&limit=200"), &coord.token).await;
        assert_eq!(s, StatusCode::OK);
        let rules: Vec<&str> = tasks["items"].as_array().unwrap().iter().filter_map(|t| t["rule_id"].as_str()).collect();
        assert!(rules.contains(&"qingming"), "{rules:?}");
    }
}
