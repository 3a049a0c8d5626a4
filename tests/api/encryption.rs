//! Encryption at rest: personal values never reach the disk in the clear, and a ciphertext only
//! opens in the row and column it was sealed for.

use std::path::Path;

use axum::http::StatusCode;
use serde_json::Value;

use crate::helpers::{organ_case, tag, Backend, TestApp};

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

/// The distinctive values of a case created from `organ_case(tag)`.
fn personal_values(case: &Value) -> Vec<String> {
    let d = &case["donor"];
    vec![
        d["full_name"].as_str().unwrap().to_string(),
        d["national_id"].as_str().unwrap().to_string(),
        d["phone"].as_str().unwrap().to_string(),
        "13900001111".to_string(),
        d["address"].as_str().unwrap().to_string(),
        d["email"].as_str().unwrap().to_string(),
        case["notes"].as_str().unwrap().to_string(),
        case["donation"]["hospital"].as_str().unwrap().to_string(),
    ]
}

async fn pg_data_directory(app: &TestApp) -> std::path::PathBuf {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(app.pg_url().unwrap())
        .await
        .unwrap();
    sqlx::query("checkpoint").execute(&mut c).await.unwrap();
    let (dir,): (String,) = sqlx::query_as("show data_directory")
        .fetch_one(&mut c)
        .await
        .unwrap();
    dir.into()
}

on_both_backends! {
    async fn personal_values_never_reach_the_disk_but_read_and_search_work(app) {
        let c = app.user("coordinator", None).await;
        let t = tag();
        let sent = organ_case(&t);
        let created = app.create_case(&c.token, sent.clone()).await;
        let id = created["id"].as_str().unwrap();
        let (_, contact) = app
            .post(&format!("/api/v1/cases/{id}/contacts"), &c.token, serde_json::json!({
                "full_name": format!("Kin{t}"), "relationship": "child",
                "address": format!("{t} Willow Street"), "preferred_channel": "letter"}))
            .await;
        assert_eq!(contact["full_name"], format!("Kin{t}"));

        let (_, got) = app.get(&format!("/api/v1/cases/{id}"), &c.token).await;
        assert_eq!(got["donor"], created["donor"]);
        let nid = created["donor"]["national_id"].as_str().unwrap();
        let (_, found) = app.get(&format!("/api/v1/cases?national_id={nid}"), &c.token).await;
        assert_eq!(found["items"][0]["id"], id);
        let (_, found) = app.get("/api/v1/cases?phone=13900001111", &c.token).await;
        assert_eq!(found["items"][0]["id"], id);

        let dir = match app.backend {
            Backend::Sqlite => app.data_dir(),
            Backend::Postgres => pg_data_directory(&app).await,
        };
        // The scan can see what is stored in the clear (the id), so an empty result means something.
        assert!(!files_containing(&dir, id.as_bytes()).is_empty(), "scan sees the case id in {dir:?}");
        let mut values = personal_values(&created);
        values.push(format!("Kin{t}"));
        values.push(format!("{t} Willow Street"));
        // The tag itself is in every value: not once anywhere on disk.
        values.push(t.clone());
        for v in values {
            let hits = files_containing(&dir, v.as_bytes());
            assert!(hits.is_empty(), "{v:?} found in {hits:?}");
        }
    }

    async fn a_ciphertext_moved_to_another_row_or_column_fails_to_open(app) {
        let c = app.user("coordinator", None).await;
        let a = app.create_case(&c.token, organ_case(&tag())).await;
        let b = app.create_case(&c.token, organ_case(&tag())).await;
        let (a_id, b_id) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
        // A's donor sealed blob copied into B's row: B no longer opens, and A's data is not shown.
        app.exec("update cases set donor = (select donor from cases where id = $1) where id = $2", a_id, b_id).await;
        let (status, body) = app.get(&format!("/api/v1/cases/{b_id}"), &c.token).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.to_string().contains(a["donor"]["full_name"].as_str().unwrap()));
        // A's notes sealed blob copied into A's donation column: A no longer opens either.
        app.exec("update cases set donation = notes where id = $1 and $2 = $2", a_id, b_id).await;
        let (status, body) = app.get(&format!("/api/v1/cases/{a_id}"), &c.token).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("Note"));
    }
}
