//! Backups and restores as an operator runs them: `donorcare backup` against a live service,
//! `donorcare restore` in a fresh folder with only the offline recovery identity, onto SQLite
//! and onto PostgreSQL; a backup taken while cases are being written; erasures made after the
//! backup; and the backups a restore must refuse without writing anything.

use std::path::{Path, PathBuf};
use std::process::Output;

use age::secrecy::ExposeSecret;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use donorcare::config::Config;
use serde_json::{json, Value};

use crate::helpers::{
    marrow_case, organ_case, postgres_admin_url, tag, Backend, PgDatabase, TestApp, TestUser,
    PASSWORD,
};
use crate::running::binary;

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A new age identity written to `path`; its public key.
fn new_identity(path: &Path) -> String {
    let id = age::x25519::Identity::generate();
    std::fs::write(path, format!("{}\n", id.to_string().expose_secret())).unwrap();
    id.to_public().to_string()
}

/// An offline recovery key, added to the app's keyring as the README says; its file.
fn add_recovery(app: &TestApp, dir: &Path) -> PathBuf {
    let path = dir.join("recovery.txt");
    let public = new_identity(&path);
    let out = app
        .command()
        .args(["keys", "add-recipient", &public])
        .output()
        .unwrap();
    assert!(out.status.success(), "{:?}", text(&out));
    path
}

fn backup(app: &TestApp, out: &Path, extra: &[&str]) -> Output {
    let run = app
        .command()
        .arg("backup")
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap();
    let (stdout, stderr) = text(&run);
    assert!(run.status.success(), "backup: {stdout}\n{stderr}");
    assert!(
        stderr.contains("backup: cases:"),
        "progress on stderr: {stderr}"
    );
    run
}

/// `restore` in `dir` (a fresh folder: its `data/` and `keys/`), onto SQLite there or onto
/// `database_url`.
fn restore(dir: &Path, file: &Path, identity: &Path, url: Option<&str>, extra: &[&str]) -> Output {
    binary(dir, url)
        .arg("restore")
        .arg("--in")
        .arg(file)
        .arg("--identity")
        .arg(identity)
        .args(extra)
        .output()
        .unwrap()
}

/// The one line a refused restore ends with.
fn refusal(out: &Output) -> String {
    let (_, stderr) = text(out);
    assert!(!out.status.success(), "refused: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("donorcare: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one line: {stderr}");
    errors[0].to_string()
}

async fn upload(app: &TestApp, token: &str, consent: &str, bytes: Vec<u8>) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/v1/consents/{consent}/attachment"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/octet-stream")
        .body(Body::from(bytes))
        .unwrap();
    app.send(req).await
}

async fn download(app: &TestApp, token: &str, consent: &str) -> (StatusCode, Vec<u8>) {
    use http_body_util::BodyExt;
    use tower::ServiceExt;
    let req = Request::builder()
        .uri(format!("/api/v1/consents/{consent}/attachment"))
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let resp = app.router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, bytes)
}

/// What the source office holds: cases with identities, a signed form, a case erased before
/// the backup and one to erase after it.
struct Office {
    coord: TestUser,
    sup: TestUser,
    reviewer: TestUser,
    /// (case id, donor name, phone)
    cases: Vec<(String, String, String)>,
    consent: String,
    form: Vec<u8>,
    erased_before: String,
    erase_after: String,
}

