//! The `wechat` channel outside delivery (which `delivery::wechat` tests through a real
//! gateway): a contact's WeChat ID, sealed and validated, in the API, the OpenAPI document and
//! the contact form; consent scopes naming it; and migration 0030, which lets a contact prefer
//! it, applied to a database that already holds contacts, their accounts, invites and tasks.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{organ_case, tag, Backend, TestApp};
use crate::pages::{enc, field, form, hidden, page, page_session, raw};
use crate::running::str_of;

async fn new_case(app: &TestApp, token: &str) -> String {
    let case = app.create_case(token, organ_case(&tag())).await;
    str_of(&case, "id").to_string()
}

on_both_backends! {
    async fn a_contact_who_prefers_wechat_needs_a_valid_wechat_id_which_is_sealed(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        let case_id = new_case(&app, &c.token).await;
        let path = format!("/api/v1/cases/{case_id}/contacts");
        let base = json!({"full_name": "李华", "relationship": "spouse", "preferred_channel": "wechat"});

        let (s, b) = app.post(&path, &c.token, base.clone()).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert_eq!(b["error"]["fields"]["wechat_id"], "is required when preferred_channel is wechat", "{b}");
        for bad in ["li", "li hua", "李华李华李华", "li@hua.cn"] {
            let mut body = base.clone();
            body["wechat_id"] = json!(bad);
            let (s, b) = app.post(&path, &c.token, body).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{bad}: {b}");
            assert!(str_of(&b["error"]["fields"], "wechat_id").starts_with("must be a WeChat ID"), "{bad}: {b}");
        }

        let mut body = base.clone();
        body["wechat_id"] = json!(" wxid_Li-Hua88 ");
        let (s, contact) = app.post(&path, &c.token, body).await;
        assert_eq!(s, StatusCode::CREATED, "{contact}");
        assert_eq!(contact["wechat_id"], "wxid_Li-Hua88", "trimmed, its case kept");
        assert_eq!(contact["preferred_channel"], "wechat");
        let id = str_of(&contact, "id");

        // Sealed like a phone number: not in the database in the clear.
        let stored = app.raw_contact_details(id).await;
        assert!(!stored.windows(13).any(|w| w == b"wxid_Li-Hua88"), "the WeChat ID is sealed");

        // Taking the ID away while WeChat is preferred is refused; another way first is not.
        let (s, b) = app.patch(&format!("/api/v1/contacts/{id}"), &c.token, json!({"wechat_id": null})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["wechat_id"].is_string(), "{b}");
        let (s, b) = app.patch(&format!("/api/v1/contacts/{id}"), &c.token,
            json!({"wechat_id": null, "preferred_channel": "letter", "address": "宁波市海曙区1号"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert!(b["wechat_id"].is_null(), "{b}");

        // A contact consent may name the channel; an unknown one is refused.
        let consent = |channels: Value| json!({"kind": "contact", "subject": id, "given_by": id,
            "method": "electronic", "document": "contact-zh-CN-v1", "signed_at": "2025-04-01",
            "scope": {"channels": channels}});
        let (s, b) = app.post(&format!("/api/v1/cases/{case_id}/consents"), &c.token, consent(json!(["weixin"]))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        let (s, b) = app.post(&format!("/api/v1/cases/{case_id}/consents"), &c.token, consent(json!(["wechat"]))).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["scope"]["channels"], json!(["wechat"]), "{b}");
    }

    async fn the_openapi_document_names_wechat_wherever_a_channel_is_named(app) {
        let (s, doc) = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
        assert_eq!(s, StatusCode::OK);
        let schemas = &doc["components"]["schemas"];
        let has_wechat = |v: &Value| v["enum"].as_array().is_some_and(|e| e.contains(&json!("wechat")));
        assert!(has_wechat(&schemas["ContactInput"]["properties"]["preferred_channel"]), "{}", schemas["ContactInput"]);
        assert!(has_wechat(&schemas["PreferencesPatch"]["properties"]["preferred_channel"]), "{}", schemas["PreferencesPatch"]);
        let text = doc.to_string();
        assert!(text.contains("A-Za-z0-9_-]{6,64}"), "the WeChat ID's pattern is stated");
        assert!(schemas["ContactInput"]["properties"]["wechat_id"].is_object(), "{}", schemas["ContactInput"]);
    }

    async fn the_contact_form_takes_a_wechat_id_and_says_what_is_wrong_with_one(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        let case_id = new_case(&app, &c.token).await;
        let jar = page_session(&app, &c.username).await;
        let path = format!("/cases/{case_id}/contacts/new");
        let (s, html) = page(&app, &path, &jar).await;
        assert_eq!(s, StatusCode::OK);
        let wechat = field(&html, "wechat_id");
        assert!(wechat.contains("<label") && wechat.contains("微信号"), "{wechat}");
        let way = field(&html, "preferred_channel");
        assert!(way.contains("value=\"wechat\"") && way.contains("微信"), "{way}");
        let csrf = hidden(&html, "csrf");
        let body = |wechat_id: &str| format!("csrf={csrf}&full_name={}&relationship=child&preferred_channel=wechat\
                                              &wechat_id={}&language=zh-CN&timezone=Asia%2FShanghai",
                                             enc("王伟"), enc(wechat_id));

        let (s, _, html) = raw(&app, form(&path, &jar, &body("wang wei"))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        let wechat = field(&html, "wechat_id");
        assert!(wechat.contains("aria-invalid=\"true\"") && wechat.contains("有效的微信号"), "{wechat}");
        assert!(wechat.contains("value=\"wang wei\""), "the value is kept: {wechat}");
        let (s, _, html) = raw(&app, form(&path, &jar, &body(""))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field(&html, "wechat_id").contains("aria-invalid=\"true\""), "required for WeChat");
        let (_, case) = app.get(&format!("/api/v1/cases/{case_id}"), &c.token).await;
        assert_eq!(case["contacts"], json!([]), "nothing saved");

        let (s, _, _) = raw(&app, form(&path, &jar, &body("wang_wei_66"))).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let (_, case) = app.get(&format!("/api/v1/cases/{case_id}"), &c.token).await;
        let contact = &case["contacts"][0];
        assert_eq!((contact["wechat_id"].as_str(), contact["preferred_channel"].as_str()),
                   (Some("wang_wei_66"), Some("wechat")), "{contact}");
        let (_, html) = page(&app, &format!("/contacts/{}/edit", str_of(contact, "id")), &jar).await;
        assert!(field(&html, "wechat_id").contains("value=\"wang_wei_66\""), "the edit form shows it");
    }

    async fn migration_0030_keeps_contacts_and_what_names_them_and_lets_them_prefer_wechat(app) {
        // A database in use before 0030: contacts, one with a family account (users and
        // invites name it) and a call planned with it (tasks name it).
        let coord = app.user("coordinator", Some("yinzhou")).await;
        let case_id = new_case(&app, &coord.token).await;
        let (s, kin) = app.post(&format!("/api/v1/cases/{case_id}/contacts"), &coord.token,
            json!({"full_name": "陈红", "relationship": "child", "phone": "13800001111", "preferred_channel": "sms"})).await;
        assert_eq!(s, StatusCode::CREATED, "{kin}");
        let kin = str_of(&kin, "id").to_string();
        let (s, other) = app.post(&format!("/api/v1/cases/{case_id}/contacts"), &coord.token,
            json!({"full_name": "陈明", "relationship": "sibling", "preferred_channel": "portal", "opted_out": true})).await;
        assert_eq!(s, StatusCode::CREATED, "{other}");
        let (s, task) = app.post(&format!("/api/v1/cases/{case_id}/tasks"), &coord.token,
            json!({"kind": "call", "due_at": "2030-01-01", "contact_id": kin})).await;
        assert_eq!(s, StatusCode::CREATED, "{task}");
        let (_, family) = app.family_account(&coord.token, &kin).await;
        let before = app.get(&format!("/api/v1/cases/{case_id}"), &coord.token).await.1["contacts"].clone();

        // Back to the schema before 0030, by the same procedure in reverse.
        app.undo_migration_0030().await;
        assert!(app.set_preferred_channel_raw(&kin, "wechat").await.is_err(), "refused before 0030");

        donorcare::commands::migrate(&app.cfg).await.expect("migrate");
        let app = app.sibling().await;
        let after = app.get(&format!("/api/v1/cases/{case_id}"), &coord.token).await.1["contacts"].clone();
        assert_eq!(after, before, "every contact as it was");
        app.assert_contacts_schema_intact().await;
        assert_eq!(app.get("/api/v1/me/preferences", &family).await.0, StatusCode::OK, "the family's account still finds its contact");
        let (s, t) = app.get(&format!("/api/v1/tasks?case_id={case_id}"), &coord.token).await;
        assert_eq!(s, StatusCode::OK, "{t}");
        let call = t["items"].as_array().unwrap().iter().find(|i| i["kind"] == "call").expect("the call");
        assert_eq!(call["contact_id"], kin.as_str(), "{t}");

        let (s, b) = app.patch(&format!("/api/v1/contacts/{kin}"), &coord.token,
            json!({"preferred_channel": "wechat", "wechat_id": "chen_hong_1990"})).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        assert_eq!(b["preferred_channel"], "wechat", "{b}");
    }
}

const SQLITE_0030: &str = include_str!("../../migrations/sqlite/0030_wechat_channel.sql");
const POSTGRES_0030: &str = include_str!("../../migrations/postgres/0030_wechat_channel.sql");

/// `$body` with `$pool` a pool on the app's database, whichever its backend (the body is
/// checked once per backend's types).
macro_rules! with_pool {
    ($app:expr, |$pool:ident| $body:expr) => {
        match $app.backend {
            Backend::Sqlite => {
                let $pool = sqlx::SqlitePool::connect(&$app.cfg.database_url())
                    .await
                    .expect("SQLite");
                let out = $body;
                $pool.close().await;
                out
            }
            Backend::Postgres => {
                let $pool = sqlx::PgPool::connect($app.pg_url().expect("PostgreSQL"))
                    .await
                    .expect("PostgreSQL");
                let out = $body;
                $pool.close().await;
                out
            }
        }
    };
}

/// Raw access to the app's database, for what the API cannot show.
impl TestApp {
    /// A contact's sealed details as stored.
    async fn raw_contact_details(&self, id: &str) -> Vec<u8> {
        let sql = "select details from contacts where id = $1";
        with_pool!(self, |pool| {
            let (d,): (Vec<u8>,) = sqlx::query_as(sql).bind(id).fetch_one(&pool).await.unwrap();
            d
        })
    }

    /// Put the schema back as it was before 0030 and forget that 0030 ran: the migration's
    /// own procedure, with the check constraint of 0001.
    async fn undo_migration_0030(&self) {
        let migration = match self.backend {
            Backend::Sqlite => SQLITE_0030,
            Backend::Postgres => POSTGRES_0030,
        };
        let undo = migration.replace("'portal', 'wechat'", "'portal'");
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await.unwrap();
            sqlx::raw_sql(&undo)
                .execute(&mut *tx)
                .await
                .expect("undo 0030");
            sqlx::query("delete from _sqlx_migrations where version = 30")
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.expect("undo 0030");
        })
    }

    /// Set a contact's channel behind the domain's back (only the constraint can refuse).
    async fn set_preferred_channel_raw(&self, id: &str, channel: &str) -> Result<(), sqlx::Error> {
        let sql = "update contacts set preferred_channel = $1 where id = $2";
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(channel)
            .bind(id)
            .execute(&pool)
            .await
            .map(|_| ()))
    }

    /// SQLite's rebuilt table: no dangling reference, its index and its three triggers back,
    /// and those triggers still move the access generation.
    async fn assert_contacts_schema_intact(&self) {
        if self.backend != Backend::Sqlite {
            return;
        }
        let pool = sqlx::SqlitePool::connect(&self.cfg.database_url())
            .await
            .expect("SQLite");
        let dangling: Vec<(String, i64, String, i64)> = sqlx::query_as("pragma foreign_key_check")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert!(dangling.is_empty(), "{dangling:?}");
        let (ok,): (String,) = sqlx::query_as("pragma integrity_check")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(ok, "ok");
        let names: Vec<(String, String)> = sqlx::query_as(
            "select type, name from sqlite_master where tbl_name = 'contacts' and type in ('index', 'trigger') \
             and name not like 'sqlite_autoindex%' order by name",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        let names: Vec<&str> = names.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "contacts_case",
                "contacts_d_moves_generation",
                "contacts_i_moves_generation",
                "contacts_u_moves_generation"
            ]
        );
        let generation = || async {
            let (n,): (i64,) = sqlx::query_as("select n from access_generation")
                .fetch_one(&pool)
                .await
                .unwrap();
            n
        };
        let before = generation().await;
        sqlx::query("update contacts set opted_out = opted_out")
            .execute(&pool)
            .await
            .unwrap();
        assert!(
            generation().await > before,
            "a change to a contact moves the generation"
        );
        pool.close().await;
    }
}
