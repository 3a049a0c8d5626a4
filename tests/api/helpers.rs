//! Shared test helpers: a fresh app per test on SQLite or PostgreSQL, requests through the
//! router, accounts and sample cases.

use std::path::PathBuf;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use chrono::Utc;
use donorcare::config::Config;
use donorcare::crypto::SecretString;
use donorcare::domain::accounts::{self, NewUserInput};
use donorcare::domain::types::national_id_check;
use donorcare::server;
use donorcare::web::{self, AppState};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const PASSWORD: &str = "test-password-123";

pub struct TestApp {
    pub router: Router,
    pub state: AppState,
    pub cfg: Config,
    /// Holds the data and key folders until the test ends.
    _dir: tempfile::TempDir,
    pub backend: Backend,
    pg: Option<PgDatabase>,
}

/// The PostgreSQL admin URL, or `None` (skip) when absent and not required.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("DONORCARE_TEST_POSTGRES") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var("DONORCARE_REQUIRE_POSTGRES").is_ok_and(|v| v == "1") {
                panic!("DONORCARE_REQUIRE_POSTGRES=1 but DONORCARE_TEST_POSTGRES is not set");
            }
            None
        }
    }
}

/// A database of its own on the test PostgreSQL server, dropped with the test.
pub struct PgDatabase {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl PgDatabase {
    pub async fn create(admin_url: &str) -> PgDatabase {
        use sqlx::Connection;
        let name = format!("dc_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("connecting to DONORCARE_TEST_POSTGRES");
        sqlx::query(&format!("create database {name}"))
            .execute(&mut conn)
            .await
            .expect("create database");
        conn.close().await.ok();
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .expect("admin URL ends with a database name");
        PgDatabase {
            admin_url: admin_url.to_string(),
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let (url, name) = (self.admin_url.clone(), self.name.clone());
        // Drop runs outside async code: use a thread with its own small runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut c = sqlx::PgConnection::connect(&url).await.ok()?;
                sqlx::query(&format!("drop database if exists {name} with (force)"))
                    .execute(&mut c)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

impl TestApp {
    /// A fresh app on `backend`; `None` when PostgreSQL is not configured (and not required).
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = Config::new(dir.path().join("data"));
        cfg.keys_dir = dir.path().join("keys");
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let admin = postgres_admin_url()?;
                let db = PgDatabase::create(&admin).await;
                cfg.database_url = Some(db.url.clone());
                Some(db)
            }
        };
        let (svc, _notices) = server::open_services(&cfg).await.expect("open services");
        let state = server::app_state(svc, &cfg).expect("app state");
        Some(TestApp {
            router: web::app(state.clone()),
            state,
            cfg,
            _dir: dir,
            backend,
            pg,
        })
    }

    /// A second, independent app (own key service and pool) on the same database and keys,
    /// as a second instance or an operator command would have.
    pub async fn sibling(&self) -> TestApp {
        self.sibling_with(|_| {}).await
    }

    /// A sibling whose services are adjusted first (e.g. a shorter break-glass).
    pub async fn sibling_with(
        &self,
        adjust: impl FnOnce(&mut donorcare::domain::Services),
    ) -> TestApp {
        let (mut svc, _) = server::open_services(&self.cfg)
            .await
            .expect("open services");
        adjust(&mut svc);
        let state = server::app_state(svc, &self.cfg).expect("app state");
        TestApp {
            router: web::app(state.clone()),
            state,
            cfg: self.cfg.clone(),
            _dir: tempfile::tempdir().expect("tempdir"),
            backend: self.backend,
            pg: None,
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.cfg.data_dir.clone()
    }

    /// Run the `donorcare` binary against this app's database and keys.
    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_donorcare"));
        cmd.arg("--data-dir")
            .arg(&self.cfg.data_dir)
            .arg("--keys-dir")
            .arg(&self.cfg.keys_dir)
            .arg("--database-url")
            .arg(self.cfg.database_url())
            .env_remove("DONORCARE_IDENTITY")
            .env("DONORCARE_LOG", "warn");
        cmd
    }

    /// Run one statement with two text parameters directly on the test database.
    pub async fn exec(&self, sql: &str, a: &str, b: &str) {
        match self.backend {
            Backend::Sqlite => {
                let pool = sqlx::SqlitePool::connect(&self.cfg.database_url())
                    .await
                    .unwrap();
                sqlx::query(sql)
                    .bind(a)
                    .bind(b)
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(self.pg_url().unwrap()).await.unwrap();
                sqlx::query(sql)
                    .bind(a)
                    .bind(b)
                    .execute(&pool)
                    .await
                    .unwrap();
                pool.close().await;
            }
        }
    }

    pub fn pg_url(&self) -> Option<&str> {
        self.pg.as_ref().map(|p| p.url.as_str())
    }

    /// Send a request; returns the status and the body as JSON (a string if it is not JSON).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .expect("request");
        self.send(req).await
    }

