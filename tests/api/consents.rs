//! Consent records: bound to the exact document text, immutable in the API and in the
//! database, withdrawn by a new record, and covered by `audit verify`.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{organ_case, tag, Backend, TestApp};

async fn setup(app: &TestApp) -> (String, String, String) {
    let c = app.user("coordinator", None).await;
    let case = app.create_case(&c.token, organ_case(&tag())).await;
    let id = case["id"].as_str().unwrap().to_string();
    let (_, contact) = app
        .post(&format!("/api/v1/cases/{id}/contacts"), &c.token,
              json!({"full_name": "周先生", "relationship": "spouse", "phone": "13611112222", "preferred_channel": "sms"}))
        .await;
    (c.token, id, contact["id"].as_str().unwrap().to_string())
}

fn spouse_donation(contact: &str) -> Value {
    json!({"kind": "donation", "subject": "donor", "given_by": contact, "method": "written",
           "document": "donation-zh-CN-v1", "witness": "李医生", "signed_at": "2025-03-10T10:00:00+08:00",
           "scope": {"organs": ["kidney", "cornea"]}})
}

/// Disable the immutability triggers, as a database administrator could.
async fn tamper(app: &TestApp, sql: &str, id: &str) {
    match app.backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&app.cfg.database_url())
                .await
                .unwrap();
            sqlx::query("drop trigger consents_no_update")
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query("drop trigger consents_no_delete")
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(sql).bind(id).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(app.pg_url().unwrap()).await.unwrap();
            sqlx::query("alter table consents disable trigger consents_no_update")
                .execute(&pool)
                .await
                .unwrap();
            sqlx::query(sql).bind(id).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

