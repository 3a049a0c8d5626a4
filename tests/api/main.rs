//! The integration suite: one binary, every test on a database of its own. Tests written with
//! `on_both_backends!` run on SQLite and on PostgreSQL; the PostgreSQL ones need
//! `DONORCARE_TEST_POSTGRES` (an admin URL) and are skipped without it, unless
//! `DONORCARE_REQUIRE_POSTGRES=1` (as `.ci/run` sets) turns its absence into a failure.

/// Define each test once and run it on both backends: `sqlite::name` and `postgres::name`.
macro_rules! on_both_backends {
    ($(async fn $name:ident($app:ident) $body:block)*) => {
        mod sqlite {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let $app = crate::helpers::TestApp::spawn(crate::helpers::Backend::Sqlite)
                        .await
                        .expect("SQLite test app");
                    $body
                }
            )*
        }
        mod postgres {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some($app) =
                        crate::helpers::TestApp::spawn(crate::helpers::Backend::Postgres).await
                    else {
                        return;
                    };
                    $body
                }
            )*
        }
    };
}

mod access;
mod accounts;
mod audit;
mod backup;
mod browser;
mod cases;
mod consents;
mod correspondence;
mod delivery;
mod encryption;
mod helpers;
mod honour;
mod keys;
mod marrow;
mod memorials;
mod pages;
mod pages_admin;
mod pages_care;
mod pages_consents;
mod pages_correspondence;
mod pages_ethics;
mod pages_family;
mod pages_marrow;
mod pages_memorials;
mod pages_tasks;
mod process;
mod reports;
mod running;
mod schedule;
mod security;
mod wechat;
