//! Cases and contacts: validation, scope, search, pagination, patches.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{marrow_case, national_id, organ_case, tag};

/// Set `path` (dot-separated) in a JSON object.
fn with(mut v: Value, path: &str, value: Value) -> Value {
    let mut cur = &mut v;
    let parts: Vec<&str> = path.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        cur = &mut cur[*p];
    }
    let last = parts[parts.len() - 1];
    if value.is_null() {
        cur.as_object_mut().unwrap().remove(last);
    } else {
        cur[last] = value;
    }
    v
}

/// Each invalid case, the field that must be named, and nothing written.
fn invalid_cases() -> Vec<(&'static str, Value, &'static str)> {
    let base = organ_case("Validation");
    let long = "x".repeat(20_001);
    vec![
        (
            "unknown program",
            with(base.clone(), "program", json!("kidney")),
            "program",
        ),
        (
            "missing program",
            with(base.clone(), "program", Value::Null),
            "program",
        ),
        (
            "impossible birth date",
            with(base.clone(), "donor.birth_date", json!("2025-02-30")),
            "donor.birth_date",
        ),
        (
            "impossible death date",
            with(base.clone(), "donor.death_date", json!("2023-13-01")),
            "donor.death_date",
        ),
        (
            "donation in the future",
            with(base.clone(), "donation.date", json!("2999-01-01")),
            "donation.date",
        ),
        (
            "death before birth",
            with(base.clone(), "donor.death_date", json!("1950-01-01")),
            "donor.death_date",
        ),
        (
            "deceased without death date",
            with(base.clone(), "donor.death_date", Value::Null),
            "donor.death_date",
        ),
        (
            "organ donor not deceased",
            with(
                with(base.clone(), "donor.deceased", json!(false)),
                "donor.death_date",
                Value::Null,
            ),
            "donor.deceased",
        ),
        (
            "wrong check digit",
            with(
                base.clone(),
                "donor.national_id",
                json!("11010519491231002Y"),
            ),
            "donor.national_id",
        ),
        (
            "check digit off by one",
            with(
                base.clone(),
                "donor.national_id",
                json!("110105194912310021"),
            ),
            "donor.national_id",
        ),
        (
            "ID birth date differs",
            with(
                base.clone(),
                "donor.national_id",
                json!(national_id("1961-07-05", 17)),
            ),
            "donor.national_id",
        ),
        (
            "letters in phone",
            with(base.clone(), "donor.phone", json!("139-abcd-1111")),
            "donor.phone",
        ),
        (
            "too few digits",
            with(base.clone(), "donor.phone", json!("123")),
            "donor.phone",
        ),
        (
            "bad email",
            with(base.clone(), "donor.email", json!("no-at-sign")),
            "donor.email",
        ),
        (
            "over-long notes",
            with(base.clone(), "notes", json!(long)),
            "notes",
        ),
        (
            "over-long name",
            with(base.clone(), "donor.full_name", json!("名".repeat(101))),
            "donor.full_name",
        ),
        (
            "empty name",
            with(base.clone(), "donor.full_name", json!("   ")),
            "donor.full_name",
        ),
        (
            "unknown donation kind",
            with(base.clone(), "donation.kind", json!("pbsc")),
            "donation.kind",
        ),
        (
            "unknown sex",
            with(base.clone(), "donor.sex", json!("q")),
            "donor.sex",
        ),
        (
            "unknown field",
            with(base.clone(), "donor.nickname", json!("x")),
            "donor.nickname",
        ),
        (
            "wrong type",
            with(base.clone(), "donor.deceased", json!("yes")),
            "donor.deceased",
        ),
        (
            "donation before death",
            with(base.clone(), "donation.date", json!("2025-03-09")),
            "donation.date",
        ),
        (
            "erased status on create",
            with(base.clone(), "status", json!("erased")),
            "status",
        ),
    ]
}

