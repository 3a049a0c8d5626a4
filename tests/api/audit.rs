//! The audit log: what is recorded, the chain that catches edits, break-glass, and concurrent
//! writers.

use axum::http::StatusCode;
use chrono::Utc;
use serde_json::{json, Value};

use crate::helpers::{organ_case, tag, TestApp};

async fn entries(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let (status, body) = app
        .get(&format!("/api/v1/audit?limit=200&{query}"), token)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"].as_array().unwrap().clone()
}

fn verify_cli(app: &TestApp) -> (bool, String, String) {
    let out = app.command().args(["audit", "verify"]).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `donorcare user add` as another process would run it: a volunteer account. Its standard error.
fn user_add_cli(app: &TestApp, username: &str) -> String {
    use std::io::Write;
    let mut run = app
        .command()
        .args([
            "user",
            "add",
            "--username",
            username,
            "--role",
            "volunteer",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    run.stdin
        .take()
        .unwrap()
        .write_all(b"a-long-enough-password-1\n")
        .unwrap();
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// Delete the last entry, `seq`, straight in the database and make the head agree with the
/// entry before it: the chain alone then verifies, and only a checkpoint can tell.
async fn cut_tail(app: &TestApp, seq: i64) {
    let seq = seq.to_string();
    app.exec(
        "delete from audit_log where seq = cast($1 as integer) and $2 = $2",
        &seq,
        "",
    )
    .await;
    app.exec(
        "update audit_head set seq = cast($1 as integer) - 1, \
         hash = (select hash from audit_log where seq = cast($1 as integer) - 1) where id = 1 and $2 = $2",
        &seq,
        "",
    )
    .await;
}

on_both_backends! {
    async fn views_stay_on_the_chain_when_another_process_appends_between_them(app) {
        let admin = app.user("admin", None).await;
        let c = app.user("coordinator", None).await;
        let case = app.create_case(&c.token, organ_case(&tag())).await;
        let path = format!("/api/v1/cases/{}", case["id"].as_str().unwrap());
        for round in 0..3 {
            // A view (a group-committed batch), then an entry appended by another process (the
            // command line creating an account), then another view: the second batch starts from
            // a head that moved under it.
            assert_eq!(app.get(&path, &c.token).await.0, StatusCode::OK);
            user_add_cli(&app, &format!("cli-{}-{round}", tag().to_lowercase()));
            assert_eq!(app.get(&path, &c.token).await.0, StatusCode::OK);
        }
        let (_, v) = app.get("/api/v1/audit/verify", &admin.token).await;
        assert_eq!(v["ok"], true, "{v}");
        let log = entries(&app, &admin.token, &format!("case_id={}", case["id"].as_str().unwrap())).await;
        let views = log.iter().filter(|e| e["action"] == "case.view" && e["actor_id"] == c.id.as_str()).count();
        assert_eq!(views, 6, "{log:?}");
        assert!(verify_cli(&app).0);
    }

    async fn views_writes_and_denials_are_recorded(app) {
        let admin = app.user("admin", None).await;
        let c = app.user("coordinator", None).await;
        let other = app.user("coordinator", None).await;
        let case = app.create_case(&c.token, organ_case(&tag())).await;
        let id = case["id"].as_str().unwrap();
        app.get(&format!("/api/v1/cases/{id}"), &c.token).await;
        app.get("/api/v1/cases", &c.token).await;
        assert_eq!(app.get(&format!("/api/v1/cases/{id}"), &other.token).await.0, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&format!("/api/v1/cases/{id}"), &admin.token).await.0, StatusCode::FORBIDDEN);

        let log = entries(&app, &admin.token, &format!("case_id={id}")).await;
        let has = |actor: &str, action: &str, outcome: &str| {
            log.iter().any(|e| e["actor_id"] == actor && e["action"] == action && e["outcome"] == outcome)
        };
        assert!(has(&c.id, "case.create", "allowed"), "{log:?}");
        assert!(has(&c.id, "case.view", "allowed"));
        assert!(log.iter().any(|e| e["action"] == "case.view" && e["reason"] == "list"));
        assert!(has(&other.id, "case.view", "denied"));
        assert!(has(&admin.id, "case.view", "denied"));
        // Newest first, and nothing personal in an entry.
        assert!(log[0]["seq"].as_i64() > log[log.len() - 1]["seq"].as_i64());
        let text = serde_json::to_string(&log).unwrap();
        assert!(!text.contains(case["donor"]["full_name"].as_str().unwrap()));
        let logins = entries(&app, &admin.token, &format!("actor_id={}&action=auth.login", c.id)).await;
        assert_eq!(logins.len(), 1);
        for role in ["coordinator", "volunteer", "family"] {
            let u = app.user(role, None).await;
            assert_eq!(app.get("/api/v1/audit", &u.token).await.0, StatusCode::FORBIDDEN, "{role}");
            assert_eq!(app.get("/api/v1/audit/verify", &u.token).await.0, StatusCode::FORBIDDEN, "{role}");
        }
    }

    async fn supervisors_read_the_audit_of_their_region_only(app) {
        let sup = app.user("supervisor", Some("yinzhou")).await;
        let far = app.user("supervisor", Some("haishu")).await;
        let case = app.create_case(&sup.token, organ_case(&tag())).await;
        let id = case["id"].as_str().unwrap();
        assert!(!entries(&app, &sup.token, &format!("case_id={id}")).await.is_empty());
        assert!(entries(&app, &far.token, &format!("case_id={id}")).await.is_empty());
        assert!(entries(&app, &far.token, "").await.iter().all(|e| e["case_id"] != id));
        let (status, body) = app.get("/api/v1/audit?from=2025-02-30", &sup.token).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["error"]["fields"]["from"].is_string());
    }

    async fn an_edited_or_deleted_entry_fails_verification_naming_it(app) {
        let admin = app.user("admin", None).await;
        let c = app.user("coordinator", None).await;
        for _ in 0..3 {
            app.create_case(&c.token, organ_case(&tag())).await;
        }
        let (status, v) = app.get("/api/v1/audit/verify", &admin.token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["ok"], true, "{v}");
        let n = v["entries"].as_i64().unwrap();
        assert!(n >= 5, "{v}");
        let (ok, out, _) = verify_cli(&app);
        assert!(ok);
        assert_eq!(out.trim(), format!("ok {n} {}", v["head"].as_str().unwrap()));

        // Edit one entry's action.
        app.exec("update audit_log set action = 'case.view' where seq = cast($1 as integer) and $2 = $2", "3", "").await;
        let (_, v) = app.get("/api/v1/audit/verify", &admin.token).await;
        assert_eq!(v["ok"], false);
        assert_eq!(v["first_bad"], 3, "{v}");
        let (ok, _, err) = verify_cli(&app);
        assert!(!ok);
        assert!(err.contains("entry 3"), "{err}");
    }

    async fn a_missing_head_fails_verification_rather_than_the_request(app) {
        let admin = app.user("admin", None).await;
        let c = app.user("coordinator", None).await;
        app.create_case(&c.token, organ_case(&tag())).await;
        app.exec("delete from audit_head where $1 = $1 and $2 = $2", "", "").await;
        let (status, v) = app.get("/api/v1/audit/verify", &admin.token).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["ok"], false, "{v}");
        assert!(v["problem"].as_str().unwrap().contains("head is missing"), "{v}");
        let (ok, _, err) = verify_cli(&app);
        assert!(!ok);
        assert!(err.contains("audit verify failed"), "{err}");
    }

    async fn verify_warns_when_no_checkpoint_covers_the_log(app) {
        let c = app.user("coordinator", None).await;
        app.create_case(&c.token, organ_case(&tag())).await;
        let cps = app.state.checkpoints.clone().unwrap();
        cps.write(app.state.svc.store.as_ref(), Utc::now()).await.unwrap().expect("a checkpoint");
        let (ok, _, err) = verify_cli(&app);
        assert!(ok, "{err}");
        assert!(!err.contains("no signed checkpoints"), "{err}");
        // A copy of the database without the checkpoint files still verifies, with a warning.
        std::fs::remove_file(app.cfg.checkpoint_path()).unwrap();
        let _ = std::fs::remove_file(cps.latest_path());
        let (ok, _, err) = verify_cli(&app);
        assert!(ok, "{err}");
        assert!(err.contains("checked 0 signed checkpoints"), "{err}");
        assert!(err.contains("warning: no signed checkpoints"), "{err}");
    }

    async fn a_deleted_entry_or_a_cut_tail_is_caught(app) {
        let admin = app.user("admin", None).await;
        let c = app.user("coordinator", None).await;
        for _ in 0..3 {
            app.create_case(&c.token, organ_case(&tag())).await;
        }
        // Sign a checkpoint of the current head, as the running service does every minute.
        let cps = app.state.checkpoints.clone().unwrap();
        let cp = cps.write(app.state.svc.store.as_ref(), Utc::now()).await.unwrap().expect("a checkpoint");
        assert!(verify_cli(&app).0);

        // Cut the tail and make the head agree: only the checkpoint can tell.
        cut_tail(&app, cp.seq).await;
        let (_, v) = app.get("/api/v1/audit/verify", &admin.token).await;
        assert_eq!(v["ok"], false, "{v}");
        assert!(v["problem"].as_str().unwrap().contains("checkpoint"), "{v}");
        let (ok, _, err) = verify_cli(&app);
        assert!(!ok, "{err}");

        // A hole in the middle is named.
        app.exec("delete from audit_log where seq = cast($1 as integer) and $2 = $2", "2", "").await;
        let (_, v) = app.get("/api/v1/audit/verify", &admin.token).await;
        assert_eq!(v["first_bad"], 2, "{v}");
    }

    async fn a_command_signs_a_checkpoint_so_a_tail_cut_after_it_is_caught(app) {
        let admin = app.user("admin", None).await;
        let stderr = user_add_cli(&app, &format!("cli-{}", tag().to_lowercase()));
        assert!(!stderr.contains("warning"), "{stderr}");

        // No server signed anything since: the command's own checkpoint covers its entry.
        let (seq, hash) = app.state.svc.store.audit_head().await.unwrap();
        let cps = app.state.checkpoints.clone().unwrap();
        let last = cps.last().unwrap().expect("the command signed a checkpoint");
        assert_eq!((last.seq, last.hash.as_str()), (seq, hex::encode(&hash).as_str()));
        assert_eq!(cps.read().unwrap().last().map(|c| c.seq), Some(seq));
        assert!(verify_cli(&app).0);

        // Cut the command's entry off and make the head agree.
        cut_tail(&app, seq).await;
        let (ok, _, err) = verify_cli(&app);
        assert!(!ok, "{err}");
        assert!(err.contains("checkpoint"), "{err}");
        let (_, v) = app.get("/api/v1/audit/verify", &admin.token).await;
        assert_eq!(v["ok"], false, "{v}");
    }

    async fn the_latest_checkpoint_is_replaced_and_checked(app) {
        let admin = app.user("admin", None).await;
        let c = app.user("coordinator", None).await;
        app.create_case(&c.token, organ_case(&tag())).await;
        let cps = app.state.checkpoints.clone().unwrap();
        let store = app.state.svc.store.as_ref();
        let first = cps.write_latest(store, Utc::now()).await.unwrap().expect("a signed head");
        assert!(cps.write_latest(store, Utc::now()).await.unwrap().is_none(), "the same head again");
        app.create_case(&c.token, organ_case(&tag())).await;
        let second = cps.write_latest(store, Utc::now()).await.unwrap().expect("a signed head");
        assert!(second.seq > first.seq);
        // Replaced, not appended: one line, the newer head.
        let text = std::fs::read_to_string(cps.latest_path()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert_eq!(cps.read_latest().unwrap().map(|c| c.seq), Some(second.seq));
        assert!(verify_cli(&app).0);

        // The line edited to name an older head no longer carries a valid signature.
        let forged = text.replace(&format!("\"seq\":{}", second.seq), &format!("\"seq\":{}", first.seq));
        assert_ne!(forged, text);
        std::fs::write(cps.latest_path(), forged).unwrap();
        let (ok, _, err) = verify_cli(&app);
        assert!(!ok, "{err}");
        assert!(err.contains("signature"), "{err}");
        // A failed verification, not a server error.
        let (status, v) = app.get("/api/v1/audit/verify", &admin.token).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["ok"], false, "{v}");
        assert!(v["problem"].as_str().unwrap().contains("signature"), "{v}");
        assert!(v["entries"].as_i64().unwrap() >= second.seq, "{v}");
    }

    async fn break_glass_opens_an_unassigned_case_for_a_time_and_is_listed(app) {
        let owner = app.user("coordinator", None).await;
        let c = app.user("coordinator", None).await;
        let sup = app.user("supervisor", Some("yinzhou")).await;
        let reviewer = app.user("ethics_reviewer", None).await;
        let case = app.create_case(&owner.token, organ_case(&tag())).await;
        let id = case["id"].as_str().unwrap();
        let path = format!("/api/v1/cases/{id}/break-glass");

        let (status, body) = app.post(&path, &c.token, json!({"reason": "urgent"})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(body["error"]["fields"]["reason"].is_string());
        assert_eq!(app.post(&path, &sup.token, json!({"reason": "family called the hotline in distress"})).await.0, StatusCode::FORBIDDEN);
        assert_eq!(app.post(&path, &owner.token, json!({"reason": "family called the hotline in distress"})).await.0, StatusCode::CONFLICT);
        assert_eq!(
            app.post("/api/v1/cases/01234567-89ab-7def-8123-456789abcdef/break-glass", &c.token,
                     json!({"reason": "family called the hotline in distress"})).await.0,
            StatusCode::NOT_FOUND
        );

        let (status, grant) = app.post(&path, &c.token, json!({"reason": "family called the hotline in distress"})).await;
        assert_eq!(status, StatusCode::OK, "{grant}");
        let hours = (chrono::DateTime::parse_from_rfc3339(grant["expires_at"].as_str().unwrap()).unwrap()
            - chrono::DateTime::parse_from_rfc3339(grant["granted_at"].as_str().unwrap()).unwrap())
            .num_minutes();
        assert_eq!(hours, 240);
        assert_eq!(app.get(&format!("/api/v1/cases/{id}"), &c.token).await.0, StatusCode::OK);

        let admin = app.user("admin", None).await;
        let log = entries(&app, &admin.token, &format!("case_id={id}&actor_id={}", c.id)).await;
        assert!(log.iter().any(|e| e["action"] == "case.break_glass" && e["break_glass"] == true));
        assert!(log.iter().any(|e| e["action"] == "case.view" && e["break_glass"] == true && e["outcome"] == "allowed"));

        for who in [&sup, &reviewer] {
            let (status, list) = app.get("/api/v1/break-glass", &who.token).await;
            assert_eq!(status, StatusCode::OK, "{list}");
            assert_eq!(list["items"][0]["case_id"], id);
            assert_eq!(list["items"][0]["reason"], "family called the hotline in distress");
            assert_eq!(list["items"][0]["active"], true);
        }
        let far = app.user("supervisor", Some("haishu")).await;
        assert_eq!(app.get("/api/v1/break-glass", &far.token).await.1["items"], json!([]));
        assert_eq!(app.get("/api/v1/break-glass", &c.token).await.0, StatusCode::FORBIDDEN);

        // A grant that has run out opens nothing.
        let short = app.sibling_with(|s| s.break_glass_for = chrono::Duration::zero()).await;
        let case2 = app.create_case(&owner.token, organ_case(&tag())).await;
        let id2 = case2["id"].as_str().unwrap();
        let (status, _) = short.post(&format!("/api/v1/cases/{id2}/break-glass"), &c.token,
                                     json!({"reason": "family called the hotline in distress"})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(app.get(&format!("/api/v1/cases/{id2}"), &c.token).await.0, StatusCode::NOT_FOUND);
    }

    async fn concurrent_writers_keep_the_chain_linear(app) {
        let admin = app.user("admin", None).await;
        let c = app.user("coordinator", None).await;
        // Two instances with pools of their own, writing and reading at once.
        let a = app.sibling().await;
        let b = app.sibling().await;
        let mut tasks = Vec::new();
        for i in 0..24 {
            let inst = if i % 2 == 0 { a.router.clone() } else { b.router.clone() };
            let token = c.token.clone();
            tasks.push(tokio::spawn(async move {
                use tower::ServiceExt;
                let req = axum::http::Request::builder()
                    .method("POST")
                    .uri("/api/v1/cases")
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(organ_case(&format!("C{i}")).to_string()))
                    .unwrap();
                inst.oneshot(req).await.unwrap().status()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), StatusCode::CREATED);
        }
        let (_, v) = app.get("/api/v1/audit/verify", &admin.token).await;
        assert_eq!(v["ok"], true, "{v}");
        let creates = entries(&app, &admin.token, "action=case.create").await;
        assert_eq!(creates.len(), 24);
    }

    async fn cached_views_denials_and_writes_elsewhere_at_once_are_each_recorded_once(app) {
        // Views served from the cache, denials (never cached) and changes by a second instance,
        // all at once: batches then mix checked and unchecked entries, and some checked ones go
        // stale. Every answer must have exactly one entry, and the chain must verify.
        let admin = app.user("admin", None).await;
        let c = app.user("coordinator", None).await;
        let other = app.user("coordinator", None).await;
        let case = app.create_case(&c.token, organ_case(&tag())).await;
        let id = case["id"].as_str().unwrap().to_string();
        let writer = app.sibling().await;
        let get = |router: axum::Router, path: String, token: String| async move {
            use tower::ServiceExt;
            let req = axum::http::Request::builder()
                .uri(path)
                .header("authorization", format!("Bearer {token}"))
                .body(axum::body::Body::empty())
                .unwrap();
            router.oneshot(req).await.unwrap().status()
        };
        let mut allowed = 0;
        for round in 0..6 {
            let mut views = Vec::new();
            let mut denials = Vec::new();
            for i in 0..18 {
                let path = format!("/api/v1/cases/{id}");
                if i % 3 == 2 {
                    denials.push(tokio::spawn(get(app.router.clone(), path, other.token.clone())));
                } else {
                    views.push(tokio::spawn(get(app.router.clone(), path, c.token.clone())));
                }
            }
            let (status, _) = writer
                .patch(&format!("/api/v1/cases/{id}"), &c.token, json!({"notes": format!("round {round}")}))
                .await;
            assert_eq!(status, StatusCode::OK);
            for v in views {
                assert_eq!(v.await.unwrap(), StatusCode::OK);
                allowed += 1;
            }
            for d in denials {
                assert_eq!(d.await.unwrap(), StatusCode::NOT_FOUND);
            }
        }
        assert_eq!(app.get(&format!("/api/v1/cases/{id}"), &c.token).await.1["notes"], "round 5");
        allowed += 1;
        let log = entries(&app, &admin.token, &format!("case_id={id}&action=case.view")).await;
        let by = |actor: &str, outcome: &str| {
            log.iter().filter(|e| e["actor_id"] == actor && e["outcome"] == outcome).count()
        };
        assert_eq!(by(&c.id, "allowed"), allowed, "{log:?}");
        assert_eq!(by(&other.id, "denied"), 36, "{log:?}");
        let (_, v) = app.get("/api/v1/audit/verify", &admin.token).await;
        assert_eq!(v["ok"], true, "{v}");
        assert!(verify_cli(&app).0);
    }

    async fn case_views_see_changes_made_elsewhere_at_once(app) {
        // On SQLite the case view is answered from reads kept in memory; every change below is
        // made by someone else (a second instance, or straight in the database as another
        // process would) and must show in the very next view, each view on the record once.
        let admin = app.user("admin", None).await;
        let c = app.user("coordinator", None).await;
        let case = app.create_case(&c.token, organ_case(&tag())).await;
        let id = case["id"].as_str().unwrap();
        let path = format!("/api/v1/cases/{id}");
        let other = app.sibling().await;
        let mut allowed = 0;
        let mut view = |expect: StatusCode| {
            if expect == StatusCode::OK {
                allowed += 1;
            }
            let (app, path, token) = (&app, &path, c.token.clone());
            async move {
                let (status, body) = app.get(path, &token).await;
                assert_eq!(status, expect, "{body}");
                body
            }
        };
        for _ in 0..3 {
            assert_eq!(view(StatusCode::OK).await["contacts"], json!([]));
        }

        let (status, contact) = other
            .post(&format!("{path}/contacts"), &c.token,
                  json!({"full_name": "陈女士", "relationship": "spouse", "phone": "13512345678",
                         "preferred_channel": "sms"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{contact}");
        let got = view(StatusCode::OK).await;
        assert_eq!(got["contacts"][0]["full_name"], "陈女士", "{got}");

        let (status, _) = other.patch(&path, &c.token, json!({"notes": "changed elsewhere"})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(view(StatusCode::OK).await["notes"], "changed elsewhere");
        assert_eq!(view(StatusCode::OK).await["notes"], "changed elsewhere");

        app.exec("delete from case_assignments where case_id = $1 and user_id = $2", id, &c.id).await;
        view(StatusCode::NOT_FOUND).await;
        app.exec("insert into case_assignments (case_id, user_id, kind, assigned_at) \
                  values ($1, $2, 'primary', '2026-01-01T00:00:00Z')", id, &c.id).await;
        view(StatusCode::OK).await;

        let (status, _) = other
            .patch(&format!("/api/v1/users/{}", c.id), &admin.token, json!({"disabled": true}))
            .await;
        assert_eq!(status, StatusCode::OK);
        view(StatusCode::UNAUTHORIZED).await;

        let log = entries(&app, &admin.token, &format!("case_id={id}&action=case.view")).await;
        let count = |outcome: &str| log.iter().filter(|e| e["actor_id"] == c.id.as_str() && e["outcome"] == outcome).count();
        assert_eq!(count("allowed"), allowed, "{log:?}");
        assert_eq!(count("denied"), 1, "{log:?}");
        let (_, v) = app.get("/api/v1/audit/verify", &admin.token).await;
        assert_eq!(v["ok"], true, "{v}");
    }
}

/// On SQLite the database itself refuses an entry that does not follow the head (migration
/// 0013), so no writer can fork the chain, and an entry that does follow moves the head.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_refuses_an_entry_that_does_not_follow_the_head() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let c = app.user("coordinator", None).await;
    app.create_case(&c.token, organ_case(&tag())).await;
    let (seq, hash) = app.state.svc.store.audit_head().await.unwrap();
    let pool = sqlx::SqlitePool::connect(&app.cfg.database_url())
        .await
        .unwrap();
    let insert = |seq: i64, prev: Vec<u8>| {
        let pool = pool.clone();
        async move {
            sqlx::query(
                "insert into audit_log (seq, id, at, action, target_type, outcome, prev_hash, hash) \
                 values ($1, $2, '2026-01-01T00:00:00Z', 'forged', 'case', 'allowed', $3, $4)",
            )
            .bind(seq)
            .bind(format!("forged-{seq}-{}", tag()))
            .bind(prev)
            .bind(vec![7u8; 32])
            .execute(&pool)
            .await
        }
    };
    let wrong_prev = insert(seq + 1, vec![0u8; 32]).await.unwrap_err();
    assert!(
        wrong_prev.to_string().contains("audit chain"),
        "{wrong_prev}"
    );
    let gap = insert(seq + 2, hash.clone()).await.unwrap_err();
    assert!(gap.to_string().contains("audit chain"), "{gap}");
    assert_eq!(
        app.state.svc.store.audit_head().await.unwrap(),
        (seq, hash.clone())
    );
    insert(seq + 1, hash).await.unwrap();
    assert_eq!(
        app.state.svc.store.audit_head().await.unwrap(),
        (seq + 1, vec![7u8; 32])
    );
}

/// SQLite keeps any type in any column: an entry edited into a value of another type cannot be
/// read back, and verification names it (exit 1, `ok: false`) instead of failing with an error
/// (a 500 from the API). The message names the column, never the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_entry_edited_into_another_type_fails_verification_naming_it() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let admin = app.user("admin", None).await;
    let c = app.user("coordinator", None).await;
    for _ in 0..3 {
        app.create_case(&c.token, organ_case(&tag())).await;
    }
    let (_, v) = app.get("/api/v1/audit/verify", &admin.token).await;
    assert_eq!(v["ok"], true, "{v}");
    assert!(v["entries"].as_i64().unwrap() >= 5, "{v}");

    let edits = [
        (
            "update audit_log set prev_hash = 42 where seq = 5",
            5,
            "prev_hash",
        ),
        (
            "update audit_log set at = 'not-a-time-zq' where seq = 4",
            4,
            "\"at\"",
        ),
        (
            "update audit_log set break_glass = 'zq' where seq = 2",
            2,
            "break_glass",
        ),
    ];
    for (sql, seq, column) in edits {
        app.exec(&format!("{sql} and $1 = $1 and $2 = $2"), "", "")
            .await;
        let (status, v) = app.get("/api/v1/audit/verify", &admin.token).await;
        assert_eq!(status, StatusCode::OK, "{sql}: {v}");
        assert_eq!(v["ok"], false, "{v}");
        assert_eq!(v["first_bad"], seq, "{sql}: {v}");
        let problem = v["problem"].as_str().unwrap();
        assert!(problem.contains(column), "{problem}");
        assert!(
            !problem.contains("zq"),
            "the stored value is not repeated: {problem}"
        );
        let (ok, _, err) = verify_cli(&app);
        assert!(!ok);
        assert!(err.contains(&format!("entry {seq}")), "{err}");
    }
}