on_both_backends! {
    async fn documents_are_versioned_and_hashed(app) {
        let u = app.user("coordinator", None).await;
        let (status, list) = app.get("/api/v1/consent-documents", &u.token).await;
        assert_eq!(status, StatusCode::OK);
        // Seven kinds, each in zh-CN and en.
        assert_eq!(list["items"].as_array().unwrap().len(), 14);
        let (_, d) = app.get("/api/v1/consent-documents/donation-zh-CN-v1", &u.token).await;
        use sha2::Digest;
        assert_eq!(d["sha256"], hex::encode(sha2::Sha256::digest(d["text"].as_str().unwrap().as_bytes())));
        assert_eq!(d["kind"], "donation");
        assert_eq!(app.get("/api/v1/consent-documents/nope-v9", &u.token).await.0, StatusCode::NOT_FOUND);
    }

    async fn a_consent_is_recorded_read_with_its_text_and_never_edited(app) {
        let (token, case, contact) = setup(&app).await;
        let path = format!("/api/v1/cases/{case}/consents");
        for (body, field) in [
            (json!({"kind": "organs"}), "kind"),
            ({ let mut b = spouse_donation(&contact); b["given_by"] = json!("someone"); b }, "given_by"),
            ({ let mut b = spouse_donation(&contact); b["document"] = json!("contact-en-v1"); b }, "document"),
            ({ let mut b = spouse_donation(&contact); b["signed_at"] = json!("2999-01-01"); b }, "signed_at"),
            ({ let mut b = spouse_donation(&contact); b["scope"] = json!({"channels": ["sms"]}); b }, "scope"),
            ({ let mut b = spouse_donation(&contact); b["scope"] = json!({"organs": ["pbsc"]}); b }, "scope"),
            ({ let mut b = spouse_donation(&contact); b["given_by"] = json!("donor"); b["signed_at"] = json!("2025-06-01"); b }, "given_by"),
        ] {
            let (status, resp) = app.post(&path, &token, body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{resp}");
            assert!(resp["error"]["fields"][field].is_string(), "{field}: {resp}");
        }
        let (status, rec) = app.post(&path, &token, spouse_donation(&contact)).await;
        assert_eq!(status, StatusCode::CREATED, "{rec}");
        assert_eq!(rec["status"], "active");
        assert_eq!(rec["scope"]["organs"], json!(["kidney", "cornea"]));
        let id = rec["id"].as_str().unwrap();
        let (_, got) = app.get(&format!("/api/v1/consents/{id}"), &token).await;
        let (_, doc) = app.get("/api/v1/consent-documents/donation-zh-CN-v1", &token).await;
        assert_eq!(got["document_text"], doc["text"]);
        assert_eq!(got["document_sha256"], doc["sha256"]);
        assert_eq!(got["witness"], "李医生");
        for m in [Method::PUT, Method::PATCH, Method::DELETE] {
            let (status, body) = app.call(m.clone(), &format!("/api/v1/consents/{id}"), Some(&token), Some(json!({}))).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{m}: {body}");
        }
        // The database refuses edits and deletions too.
        let refused = match app.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&app.cfg.database_url()).await.unwrap();
                let u = sqlx::query("update consents set method = 'verbal' where id = $1").bind(id).execute(&pool).await;
                let d = sqlx::query("delete from consents where id = $1").bind(id).execute(&pool).await;
                (u.is_err(), d.is_err())
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(app.pg_url().unwrap()).await.unwrap();
                let u = sqlx::query("update consents set method = 'verbal' where id = $1").bind(id).execute(&pool).await;
                let d = sqlx::query("delete from consents where id = $1").bind(id).execute(&pool).await;
                (u.is_err(), d.is_err())
            }
        };
        assert_eq!(refused, (true, true));

        // Withdrawal is a new record; the original reads as withdrawn.
        let (status, w) = app.post(&format!("/api/v1/consents/{id}/withdraw"), &token, json!({"reason": "the family changed its mind"})).await;
        assert_eq!(status, StatusCode::OK, "{w}");
        assert_eq!(w["status"], "withdrawal");
        assert_eq!(w["withdraws"], id);
        assert_eq!(app.get(&format!("/api/v1/consents/{id}"), &token).await.1["status"], "withdrawn");
        assert_eq!(app.post(&format!("/api/v1/consents/{id}/withdraw"), &token, json!({"reason": "again"})).await.0, StatusCode::CONFLICT);
        let (_, reg) = app.get(&format!("/api/v1/consents?case_id={case}&status=withdrawn"), &token).await;
        assert_eq!(reg["items"].as_array().unwrap().len(), 1);
        let reviewer = app.user("ethics_reviewer", None).await;
        let (status, reg) = app.get("/api/v1/consents?kind=donation", &reviewer.token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(reg["items"].as_array().unwrap().len(), 2);
        assert_eq!(app.get(&format!("/api/v1/consents/{id}"), &reviewer.token).await.0, StatusCode::OK);
        assert_eq!(app.get(&format!("/api/v1/cases/{case}"), &reviewer.token).await.0, StatusCode::FORBIDDEN);
    }

    async fn an_edited_consent_row_fails_audit_verify(app) {
        let (token, case, contact) = setup(&app).await;
        let (_, rec) = app.post(&format!("/api/v1/cases/{case}/consents"), &token, spouse_donation(&contact)).await;
        let id = rec["id"].as_str().unwrap();
        let admin = app.user("admin", None).await;
        assert_eq!(app.get("/api/v1/audit/verify", &admin.token).await.1["ok"], true);
        tamper(&app, "update consents set method = 'verbal' where id = $1", id).await;
        let (_, v) = app.get("/api/v1/audit/verify", &admin.token).await;
        assert_eq!(v["ok"], false, "{v}");
        assert!(v["problem"].as_str().unwrap().contains(id), "{v}");
        let out = app.command().args(["audit", "verify"]).output().unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains(id));

        if app.backend == Backend::Sqlite {
            // SQLite keeps any type in any column: a consent row that can no longer be read back
            // fails verification too, naming the column and not the value (no 500).
            app.exec("update consents set created_at = 'zq' where id = $1 and $2 = $2", id, "").await;
            let (status, v) = app.get("/api/v1/audit/verify", &admin.token).await;
            assert_eq!(status, StatusCode::OK, "{v}");
            assert_eq!(v["ok"], false, "{v}");
            let problem = v["problem"].as_str().unwrap();
            assert!(problem.contains("consent row cannot be read") && problem.contains("created_at"), "{problem}");
            assert!(!problem.contains("zq"), "{problem}");
        }
    }

    async fn a_family_reads_and_withdraws_its_own_contact_consent(app) {
        let (token, case, contact) = setup(&app).await;
        let contact_consent = json!({"kind": "contact", "subject": contact, "given_by": contact, "method": "electronic",
                                     "document": "contact-zh-CN-v1", "signed_at": "2025-04-01", "scope": {"channels": ["sms", "portal"]}});
        let (status, cc) = app.post(&format!("/api/v1/cases/{case}/consents"), &token, contact_consent).await;
        assert_eq!(status, StatusCode::CREATED, "{cc}");
        let (_, donation) = app.post(&format!("/api/v1/cases/{case}/consents"), &token, spouse_donation(&contact)).await;
        let (_, inv) = app.post(&format!("/api/v1/contacts/{contact}/invite"), &token, json!({})).await;
        let t = inv["invite_url"].as_str().unwrap().rsplit('/').next().unwrap().to_string();
        app.call(Method::POST, &format!("/api/v1/invites/{t}/accept"), None,
                 Some(json!({"username": "zhou.family", "password": "family-password-1"}))).await;
        let fam = app.login("zhou.family", "family-password-1").await;

        let (status, mine) = app.get("/api/v1/me/consents", &fam).await;
        assert_eq!(status, StatusCode::OK, "{mine}");
        assert_eq!(mine["items"].as_array().unwrap().len(), 2);
        let (status, body) = app
            .post(&format!("/api/v1/me/consents/{}/withdraw", donation["id"].as_str().unwrap()), &fam, json!({"reason": "no"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, w) = app
            .post(&format!("/api/v1/me/consents/{}/withdraw", cc["id"].as_str().unwrap()), &fam, json!({"reason": "please stop the messages"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{w}");
        let (_, got) = app.get(&format!("/api/v1/consents/{}", cc["id"].as_str().unwrap()), &token).await;
        assert_eq!(got["status"], "withdrawn");
        // Another family's consent is not theirs.
        let (token2, case2, contact2) = setup(&app).await;
        let (_, other) = app.post(&format!("/api/v1/cases/{case2}/consents"), &token2,
            json!({"kind": "publicity", "subject": "donor", "given_by": contact2, "method": "written",
                   "document": "publicity-en-v1", "signed_at": "2025-04-01"})).await;
        assert_eq!(app.post(&format!("/api/v1/me/consents/{}/withdraw", other["id"].as_str().unwrap()), &fam,
                            json!({"reason": "x"})).await.0, StatusCode::NOT_FOUND);
    }
}

mod findings {
    use super::*;

    /// The open findings of a case, as (rule, message).
    async fn open_findings(app: &TestApp, token: &str, case: &str) -> Vec<(String, String)> {
        let (status, body) = app
            .get(
                &format!("/api/v1/ethics/findings?case_id={case}&status=open"),
                token,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                (
                    f["rule"].as_str().unwrap().to_string(),
                    f["message"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    on_both_backends! {
        async fn joint_family_consent_findings_name_the_missing_relatives_and_close_when_complete(app) {
            let c = app.user("coordinator", None).await;
            let reviewer = app.user("ethics_reviewer", None).await;
            let case = app.create_case(&c.token, organ_case(&tag())).await;
            let id = case["id"].as_str().unwrap();
            let mut relatives = Vec::new();
            for (name, rel) in [("配偶", "spouse"), ("儿子", "child"), ("母亲", "parent")] {
                let (_, k) = app
                    .post(&format!("/api/v1/cases/{id}/contacts"), &c.token,
                          json!({"full_name": name, "relationship": rel, "preferred_channel": "portal"}))
                    .await;
                relatives.push(k["id"].as_str().unwrap().to_string());
            }
            let found = open_findings(&app, &reviewer.token, id).await;
            assert!(found.iter().any(|(r, m)| r == "deceased_donation_consent" && m.contains("spouse") && m.contains("child") && m.contains("parent")), "{found:?}");

            let consent = |by: &str| json!({"kind": "donation", "subject": "donor", "given_by": by, "method": "written",
                                             "document": "donation-zh-CN-v1", "signed_at": "2025-03-10"});
            app.post(&format!("/api/v1/cases/{id}/consents"), &c.token, consent(&relatives[0])).await;
            let found = open_findings(&app, &reviewer.token, id).await;
            let msg = &found.iter().find(|(r, _)| r == "deceased_donation_consent").expect("still missing").1;
            assert!(msg.contains(&format!("child (contact {})", relatives[1])) && msg.contains(&format!("parent (contact {})", relatives[2])), "{msg}");
            assert!(!msg.contains("spouse (contact"), "{msg}");

            app.post(&format!("/api/v1/cases/{id}/consents"), &c.token, consent(&relatives[1])).await;
            app.post(&format!("/api/v1/cases/{id}/consents"), &c.token, consent(&relatives[2])).await;
            let found = open_findings(&app, &reviewer.token, id).await;
            assert!(!found.iter().any(|(r, _)| r == "deceased_donation_consent"), "{found:?}");
            let (_, closed) = app.get(&format!("/api/v1/ethics/findings?case_id={id}&status=closed"), &reviewer.token).await;
            assert_eq!(closed["items"][0]["decision"], "resolved");

            // A verbal consent without a witness, and one signed after the donation, each raise one.
            app.post(&format!("/api/v1/cases/{id}/consents"), &c.token,
                     json!({"kind": "publicity", "subject": "donor", "given_by": relatives[0], "method": "verbal",
                            "document": "publicity-zh-CN-v1", "signed_at": "2025-03-12"})).await;
            app.post(&format!("/api/v1/cases/{id}/consents"), &c.token,
                     json!({"kind": "donation", "subject": "donor", "given_by": relatives[0], "method": "written",
                            "document": "donation-zh-CN-v1", "signed_at": "2025-04-01"})).await;
            let found = open_findings(&app, &reviewer.token, id).await;
            assert!(found.iter().any(|(r, _)| r == "verbal_without_witness"), "{found:?}");
            assert!(found.iter().any(|(r, _)| r == "signed_after_donation"), "{found:?}");

            // A reviewer closes one with a decision.
            let (_, list) = app.get(&format!("/api/v1/ethics/findings?case_id={id}&status=open"), &reviewer.token).await;
            let fid = list["items"][0]["id"].as_str().unwrap();
            // A note with control characters, and an unknown decision, are named and close nothing.
            let (status, b) = app.post(&format!("/api/v1/ethics/findings/{fid}/decision"), &reviewer.token,
                                       json!({"finding": "maybe", "note": "bad\u{9e}note"})).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
            assert!(b["error"]["fields"]["note"].is_string() && b["error"]["fields"]["finding"].is_string(), "{b}");
            let (status, _) = app.post(&format!("/api/v1/ethics/findings/{fid}/decision"), &reviewer.token,
                                       json!({"finding": "concern", "note": "ask the coordinator for the form"})).await;
            assert_eq!(status, StatusCode::NO_CONTENT);
            assert_eq!(app.post(&format!("/api/v1/ethics/findings/{fid}/decision"), &c.token,
                                json!({"finding": "verified"})).await.0, StatusCode::FORBIDDEN);
            let (_, closed) = app.get(&format!("/api/v1/ethics/findings?case_id={id}&status=closed"), &reviewer.token).await;
            assert!(closed["items"].as_array().unwrap().iter().any(|f| f["decision"] == "concern" && f["note"] == "ask the coordinator for the form"));
        }
    }
}

mod ethics {
    use super::*;
    use std::io::Read;

    fn decrypt(identity: &age::x25519::Identity, bytes: &[u8]) -> String {
        let d = age::Decryptor::new_buffered(bytes).unwrap();
        let mut r = d
            .decrypt(std::iter::once(identity as &dyn age::Identity))
            .unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        s
    }

    on_both_backends! {
        async fn reviewers_review_reveal_and_export_the_register_to_their_own_key(app) {
            let (token, case, contact) = setup(&app).await;
            let (_, rec) = app.post(&format!("/api/v1/cases/{case}/consents"), &token, spouse_donation(&contact)).await;
            let id = rec["id"].as_str().unwrap();
            let reviewer = app.user("ethics_reviewer", None).await;

            let (status, r) = app.post(&format!("/api/v1/consents/{id}/reviews"), &reviewer.token,
                                       json!({"finding": "concern", "note": "the witness signed for both"})).await;
            assert_eq!(status, StatusCode::CREATED, "{r}");
            assert_eq!(app.post(&format!("/api/v1/consents/{id}/reviews"), &reviewer.token, json!({"finding": "maybe"})).await.0,
                       StatusCode::UNPROCESSABLE_ENTITY);

            assert_eq!(app.post(&format!("/api/v1/cases/{case}/reveal"), &reviewer.token, json!({"reason": "why"})).await.0,
                       StatusCode::UNPROCESSABLE_ENTITY);
            let (status, who) = app.post(&format!("/api/v1/cases/{case}/reveal"), &reviewer.token,
                                         json!({"reason": "the committee must contact the donor's hospital"})).await;
            assert_eq!(status, StatusCode::OK, "{who}");
            assert!(who["donor"]["full_name"].as_str().unwrap().starts_with("Name"));
            let admin = app.user("admin", None).await;
            let (_, log) = app.get(&format!("/api/v1/audit?case_id={case}&action=case.reveal"), &admin.token).await;
            assert_eq!(log["items"][0]["actor_id"], reviewer.id.as_str());

            // The register, encrypted to the reviewer's key, through the API and the command line.
            let key = age::x25519::Identity::generate();
            let recipient = key.to_public().to_string();
            let req = axum::http::Request::builder()
                .method("POST")
                .uri("/api/v1/ethics/exports")
                .header("authorization", format!("Bearer {}", reviewer.token))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(json!({"recipient": recipient, "format": "csv"}).to_string()))
                .unwrap();
            use tower::ServiceExt;
            use http_body_util::BodyExt;
            let resp = app.router.clone().oneshot(req).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(resp.headers()["content-type"], "application/age");
            let bytes = resp.into_body().collect().await.unwrap().to_bytes();
            let csv = decrypt(&key, &bytes);
            assert!(csv.starts_with("id,case_id,kind"), "{csv}");
            assert!(csv.contains(id) && csv.contains("李医生") && csv.contains("kidney cornea"), "{csv}");
            let (status, body) = app.post("/api/v1/ethics/exports", &reviewer.token, json!({"recipient": "age1nope"})).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("register.json.age");
            let run = app.command()
                .args(["export", "consents", "--recipient", &recipient, "--format", "json", "--out"])
                .arg(&out)
                .output()
                .unwrap();
            assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
            let json: Value = serde_json::from_str(&decrypt(&key, &std::fs::read(&out).unwrap())).unwrap();
            assert!(json.as_array().unwrap().iter().any(|c| c["id"] == id));
        }
    }
}

mod signed_forms {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn upload(
        app: &TestApp,
        token: &str,
        consent: &str,
        bytes: Vec<u8>,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("/api/v1/consents/{consent}/attachment"))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/octet-stream")
            .body(Body::from(bytes))
            .unwrap();
        app.send(req).await
    }

    /// Every file under `dir`, recursively.
    fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                if e.path().is_dir() {
                    out.extend(files(&e.path()));
                } else {
                    out.push(e.path());
                }
            }
        }
        out
    }

    on_both_backends! {
        async fn a_signed_form_is_sniffed_sealed_audited_and_erased_with_the_case(app) {
            let (token, case, contact) = setup(&app).await;
            let (_, rec) = app.post(&format!("/api/v1/cases/{case}/consents"), &token, spouse_donation(&contact)).await;
            let id = rec["id"].as_str().unwrap().to_string();
            let reviewer = app.user("ethics_reviewer", None).await;
            let (_, found) = app.get(&format!("/api/v1/ethics/findings?case_id={case}&status=open"), &reviewer.token).await;
            assert!(found["items"].as_array().unwrap().iter().any(|f| f["rule"] == "written_without_form"));

            let (status, body) = upload(&app, &token, &id, b"GIF89a not a form".to_vec()).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            let (status, _) = upload(&app, &token, &id, vec![b'%'; 11 * 1024 * 1024]).await;
            assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
            let secret = b"%PDF-1.7\nSigned by Zhou Marker77 for the kidney donation\n".repeat(3000);
            let (status, body) = upload(&app, &token, &id, secret.clone()).await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
            assert_eq!(body["media_type"], "application/pdf");
            assert_eq!(upload(&app, &token, &id, secret.clone()).await.0, StatusCode::CONFLICT);
            let (_, found) = app.get(&format!("/api/v1/ethics/findings?case_id={case}&status=open"), &reviewer.token).await;
            assert!(!found["items"].as_array().unwrap().iter().any(|f| f["rule"] == "written_without_form"), "{found}");

            // Stored sealed: the plaintext appears in no file.
            let stored = files(&app.state.svc.attachments_dir);
            assert_eq!(stored.len(), 1);
            let sealed = std::fs::read(&stored[0]).unwrap();
            assert!(!sealed.windows(8).any(|w| w == b"Marker77"));

            let get = Request::builder()
                .uri(format!("/api/v1/consents/{id}/attachment"))
                .header("authorization", format!("Bearer {}", reviewer.token))
                .body(Body::empty())
                .unwrap();
            let resp = app.router.clone().oneshot(get).await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
            assert_eq!(resp.headers()["content-type"], "application/pdf");
            assert_eq!(resp.into_body().collect().await.unwrap().to_bytes().to_vec(), secret);
            let admin = app.user("admin", None).await;
            let (_, log) = app.get(&format!("/api/v1/audit?case_id={case}&actor_id={}", reviewer.id), &admin.token).await;
            assert!(log["items"].as_array().unwrap().iter().any(|e| e["target_type"] == "consent_attachment" && e["reason"] == "download"));

            // Erasure removes the files with the key.
            let sup = app.user("supervisor", Some("yinzhou")).await;
            let (_, req) = app.post(&format!("/api/v1/cases/{case}/erasure-requests"), &sup.token, json!({})).await;
            let (status, _) = app.post(&format!("/api/v1/erasure-requests/{}/approve", req["id"].as_str().unwrap()), &reviewer.token, json!({})).await;
            assert_eq!(status, StatusCode::OK);
            assert!(files(&app.state.svc.attachments_dir).is_empty());
            assert_eq!(app.get("/api/v1/audit/verify", &admin.token).await.1["ok"], true);
        }
    }
}