on_both_backends! {
    async fn invalid_cases_get_422_naming_the_field_and_write_nothing(app) {
        let c = app.user("coordinator", None).await;
        for (what, body, field) in invalid_cases() {
            let (status, resp) = app.post("/api/v1/cases", &c.token, body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{what}: {resp}");
            assert_eq!(resp["error"]["code"], "validation_failed", "{what}");
            assert!(resp["error"]["fields"][field].is_string(), "{what}: expected {field} in {resp}");
        }
        assert_eq!(app.count_cases().await, 0);
    }

    async fn malformed_json_is_400_and_a_huge_body_413(app) {
        let c = app.user("coordinator", None).await;
        let req = |body: String| {
            axum::http::Request::builder()
                .method(Method::POST)
                .uri("/api/v1/cases")
                .header("authorization", format!("Bearer {}", c.token))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(body))
                .unwrap()
        };
        let (status, body) = app.send(req("{\"program\": ".into())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "bad_request");
        let huge = format!("{{\"notes\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
        let (status, body) = app.send(req(huge)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["error"]["code"], "payload_too_large");
        let (status, _) = app.send(req("[1, 2]".into())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.count_cases().await, 0);
    }

    async fn wrong_methods_get_405_as_json(app) {
        let c = app.user("coordinator", None).await;
        let (status, body) = app.call(Method::DELETE, "/api/v1/cases", Some(&c.token), None).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(body["error"]["code"], "method_not_allowed");
        let (status, body) = app.get("/api/v1/no-such-thing", &c.token).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body["error"]["code"], "not_found");
    }

    async fn a_created_case_reads_back_whole_and_its_creator_is_assigned(app) {
        let c = app.user("coordinator", None).await;
        let t = tag();
        let sent = organ_case(&t);
        let created = app.create_case(&c.token, sent.clone()).await;
        let id = created["id"].as_str().unwrap();
        let (status, got) = app.get(&format!("/api/v1/cases/{id}"), &c.token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got["status"], "open");
        assert_eq!(got["coordinator_id"], c.id.as_str());
        for k in ["full_name", "sex", "birth_date", "national_id", "phone", "email", "address", "death_date"] {
            assert_eq!(got["donor"][k], sent["donor"][k], "{k}");
        }
        assert_eq!(got["donation"], sent["donation"]);
        assert_eq!(got["notes"], sent["notes"]);
        assert_eq!(got["contacts"], json!([]));
    }

    async fn coordinator_cannot_see_unassigned_case(app) {
        let mine = app.user("coordinator", None).await;
        let other = app.user("coordinator", None).await;
        let case = app.create_case(&mine.token, organ_case(&tag())).await;
        let path = format!("/api/v1/cases/{}", case["id"].as_str().unwrap());
        let (status, body) = app.get(&path, &other.token).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(!body.to_string().contains("Name"), "no personal data in a 404: {body}");
        assert_eq!(app.patch(&path, &other.token, json!({"notes": "x"})).await.0, StatusCode::NOT_FOUND);
        let (_, list) = app.get("/api/v1/cases", &other.token).await;
        assert_eq!(list["items"], json!([]));
        let (status, _) = app
            .post(&format!("{path}/contacts"), &other.token,
                  json!({"full_name": "X", "relationship": "spouse", "preferred_channel": "portal"}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // A missing case answers the same.
        assert_eq!(app.get("/api/v1/cases/does-not-exist", &other.token).await.0, StatusCode::NOT_FOUND);
    }

    async fn admins_and_other_roles_do_not_read_case_content(app) {
        let c = app.user("coordinator", None).await;
        let case = app.create_case(&c.token, organ_case(&tag())).await;
        let path = format!("/api/v1/cases/{}", case["id"].as_str().unwrap());
        for role in ["admin", "ethics_reviewer", "volunteer", "family"] {
            let u = app.user(role, Some("yinzhou")).await;
            let (status, body) = app.get(&path, &u.token).await;
            assert_eq!(status, StatusCode::FORBIDDEN, "{role}");
            assert!(!body.to_string().contains("Name"));
            assert_eq!(app.get("/api/v1/cases", &u.token).await.0, StatusCode::FORBIDDEN, "{role}");
            assert_eq!(app.post("/api/v1/cases", &u.token, organ_case("x")).await.0, StatusCode::FORBIDDEN, "{role}");
        }
    }

    async fn supervisors_see_their_region_and_assign(app) {
        let sup = app.user("supervisor", Some("yinzhou")).await;
        let far = app.user("supervisor", Some("haishu")).await;
        let coord = app.user("coordinator", None).await;
        let case = app.create_case(&sup.token, organ_case(&tag())).await;
        let id = case["id"].as_str().unwrap();
        assert_eq!(case["coordinator_id"], Value::Null);
        assert_eq!(app.get(&format!("/api/v1/cases/{id}"), &far.token).await.0, StatusCode::NOT_FOUND);
        assert_eq!(app.get(&format!("/api/v1/cases/{id}"), &coord.token).await.0, StatusCode::NOT_FOUND);
        let (status, _) = app
            .post("/api/v1/cases", &sup.token, with(organ_case("y"), "region", json!("haishu")))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);

        let (status, body) = app
            .post(&format!("/api/v1/cases/{id}/assign"), &coord.token, json!({"coordinator_id": coord.id}))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, body) = app
            .post(&format!("/api/v1/cases/{id}/assign"), &sup.token, json!({"coordinator_id": sup.id}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (status, body) = app
            .post(&format!("/api/v1/cases/{id}/assign"), &sup.token, json!({"coordinator_id": coord.id}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["coordinator_id"], coord.id.as_str());
        assert_eq!(app.get(&format!("/api/v1/cases/{id}"), &coord.token).await.0, StatusCode::OK);
        // An assigned coordinator still may not reassign.
        let (status, _) = app
            .post(&format!("/api/v1/cases/{id}/assign"), &coord.token, json!({"coordinator_id": coord.id}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        // A team member shares the case; the primary stays.
        let mate = app.user("coordinator", None).await;
        assert_eq!(app.get(&format!("/api/v1/cases/{id}"), &mate.token).await.0, StatusCode::NOT_FOUND);
        let (status, body) = app
            .post(&format!("/api/v1/cases/{id}/assign"), &sup.token, json!({"coordinator_id": mate.id, "kind": "team"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["coordinator_id"], coord.id.as_str());
        assert_eq!(app.get(&format!("/api/v1/cases/{id}"), &mate.token).await.0, StatusCode::OK);
        let (status, _) = app
            .post(&format!("/api/v1/cases/{id}/assign"), &sup.token, json!({"coordinator_id": mate.id, "kind": "boss"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (_, list) = app.get("/api/v1/cases", &sup.token).await;
        assert_eq!(list["items"].as_array().unwrap().len(), 1);
        let (_, list) = app.get("/api/v1/cases", &far.token).await;
        assert_eq!(list["items"], json!([]));
    }

    async fn exact_match_search_by_phone_national_id_and_name(app) {
        let c = app.user("coordinator", None).await;
        let a = app.create_case(&c.token, marrow_case("张 三", "+86 138-0013-8000")).await;
        let _b = app.create_case(&c.token, marrow_case("李四", "13900139000")).await;
        let t = tag();
        let o = app.create_case(&c.token, organ_case(&t)).await;
        let ids = |v: &Value| -> Vec<String> {
            v["items"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
        };
        let (_, r) = app.get("/api/v1/cases?phone=13800138000", &c.token).await;
        assert_eq!(ids(&r), vec![a["id"].as_str().unwrap()]);
        let (_, r) = app.get("/api/v1/cases?phone=%2B8613800138000", &c.token).await;
        assert_eq!(ids(&r), vec![a["id"].as_str().unwrap()]);
        let (_, r) = app.get("/api/v1/cases?name=%E5%BC%A0%E4%B8%89", &c.token).await;
        assert_eq!(ids(&r), vec![a["id"].as_str().unwrap()]);
        let nid = national_id("1961-07-04", 17).to_lowercase();
        let (_, r) = app.get(&format!("/api/v1/cases?national_id={nid}"), &c.token).await;
        assert_eq!(ids(&r), vec![o["id"].as_str().unwrap()]);
        let (_, r) = app.get("/api/v1/cases?phone=13800138001", &c.token).await;
        assert!(ids(&r).is_empty());
        // Partial values do not match: search is exact.
        let (_, r) = app.get("/api/v1/cases?phone=1380013", &c.token).await;
        assert!(ids(&r).is_empty());
        // Another coordinator's search finds nothing of these.
        let other = app.user("coordinator", None).await;
        let (_, r) = app.get("/api/v1/cases?phone=13800138000", &other.token).await;
        assert!(ids(&r).is_empty());
        let (status, r) = app.get("/api/v1/cases?program=kidney", &c.token).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(r["error"]["fields"]["program"].is_string());
        let (status, _) = app.get("/api/v1/cases?limit=abc", &c.token).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (_, r) = app.get("/api/v1/cases?program=organ", &c.token).await;
        assert_eq!(ids(&r), vec![o["id"].as_str().unwrap()]);
    }

    async fn listings_are_paginated(app) {
        let c = app.user("coordinator", None).await;
        let mut made = Vec::new();
        for i in 0..5 {
            let v = app.create_case(&c.token, marrow_case(&format!("Donor {i}"), &format!("1370000000{i}"))).await;
            made.push(v["id"].as_str().unwrap().to_string());
        }
        let mut seen = Vec::new();
        let mut path = "/api/v1/cases?limit=2".to_string();
        loop {
            let (status, page) = app.get(&path, &c.token).await;
            assert_eq!(status, StatusCode::OK);
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 2);
            seen.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_string()));
            match page["next_cursor"].as_str() {
                Some(cur) => path = format!("/api/v1/cases?limit=2&cursor={cur}"),
                None => break,
            }
        }
        assert_eq!(seen, made);
        assert_eq!(app.get("/api/v1/cases?limit=0", &c.token).await.0, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(app.get("/api/v1/cases?limit=201", &c.token).await.0, StatusCode::UNPROCESSABLE_ENTITY);
    }

    async fn patch_merges_validates_and_moves_the_search_terms(app) {
        let c = app.user("coordinator", None).await;
        let case = app.create_case(&c.token, marrow_case("王五", "13700137000")).await;
        let path = format!("/api/v1/cases/{}", case["id"].as_str().unwrap());
        let (status, got) = app
            .patch(&path, &c.token, json!({"donor": {"phone": "13600136000", "email": "w5@example.org"}, "notes": "called, doing well"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{got}");
        assert_eq!(got["donor"]["phone"], "13600136000");
        assert_eq!(got["donor"]["full_name"], "王五");
        assert_eq!(got["notes"], "called, doing well");
        let (_, r) = app.get("/api/v1/cases?phone=13700137000", &c.token).await;
        assert_eq!(r["items"], json!([]));
        let (_, r) = app.get("/api/v1/cases?phone=13600136000", &c.token).await;
        assert_eq!(r["items"].as_array().unwrap().len(), 1);

        // Invalid patches change nothing.
        for (body, field) in [
            (json!({"donor": {"birth_date": "2025-02-30"}}), "donor.birth_date"),
            (json!({"program": "organ"}), "program"),
            (json!({"status": "erased"}), "status"),
            (json!({"donation": {"date": "2999-01-01"}}), "donation.date"),
            (json!({"donor": {"deceased": true}}), "donor.death_date"),
            // A field that does not exist cannot be cleared either (it vanished in the merge).
            (json!({"nickname": null}), "nickname"),
            (json!({"donor": {"nickname": null}}), "donor.nickname"),
        ] {
            let (status, resp) = app.patch(&path, &c.token, body).await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{resp}");
            assert!(resp["error"]["fields"][field].is_string(), "{field}: {resp}");
        }
        let (_, again) = app.get(&path, &c.token).await;
        assert_eq!(again["donor"], got["donor"]);
        assert_eq!(again["notes"], got["notes"]);

        // null clears an optional field; closing is a status change.
        let (status, got) = app.patch(&path, &c.token, json!({"notes": null, "status": "closed"})).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(got["notes"], Value::Null);
        assert_eq!(got["status"], "closed");
        let (_, r) = app.get("/api/v1/cases?status=closed", &c.token).await;
        assert_eq!(r["items"].as_array().unwrap().len(), 1);
    }

    async fn contacts_are_created_patched_validated_and_searchable(app) {
        let c = app.user("coordinator", None).await;
        let case = app.create_case(&c.token, organ_case(&tag())).await;
        let id = case["id"].as_str().unwrap();
        let (status, e) = app
            .post(&format!("/api/v1/cases/{id}/contacts"), &c.token,
                  json!({"full_name": "陈女士", "relationship": "spouse", "preferred_channel": "email",
                         "timezone": "Mars/Olympus"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(e["error"]["fields"]["email"].is_string() && e["error"]["fields"]["timezone"].is_string(), "{e}");
        let (status, contact) = app
            .post(&format!("/api/v1/cases/{id}/contacts"), &c.token,
                  json!({"full_name": "陈女士", "relationship": "spouse", "phone": "13512345678",
                         "preferred_channel": "sms", "language": "zh-CN"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{contact}");
        assert_eq!(contact["timezone"], "Asia/Shanghai");
        let cid = contact["id"].as_str().unwrap();
        let (status, patched) = app
            .patch(&format!("/api/v1/contacts/{cid}"), &c.token,
                   json!({"opted_out": true, "do_not_contact_until": "2027-01-01", "timezone": "Europe/Berlin"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{patched}");
        assert_eq!(patched["opted_out"], true);
        assert_eq!(patched["do_not_contact_until"], "2027-01-01");
        assert_eq!(patched["full_name"], "陈女士");
        let (status, _) = app
            .patch(&format!("/api/v1/contacts/{cid}"), &c.token, json!({"preferred_channel": "fax"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let (_, got) = app.get(&format!("/api/v1/cases/{id}"), &c.token).await;
        assert_eq!(got["contacts"][0]["id"], cid);
        assert_eq!(got["contacts"][0]["preferred_channel"], "sms");
        // A family member's phone finds the case.
        let (_, r) = app.get("/api/v1/cases?phone=13512345678", &c.token).await;
        assert_eq!(r["items"][0]["id"], id);
        let other = app.user("coordinator", None).await;
        assert_eq!(
            app.patch(&format!("/api/v1/contacts/{cid}"), &other.token, json!({"opted_out": false})).await.0,
            StatusCode::NOT_FOUND
        );
    }

    async fn openapi_describes_every_api_route(app) {
        let (status, doc) = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
        assert_eq!(status, StatusCode::OK);
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in [
            ("/api/v1/auth/login", "post"), ("/api/v1/auth/logout", "post"), ("/api/v1/me", "get"),
            ("/api/v1/users", "post"), ("/api/v1/users", "get"), ("/api/v1/users/{id}", "patch"),
            ("/api/v1/cases", "post"), ("/api/v1/cases", "get"), ("/api/v1/cases/{id}", "get"),
            ("/api/v1/cases/{id}", "patch"), ("/api/v1/cases/{id}/assign", "post"),
            ("/api/v1/cases/{id}/contacts", "post"), ("/api/v1/contacts/{id}", "patch"),
        ] {
            assert!(paths.get(path).and_then(|p| p.get(method)).is_some(), "{method} {path}");
        }
        assert!(doc["components"]["schemas"]["CaseInput"].is_object());
        // Enumerations list the values the API takes and answers, not the Rust names.
        assert_eq!(doc["components"]["schemas"]["Program"]["enum"], json!(["marrow", "organ", "body"]));
        assert_eq!(doc["components"]["schemas"]["Role"]["enum"],
                   json!(["admin", "supervisor", "coordinator", "ethics_reviewer", "volunteer", "family"]));
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                let params = op["parameters"].as_array().cloned().unwrap_or_default();
                // What the extractors answer is documented everywhere it can happen.
                if op["security"].as_array().is_some_and(|s| !s.is_empty()) {
                    assert!(responses.contains_key("401"), "401 on {method} {path}");
                }
                if path.contains('{') {
                    assert!(responses.contains_key("404"), "404 on {method} {path}");
                }
                if op["requestBody"]["content"].get("application/json").is_some() {
                    for s in ["400", "413", "422"] {
                        assert!(responses.contains_key(s), "{s} on {method} {path}");
                    }
                }
                // A parameter is in the path only if the path names it.
                for p in &params {
                    if p["in"] == "path" {
                        let name = p["name"].as_str().unwrap();
                        assert!(path.contains(&format!("{{{name}}}")), "{name} of {method} {path} is a query parameter");
                    }
                }
                for (status, r) in responses {
                    assert!(r["description"].as_str().is_some_and(|d| !d.is_empty()), "{status} of {method} {path} is described");
                }
            }
        }
        // Every operation the schemathesis configuration names is one of the document's, and
        // says what it overrides (a bare filter makes schemathesis refuse the whole file).
        let config = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/schemathesis.toml")).unwrap();
        let mut blocks = config.split("[[operations]]").skip(1).peekable();
        assert!(blocks.peek().is_some(), "schemathesis.toml names no operation");
        for block in blocks {
            let settings: Vec<&str> = block
                .lines()
                .map(str::trim)
                .take_while(|l| !l.starts_with('['))
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .collect();
            let name = settings
                .iter()
                .find_map(|l| l.strip_prefix("include-name = \""))
                .and_then(|n| n.strip_suffix('"'))
                .unwrap_or_else(|| panic!("an operation without include-name: {block}"));
            let (method, path) = name.split_once(' ').unwrap();
            assert!(paths.get(path).and_then(|p| p.get(method.to_lowercase())).is_some(), "schemathesis.toml names {name}, which the document lacks");
            assert!(settings.iter().any(|l| !l.starts_with("include-")), "schemathesis.toml: {name} overrides nothing");
        }
        let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
        assert_eq!((status, body), (StatusCode::OK, json!("ok")));
        let (status, body) = app.call(Method::GET, "/metrics", None, None).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.as_str().unwrap().contains("donorcare_http_requests_total"));
    }
}