    pub async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let resp = self.router.clone().oneshot(req).await.expect("response");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    /// Create an account directly in the store and log it in through the API.
    pub async fn user(&self, role: &str, region: Option<&str>) -> TestUser {
        let username = format!("{role}-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let row = accounts::new_user(
            &NewUserInput {
                username: Some(username.clone()),
                display_name: Some(format!("Test {role}")),
                role: Some(role.into()),
                region: region.map(str::to_string),
                password: Some(SecretString::new(PASSWORD.into())),
            },
            Utc::now(),
        )
        .expect("valid account");
        self.state
            .svc
            .store
            .insert_user(&row, &[])
            .await
            .expect("insert account");
        let token = self.login(&username, PASSWORD).await;
        TestUser {
            id: row.id,
            username,
            token,
        }
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "login {username}: {body}");
        body["token"].as_str().expect("token").to_string()
    }

    /// Create a case as `token`, expecting 201; returns the case.
    pub async fn create_case(&self, token: &str, case: Value) -> Value {
        let (status, body) = self.post("/api/v1/cases", token, case).await;
        assert_eq!(status, StatusCode::CREATED, "create case: {body}");
        body
    }

    pub async fn count_cases(&self) -> i64 {
        let rows = self
            .state
            .svc
            .store
            .list_cases(&donorcare::store::CaseQuery {
                scope: donorcare::store::CaseScope::All,
                program: None,
                status: None,
                term: None,
                after: None,
                limit: 100_000,
            })
            .await
            .expect("list");
        rows.len() as i64
    }
}

pub struct TestUser {
    pub id: String,
    pub username: String,
    pub token: String,
}

/// A valid national ID built from a birth date and a sequence number.
pub fn national_id(birth: &str, seq: u32) -> String {
    let first17 = format!("330203{}{:03}", birth.replace('-', ""), seq % 1000);
    format!(
        "{first17}{}",
        national_id_check(&first17).expect("17 digits")
    )
}

/// A valid organ-donor case whose personal values all contain `tag`.
pub fn organ_case(tag: &str) -> Value {
    json!({
        "program": "organ",
        "region": "yinzhou",
        "donor": {
            "full_name": format!("Name{tag}"),
            "sex": "f",
            "birth_date": "1961-07-04",
            "national_id": national_id("1961-07-04", 17),
            "phone": "+86 139 0000 1111",
            "email": format!("mail{tag}@example.org"),
            "address": format!("{tag} Harbour Road, Ningbo"),
            "deceased": true,
            "death_date": "2025-03-10"
        },
        "donation": {"date": "2025-03-11", "kind": "kidney", "hospital": format!("Hospital{tag}")},
        "notes": format!("Note{tag}: the family asked for calls after 6 pm")
    })
}

/// A valid marrow-donor case.
pub fn marrow_case(name: &str, phone: &str) -> Value {
    json!({
        "program": "marrow",
        "region": "yinzhou",
        "donor": {
            "full_name": name,
            "birth_date": "1990-02-28",
            "phone": phone,
            "deceased": false
        },
        "donation": {"date": "2025-05-20", "kind": "pbsc"}
    })
}

/// A random tag that appears nowhere else.
pub fn tag() -> String {
    format!("Zq{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}
