//! Memorial events in the pages over HTTP: planning one with the one form convention (the API's
//! names, 422 with the values kept and each message beside its field, nothing saved, 303,
//! CSRF), inviting from the event and from a case's page, recording a reply, the names list
//! that hides a name without publicity consent, the supervisor's engraver sheet, and the
//! family answering its own invitation.

use axum::http::{header, StatusCode};
use chrono::{Duration, Utc};
use serde_json::json;

use crate::helpers::{organ_case, tag, TestApp, TestUser};
use crate::pages::{field, form, hidden, page, page_session, raw};
use crate::pages_care::body;

/// An organ case of `coord` with a spouse (portal) who has a contact consent: (case, contact).
async fn family_case(app: &TestApp, coord: &TestUser) -> (String, String) {
    let case = app.create_case(&coord.token, organ_case(&tag())).await;
    let case = case["id"].as_str().unwrap().to_string();
    let (_, c) = app
        .post(
            &format!("/api/v1/cases/{case}/contacts"),
            &coord.token,
            json!({"full_name": format!("Spouse{}", tag()), "relationship": "spouse",
                   "phone": "13800001111", "preferred_channel": "portal"}),
        )
        .await;
    let contact = c["id"].as_str().unwrap().to_string();
    let (s, b) = app
        .post(
            &format!("/api/v1/cases/{case}/consents"),
            &coord.token,
            json!({"kind": "contact", "subject": contact, "given_by": contact,
                   "method": "electronic", "document": "contact-zh-CN-v1",
                   "signed_at": "2025-04-01"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    (case, contact)
}

async fn events(app: &TestApp, token: &str) -> Vec<serde_json::Value> {
    let (_, list) = app.get("/api/v1/memorial-events", token).await;
    list["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planning_an_event_keeps_values_names_bad_fields_and_saves_nothing_until_good() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let c = app.user("coordinator", Some("yinzhou")).await;
    let jar = page_session(&app, &c.username).await;
    let (s, html) = page(&app, "/memorials/new", &jar).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("<html lang=\"zh-CN\""));
    let csrf = hidden(&html, "csrf");
    for name in [
        "kind",
        "title",
        "program",
        "starts_at",
        "place",
        "details",
        "reply_by",
        "reminder_days",
    ] {
        assert!(html.contains(&format!("name=\"{name}\"")), "{name}");
    }
    assert!(field(&html, "starts_at").contains("type=\"datetime-local\""));

    let day = (Utc::now() + Duration::days(30)).date_naive();
    let bad = body(&[
        ("csrf", &csrf),
        ("kind", "qingming"),
        ("title", ""),
        ("program", ""),
        ("starts_at", "2020-04-04T09:30"),
        ("place", "福泉山纪念园"),
        ("details", ""),
        ("reply_by", ""),
        ("reminder_days", "45"),
    ]);
    let (s, _, html) = raw(&app, form("/memorials/new", &jar, &bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    for name in ["title", "starts_at", "reminder_days"] {
        let f = field(&html, name);
        assert!(f.contains("aria-invalid=\"true\""), "{name}: {f}");
        assert!(f.contains("aria-describedby="), "{name}: {f}");
    }
    assert!(
        field(&html, "place").contains("value=\"福泉山纪念园\""),
        "kept"
    );
    assert!(field(&html, "kind").contains("value=\"qingming\" selected"));
    assert!(
        !field(&html, "starts_at").contains("must be"),
        "a zh-CN page shows no English: {}",
        field(&html, "starts_at")
    );
    assert!(events(&app, &c.token).await.is_empty(), "nothing saved");

    let good = |csrf: &str| {
        body(&[
            ("csrf", csrf),
            ("kind", "memorial_wall"),
            ("title", "纪念墙落成仪式"),
            ("program", "body"),
            ("starts_at", &format!("{day}T10:00")),
            ("place", "医学院纪念园"),
            ("details", "请在东门集合"),
            ("reply_by", &(day - Duration::days(7)).to_string()),
            ("reminder_days", "2"),
        ])
    };
    let (s, _, _) = raw(&app, form("/memorials/new", &jar, &good("forged"))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, h, _) = raw(&app, form("/memorials/new", &jar, &good(&csrf))).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let saved = events(&app, &c.token).await;
    assert_eq!(saved.len(), 1);
    let id = saved[0]["id"].as_str().unwrap();
    assert_eq!(h[header::LOCATION], format!("/memorials/{id}"));
    assert_eq!(saved[0]["program"], "body");
    assert_eq!(saved[0]["reminder_days"], 2);
    assert_eq!(saved[0]["starts_local"], format!("{day}T10:00"));

    let (s, html) = page(&app, &format!("/memorials/{id}"), &jar).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("纪念墙落成仪式") && html.contains("医学院纪念园"));
    let (s, html) = page(&app, "/memorials", &jar).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains(&format!("/memorials/{id}")), "listed: {html}");

    // The edit form is filled in; the change is saved and 303s back.
    let edit = format!("/memorials/{id}/edit");
    let (_, html) = page(&app, &edit, &jar).await;
    assert!(field(&html, "starts_at").contains(&format!("value=\"{day}T10:00\"")));
    let changed = good(&csrf).replace(
        &format!("place={}", crate::pages::enc("医学院纪念园")),
        &format!("place={}", crate::pages::enc("新礼堂")),
    );
    let (s, h, html) = raw(&app, form(&edit, &jar, &changed)).await;
    assert_eq!(s, StatusCode::SEE_OTHER, "{html}");
    assert_eq!(h[header::LOCATION], format!("/memorials/{id}"));
    assert_eq!(events(&app, &c.token).await[0]["place"], "新礼堂");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn families_are_invited_from_the_event_and_the_case_page_and_replies_are_recorded() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let c = app.user("coordinator", Some("yinzhou")).await;
    let (case, _) = family_case(&app, &c).await;
    let (second, _) = family_case(&app, &c).await;
    let day = (Utc::now() + Duration::days(20)).date_naive();
    let (_, e) = app
        .post(
            "/api/v1/memorial-events",
            &c.token,
            json!({"kind": "qingming", "title": "清明缅怀", "place": "福泉山",
                   "starts_at": format!("{day}T09:30")}),
        )
        .await;
    let id = e["id"].as_str().unwrap().to_string();
    let jar = page_session(&app, &c.username).await;

    // From the case page: the event ahead, and a button that invites this case alone.
    let (s, html) = page(&app, &format!("/cases/{case}"), &jar).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("id=\"memorials\""), "{html}");
    let csrf = hidden(&html, "csrf");
    assert!(html.contains(&format!("action=\"/memorials/{id}/invitations\"")));
    let (s, h, _) = raw(
        &app,
        form(
            &format!("/memorials/{id}/invitations"),
            &jar,
            &body(&[("csrf", &csrf), ("case_id", &case)]),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], format!("/cases/{case}#memorials"));
    let (_, html) = page(&app, &format!("/cases/{case}"), &jar).await;
    assert!(
        !html.contains(&format!("action=\"/memorials/{id}/invitations\"")),
        "invited: no second button"
    );

    // From the event: everyone else.
    let (s, h, _) = raw(
        &app,
        form(
            &format!("/memorials/{id}/invitations"),
            &jar,
            &body(&[("csrf", &csrf)]),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let to = h[header::LOCATION].to_str().unwrap().to_string();
    assert!(to.contains("invited=1&already=1"), "{to}");
    let (_, html) = page(&app, &to, &jar).await;
    assert!(
        html.contains(&format!("/cases/{second}#memorials")),
        "{html}"
    );

    // Record a reply heard on the phone, with the form convention.
    let (_, g) = app
        .get(
            &format!("/api/v1/memorial-events/{id}/invitations"),
            &c.token,
        )
        .await;
    let inv = g["items"][0]["id"].as_str().unwrap().to_string();
    let reply = format!("/memorial-invitations/{inv}/reply");
    let (s, html) = page(&app, &reply, &jar).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let bad = body(&[
        ("csrf", &csrf),
        ("reply", "coming"),
        ("party_size", ""),
        ("needs", "轮椅"),
    ]);
    let (s, _, html) = raw(&app, form(&reply, &jar, &bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(field(&html, "party_size").contains("aria-invalid=\"true\""));
    assert!(html.contains("轮椅"), "the needs are kept");
    let good = bad.replace("party_size=", "party_size=2");
    let (s, h, _) = raw(&app, form(&reply, &jar, &good)).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], format!("/memorials/{id}#guests"));
    let (_, ev) = app
        .get(&format!("/api/v1/memorial-events/{id}"), &c.token)
        .await;
    assert_eq!(ev["head_count"]["people"], 2);

    let guest_list = |html: &str| -> String {
        html[html.find("id=\"guests\"").unwrap()..html.find("id=\"names\"").unwrap()].to_string()
    };
    // The guest list by reply: the family who needs help on the day, then those yet to reply,
    // each filter with its count and the current one marked.
    let replied = g["items"][0]["case_id"].as_str().unwrap().to_string();
    let waiting = if replied == case { &second } else { &case };
    let (s, html) = page(&app, &format!("/memorials/{id}?reply=needs"), &jar).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let list = guest_list(&html);
    assert!(
        list.contains(&format!("/cases/{replied}#memorials")),
        "{list}"
    );
    assert!(
        !list.contains(&format!("/cases/{waiting}#memorials")),
        "{list}"
    );
    assert!(list.contains("轮椅"), "{list}");
    assert!(
        list.contains(&format!("href=\"/memorials/{id}?reply&#x3D;needs#guests\" aria-current=\"page\">当天需要协助 <span class=\"count\">1</span>")),
        "{list}"
    );
    let (_, html) = page(&app, &format!("/memorials/{id}?reply=no_reply"), &jar).await;
    let list = guest_list(&html);
    assert!(
        list.contains(&format!("/cases/{waiting}#memorials")),
        "{list}"
    );
    assert!(
        !list.contains(&format!("/cases/{replied}#memorials")),
        "{list}"
    );
    let (_, html) = page(&app, &format!("/memorials/{id}?reply=not_coming"), &jar).await;
    assert!(
        html.contains("这里暂时没有家庭。"),
        "an empty filter says so gently"
    );

    // The names list hides a name with no publicity consent, and only a supervisor has the
    // engraver's sheet.
    let (s, _, _) = raw(
        &app,
        form(
            &format!("/memorials/{id}/names"),
            &jar,
            &body(&[("csrf", &csrf), ("case_id", &case)]),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (_, c_case) = app.get(&format!("/api/v1/cases/{case}"), &c.token).await;
    let name = c_case["donor"]["full_name"].as_str().unwrap().to_string();
    let (_, html) = page(&app, &format!("/memorials/{id}"), &jar).await;
    let names = &html[html.find("id=\"names\"").unwrap()..];
    assert!(!names.contains(&name), "no consent, no name: {names}");
    let (s, _) = page(&app, &format!("/memorials/{id}/names/print"), &jar).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let sup = app.user("supervisor", Some("yinzhou")).await;
    let sjar = page_session(&app, &sup.username).await;
    let (s, html) = page(&app, &format!("/memorials/{id}/names/print"), &sjar).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(!html.contains(&name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_answers_its_invitation_in_the_portal() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let c = app.user("coordinator", Some("yinzhou")).await;
    let (_, contact) = family_case(&app, &c).await;
    let day = (Utc::now() + Duration::days(20)).date_naive();
    let (_, e) = app
        .post(
            "/api/v1/memorial-events",
            &c.token,
            json!({"kind": "qingming", "title": "清明缅怀", "place": "福泉山",
                   "starts_at": format!("{day}T09:30"),
                   "reply_by": (day - Duration::days(3)).to_string()}),
        )
        .await;
    let id = e["id"].as_str().unwrap().to_string();
    app.post(
        &format!("/api/v1/memorial-events/{id}/invitations"),
        &c.token,
        json!({}),
    )
    .await;
    let (username, _) = app.family_account(&c.token, &contact).await;
    let jar = page_session(&app, &username).await;

    let (s, html) = page(&app, "/me/memorials", &jar).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("清明缅怀") && html.contains("福泉山"),
        "{html}"
    );
    let needle = "href=\"/me/memorials/";
    let start = html.find(needle).expect("a reply link") + needle.len();
    let inv = html[start..start + 36].to_string();
    let reply = format!("/me/memorials/{inv}/reply");
    let (s, html) = page(&app, &reply, &jar).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let csrf = hidden(&html, "csrf");
    for name in ["reply", "party_size", "needs"] {
        assert!(html.contains(&format!("name=\"{name}\"")), "{name}");
    }

    let bad = body(&[
        ("csrf", &csrf),
        ("reply", "coming"),
        ("party_size", "40"),
        ("needs", "需要接送"),
    ]);
    let (s, _, html) = raw(&app, form(&reply, &jar, &bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    let f = field(&html, "party_size");
    assert!(
        f.contains("aria-invalid=\"true\"") && f.contains("value=\"40\""),
        "{f}"
    );
    let (s, _, _) = raw(&app, form(&reply, &jar, &bad.replace(&csrf, "forged"))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let good = bad.replace("party_size=40", "party_size=2");
    let (s, h, _) = raw(&app, form(&reply, &jar, &good)).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], format!("/me/memorials#i-{inv}"));
    let (_, html) = page(&app, "/me/memorials", &jar).await;
    assert!(html.contains("2 人"), "the reply is shown: {html}");
    let (_, ev) = app
        .get(&format!("/api/v1/memorial-events/{id}"), &c.token)
        .await;
    assert_eq!(ev["head_count"]["coming"], 1);

    // Staff pages are not the family's, and another family's invitation is not found.
    let (s, _) = page(&app, "/memorials", &jar).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, _) = page(
        &app,
        "/me/memorials/01a2511b-0000-7000-8000-000000000000/reply",
        &jar,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}
