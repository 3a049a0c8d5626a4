//! Marrow donors' adverse events through the API: recorded, listed and changed on a marrow
//! case only, each bad field named, the description sealed, every write and the registry's
//! export audited, and the export naming no one.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{marrow_case, organ_case, tag, Backend, TestApp, TestUser};

/// A coordinator of region yinzhou and one marrow (PBSC, collected 2025-05-20) case of theirs.
async fn setup(app: &TestApp) -> (TestUser, String) {
    let c = app.user("coordinator", Some("yinzhou")).await;
    let case = app
        .create_case(&c.token, marrow_case(&tag(), "13900004444"))
        .await;
    (c, case["id"].as_str().unwrap().to_string())
}

fn event(description: &str) -> Value {
    json!({"occurred_on": "2025-05-22", "category": "pain", "grade": 2, "relation": "related",
           "outcome": "recovering", "description": description})
}

async fn actions(app: &TestApp, case: &str) -> Vec<(String, Option<String>)> {
    let admin = app.user("admin", None).await;
    let (s, log) = app
        .get(
            &format!("/api/v1/audit?case_id={case}&limit=200"),
            &admin.token,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{log}");
    log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_string(),
                e["outcome"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// The stored description bytes of an event, straight from the database.
async fn stored_description(app: &TestApp, id: &str) -> Vec<u8> {
    let sql = "select description from adverse_events where id = $1";
    match app.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.cfg.database_url())
                .await
                .unwrap();
            let (b,): (Vec<u8>,) = sqlx::query_as(sql).bind(id).fetch_one(&pool).await.unwrap();
            pool.close().await;
            b
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(app.pg_url().unwrap()).await.unwrap();
            let (b,): (Vec<u8>,) = sqlx::query_as(sql).bind(id).fetch_one(&pool).await.unwrap();
            pool.close().await;
            b
        }
    }
}

