//! Letters between a donor family and a recipient through the API: recorded, a redaction
//! proposed that finds what identifies, release refused without both sides' consent or with a
//! name left in, released to the family as the redacted text only, stopped by a withdrawal,
//! every step audited; and migration 0032, which lets consents be of kind `correspondence`
//! without losing the consents already held or what names them.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{organ_case, tag, Backend, TestApp, TestUser};

/// An organ case of a coordinator with one contact (the donor's daughter), and a recipient
/// correspondent on it. Returns (coordinator, case, contact id, correspondent id, case JSON).
async fn setup(app: &TestApp) -> (TestUser, String, String, String, Value) {
    let c = app.user("coordinator", Some("yinzhou")).await;
    let t = tag();
    let case = app.create_case(&c.token, organ_case(&t)).await;
    let case_id = case["id"].as_str().unwrap().to_string();
    let (s, kin) = app
        .post(
            &format!("/api/v1/cases/{case_id}/contacts"),
            &c.token,
            json!({"full_name": "陈晓红", "relationship": "child", "phone": "13800001111",
                   "preferred_channel": "portal"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{kin}");
    let (s, p) = app
        .post(
            &format!("/api/v1/cases/{case_id}/correspondents"),
            &c.token,
            json!({"label": "受者 A", "role": "recipient", "reference": "NB-TX-2025-0042"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    assert_eq!(p["consent"], "none", "{p}");
    assert_eq!(
        p["reference"], "NB-TX-2025-0042",
        "the staff read the reference"
    );
    (
        c,
        case_id,
        kin["id"].as_str().unwrap().to_string(),
        p["id"].as_str().unwrap().to_string(),
        case,
    )
}

async fn consent(app: &TestApp, token: &str, case: &str, who: &str) -> String {
    let (s, b) = app
        .post(
            &format!("/api/v1/cases/{case}/consents"),
            token,
            json!({"kind": "correspondence", "subject": who, "given_by": who,
                   "method": "electronic", "document": "correspondence-zh-CN-v1",
                   "signed_at": "2025-04-01"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    b["id"].as_str().unwrap().to_string()
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

fn fields(b: &Value) -> Vec<String> {
    let mut f: Vec<String> = b["error"]["fields"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    f.sort();
    f
}

on_both_backends! {
    async fn a_letter_from_the_recipient_reaches_the_family_redacted_once_both_sides_consented(app) {
        let (c, case, kin, recipient, case_json) = setup(&app).await;
        let hospital = case_json["donation"]["hospital"].as_str().unwrap().to_string();
        let donor = case_json["donor"]["full_name"].as_str().unwrap().to_string();
        let original = format!(
            "亲爱的陈晓红：去年2025年3月11日，我在{hospital}接受了移植。{donor} 的礼物让我活了下来。请打 138 0000 1111 找我，或写信到杭州市。"
        );
        let (s, letter) = app.post(&format!("/api/v1/cases/{case}/correspondence"), &c.token,
            json!({"correspondent_id": recipient, "direction": "to_family", "addressee": kin,
                   "received_on": "2025-06-01", "text": original})).await;
        assert_eq!(s, StatusCode::CREATED, "{letter}");
        assert_eq!(letter["status"], "received");
        let id = letter["id"].as_str().unwrap().to_string();

        // The proposal holds back the addressee's name and phone, the date, the hospital and the city.
        let (s, got) = app.get(&format!("/api/v1/correspondence/{id}"), &c.token).await;
        assert_eq!(s, StatusCode::OK, "{got}");
        assert_eq!(got["original_text"], original.as_str());
        let proposed = got["proposed_redaction"]["text"].as_str().unwrap().to_string();
        for gone in ["陈晓红", "2025年3月11日", hospital.as_str(), donor.as_str(), "138 0000 1111", "杭州市"] {
            assert!(!proposed.contains(gone), "{gone} left in {proposed}");
        }
        assert!(proposed.contains("［已隐去］"), "{proposed}");
        let kinds: Vec<&str> = got["proposed_redaction"]["spans"].as_array().unwrap().iter()
            .map(|s| s["kind"].as_str().unwrap()).collect();
        for k in ["contact.full_name", "date", "donation.hospital", "donor.full_name", "contact.phone"] {
            assert!(kinds.contains(&k), "{k} not among {kinds:?}");
        }
        assert_eq!(fields(&json!({"error": {"fields": got["release_problems"]}})),
                   ["consent", "correspondent", "redacted_text"], "{got}");

        // Release before any redaction or consent: refused, each reason named, nothing changes.
        let release = format!("/api/v1/correspondence/{id}/release");
        let (s, b) = app.post(&release, &c.token, json!({})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(fields(&b), ["consent", "correspondent", "redacted_text"], "{b}");

        // Both sides consent; a redaction that still names the family is refused.
        consent(&app, &c.token, &case, &kin).await;
        let (s, p) = app.patch(&format!("/api/v1/correspondents/{recipient}"), &c.token,
                               json!({"consented_on": "2025-05-20"})).await;
        assert_eq!(s, StatusCode::OK, "{p}");
        assert_eq!(p["consent"], "given");
        let (s, b) = app.patch(&format!("/api/v1/correspondence/{id}"), &c.token,
            json!({"redacted_text": "亲爱的陈 晓红：谢谢你们的礼物。"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["status"], "redacted");
        let (s, b) = app.post(&release, &c.token, json!({})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(fields(&b), ["redacted_text"], "{b}");
        assert!(b["error"]["fields"]["redacted_text"].as_str().unwrap().contains("contact.full_name"), "{b}");

        // The proposal, saved as it is, goes.
        let (s, b) = app.patch(&format!("/api/v1/correspondence/{id}"), &c.token,
            json!({"redacted_text": proposed})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, released) = app.post(&release, &c.token, json!({})).await;
        assert_eq!(s, StatusCode::OK, "{released}");
        assert_eq!(released["status"], "released");
        assert!(released["consent_id"].is_string(), "the covering consent is named: {released}");
        let (s, b) = app.post(&release, &c.token, json!({})).await;
        assert_eq!(s, StatusCode::CONFLICT, "released once: {b}");

        // The family reads the redacted text under the label, and nothing of the original.
        let (_, family) = app.family_account(&c.token, &kin).await;
        let (s, mine) = app.get("/api/v1/me/correspondence", &family).await;
        assert_eq!(s, StatusCode::OK, "{mine}");
        let items = mine["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{mine}");
        assert_eq!(items[0]["from"], "受者 A");
        assert_eq!(items[0]["text"], proposed.as_str());
        let whole = mine.to_string();
        for never in [hospital.as_str(), "NB-TX-2025-0042", "2025年3月11日", recipient.as_str()] {
            assert!(!whole.contains(never), "{never} reached the family: {whole}");
        }
        // The family has no way into the staff's letter.
        let (s, _) = app.get(&format!("/api/v1/correspondence/{id}"), &family).await;
        assert_eq!(s, StatusCode::FORBIDDEN);

        let log = actions(&app, &case).await;
        let count = |a: &str, o: &str| log.iter().filter(|(x, y)| x == a && y.as_deref() == Some(o)).count();
        assert_eq!(count("correspondence.record", "allowed"), 3, "two correspondent writes and a letter: {log:?}");
        assert_eq!(count("correspondence.redact", "allowed"), 2, "{log:?}");
        assert_eq!(count("correspondence.release", "allowed"), 1, "{log:?}");
        assert_eq!(count("correspondence.release", "denied"), 2, "{log:?}");
        assert!(count("correspondence.view", "allowed") >= 1, "{log:?}");
        assert_eq!(count("correspondence.family_view", "allowed"), 1, "{log:?}");
    }

    async fn a_withdrawn_consent_on_either_side_stops_the_release(app) {
        let (c, case, kin, recipient, _) = setup(&app).await;
        let kin_consent = consent(&app, &c.token, &case, &kin).await;
        let (s, _) = app.patch(&format!("/api/v1/correspondents/{recipient}"), &c.token,
                               json!({"consented_on": "2025-05-20"})).await;
        assert_eq!(s, StatusCode::OK);
        let letter = |text: &str| json!({"correspondent_id": recipient, "direction": "to_recipient",
            "author": kin, "received_on": "2025-06-01", "text": text});
        let mut ids = Vec::new();
        for text in ["Thank you, with love from our family.", "We think of you every spring."] {
            let (s, l) = app.post(&format!("/api/v1/cases/{case}/correspondence"), &c.token, letter(text)).await;
            assert_eq!(s, StatusCode::CREATED, "{l}");
            let id = l["id"].as_str().unwrap().to_string();
            let (s, b) = app.patch(&format!("/api/v1/correspondence/{id}"), &c.token, json!({"redacted_text": text})).await;
            assert_eq!(s, StatusCode::OK, "{b}");
            ids.push(id);
        }

        // The correspondent withdraws: the first letter cannot go.
        let (s, p) = app.patch(&format!("/api/v1/correspondents/{recipient}"), &c.token,
                               json!({"consent_withdrawn_on": "2025-06-02"})).await;
        assert_eq!(s, StatusCode::OK, "{p}");
        assert_eq!(p["consent"], "withdrawn");
        let (s, b) = app.post(&format!("/api/v1/correspondence/{}/release", ids[0]), &c.token, json!({})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(fields(&b), ["correspondent"], "{b}");

        // Consent again on their side, but the family withdraws: the second cannot go either.
        let (s, _) = app.patch(&format!("/api/v1/correspondents/{recipient}"), &c.token,
                               json!({"consent_withdrawn_on": null})).await;
        assert_eq!(s, StatusCode::OK);
        let (s, b) = app.post(&format!("/api/v1/consents/{kin_consent}/withdraw"), &c.token,
                              json!({"reason": "not ready to write"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (s, b) = app.post(&format!("/api/v1/correspondence/{}/release", ids[1]), &c.token, json!({})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(fields(&b), ["consent"], "{b}");

        // Withheld with a reason code, and then final.
        let (s, b) = app.post(&format!("/api/v1/correspondence/{}/withhold", ids[1]), &c.token, json!({"reason": "shrug"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(fields(&b), ["reason"]);
        let (s, b) = app.post(&format!("/api/v1/correspondence/{}/withhold", ids[1]), &c.token, json!({"reason": "no_consent"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!((b["status"].as_str(), b["withheld_reason"].as_str()), (Some("withheld"), Some("no_consent")));
        let (s, _) = app.patch(&format!("/api/v1/correspondence/{}", ids[1]), &c.token, json!({"redacted_text": "x"})).await;
        assert_eq!(s, StatusCode::CONFLICT);

        // The queue filters by status; ethics reviewers see it without any text.
        let (s, q) = app.get("/api/v1/correspondence?status=withheld", &c.token).await;
        assert_eq!(s, StatusCode::OK, "{q}");
        assert_eq!(q["items"].as_array().unwrap().len(), 1, "{q}");
        let ethics = app.user("ethics_reviewer", None).await;
        let (s, q) = app.get("/api/v1/correspondence?status=redacted", &ethics.token).await;
        assert_eq!(s, StatusCode::OK, "{q}");
        assert!(q["items"].as_array().unwrap().iter().any(|i| i["id"] == ids[0].as_str()), "{q}");
        let (s, one) = app.get(&format!("/api/v1/correspondence/{}", ids[0]), &ethics.token).await;
        assert_eq!(s, StatusCode::OK, "{one}");
        assert!(one["original_text"].is_null() && one["redacted_text"].is_null(), "{one}");
        assert!(!one.to_string().contains("every spring") && !one.to_string().contains("Thank you"), "{one}");
    }

    async fn bad_letters_and_correspondents_name_each_field_and_save_nothing(app) {
        let (c, case, kin, recipient, case_json) = setup(&app).await;
        let path = format!("/api/v1/cases/{case}/correspondence");
        let (s, b) = app.post(&path, &c.token, json!({})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(fields(&b), ["correspondent_id", "direction", "received_on", "text"], "{b}");
        let (s, b) = app.post(&path, &c.token, json!({"correspondent_id": "nobody", "direction": "sideways",
            "received_on": "2999-01-01", "text": "  "})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(fields(&b), ["correspondent_id", "direction", "received_on", "text"], "{b}");
        // A deceased donor writes no letters; the author goes with letters to the recipient.
        let (s, b) = app.post(&path, &c.token, json!({"correspondent_id": recipient, "direction": "to_recipient",
            "author": "donor", "received_on": "2025-06-01", "text": "hello"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(fields(&b), ["author"], "{b}");
        let (s, b) = app.post(&path, &c.token, json!({"correspondent_id": recipient, "direction": "to_family",
            "addressee": kin, "author": kin, "received_on": "2025-06-01", "text": "hello"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(fields(&b), ["author"], "{b}");
        let (_, list) = app.get(&path, &c.token).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 0, "nothing saved: {list}");

        // A label that names the family, a second label alike, a withdrawal before consent.
        let cp = format!("/api/v1/cases/{case}/correspondents");
        let donor = case_json["donor"]["full_name"].as_str().unwrap();
        let (s, b) = app.post(&cp, &c.token, json!({"label": format!("{donor}'s recipient"), "role": "recipient"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(fields(&b), ["label"], "{b}");
        let (s, b) = app.post(&cp, &c.token, json!({"label": "受者 A", "role": "recipient"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(fields(&b), ["label"], "{b}");
        let (s, b) = app.post(&cp, &c.token, json!({"label": "受者 B", "role": "donor",
            "consent_withdrawn_on": "2025-01-01"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(fields(&b), ["consent_withdrawn_on", "role"], "{b}");
        let (s, b) = app.patch(&format!("/api/v1/correspondents/{recipient}"), &c.token, json!({"label": "x"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(fields(&b), ["label"], "{b}");
        let (_, list) = app.get(&cp, &c.token).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
        let (s, b) = app.get("/api/v1/correspondence?status=lost&limit=0", &c.token).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
    }

    async fn a_family_member_writes_to_the_recipient_once_both_agreed_and_staff_review_it(app) {
        let (c, case, kin, recipient, _) = setup(&app).await;
        let (_, family) = app.family_account(&c.token, &kin).await;
        let letter = json!({"correspondent_id": recipient, "text": "谢谢你，希望你一切都好。"});

        // Without their own consent: nobody to write to, and a letter is refused.
        let (s, to) = app.get("/api/v1/me/correspondents", &family).await;
        assert_eq!(s, StatusCode::OK, "{to}");
        assert_eq!(to["items"].as_array().unwrap().len(), 0, "{to}");
        let (s, b) = app.post("/api/v1/me/correspondence", &family, letter.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(fields(&b), ["consent", "correspondent_id"], "{b}");

        // Both agree: the recipient is listed by label only, and the letter is recorded.
        consent(&app, &c.token, &case, &kin).await;
        let (s, _) = app.patch(&format!("/api/v1/correspondents/{recipient}"), &c.token,
                               json!({"consented_on": "2025-05-20"})).await;
        assert_eq!(s, StatusCode::OK);
        let (s, to) = app.get("/api/v1/me/correspondents", &family).await;
        assert_eq!(s, StatusCode::OK, "{to}");
        assert_eq!(to["items"][0]["label"], "受者 A", "{to}");
        assert!(!to.to_string().contains("NB-TX-2025-0042"), "no reference for the family: {to}");
        let (s, b) = app.post("/api/v1/me/correspondence", &family, json!({"correspondent_id": recipient, "text": " "})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(fields(&b), ["text"], "{b}");
        let (s, b) = app.post("/api/v1/me/correspondence", &family, letter).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");

        // The staff find it to review, from the family member, with nothing released yet.
        let (s, list) = app.get(&format!("/api/v1/cases/{case}/correspondence"), &c.token).await;
        assert_eq!(s, StatusCode::OK, "{list}");
        let got = &list["items"][0];
        assert_eq!((got["direction"].as_str(), got["author"].as_str(), got["status"].as_str()),
                   (Some("to_recipient"), Some(kin.as_str()), Some("received")), "{list}");
        assert_eq!(got["original_text"], "谢谢你，希望你一切都好。");
        let log = actions(&app, &case).await;
        assert!(log.iter().any(|(a, o)| a == "correspondence.family_write" && o.as_deref() == Some("allowed")), "{log:?}");
        // Staff cannot write as the family.
        let (s, _) = app.post("/api/v1/me/correspondence", &c.token, json!({"text": "x"})).await;
        assert_eq!(s, StatusCode::FORBIDDEN);

        // The family withdraws its own consent in the portal: no one to write to any more.
        let (_, mine) = app.get("/api/v1/me/consents", &family).await;
        let own = mine["items"].as_array().unwrap().iter()
            .find(|c| c["kind"] == "correspondence").expect("the correspondence consent");
        let (s, b) = app.post(&format!("/api/v1/me/consents/{}/withdraw", own["id"].as_str().unwrap()),
                              &family, json!({"reason": "we need a pause"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let (_, to) = app.get("/api/v1/me/correspondents", &family).await;
        assert_eq!(to["items"].as_array().unwrap().len(), 0, "{to}");
        let (s, b) = app.post("/api/v1/me/correspondence", &family,
                              json!({"correspondent_id": recipient, "text": "again"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(fields(&b), ["consent"], "{b}");
    }

    async fn migration_0032_keeps_consents_and_what_names_them(app) {
        // A database in use before 0032: consents with a withdrawal, a review and a finding.
        let (c, case, kin, _, _) = setup(&app).await;
        let (s, first) = app.post(&format!("/api/v1/cases/{case}/consents"), &c.token,
            json!({"kind": "contact", "subject": kin, "given_by": kin, "method": "verbal",
                   "document": "contact-zh-CN-v1", "signed_at": "2025-04-01"})).await;
        assert_eq!(s, StatusCode::CREATED, "{first}");
        let first = first["id"].as_str().unwrap().to_string();
        let (s, b) = app.post(&format!("/api/v1/consents/{first}/withdraw"), &c.token, json!({"reason": "moved"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        let ethics = app.user("ethics_reviewer", None).await;
        let (s, b) = app.post(&format!("/api/v1/consents/{first}/reviews"), &ethics.token,
            json!({"finding": "concern", "note": "no witness"})).await;
        assert!(s.is_success(), "{b}");
        let form = axum::http::Request::builder()
            .method(axum::http::Method::POST)
            .uri(format!("/api/v1/consents/{first}/attachment"))
            .header("authorization", format!("Bearer {}", c.token))
            .body(axum::body::Body::from(&b"%PDF-1.4 the signed form"[..]))
            .unwrap();
        let (s, b) = app.send(form).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(children(&app, &first).await, (1, 1));
        let before = app.get(&format!("/api/v1/consents?case_id={case}"), &c.token).await.1["items"].clone();
        assert_eq!(before.as_array().unwrap().len(), 2, "{before}");

        app.undo_migration_0032().await;
        donorcare::commands::migrate(&app.cfg).await.expect("migrate");
        // A fresh app on the migrated database (the first keeps it, and its raw access).
        let fresh = app.sibling().await;

        let after = fresh.get(&format!("/api/v1/consents?case_id={case}"), &c.token).await.1["items"].clone();
        assert_eq!(after, before, "every consent as it was");
        let (s, v) = fresh.get("/api/v1/audit/verify", &ethics.token).await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["ok"], true, "content hashes still match: {v}");
        app.assert_consents_schema_intact().await;
        assert_eq!(children(&app, &first).await, (1, 1), "the review and the signed form still name it");
        consent(&fresh, &c.token, &case, &kin).await;
    }
}

/// The reviews and signed forms that name consent `id`.
async fn children(app: &TestApp, id: &str) -> (i64, i64) {
    (
        app.count_rows("consent_reviews", id).await,
        app.count_rows("consent_attachments", id).await,
    )
}

const SQLITE_0032: &str = include_str!("../../migrations/sqlite/0032_correspondence.sql");
const POSTGRES_0032: &str = include_str!("../../migrations/postgres/0032_correspondence.sql");

impl TestApp {
    /// Put the schema back as it was before 0032 and forget that 0032 ran: the new tables
    /// dropped, then the migration's own consents procedure with the kinds of 0005.
    async fn undo_migration_0032(&self) {
        let migration = match self.backend {
            Backend::Sqlite => SQLITE_0032,
            Backend::Postgres => POSTGRES_0032,
        };
        let consents_part = migration
            .split("-- Correspondents:")
            .next()
            .unwrap()
            .replace(", 'correspondence'", "");
        let undo = format!(
            "drop table correspondence_letters; drop table correspondents;\n{consents_part}"
        );
        macro_rules! run {
            ($pool:expr) => {{
                let pool = $pool;
                let mut tx = pool.begin().await.unwrap();
                sqlx::raw_sql(&undo)
                    .execute(&mut *tx)
                    .await
                    .expect("undo 0032");
                sqlx::query("delete from _sqlx_migrations where version = 32")
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.expect("undo 0032");
                pool.close().await;
            }};
        }
        match self.backend {
            Backend::Sqlite => run!(sqlx::SqlitePool::connect(&self.cfg.database_url())
                .await
                .unwrap()),
            Backend::Postgres => run!(sqlx::PgPool::connect(self.pg_url().unwrap()).await.unwrap()),
        }
    }

    /// Rows of `table` that name consent `id`.
    async fn count_rows(&self, table: &str, id: &str) -> i64 {
        let sql = format!("select count(*) from {table} where consent_id = $1");
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.cfg.database_url())
                    .await
                    .unwrap();
                let (n,): (i64,) = sqlx::query_as(&sql)
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                n
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(self.pg_url().unwrap()).await.unwrap();
                let (n,): (i64,) = sqlx::query_as(&sql)
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
                pool.close().await;
                n
            }
        }
    }

    /// SQLite's rebuilt table: no dangling reference, its indexes and its two triggers back,
    /// and the triggers still refuse a change.
    async fn assert_consents_schema_intact(&self) {
        if self.backend != Backend::Sqlite {
            return;
        }
        let pool = sqlx::SqlitePool::connect(&self.cfg.database_url())
            .await
            .unwrap();
        let dangling: Vec<(String, i64, String, i64)> = sqlx::query_as("pragma foreign_key_check")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert!(dangling.is_empty(), "{dangling:?}");
        let names: Vec<(String,)> = sqlx::query_as(
            "select name from sqlite_master where tbl_name = 'consents' and type in ('index', 'trigger') \
             and name not like 'sqlite_autoindex%' order by name",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let names: Vec<&str> = names.iter().map(|(n,)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "consents_case",
                "consents_no_delete",
                "consents_no_update",
                "consents_withdraws"
            ]
        );
        assert!(sqlx::query("update consents set kind = 'research'")
            .execute(&pool)
            .await
            .is_err());
        assert!(sqlx::query("delete from consents")
            .execute(&pool)
            .await
            .is_err());
        pool.close().await;
    }
}
