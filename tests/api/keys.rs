//! The keyring: rotation while serving, recovery recipients, and a missing or wrong identity.

use std::str::FromStr;

use age::secrecy::ExposeSecret;
use axum::http::StatusCode;
use chrono::Utc;
use donorcare::{commands, server};

use crate::helpers::{organ_case, tag};

on_both_backends! {
    async fn rotation_while_serving_keeps_every_case_readable_and_retires_the_old_version(app) {
        let c = app.user("coordinator", None).await;
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(app.create_case(&c.token, organ_case(&tag())).await["id"].as_str().unwrap().to_string());
        }
        // The operator rotates from another process while the server keeps its old ring.
        commands::keys_rotate(&app.cfg).await.expect("keys rotate");
        let operator = app.sibling().await;
        let st = operator.state.svc.keys.status().await.unwrap();
        assert_eq!(st.current, 2);
        assert_eq!(st.versions.iter().find(|v| v.version == 2).unwrap().case_keys, 3);
        assert_eq!(st.versions.iter().find(|v| v.version == 1).unwrap().case_keys, 0);

        // Every case still reads through the running server, which picks up version 2 on its own.
        for id in &ids {
            let (status, body) = app.get(&format!("/api/v1/cases/{id}"), &c.token).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        ids.push(app.create_case(&c.token, organ_case(&tag())).await["id"].as_str().unwrap().to_string());

        // The grace period (5 minutes by default) kept version 1; the maintenance retires it.
        assert!(operator.state.svc.keys.status().await.unwrap().versions[0].retired_at.is_none());
        server::key_maintenance_once(&app.state.svc.keys, chrono::Duration::zero()).await.unwrap();
        let st = app.state.svc.keys.status().await.unwrap();
        let v1 = st.versions.iter().find(|v| v.version == 1).unwrap();
        assert!(v1.retired_at.is_some(), "version 1 retired");
        assert_eq!(st.versions.iter().find(|v| v.version == 2).unwrap().case_keys, 4);
        let rows = app.state.svc.store.keyring_rows().await.unwrap();
        assert!(rows.iter().any(|r| r.purpose == "data" && r.version == 1 && r.sealed.is_none()),
                "the retired key is destroyed");
        for id in &ids {
            assert_eq!(app.get(&format!("/api/v1/cases/{id}"), &c.token).await.0, StatusCode::OK);
            assert_eq!(operator.get(&format!("/api/v1/cases/{id}"), &c.token).await.0, StatusCode::OK);
        }
    }

    async fn a_recovery_recipient_opens_the_keyring_when_the_identity_is_lost(app) {
        let c = app.user("coordinator", None).await;
        let case = app.create_case(&c.token, organ_case(&tag())).await;
        let recovery = age::x25519::Identity::generate();
        commands::keys_add_recipient(&app.cfg, &recovery.to_public().to_string()).await.unwrap();
        let st = app.state.svc.keys.status().await.unwrap();
        assert_eq!(st.recipients.len(), 2);
        assert!(st.versions.iter().all(|v| v.recipients.len() == 2));

        // The server's identity is lost; the offline recovery key takes its place.
        let identity = app.cfg.key_paths().identity;
        std::fs::write(&identity, format!("{}\n", recovery.to_string().expose_secret())).unwrap();
        let recovered = app.sibling().await;
        let (status, got) = recovered.get(&format!("/api/v1/cases/{}", case["id"].as_str().unwrap()), &c.token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got["donor"], case["donor"]);
    }

    async fn the_servers_own_recipient_cannot_be_removed(app) {
        let own = app.state.svc.keys.recipient();
        let err = commands::keys_remove_recipient(&app.cfg, &own).await.unwrap_err();
        assert!(format!("{err:#}").contains("own recipient"), "{err:#}");
        let other = age::x25519::Identity::generate().to_public().to_string();
        assert!(commands::keys_remove_recipient(&app.cfg, &other).await.is_err());
        assert!(commands::keys_add_recipient(&app.cfg, "age1notakey").await.is_err());
    }

    async fn a_missing_or_wrong_identity_stops_start_up_and_writes_nothing(app) {
        let c = app.user("coordinator", None).await;
        let case = app.create_case(&c.token, organ_case(&tag())).await;
        let paths = app.cfg.key_paths();
        let saved = std::fs::read(&paths.identity).unwrap();
        let rows_before = app.state.svc.store.keyring_rows().await.unwrap().len();

        std::fs::remove_file(&paths.identity).unwrap();
        let err = server::open_services(&app.cfg).await.err().expect("start-up fails");
        let msg = format!("{err:#}");
        assert!(msg.contains("identity.txt") && msg.contains("not found"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert!(!paths.identity.exists(), "no new identity was made");

        let stranger = age::x25519::Identity::generate();
        std::fs::write(&paths.identity, stranger.to_string().expose_secret()).unwrap();
        let msg = format!("{:#}", server::open_services(&app.cfg).await.err().expect("start-up fails"));
        assert!(msg.contains("cannot open the keyring"), "{msg}");
        std::fs::write(&paths.identity, "AGE-SECRET-KEY-1NOTVALID\n").unwrap();
        let msg = format!("{:#}", server::open_services(&app.cfg).await.err().expect("start-up fails"));
        assert!(msg.contains("invalid age identity"), "{msg}");
        assert_eq!(app.state.svc.store.keyring_rows().await.unwrap().len(), rows_before);

        std::fs::write(&paths.identity, &saved).unwrap();
        let back = app.sibling().await;
        let (status, got) = back.get(&format!("/api/v1/cases/{}", case["id"].as_str().unwrap()), &c.token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got["notes"], case["notes"]);
    }
}

#[test]
fn identity_files_are_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/identity.txt");
    donorcare::crypto::keyring::ServerIdentity::create(&path, Utc::now()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap();
    assert!(age::x25519::Identity::from_str(line).is_ok());
    // It refuses to overwrite an identity.
    assert!(donorcare::crypto::keyring::ServerIdentity::create(&path, Utc::now()).is_err());
}