on_both_backends! {
    async fn an_adverse_event_is_recorded_listed_changed_and_audited(app) {
        let (c, case) = setup(&app).await;
        let t = tag();
        let (s, made) = app.post(&format!("/api/v1/cases/{case}/adverse-events"), &c.token,
                                 event(&format!("Back pain {t}"))).await;
        assert_eq!(s, StatusCode::CREATED, "{made}");
        assert_eq!(made["grade"], 2);
        assert_eq!(made["grade_label"], "moderate");
        assert_eq!(made["description"], format!("Back pain {t}"));
        assert!(made["reported_on"].is_null());
        assert!(made["reference"].as_str().unwrap().starts_with("DC-"), "{made}");
        let id = made["id"].as_str().unwrap();

        let (s, list) = app.get(&format!("/api/v1/cases/{case}/adverse-events"), &c.token).await;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        assert_eq!(list["items"][0]["description"], format!("Back pain {t}"));

        let (s, changed) = app.patch(&format!("/api/v1/adverse-events/{id}"), &c.token,
                                     json!({"outcome": "resolved", "reported_on": "2025-06-01"})).await;
        assert_eq!(s, StatusCode::OK, "{changed}");
        assert_eq!(changed["outcome"], "resolved");
        assert_eq!(changed["reported_on"], "2025-06-01");
        assert_eq!(changed["description"], format!("Back pain {t}"), "the rest is kept");
        let (s, cleared) = app.patch(&format!("/api/v1/adverse-events/{id}"), &c.token,
                                     json!({"reported_on": null})).await;
        assert_eq!(s, StatusCode::OK, "{cleared}");
        assert!(cleared["reported_on"].is_null());
        let (_, got) = app.get(&format!("/api/v1/adverse-events/{id}"), &c.token).await;
        assert_eq!(got["outcome"], "resolved");

        let log = actions(&app, &case).await;
        let count = |a: &str| log.iter().filter(|(x, o)| x == a && o.as_deref() == Some("allowed")).count();
        assert_eq!(count("adverse_event.record"), 1, "{log:?}");
        assert_eq!(count("adverse_event.update"), 2, "{log:?}");
        assert!(count("adverse_event.view") >= 2, "{log:?}");
    }

    async fn each_bad_field_is_named_and_nothing_is_saved(app) {
        let (c, case) = setup(&app).await;
        let path = format!("/api/v1/cases/{case}/adverse-events");
        let (s, b) = app.post(&path, &c.token, json!({})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        for f in ["occurred_on", "category", "grade", "relation", "outcome", "description"] {
            assert!(b["error"]["fields"][f].is_string(), "{f}: {b}");
        }
        let (s, b) = app.post(&path, &c.token, json!({"occurred_on": "2999-01-01", "category": "headache",
            "grade": 7, "relation": "maybe", "outcome": "gone", "reported_on": "2025-13-01",
            "description": "x"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        for f in ["occurred_on", "category", "grade", "relation", "outcome", "reported_on"] {
            assert!(b["error"]["fields"][f].is_string(), "{f}: {b}");
        }
        // Long before the collection, and reported before it happened.
        let mut early = event("pain");
        early["occurred_on"] = json!("2025-01-01");
        let (s, b) = app.post(&path, &c.token, early).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["occurred_on"].is_string(), "{b}");
        let mut reported = event("pain");
        reported["reported_on"] = json!("2025-05-21");
        let (s, b) = app.post(&path, &c.token, reported).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["reported_on"].is_string(), "{b}");
        let (s, b) = app.post(&path, &c.token, json!({"grade": "two"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["grade"].is_string(), "{b}");

        let (_, list) = app.get(&path, &c.token).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 0, "{list}");
        // A change is checked the same way, and an unknown field is named.
        let (_, made) = app.post(&path, &c.token, event("pain")).await;
        let id = made["id"].as_str().unwrap();
        let (s, b) = app.patch(&format!("/api/v1/adverse-events/{id}"), &c.token,
                               json!({"grade": 0, "colour": "red"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let (s, b) = app.patch(&format!("/api/v1/adverse-events/{id}"), &c.token, json!({"grade": 0})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["grade"].is_string(), "{b}");
        let (_, got) = app.get(&format!("/api/v1/adverse-events/{id}"), &c.token).await;
        assert_eq!(got["grade"], 2, "nothing saved");
    }

    async fn only_marrow_cases_have_adverse_events(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        let organ = app.create_case(&c.token, organ_case(&tag())).await;
        let id = organ["id"].as_str().unwrap();
        let (s, b) = app.post(&format!("/api/v1/cases/{id}/adverse-events"), &c.token, event("pain")).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["program"].as_str().unwrap().contains("marrow"), "{b}");
    }

    async fn the_description_is_sealed_in_the_database(app) {
        let (c, case) = setup(&app).await;
        let t = tag();
        let (_, made) = app.post(&format!("/api/v1/cases/{case}/adverse-events"), &c.token,
                                 event(&format!("Fainted {t}"))).await;
        let stored = stored_description(&app, made["id"].as_str().unwrap()).await;
        assert!(stored.len() > t.len());
        assert!(!stored.windows(t.len()).any(|w| w == t.as_bytes()), "the description is in the clear");
        if app.backend == Backend::Sqlite {
            // Nor anywhere in the database files (WAL included).
            let mut stack = vec![app.data_dir()];
            while let Some(d) = stack.pop() {
                for e in std::fs::read_dir(&d).unwrap().flatten() {
                    let p = e.path();
                    if p.is_dir() { stack.push(p); continue; }
                    let bytes = std::fs::read(&p).unwrap();
                    assert!(!bytes.windows(t.len()).any(|w| w == t.as_bytes()), "{p:?}");
                }
            }
        }
    }

    async fn listings_are_paginated_and_filtered(app) {
        let (c, case) = setup(&app).await;
        let path = format!("/api/v1/cases/{case}/adverse-events");
        for (day, grade) in [("2025-05-21", 1), ("2025-05-25", 3), ("2025-06-10", 1)] {
            let mut e = event("tired");
            e["occurred_on"] = json!(day);
            e["grade"] = json!(grade);
            let (s, b) = app.post(&path, &c.token, e).await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
        }
        let (_, p1) = app.get(&format!("{path}?limit=2"), &c.token).await;
        assert_eq!(p1["items"].as_array().unwrap().len(), 2, "{p1}");
        let cursor = p1["next_cursor"].as_str().unwrap();
        let (_, p2) = app.get(&format!("{path}?limit=2&cursor={cursor}"), &c.token).await;
        assert_eq!(p2["items"].as_array().unwrap().len(), 1, "{p2}");
        assert!(p2["next_cursor"].is_null());
        let (s, b) = app.get(&format!("{path}?cursor=nonsense"), &c.token).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");

        let (_, all) = app.get("/api/v1/adverse-events?grade=1", &c.token).await;
        assert_eq!(all["items"].as_array().unwrap().len(), 2, "{all}");
        assert!(all["items"][0]["description"].is_null(), "no descriptions across cases");
        let (_, range) = app.get("/api/v1/adverse-events?from=2025-05-22&to=2025-05-31", &c.token).await;
        assert_eq!(range["items"].as_array().unwrap().len(), 1, "{range}");
        assert_eq!(range["items"][0]["grade"], 3);
        let (s, b) = app.get("/api/v1/adverse-events?from=2025-06-01&to=2025-05-01", &c.token).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["to"].is_string(), "{b}");
        // Another coordinator's list holds none of them.
        let other = app.user("coordinator", Some("yinzhou")).await;
        let (_, none) = app.get("/api/v1/adverse-events", &other.token).await;
        assert_eq!(none["items"].as_array().unwrap().len(), 0, "{none}");
    }

    async fn the_registry_export_is_pseudonymous_and_audited(app) {
        let (c, case) = setup(&app).await;
        let t = tag();
        let mut e = event(&format!("Bone pain {t}"));
        e["occurred_on"] = json!("2025-05-18");
        e["reported_on"] = json!("2025-05-30");
        let (s, made) = app.post(&format!("/api/v1/cases/{case}/adverse-events"), &c.token, e).await;
        assert_eq!(s, StatusCode::CREATED, "{made}");
        let sup = app.user("supervisor", Some("yinzhou")).await;
        let (s, rep) = app.get("/api/v1/registry/adverse-events?from=2025-05-01&to=2025-05-31", &sup.token).await;
        assert_eq!(s, StatusCode::OK, "{rep}");
        let items = rep["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{rep}");
        let row = &items[0];
        assert_eq!(row["reference"], made["reference"]);
        assert_eq!(row["donation_kind"], "pbsc");
        assert_eq!(row["days_after_collection"], -2, "mobilisation, two days before");
        assert_eq!(row["grade"], 2);
        assert_eq!(row["reported_on"], "2025-05-30");
        let mut keys: Vec<&String> = row.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["category", "days_after_collection", "donation_kind", "grade", "outcome",
                          "reference", "relation", "reported_on"]);
        let text = rep.to_string();
        assert!(!text.contains(&t) && !text.contains(&case) && !text.contains("13900004444"), "{text}");

        let (s, csv) = app.get("/api/v1/registry/adverse-events.csv?from=2025-05-01", &sup.token).await;
        assert_eq!(s, StatusCode::OK, "{csv}");
        let csv = csv.as_str().unwrap().to_string();
        assert!(csv.starts_with("reference,donation_kind,days_after_collection,category,grade,relation,outcome,reported_on\r\n"), "{csv}");
        assert!(csv.contains(",pbsc,-2,pain,2,related,recovering,2025-05-30\r\n"), "{csv}");
        assert!(!csv.contains(&t) && !csv.contains(&case), "{csv}");
        let (_, outside) = app.get("/api/v1/registry/adverse-events?from=2025-06-01", &sup.token).await;
        assert_eq!(outside["items"].as_array().unwrap().len(), 0);
        // Another region's supervisor exports none of it; a coordinator exports nothing.
        let far = app.user("supervisor", Some("haishu")).await;
        let (_, none) = app.get("/api/v1/registry/adverse-events", &far.token).await;
        assert_eq!(none["items"].as_array().unwrap().len(), 0);
        let (s, _) = app.get("/api/v1/registry/adverse-events", &c.token).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let ethics = app.user("ethics_reviewer", None).await;
        let (_, all) = app.get("/api/v1/registry/adverse-events", &ethics.token).await;
        assert_eq!(all["items"].as_array().unwrap().len(), 1);

        let admin = app.user("admin", None).await;
        let (_, log) = app.get("/api/v1/audit?action=adverse_event.export&limit=50", &admin.token).await;
        let reasons: Vec<&str> = log["items"].as_array().unwrap().iter()
            .filter(|e| e["outcome"] == "allowed")
            .filter_map(|e| e["reason"].as_str()).collect();
        for r in ["json:1", "csv:1", "json:0"] {
            assert!(reasons.contains(&r), "{r} in {reasons:?}");
        }
        let denied = log["items"].as_array().unwrap().iter().any(|e| e["outcome"] == "denied");
        assert!(denied, "the coordinator's refusal is recorded: {log}");
    }

    async fn ethics_reviewers_read_events_without_the_description(app) {
        let (c, case) = setup(&app).await;
        let (_, made) = app.post(&format!("/api/v1/cases/{case}/adverse-events"), &c.token, event("Dizzy")).await;
        let ethics = app.user("ethics_reviewer", None).await;
        let (s, list) = app.get(&format!("/api/v1/cases/{case}/adverse-events"), &ethics.token).await;
        assert_eq!(s, StatusCode::OK, "{list}");
        assert_eq!(list["items"][0]["category"], "pain");
        assert!(list["items"][0]["description"].is_null(), "{list}");
        let id = made["id"].as_str().unwrap();
        let (s, _) = app.patch(&format!("/api/v1/adverse-events/{id}"), &ethics.token, json!({"outcome": "resolved"})).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
}
