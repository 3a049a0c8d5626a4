//! Marrow donors' adverse events in the pages over HTTP: the form's convention (the API's
//! names, 422 with the values kept and each message beside its field, nothing saved, 303,
//! CSRF), marrow cases only, the list across cases and the registry's CSV download.

use axum::http::{header, StatusCode};
use serde_json::json;

use crate::helpers::{marrow_case, organ_case, tag, TestApp};
use crate::pages::{field, form, get, hidden, page, page_session, raw};
use crate::pages_care::body;

async fn events(app: &TestApp, token: &str, case: &str) -> Vec<serde_json::Value> {
    let (_, list) = app
        .get(&format!("/api/v1/cases/{case}/adverse-events"), token)
        .await;
    list["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adverse_event_form_keeps_values_names_bad_fields_and_saves_nothing_until_good() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let c = app.user("coordinator", Some("yinzhou")).await;
    let case = app
        .create_case(&c.token, marrow_case(&tag(), "13900006666"))
        .await;
    let id = case["id"].as_str().unwrap();
    let jar = page_session(&app, &c.username).await;

    // The case page has the section, the dates after the collection and the link.
    let (s, html) = page(&app, &format!("/cases/{id}"), &jar).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("id=\"adverse-events\""), "{html}");
    assert!(html.contains(&format!("/cases/{id}/adverse-events/new")));
    assert!(
        html.contains("2025") && html.contains("11"),
        "blood until 2025-11-20: {html}"
    );

    let new = format!("/cases/{id}/adverse-events/new");
    let (s, html) = page(&app, &new, &jar).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("<html lang=\"zh-CN\""));
    let csrf = hidden(&html, "csrf");
    for name in [
        "occurred_on",
        "category",
        "grade",
        "relation",
        "outcome",
        "reported_on",
        "description",
    ] {
        assert!(html.contains(&format!("name=\"{name}\"")), "{name}");
    }

    // Bad: a date in the future, a grade out of range, no description.
    let bad = body(&[
        ("csrf", &csrf),
        ("occurred_on", "2999-01-01"),
        ("category", "pain"),
        ("grade", "9"),
        ("relation", "related"),
        ("outcome", "ongoing"),
        ("reported_on", ""),
        ("description", ""),
    ]);
    let (s, _, html) = raw(&app, form(&new, &jar, &bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    for name in ["occurred_on", "grade", "description"] {
        let f = field(&html, name);
        assert!(f.contains("aria-invalid=\"true\""), "{name}: {f}");
        assert!(f.contains("aria-describedby="), "{name}: {f}");
    }
    assert!(
        field(&html, "occurred_on").contains("value=\"2999-01-01\""),
        "the value is kept"
    );
    assert!(
        field(&html, "outcome").contains("value=\"ongoing\" selected"),
        "{}",
        field(&html, "outcome")
    );
    assert!(events(&app, &c.token, id).await.is_empty(), "nothing saved");

    // Without the CSRF token: refused.
    let good = |csrf: &str| {
        body(&[
            ("csrf", csrf),
            ("occurred_on", "2025-05-21"),
            ("category", "bleeding"),
            ("grade", "2"),
            ("relation", "possibly"),
            ("outcome", "recovering"),
            ("reported_on", ""),
            ("description", "Nosebleed after collection"),
        ])
    };
    let (s, _, _) = raw(&app, form(&new, &jar, &good("wrong"))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);

    let (s, h, _) = raw(&app, form(&new, &jar, &good(&csrf))).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], format!("/cases/{id}#adverse-events"));
    let saved = events(&app, &c.token, id).await;
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0]["category"], "bleeding");
    let (_, html) = page(&app, &format!("/cases/{id}"), &jar).await;
    assert!(html.contains("Nosebleed after collection"), "{html}");

    // The edit form: filled in, and a change with a reporting date.
    let eid = saved[0]["id"].as_str().unwrap();
    let edit = format!("/adverse-events/{eid}/edit");
    let (s, html) = page(&app, &edit, &jar).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        field(&html, "grade").contains("value=\"2\" checked"),
        "{}",
        field(&html, "grade")
    );
    let change = body(&[
        ("csrf", &csrf),
        ("occurred_on", "2025-05-21"),
        ("category", "bleeding"),
        ("grade", "2"),
        ("relation", "possibly"),
        ("outcome", "resolved"),
        ("reported_on", "2025-05-20"),
        ("description", "Nosebleed after collection"),
    ]);
    let (s, _, html) = raw(&app, form(&edit, &jar, &change)).await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "reported before it happened: {html}"
    );
    assert!(field(&html, "reported_on").contains("aria-invalid=\"true\""));
    let change = change.replace("reported_on=2025-05-20", "reported_on=2025-05-28");
    let (s, _, _) = raw(&app, form(&edit, &jar, &change)).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let saved = events(&app, &c.token, id).await;
    assert_eq!(saved[0]["outcome"], "resolved");
    assert_eq!(saved[0]["reported_on"], "2025-05-28");

    // The list across cases, filtered; a bad filter is named.
    let (s, html) = page(&app, "/adverse-events?grade=2&lang=en", &jar).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains(saved[0]["reference"].as_str().unwrap()),
        "{html}"
    );
    assert!(!html.contains("Nosebleed"), "no descriptions in the list");
    assert!(
        !html.contains("adverse-events.csv"),
        "coordinators do not export"
    );
    let (s, html) = page(&app, "/adverse-events?from=2025-06-01&to=2025-05-01", &jar).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(field(&html, "to").contains("aria-invalid=\"true\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organ_cases_have_no_adverse_events_and_supervisors_download_the_registry_csv() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let c = app.user("coordinator", Some("yinzhou")).await;
    let organ = app.create_case(&c.token, organ_case(&tag())).await;
    let oid = organ["id"].as_str().unwrap();
    let jar = page_session(&app, &c.username).await;
    let (s, html) = page(&app, &format!("/cases/{oid}"), &jar).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        !html.contains("id=\"adverse-events\""),
        "no section on an organ case"
    );
    let (s, _) = page(&app, &format!("/cases/{oid}/adverse-events/new"), &jar).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);

    let marrow = app
        .create_case(&c.token, marrow_case(&tag(), "13900007777"))
        .await;
    let mid = marrow["id"].as_str().unwrap();
    let (s, made) = app.post(&format!("/api/v1/cases/{mid}/adverse-events"), &c.token,
        json!({"occurred_on": "2025-05-25", "category": "infection", "grade": 3, "relation": "unlikely",
               "outcome": "ongoing", "description": "Fever a week after"})).await;
    assert_eq!(s, StatusCode::CREATED, "{made}");
    let sup = app.user("supervisor", Some("yinzhou")).await;
    let jar = page_session(&app, &sup.username).await;
    let (s, html) = page(&app, "/adverse-events?from=2025-05-01", &jar).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("/adverse-events.csv?from"),
        "the link keeps the dates: {html}"
    );
    let (s, h, csv) = raw(&app, get("/adverse-events.csv?from=2025-05-01", &jar)).await;
    assert_eq!(s, StatusCode::OK, "{csv}");
    assert!(h[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .starts_with("attachment"));
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(
        csv.contains(",pbsc,5,infection,3,unlikely,ongoing,\r\n"),
        "{csv}"
    );
    assert!(!csv.contains("Fever") && !csv.contains(mid), "{csv}");
}
