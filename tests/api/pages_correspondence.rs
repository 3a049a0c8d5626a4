//! Letters with recipients in the pages over HTTP: recording a letter and a correspondent by
//! the form convention (the API's names, 422 with values kept and each message beside its
//! field, nothing saved, 303, CSRF), the review page marking what identifies, release refused
//! with its reasons and then done, the family reading only the redacted text, and the printed
//! sheet naming neither the donor nor the case.

use axum::http::{header, StatusCode};
use serde_json::json;

use crate::helpers::{organ_case, tag, TestApp};
use crate::pages::{field, form, hidden, page, page_session, raw};
use crate::pages_care::body;

/// A coordinator's organ case with a contact and a correspondent: (coordinator, case JSON,
/// contact id, correspondent id).
async fn setup(app: &TestApp) -> (crate::helpers::TestUser, serde_json::Value, String, String) {
    let c = app.user("coordinator", Some("yinzhou")).await;
    let case = app.create_case(&c.token, organ_case(&tag())).await;
    let id = case["id"].as_str().unwrap();
    let (s, kin) = app
        .post(
            &format!("/api/v1/cases/{id}/contacts"),
            &c.token,
            json!({"full_name": "陈晓红", "relationship": "child", "phone": "13800001111",
                   "preferred_channel": "portal"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{kin}");
    let (s, p) = app
        .post(
            &format!("/api/v1/cases/{id}/correspondents"),
            &c.token,
            json!({"label": "受者 A", "role": "recipient"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{p}");
    (
        c,
        case.clone(),
        kin["id"].as_str().unwrap().to_string(),
        p["id"].as_str().unwrap().to_string(),
    )
}

async fn letters(app: &TestApp, token: &str, case: &str) -> Vec<serde_json::Value> {
    let (_, list) = app
        .get(&format!("/api/v1/cases/{case}/correspondence"), token)
        .await;
    list["items"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_letter_is_recorded_reviewed_and_passed_on_through_the_pages() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let (c, case, kin, recipient) = setup(&app).await;
    let id = case["id"].as_str().unwrap();
    let hospital = case["donation"]["hospital"].as_str().unwrap();
    let jar = page_session(&app, &c.username).await;

    let (s, html) = page(&app, &format!("/cases/{id}"), &jar).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("id=\"correspondence\""), "{html}");
    let new = format!("/cases/{id}/correspondence/new");
    assert!(html.contains(&new));

    let (s, html) = page(&app, &new, &jar).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains("<html lang=\"zh-CN\""));
    for name in [
        "correspondent_id",
        "direction",
        "author",
        "addressee",
        "received_on",
        "text",
        "label",
        "role",
        "reference",
        "consented_on",
    ] {
        assert!(html.contains(&format!("name=\"{name}\"")), "{name}");
    }
    let csrf = hidden(&html, "csrf");

    // Bad: a date in the future and no text; the chosen correspondent stays chosen.
    let bad = body(&[
        ("csrf", &csrf),
        ("correspondent_id", &recipient),
        ("direction", "to_family"),
        ("author", ""),
        ("addressee", &kin),
        ("received_on", "2999-01-01"),
        ("text", ""),
    ]);
    let (s, _, html) = raw(&app, form(&new, &jar, &bad)).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    for name in ["received_on", "text"] {
        let f = field(&html, name);
        assert!(
            f.contains("aria-invalid=\"true\"") && f.contains("aria-describedby="),
            "{name}: {f}"
        );
    }
    assert!(
        field(&html, "received_on").contains("value=\"2999-01-01\""),
        "the value is kept"
    );
    assert!(
        field(&html, "correspondent_id").contains(&format!("value=\"{recipient}\" selected")),
        "{}",
        field(&html, "correspondent_id")
    );
    assert!(!html.contains("must"), "no English on a Chinese page");
    assert!(
        letters(&app, &c.token, id).await.is_empty(),
        "nothing saved"
    );

    let text = format!("亲爱的陈晓红：我在{hospital}接受了移植，谢谢你们。");
    let good = |csrf: &str| {
        body(&[
            ("csrf", csrf),
            ("correspondent_id", &recipient),
            ("direction", "to_family"),
            ("author", ""),
            ("addressee", &kin),
            ("received_on", "2025-06-01"),
            ("text", &text),
        ])
    };
    let (s, _, _) = raw(&app, form(&new, &jar, &good("wrong"))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, h, _) = raw(&app, form(&new, &jar, &good(&csrf))).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let saved = letters(&app, &c.token, id).await;
    assert_eq!(saved.len(), 1);
    let lid = saved[0]["id"].as_str().unwrap().to_string();
    let show = format!("/correspondence/{lid}");
    assert_eq!(h[header::LOCATION], show.as_str());

    // The review page marks the name and the hospital and proposes a version without them.
    let (s, html) = page(&app, &show, &jar).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("<mark title=") && html.contains(&format!(">{hospital}</mark>")),
        "{html}"
    );
    let proposed = field(&html, "redacted_text");
    assert!(
        proposed.contains("［已隐去］") && !proposed.contains(hospital),
        "{proposed}"
    );

    // An empty version is refused beside its field; release is refused with its reasons.
    let (s, _, html) = raw(
        &app,
        form(
            &show,
            &jar,
            &body(&[("csrf", &csrf), ("redacted_text", "")]),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(field(&html, "redacted_text").contains("aria-invalid=\"true\""));
    let release = format!("/correspondence/{lid}/release");
    let (s, _, html) = raw(&app, form(&release, &jar, &body(&[("csrf", &csrf)]))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        html.contains("id=\"f-consent\"") && html.contains("id=\"f-correspondent\""),
        "{html}"
    );

    // A version that still names her stays refused, the text kept in its field.
    let named = "亲爱的陈晓红：谢谢你们。";
    let (s, _, _) = raw(
        &app,
        form(
            &show,
            &jar,
            &body(&[("csrf", &csrf), ("redacted_text", named)]),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (s, _, html) = raw(&app, form(&release, &jar, &body(&[("csrf", &csrf)]))).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        field(&html, "redacted_text").contains("aria-invalid=\"true\"")
            && field(&html, "redacted_text").contains(named)
    );

    // Both sides agree (the correspondent's date through its page), a clean version goes.
    let (s, b) = app.post(&format!("/api/v1/cases/{id}/consents"), &c.token,
        json!({"kind": "correspondence", "subject": kin, "given_by": kin, "method": "electronic",
               "document": "correspondence-zh-CN-v1", "signed_at": "2025-04-01"})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let edit = format!("/correspondents/{recipient}/edit");
    let (s, html) = page(&app, &edit, &jar).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let (s, _, html) = raw(
        &app,
        form(
            &edit,
            &jar,
            &body(&[
                ("csrf", &csrf),
                ("reference", ""),
                ("consented_on", ""),
                ("consent_withdrawn_on", "2025-05-01"),
            ]),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        field(&html, "consent_withdrawn_on").contains("aria-invalid=\"true\"")
            && field(&html, "consent_withdrawn_on").contains("value=\"2025-05-01\"")
    );
    let (s, h, _) = raw(
        &app,
        form(
            &edit,
            &jar,
            &body(&[
                ("csrf", &csrf),
                ("reference", ""),
                ("consented_on", "2025-05-01"),
                ("consent_withdrawn_on", ""),
            ]),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(
        h[header::LOCATION],
        format!("/cases/{id}/correspondence/new#correspondents")
    );
    let clean = "亲爱的［已隐去］：谢谢你们。";
    let (s, _, _) = raw(
        &app,
        form(
            &show,
            &jar,
            &body(&[("csrf", &csrf), ("redacted_text", clean)]),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    let (s, h, _) = raw(&app, form(&release, &jar, &body(&[("csrf", &csrf)]))).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], show.as_str());
    let (_, html) = page(&app, &show, &jar).await;
    assert!(
        !html.contains(&format!("action=\"{release}\"")),
        "no release form once released"
    );

    // An ethics reviewer follows the release to the consent that covered it, and reads no text.
    let ethics = app.user("ethics_reviewer", None).await;
    let ej = page_session(&app, &ethics.username).await;
    let (s, html) = page(&app, "/correspondence?status=released", &ej).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    let (_, consents) = app
        .get(
            &format!("/api/v1/consents?case_id={id}&kind=correspondence"),
            &c.token,
        )
        .await;
    let covering = consents["items"][0]["id"].as_str().unwrap();
    assert!(
        html.contains(&format!("/ethics/consents/{covering}")),
        "{html}"
    );
    assert!(
        !html.contains("谢谢你们") && !html.contains(&format!("href=\"{show}\"")),
        "{html}"
    );

    // The family reads the version passed on, and nothing of the original.
    let (username, _) = app.family_account(&c.token, &kin).await;
    let fam = page_session(&app, &username).await;
    let (s, html) = page(&app, "/me/letters", &fam).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(html.contains(clean) && html.contains("受者 A"), "{html}");
    assert!(
        !html.contains(hospital) && !html.contains(&recipient) && !html.contains("陈晓红"),
        "{html}"
    );
    let (s, _) = page(&app, &show, &fam).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_letter_to_the_recipient_names_neither_the_donor_nor_the_case() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let (c, case, kin, recipient) = setup(&app).await;
    let id = case["id"].as_str().unwrap();
    let donor = case["donor"]["full_name"].as_str().unwrap();
    let (s, b) = app.post(&format!("/api/v1/cases/{id}/consents"), &c.token,
        json!({"kind": "correspondence", "subject": kin, "given_by": kin, "method": "electronic",
               "document": "correspondence-en-v1", "signed_at": "2025-04-01"})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = app
        .patch(
            &format!("/api/v1/correspondents/{recipient}"),
            &c.token,
            json!({"consented_on": "2025-05-01"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, l) = app.post(&format!("/api/v1/cases/{id}/correspondence"), &c.token,
        json!({"correspondent_id": recipient, "direction": "to_recipient", "author": kin,
               "received_on": "2025-06-01", "text": format!("From {donor}'s daughter: thank you.")})).await;
    assert_eq!(s, StatusCode::CREATED, "{l}");
    let lid = l["id"].as_str().unwrap();
    let jar = page_session(&app, &c.username).await;
    let (s, _) = page(&app, &format!("/correspondence/{lid}/print"), &jar).await;
    assert_eq!(
        s,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not printable before release"
    );
    let (s, b) = app
        .patch(
            &format!("/api/v1/correspondence/{lid}"),
            &c.token,
            json!({"redacted_text": "From a grateful daughter: thank you."}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .post(
            &format!("/api/v1/correspondence/{lid}/release"),
            &c.token,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");

    let (s, html) = page(&app, &format!("/correspondence/{lid}"), &jar).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        html.contains(&format!("/correspondence/{lid}/print")),
        "{html}"
    );
    let (s, html) = page(&app, &format!("/correspondence/{lid}/print"), &jar).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("From a grateful daughter: thank you.") && html.contains("受者 A"),
        "{html}"
    );
    assert!(!html.contains(donor) && !html.contains(id), "{html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_member_writes_a_letter_from_the_portal() {
    let app = TestApp::spawn(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let (c, case, kin, recipient) = setup(&app).await;
    let id = case["id"].as_str().unwrap();
    let (username, _) = app.family_account(&c.token, &kin).await;
    let fam = page_session(&app, &username).await;

    // Until both agree, the page says so and has no form.
    let (s, html) = page(&app, "/me/letters/new", &fam).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(!html.contains("name=\"text\""), "{html}");
    let (s, b) = app.post(&format!("/api/v1/cases/{id}/consents"), &c.token,
        json!({"kind": "correspondence", "subject": kin, "given_by": kin, "method": "electronic",
               "document": "correspondence-zh-CN-v1", "signed_at": "2025-04-01"})).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    let (s, _) = app
        .patch(
            &format!("/api/v1/correspondents/{recipient}"),
            &c.token,
            json!({"consented_on": "2025-05-01"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK);

    let (s, html) = page(&app, "/me/letters/new", &fam).await;
    assert_eq!(s, StatusCode::OK, "{html}");
    assert!(
        html.contains("受者 A") && html.contains("name=\"text\""),
        "{html}"
    );
    let csrf = hidden(&html, "csrf");
    let new = "/me/letters/new";
    let (s, _, html) = raw(
        &app,
        form(
            new,
            &fam,
            &body(&[
                ("csrf", &csrf),
                ("correspondent_id", &recipient),
                ("text", ""),
            ]),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
    assert!(
        field(&html, "text").contains("aria-invalid=\"true\""),
        "{}",
        field(&html, "text")
    );
    assert!(
        html.contains(&format!("value=\"{recipient}\" checked")),
        "the choice is kept"
    );
    let good = |csrf: &str| {
        body(&[
            ("csrf", csrf),
            ("correspondent_id", &recipient),
            ("text", "谢谢你。"),
        ])
    };
    let (s, _, _) = raw(&app, form(new, &fam, &good("wrong"))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(
        letters(&app, &c.token, id).await.is_empty(),
        "nothing saved"
    );
    let (s, h, _) = raw(&app, form(new, &fam, &good(&csrf))).await;
    assert_eq!(s, StatusCode::SEE_OTHER);
    assert_eq!(h[header::LOCATION], "/me/letters?sent=1");
    let saved = letters(&app, &c.token, id).await;
    assert_eq!(saved.len(), 1);
    assert_eq!(saved[0]["status"], "received");
}
