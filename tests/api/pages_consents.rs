//! Recording a consent in the browser: one multipart form with the API's fields and the signed
//! scan (`attachment`); the file is checked with the fields, so a bad file or a bad field
//! refuses the whole form, keeps the values and saves nothing.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{marrow_case, organ_case, tag, TestApp};
use crate::pages::{field, hidden, page, page_session, raw};

const BOUNDARY: &str = "----donorcare-test-boundary";

/// A multipart form: text fields, then at most one file (name, file name, type, bytes).
fn multipart(
    path: &str,
    jar: &str,
    fields: &[(&str, &str)],
    file: Option<(&str, &str, &str, &[u8])>,
) -> Request<Body> {
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some((name, filename, ty, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {ty}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("cookie", jar)
        .header(
            header::CONTENT_TYPE,
            format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(Body::from(body))
        .unwrap()
}

async fn consents_of(app: &TestApp, token: &str, case: &str) -> Vec<Value> {
    let (s, b) = app
        .get(&format!("/api/v1/consents?case_id={case}"), token)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"].as_array().cloned().unwrap_or_default()
}

const PDF: &[u8] = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n";

on_both_backends! {
    async fn a_consent_is_recorded_with_its_signed_scan_in_one_form(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        let other = app.user("coordinator", Some("yinzhou")).await;
        let case = app.create_case(&c.token, organ_case(&tag())).await;
        let id = case["id"].as_str().unwrap().to_string();
        let (s, contact) = app
            .post(&format!("/api/v1/cases/{id}/contacts"), &c.token,
                  json!({"full_name": "李女士", "relationship": "spouse", "phone": "13800002222",
                         "preferred_channel": "sms"}))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{contact}");
        let contact = contact["id"].as_str().unwrap().to_string();
        let path = format!("/cases/{id}/consents/new");

        // The form: the API's names, the case's people, a file field, sent as multipart.
        let jar = page_session(&app, &c.username).await;
        let (s, html) = page(&app, &path, &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("enctype=\"multipart/form-data\""), "{html}");
        for name in ["kind", "subject", "given_by", "method", "document", "signed_at", "expires_at",
                     "witness", "scope.channels", "scope.organs", "refusal", "attachment"] {
            assert!(html.contains(&format!("name=\"{name}\"")), "{name} in {html}");
        }
        assert!(html.contains(&format!("value=\"{contact}\"")) && html.contains("李女士"), "{html}");
        assert!(field(&html, "attachment").contains("type=\"file\"")
            && field(&html, "attachment").contains("<label"), "{html}");
        let csrf = hidden(&html, "csrf");
        // Another coordinator's case is not there for them.
        let other_jar = page_session(&app, &other.username).await;
        let (s, _) = page(&app, &path, &other_jar).await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        let good: Vec<(&str, &str)> = vec![
            ("csrf", csrf.as_str()), ("kind", "contact"), ("subject", contact.as_str()),
            ("given_by", contact.as_str()), ("method", "written"), ("document", "contact-zh-CN-v1"),
            ("signed_at", "2026-03-01"), ("witness", "王社工"), ("scope.channels", "sms"),
            ("scope.channels", "letter"),
        ];

        // A text file named .png: refused beside the file field, the values kept, nothing saved.
        let (s, _, html) = raw(&app, multipart(&path, &jar, &good,
            Some(("attachment", "scan.png", "image/png", b"just some words, not a picture")))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        let file = field(&html, "attachment");
        assert!(file.contains("aria-invalid=\"true\"") && file.contains("f-attachment-error")
            && file.contains("PDF"), "{file}");
        assert!(field(&html, "witness").contains("value=\"王社工\""), "values kept");
        let channels = field(&html, "scope.channels");
        assert!(channels.contains("value=\"sms\" checked") && channels.contains("value=\"letter\" checked")
            && !channels.contains("value=\"email\" checked"), "{channels}");
        assert!(html.contains("请重新选择扫描件"), "the file must be chosen again: {html}");
        assert!(consents_of(&app, &c.token, &id).await.is_empty(), "nothing saved");

        // A bad field with a good file: the field is named, and still nothing is saved (no scan
        // without its record, no record without its scan).
        let mut bad = good.clone();
        bad.retain(|(k, _)| *k != "signed_at" && *k != "kind");
        bad.push(("signed_at", "2026-02-30"));
        let (s, _, html) = raw(&app, multipart(&path, &jar, &bad, Some(("attachment", "scan.pdf", "application/pdf", PDF)))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field(&html, "kind").contains("aria-invalid=\"true\""), "{html}");
        assert!(field(&html, "signed_at").contains("aria-invalid=\"true\"") && field(&html, "signed_at").contains("value=\"2026-02-30\""), "{html}");
        assert!(!field(&html, "attachment").contains("aria-invalid"), "the file was fine");
        assert!(consents_of(&app, &c.token, &id).await.is_empty(), "nothing saved");

        // Too large a file: the field says how large it may be.
        let mut big = PDF.to_vec();
        big.resize(10 * 1024 * 1024 + 1, b' ');
        let (s, _, html) = raw(&app, multipart(&path, &jar, &good, Some(("attachment", "big.pdf", "application/pdf", &big)))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field(&html, "attachment").contains("10 MB"), "{html}");
        assert!(consents_of(&app, &c.token, &id).await.is_empty(), "nothing saved");

        // Without the form's token: 403.
        let forged: Vec<(&str, &str)> = good.iter().filter(|(k, _)| *k != "csrf").copied().collect();
        let (s, _, _) = raw(&app, multipart(&path, &jar, &forged, Some(("attachment", "scan.pdf", "application/pdf", PDF)))).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        assert!(consents_of(&app, &c.token, &id).await.is_empty(), "nothing saved");

        // The good form: 303 to the case's consents; the record is the API's, scan attached.
        let (s, h, html) = raw(&app, multipart(&path, &jar, &good, Some(("attachment", "scan.pdf", "application/pdf", PDF)))).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{html}");
        assert_eq!(h[header::LOCATION], format!("/cases/{id}#consents").as_str());
        let list = consents_of(&app, &c.token, &id).await;
        assert_eq!(list.len(), 1, "{list:?}");
        let consent = list[0]["id"].as_str().unwrap().to_string();
        let (_, one) = app.get(&format!("/api/v1/consents/{consent}"), &c.token).await;
        assert_eq!((one["kind"].as_str(), one["subject"].as_str(), one["method"].as_str()),
                   (Some("contact"), Some(contact.as_str()), Some("written")), "{one}");
        assert_eq!(one["scope"]["channels"], json!(["sms", "letter"]), "{one}");
        assert_eq!(one["witness"], "王社工");
        let req = Request::builder()
            .uri(format!("/api/v1/consents/{consent}/attachment"))
            .header("authorization", format!("Bearer {}", c.token))
            .body(Body::empty())
            .unwrap();
        let (s, h, bytes) = raw(&app, req).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "application/pdf");
        assert_eq!(bytes.as_bytes(), PDF, "the scan comes back as it was sent");
        // The case page shows it.
        let (_, html) = page(&app, &format!("/cases/{id}"), &jar).await;
        let section = &html[html.find("id=\"consents\"").unwrap()..];
        assert!(section.contains("有效"), "{section}");
    }

    async fn a_consent_form_without_a_scan_records_a_verbal_consent(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        let case = app.create_case(&c.token, organ_case(&tag())).await;
        let id = case["id"].as_str().unwrap().to_string();
        let path = format!("/cases/{id}/consents/new");
        let jar = page_session(&app, &c.username).await;
        let (_, html) = page(&app, &path, &jar).await;
        let csrf = hidden(&html, "csrf");
        // A publicity consent: any ticked channels or organs are not its scope and are dropped.
        let fields = [("csrf", csrf.as_str()), ("kind", "publicity"), ("subject", "donor"),
                      ("given_by", "donor"), ("method", "verbal"), ("document", "publicity-zh-CN-v1"),
                      ("signed_at", "2019-01-05"), ("scope.channels", "sms")];
        let (s, _, html) = raw(&app, multipart(&path, &jar, &fields, Some(("attachment", "", "application/octet-stream", b"")))).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{html}");
        let list = consents_of(&app, &c.token, &id).await;
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0]["kind"], "publicity");
        assert!(list[0]["scope"].is_null(), "{list:?}");
        let consent = list[0]["id"].as_str().unwrap();
        let (s, _) = app.get(&format!("/api/v1/consents/{consent}/attachment"), &c.token).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "no scan was sent, none is stored");
    }

    async fn the_consent_forms_day_is_the_offices_day_not_utcs(app) {
        // 03:30 on 7 December in Shanghai is still 6 December in UTC.
        let early = chrono::DateTime::parse_from_rfc3339("2026-12-06T19:30:00Z").unwrap().to_utc();
        let at = app.sibling_at(early).await;
        let c = app.user("coordinator", Some("yinzhou")).await;
        let case = app.create_case(&c.token, marrow_case(&tag(), "13900007777")).await;
        let id = case["id"].as_str().unwrap().to_string();
        let path = format!("/cases/{id}/consents/new");
        let jar = page_session(&at, &c.username).await;
        let (_, html) = page(&at, &path, &jar).await;
        assert!(field(&html, "signed_at").contains("value=\"2026-12-07\""), "today in Shanghai: {html}");
        let csrf = hidden(&html, "csrf");
        let form = |day: &'static str| vec![("csrf", csrf.clone()), ("kind", "publicity".into()),
            ("subject", "donor".into()), ("given_by", "donor".into()), ("method", "verbal".into()),
            ("document", "publicity-zh-CN-v1".into()), ("signed_at", day.to_string())];
        let send = |fields: Vec<(&'static str, String)>| {
            let jar = jar.clone();
            let path = path.clone();
            let at = &at;
            async move {
                let f: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                raw(at, multipart(&path, &jar, &f, None)).await
            }
        };
        // Tomorrow there is still the future.
        let (s, _, html) = send(form("2026-12-08")).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field(&html, "signed_at").contains("aria-invalid=\"true\""), "{html}");
        // Today there is today: recorded, as the start of that day in Shanghai.
        let (s, _, html) = send(form("2026-12-07")).await;
        assert_eq!(s, StatusCode::SEE_OTHER, "{html}");
        let list = consents_of(&app, &c.token, &id).await;
        assert_eq!(list.len(), 1, "{list:?}");
        let signed = chrono::DateTime::parse_from_rfc3339(list[0]["signed_at"].as_str().unwrap()).unwrap();
        assert_eq!(signed.to_utc().to_rfc3339(), "2026-12-06T16:00:00+00:00", "{list:?}");
    }
}