async fn erase(app: &TestApp, sup: &TestUser, reviewer: &TestUser, case: &str) {
    let (s, req) = app
        .post(
            &format!("/api/v1/cases/{case}/erasure-requests"),
            &sup.token,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{req}");
    let rid = req["id"].as_str().unwrap();
    let (s, done) = app
        .post(
            &format!("/api/v1/erasure-requests/{rid}/approve"),
            &reviewer.token,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{done}");
}

async fn office(app: &TestApp) -> Office {
    let coord = app.user("coordinator", Some("yinzhou")).await;
    let sup = app.user("supervisor", Some("yinzhou")).await;
    let reviewer = app.user("ethics_reviewer", None).await;
    let mut cases = Vec::new();
    for i in 0..4 {
        let name = format!("林{}", tag());
        let phone = format!("1390000{:04}", 1000 + i);
        let body = if i % 2 == 0 {
            marrow_case(&name, &phone)
        } else {
            let mut c = organ_case(&tag());
            c["donor"]["full_name"] = json!(name);
            c["donor"]["phone"] = json!(phone);
            c
        };
        let case = app.create_case(&coord.token, body).await;
        cases.push((case["id"].as_str().unwrap().to_string(), name, phone));
    }
    let (s, contact) = app
        .post(
            &format!("/api/v1/cases/{}/contacts", cases[1].0),
            &coord.token,
            json!({"full_name": "周先生", "relationship": "spouse", "phone": "13611112222",
                   "preferred_channel": "sms"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{contact}");
    let (s, consent) = app
        .post(
            &format!("/api/v1/cases/{}/consents", cases[1].0),
            &coord.token,
            json!({"kind": "donation", "subject": "donor", "given_by": contact["id"],
                   "method": "written", "document": "donation-zh-CN-v1",
                   "signed_at": "2025-03-10T10:00:00+08:00", "scope": {"organs": ["kidney"]}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{consent}");
    let consent = consent["id"].as_str().unwrap().to_string();
    // Larger than one chunk of the backup's file records.
    let form = b"%PDF-1.7\nSigned by Zhou for the kidney donation\n".repeat(3000);
    let (s, b) = upload(app, &coord.token, &consent, form.clone()).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    erase(app, &sup, &reviewer, &cases[3].0).await;
    Office {
        erased_before: cases[3].0.clone(),
        erase_after: cases[2].0.clone(),
        coord,
        sup,
        reviewer,
        cases,
        consent,
        form,
    }
}

/// The restored service in `dir` (on SQLite there, or on `url`), opened as `serve` opens it.
async fn restored(dir: &Path, url: Option<&str>) -> TestApp {
    let mut cfg = Config::new(dir.join("data"));
    cfg.keys_dir = dir.join("keys");
    cfg.database_url = url.map(str::to_string);
    let backend = if url.is_some() {
        Backend::Postgres
    } else {
        Backend::Sqlite
    };
    TestApp::open(cfg, backend).await
}

/// Everything the office had at the backup is there and opens; the erasure made after the
/// backup is made again; `audit verify` passes.
async fn check_restored(dir: &Path, url: Option<&str>, o: &Office, out: &Output) {
    let (stdout, stderr) = text(out);
    assert!(out.status.success(), "restore: {stdout}\n{stderr}");
    assert!(stdout.contains("made again 1 erasures"), "{stdout}");
    assert!(stdout.contains("1 signed forms"), "{stdout}");
    assert!(stdout.contains("audit verify: ok"), "{stdout}");
    assert!(
        stderr.contains("restore: checking") && stderr.contains("restore: restoring"),
        "{stderr}"
    );
    let verify = binary(dir, url).args(["audit", "verify"]).output().unwrap();
    let (v, verr) = text(&verify);
    assert!(verify.status.success(), "audit verify: {v}\n{verr}");
    assert!(v.starts_with("ok "), "{v}");

    let app = restored(dir, url).await;
    // Sessions and tokens stay behind; the same accounts sign in again.
    assert_eq!(
        app.get("/api/v1/cases", &o.coord.token).await.0,
        StatusCode::UNAUTHORIZED
    );
    let coord = app.login(&o.coord.username, PASSWORD).await;
    let sup = app.login(&o.sup.username, PASSWORD).await;
    for (i, (id, name, phone)) in o.cases.iter().enumerate() {
        let (s, case) = app.get(&format!("/api/v1/cases/{id}"), &sup).await;
        assert_eq!(s, StatusCode::OK, "{case}");
        let (_, found) = app.get(&format!("/api/v1/cases?phone={phone}"), &sup).await;
        let found = found["items"].as_array().unwrap().len();
        if *id == o.erased_before || *id == o.erase_after {
            assert_eq!(case["status"], "erased", "case {i}: {case}");
            assert_eq!(case["donor"], Value::Null, "case {i}");
            assert_eq!(found, 0, "an erased case is not found by its phone");
        } else {
            assert_eq!(
                case["donor"]["full_name"],
                name.as_str(),
                "case {i}: {case}"
            );
            assert_eq!(found, 1, "case {i} by its phone");
        }
    }
    let (s, form) = download(&app, &coord, &o.consent).await;
    assert_eq!(s, StatusCode::OK);
    assert!(form == o.form, "the signed form comes back byte for byte");
    let (_, v) = app
        .get(
            "/api/v1/audit/verify",
            &app.login(&o.reviewer.username, PASSWORD).await,
        )
        .await;
    assert_eq!(v["ok"], true, "{v}");
    assert!(!dir
        .join("data")
        .join("attachments")
        .join(&o.erase_after)
        .exists());
}

on_both_backends! {
    async fn a_backup_restores_in_a_fresh_folder_with_only_the_recovery_identity(app) {
        let work = tempfile::tempdir().unwrap();
        let recovery = add_recovery(&app, work.path());
        let o = office(&app).await;
        let file = work.path().join("office.age");
        let run = backup(&app, &file, &[]);
        assert!(text(&run).0.contains("sealed to 2 recipients"), "{:?}", text(&run));
        let raw = std::fs::read(&file).unwrap();
        assert!(raw.starts_with(b"age-encryption.org/v1"));
        for secret in [o.cases[0].1.as_bytes(), b"Signed by Zhou", o.cases[0].2.as_bytes()] {
            assert!(!raw.windows(secret.len()).any(|w| w == secret), "no plaintext in the file");
        }

        // After the backup, an erasure: recorded in the ledger beside the keyring.
        erase(&app, &o.sup, &o.reviewer, &o.erase_after).await;
        let ledger = app.cfg.keys_dir.join("erasures.jsonl");
        let lines = std::fs::read_to_string(&ledger).unwrap();
        assert!(lines.contains(&o.erase_after) && lines.contains(&o.erased_before), "{lines}");

        // Onto SQLite in a folder that has nothing but the recovery identity and the ledger.
        let fresh = tempfile::tempdir().unwrap();
        let out = restore(fresh.path(), &file, &recovery, None,
                          &["--erasures", ledger.to_str().unwrap()]);
        check_restored(fresh.path(), None, &o, &out).await;
        let recipients = std::fs::read_to_string(fresh.path().join("keys/recipients.txt")).unwrap();
        assert!(!recipients.contains(&app.state.svc.keys.recipient()),
                "the old server's key is dropped: {recipients}");

        // Onto PostgreSQL, when there is one.
        if let Some(admin) = postgres_admin_url() {
            let db = PgDatabase::create(&admin).await;
            let fresh = tempfile::tempdir().unwrap();
            let out = restore(fresh.path(), &file, &recovery, Some(&db.url),
                              &["--erasures", ledger.to_str().unwrap()]);
            check_restored(fresh.path(), Some(&db.url), &o, &out).await;
            // A database that holds records is refused.
            let again = tempfile::tempdir().unwrap();
            let out = restore(again.path(), &file, &recovery, Some(&db.url), &[]);
            assert!(refusal(&out).contains("is not empty"), "{:?}", text(&out));
        }
    }

    async fn a_backup_taken_while_cases_are_written_is_one_consistent_moment(app) {
        let work = tempfile::tempdir().unwrap();
        let recovery = add_recovery(&app, work.path());
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let reviewer = app.user("ethics_reviewer", None).await;
        for _ in 0..20 {
            app.create_case(&coord.token, organ_case(&tag())).await;
        }
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (stop, router, token) = (stop.clone(), app.router.clone(), coord.token.clone());
            tokio::spawn(async move {
                use tower::ServiceExt;
                let mut made = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let req = Request::builder()
                        .method(Method::POST)
                        .uri("/api/v1/cases")
                        .header("authorization", format!("Bearer {token}"))
                        .header("content-type", "application/json")
                        .body(Body::from(organ_case(&tag()).to_string()))
                        .unwrap();
                    let resp = router.clone().oneshot(req).await.unwrap();
                    assert_eq!(resp.status(), StatusCode::CREATED);
                    made += 1;
                }
                made
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let file = work.path().join("busy.age");
        let cmd = app.command();
        let out = {
            let file = file.clone();
            tokio::task::spawn_blocking(move || {
                let mut cmd = cmd;
                cmd.arg("backup").arg("--out").arg(&file).output().unwrap()
            })
            .await
            .unwrap()
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let made = writer.await.unwrap();
        assert!(out.status.success(), "{:?}", text(&out));
        assert!(made > 0, "cases were written during the backup");
        let total = app.count_cases().await;

        let fresh = tempfile::tempdir().unwrap();
        let out = restore(fresh.path(), &file, &recovery, None, &[]);
        assert!(out.status.success(), "{:?}", text(&out));
        let back = restored(fresh.path(), None).await;
        let held = back.count_cases().await;
        // Cases were written before the snapshot and after it.
        assert!((21..total).contains(&held), "{held} of {total}");
        // Every case restored has its creation in the restored log, and no creation is
        // without its case: the rows and the chain come from the same moment.
        let reviewer = back.login(&reviewer.username, PASSWORD).await;
        let mut created = 0;
        let mut cursor: Option<String> = None;
        loop {
            let q = match &cursor {
                Some(c) => format!("/api/v1/audit?action=case.create&limit=200&cursor={c}"),
                None => "/api/v1/audit?action=case.create&limit=200".to_string(),
            };
            let (s, page) = back.get(&q, &reviewer).await;
            assert_eq!(s, StatusCode::OK, "{page}");
            created += page["items"].as_array().unwrap().iter()
                .filter(|e| e["outcome"] == "allowed").count() as i64;
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(created, held, "case.create entries against restored cases");
        let (s, list) = back.get("/api/v1/cases?limit=5", &back.login(&coord.username, PASSWORD).await).await;
        assert_eq!(s, StatusCode::OK);
        for c in list["items"].as_array().unwrap() {
            assert!(c["donor"]["full_name"].as_str().is_some_and(|n| n.starts_with("Name")), "{c}");
        }
    }
}

/// Refusals: a cut, altered or wrongly keyed backup, a file that is not a backup, a folder that
/// is not empty, a backup sealed to a key the keyring is not: one line each, nothing written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_or_wrongly_keyed_backup_is_refused_in_one_line_and_nothing_is_written() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let work = tempfile::tempdir().unwrap();
    let recovery = add_recovery(&app, work.path());
    office(&app).await;
    let file = work.path().join("office.age");
    backup(&app, &file, &[]);
    let raw = std::fs::read(&file).unwrap();

    let cut = work.path().join("cut.age");
    std::fs::write(&cut, &raw[..raw.len() * 2 / 3]).unwrap();
    let last_chunk = work.path().join("cut-at-a-chunk.age");
    std::fs::write(&last_chunk, &raw[..raw.len() - 100]).unwrap();
    let altered = work.path().join("altered.age");
    let mut bytes = raw.clone();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    std::fs::write(&altered, &bytes).unwrap();
    let stranger = work.path().join("stranger.txt");
    new_identity(&stranger);
    let not_age = work.path().join("notes.txt");
    std::fs::write(&not_age, "a list of names\n").unwrap();

    for (what, file, identity, why) in [
        ("cut", &cut, &recovery, "damaged, cut short or was altered"),
        (
            "cut near its end",
            &last_chunk,
            &recovery,
            "damaged, cut short or was altered",
        ),
        (
            "altered",
            &altered,
            &recovery,
            "damaged, cut short or was altered",
        ),
        ("wrong key", &file, &stranger, "not one of the recipients"),
        (
            "not a backup",
            &not_age,
            &recovery,
            "not a donorcare backup",
        ),
    ] {
        let fresh = tempfile::tempdir().unwrap();
        let out = restore(fresh.path(), file, identity, None, &[]);
        let line = refusal(&out);
        assert!(line.contains(why), "{what}: {line}");
        let left: Vec<_> = std::fs::read_dir(fresh.path())
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "{what}: nothing written, found {left:?}");
    }

    // A folder that already has data is refused, and left as it was.
    let fresh = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(fresh.path().join("data")).unwrap();
    std::fs::write(fresh.path().join("data/donorcare.db"), b"mine").unwrap();
    let out = restore(fresh.path(), &file, &recovery, None, &[]);
    assert!(refusal(&out).contains("is not empty"));
    assert_eq!(
        std::fs::read(fresh.path().join("data/donorcare.db")).unwrap(),
        b"mine"
    );
    assert!(!fresh.path().join("keys").exists());

    // Sealed with --recipient to a key the keyring is not sealed to: that key opens the file
    // but not the keyring inside, which a restore needs.
    let outsider = work.path().join("outsider.txt");
    let public = new_identity(&outsider);
    let sealed = work.path().join("for-outsider.age");
    backup(&app, &sealed, &["--recipient", &public]);
    let fresh = tempfile::tempdir().unwrap();
    let out = restore(fresh.path(), &sealed, &outsider, None, &[]);
    assert!(
        refusal(&out).contains("not the keyring"),
        "{:?}",
        text(&out)
    );
    assert!(std::fs::read_dir(fresh.path()).unwrap().next().is_none());
    // And the recovery key cannot open a backup not sealed to it.
    let out = restore(fresh.path(), &sealed, &recovery, None, &[]);
    assert!(refusal(&out).contains("not one of the recipients"));

    // The same backup, whole, restores.
    let out = restore(fresh.path(), &file, &recovery, None, &[]);
    assert!(out.status.success(), "{:?}", text(&out));
}

/// The backup catalogue is every table of both schemas, with each column's kind as stored:
/// a migration that adds a table or a column without the catalogue fails here.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backup_catalogue_matches_both_schemas() {
    use donorcare::store::dump::{Kind, NOT_BACKED_UP, TABLES};
    use std::collections::BTreeMap;
    let sqlite_kind = |k: Kind| match k {
        Kind::Bytes => "blob",
        Kind::Int | Kind::Bool => "integer",
        Kind::Text | Kind::Time | Kind::Date => "text",
    };
    let pg_kind = |k: Kind| match k {
        Kind::Bytes => "bytea",
        Kind::Int => "bigint",
        Kind::Bool => "boolean",
        Kind::Text => "text",
        Kind::Time => "timestamp with time zone",
        Kind::Date => "date",
    };
    let want = |kind: &dyn Fn(Kind) -> &'static str| -> BTreeMap<String, BTreeMap<String, String>> {
        TABLES
            .iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    t.columns
                        .iter()
                        .map(|c| (c.name.to_string(), kind(c.kind).to_string()))
                        .collect(),
                )
            })
            .collect()
    };

    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&app.cfg.database_url())
        .await
        .unwrap();
    let tables: Vec<(String,)> = sqlx::query_as(
        "select name from sqlite_master where type = 'table' and name not like 'sqlite_%'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut got = BTreeMap::new();
    for (t,) in tables
        .into_iter()
        .filter(|(t,)| !NOT_BACKED_UP.contains(&t.as_str()))
    {
        let cols: Vec<(String, String)> = sqlx::query_as(&format!(
            "select name, lower(type) from pragma_table_info('{t}')"
        ))
        .fetch_all(&pool)
        .await
        .unwrap();
        got.insert(t, cols.into_iter().collect::<BTreeMap<_, _>>());
    }
    pool.close().await;
    assert_eq!(got, want(&sqlite_kind), "SQLite");

    let Some(pg) = TestApp::spawn(Backend::Postgres).await else {
        return;
    };
    let pool = sqlx::PgPool::connect(pg.pg_url().unwrap()).await.unwrap();
    let cols: Vec<(String, String, String)> = sqlx::query_as(
        "select table_name::text, column_name::text, data_type::text from information_schema.columns \
         where table_schema = 'public'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    let mut got: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (t, c, ty) in cols
        .into_iter()
        .filter(|(t, _, _)| !NOT_BACKED_UP.contains(&t.as_str()))
    {
        got.entry(t).or_default().insert(c, ty);
    }
    assert_eq!(got, want(&pg_kind), "PostgreSQL");
}

/// Backups `serve` makes on its schedule.
mod scheduled {
    use super::*;

    on_both_backends! {
        async fn a_scheduled_backup_shows_its_age_on_the_keys_page_and_in_the_metrics(app) {
            use crate::pages::{page, page_session};
            let admin = app.user("admin", None).await;
            let jar = page_session(&app, &admin.username).await;
            let (_, metrics) = app.get("/metrics", "").await;
            let metrics = metrics.as_str().unwrap().to_string();
            assert!(metrics.contains("donorcare_backup_failures_total 0"), "{metrics}");
            assert!(!metrics.contains("donorcare_backup_age_seconds"), "no backup yet: {metrics}");
            let (s, html) = page(&app, "/admin/keys", &jar).await;
            assert_eq!(s, StatusCode::OK);
            assert!(html.contains("还没有定时备份") && html.contains("id=\"backup-off\""), "{html}");

            let file = app.state.backups.run_once(&app.state.svc).await.expect("a scheduled backup");
            assert!(file.starts_with(app.cfg.data_dir.join("backups")), "{}", file.display());
            assert!(std::fs::read(&file).unwrap().starts_with(b"age-encryption.org/v1"));
            let (_, metrics) = app.get("/metrics", "").await;
            let metrics = metrics.as_str().unwrap().to_string();
            let age: i64 = metrics.lines()
                .find_map(|l| l.strip_prefix("donorcare_backup_age_seconds "))
                .expect("the age of the last backup").parse().unwrap();
            assert!((0..60).contains(&age), "{metrics}");
            assert!(metrics.contains("donorcare_backup_last_success_timestamp_seconds "), "{metrics}");
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            let (_, html) = page(&app, "/admin/keys", &jar).await;
            assert!(html.contains(&name) && html.contains("（不到一小时前）"), "{html}");
            let (_, en) = page(&app, "/admin/keys?lang=en", &jar).await;
            assert!(en.contains("Last good backup") && en.contains("(less than an hour ago)"), "{en}");
            // The backup is in the audit, and a restart finds it again in the folder.
            let (_, log) = app.get("/api/v1/audit?action=backup.create", &admin.token).await;
            assert_eq!(log["items"].as_array().unwrap().len(), 1, "{log}");
            let again = donorcare::backup::Status::new(app.cfg.backups.clone()).unwrap();
            assert_eq!(again.view(chrono::Utc::now()).last_ok_file.as_deref(), Some(name.as_str()));

            // A folder that cannot be made: the failure is counted, said, and nothing is left.
            let blocked = app.cfg.data_dir.join("not-a-folder");
            std::fs::write(&blocked, b"x").unwrap();
            let failing = donorcare::backup::Status::new(donorcare::backup::Settings {
                schedule: Some("0 0 2 * * *".into()),
                dir: blocked.join("backups"),
                keep: 3,
                tz: chrono_tz::Asia::Shanghai,
            })
            .unwrap();
            assert!(failing.run_once(&app.state.svc).await.is_err());
            let v = failing.view(chrono::Utc::now());
            assert_eq!(v.failures, 1);
            assert!(v.scheduled && v.next_at.is_some() && v.last_error.is_some() && v.overdue, "{v:?}");
            // A schedule that fires more than hourly is refused at start.
            let err = donorcare::backup::Status::new(donorcare::backup::Settings {
                schedule: Some("0 * * * * *".into()),
                dir: blocked.clone(),
                keep: 3,
                tz: chrono_tz::Asia::Shanghai,
            })
            .err()
            .expect("refused");
            assert!(err.to_string().contains("DONORCARE_BACKUP_SCHEDULE"), "{err}");
        }
    }
}
