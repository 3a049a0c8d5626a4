//! The honour roll (only names with a publicity consent in force) and certificates.

use axum::http::{header, StatusCode};
use serde_json::json;

use crate::helpers::{marrow_case, TestApp, TestUser};
use crate::pages::{get, page, page_session, raw};

/// A marrow case donated on `date`, with a publicity consent from the donor when `publicity`.
async fn donor(
    app: &TestApp,
    c: &TestUser,
    name: &str,
    phone: &str,
    date: &str,
    publicity: bool,
) -> (String, Option<String>) {
    let mut case = marrow_case(name, phone);
    case["donation"]["date"] = json!(date);
    let case = app.create_case(&c.token, case).await;
    let id = case["id"].as_str().unwrap().to_string();
    let consent = if publicity {
        let (s, k) = app.post(&format!("/api/v1/cases/{id}/consents"), &c.token,
            json!({"kind": "publicity", "subject": "donor", "given_by": "donor", "method": "written",
                   "document": "publicity-zh-CN-v1", "signed_at": date})).await;
        assert_eq!(s, StatusCode::CREATED, "{k}");
        Some(k["id"].as_str().unwrap().to_string())
    } else {
        None
    };
    (id, consent)
}

on_both_backends! {
    async fn the_honour_roll_names_only_donors_who_agreed(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        let (named, consent) = donor(&app, &c, "林小满", "13900005555", "2025-05-10", true).await;
        let (anonymous, _) = donor(&app, &c, "王芳", "13900006666", "2025-06-11", false).await;
        let (other_year, _) = donor(&app, &c, "张磊", "13900007777", "2024-03-03", true).await;

        let (s, roll) = app.get("/api/v1/honour-roll?year=2025", &c.token).await;
        assert_eq!(s, StatusCode::OK, "{roll}");
        let items = roll["entries"]["items"].as_array().unwrap();
        assert_eq!(items.len(), 1, "{roll}");
        assert_eq!((items[0]["case_id"].as_str(), items[0]["full_name"].as_str()),
            (Some(named.as_str()), Some("林小满")));
        assert_eq!(items[0]["donation_date"], "2025-05-10");
        assert!(!roll.to_string().contains("王芳") && !roll.to_string().contains(&anonymous));
        let (_, y24) = app.get("/api/v1/honour-roll?year=2024", &c.token).await;
        assert_eq!(y24["entries"]["items"][0]["case_id"], other_year.as_str(), "{y24}");

        // The engraver's list says the same; each name shown is audited.
        let (s, csv) = app.get("/api/v1/honour-roll.csv?year=2025", &c.token).await;
        assert_eq!(s, StatusCode::OK, "{csv}");
        assert_eq!(csv.as_str().unwrap(),
            "full_name,donation_date,program,donation_kind,region\r\n林小满,2025-05-10,marrow,pbsc,yinzhou\r\n");
        let admin = app.user("admin", None).await;
        let (_, entries) = app.get(&format!("/api/v1/audit?case_id={named}&action=case.view"), &admin.token).await;
        assert!(entries["items"].as_array().unwrap().iter().any(|e| e["reason"] == "honour_roll"), "{entries}");

        // Withdrawn, the name leaves the roll at once.
        let (s, b) = app.post(&format!("/api/v1/consents/{}/withdraw", consent.unwrap()), &c.token,
            json!({"reason": "prefers to stay anonymous"})).await;
        assert!(s.is_success(), "{b}");
        let (_, roll) = app.get("/api/v1/honour-roll?year=2025", &c.token).await;
        assert_eq!(roll["entries"]["items"], json!([]), "{roll}");

        // Scope: a supervisor of another region sees none of them; bad filters by name.
        let far = app.user("supervisor", Some("haishu")).await;
        let (_, roll) = app.get("/api/v1/honour-roll?year=2024", &far.token).await;
        assert_eq!(roll["entries"]["items"], json!([]), "{roll}");
        for (q, field) in [("year=24", "year"), ("year=1999", "year"), ("program=kidney", "program"), ("limit=0", "limit")] {
            let (s, b) = app.get(&format!("/api/v1/honour-roll?{q}"), &c.token).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{q}: {b}");
            assert!(b["error"]["fields"][field].is_string(), "{q}: {b}");
        }
        let (s, _) = app.get("/api/v1/honour-roll.csv?limit=5", &c.token).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "the whole list has no pages");
        for role in ["admin", "ethics_reviewer", "volunteer"] {
            let u = app.user(role, Some("yinzhou")).await;
            let (s, _) = app.get("/api/v1/honour-roll", &u.token).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{role}");
        }
    }

    async fn a_certificate_prints_for_the_donor_and_says_whether_it_may_be_shown(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        let (named, _) = donor(&app, &c, "林小满", "13900008888", "2025-05-10", true).await;
        let (anonymous, _) = donor(&app, &c, "王芳", "13900009999", "2025-06-11", false).await;
        let (s, cert) = app.get(&format!("/api/v1/cases/{named}/certificate"), &c.token).await;
        assert_eq!(s, StatusCode::OK, "{cert}");
        assert_eq!((cert["full_name"].as_str(), cert["publicity_consent"].as_bool()), (Some("林小满"), Some(true)));
        let (_, cert) = app.get(&format!("/api/v1/cases/{anonymous}/certificate"), &c.token).await;
        assert_eq!(cert["publicity_consent"], false, "{cert}");

        let jar = page_session(&app, &c.username).await;
        let (s, html) = page(&app, &format!("/cases/{anonymous}/certificate"), &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("荣誉证书") && html.contains("王芳") && html.contains("2025年6月11日"), "{html}");
        assert!(html.contains("请不要在公开场合展示"), "{html}");
        let (_, en) = page(&app, &format!("/cases/{named}/certificate?lang=en"), &jar).await;
        assert!(en.contains("Certificate of Honour") && en.contains("may be shown in public"), "{en}");
        let (_, case) = page(&app, &format!("/cases/{named}"), &jar).await;
        assert!(case.contains(&format!("href=\"/cases/{named}/certificate\"")), "linked from the case");

        let (s, html) = page(&app, "/honour-roll?year=2025", &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("林小满") && !html.contains("王芳"), "{html}");
        let (s, html) = page(&app, "/honour-roll/print?year=2025", &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("2025 年度捐献者荣誉榜") && html.contains("林小满") && !html.contains("王芳"), "{html}");
        let (s, h, csv) = raw(&app, get("/honour-roll.csv?year=2025", &jar)).await;
        assert_eq!(s, StatusCode::OK, "{csv}");
        assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
        assert!(csv.contains("林小满") && !csv.contains("王芳"), "{csv}");
        let (s, html) = page(&app, "/honour-roll?year=abc", &jar).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(crate::pages::field(&html, "year").contains("aria-invalid=\"true\""), "{html}");

        // Out of scope: not found, as for the case itself.
        let other = app.user("coordinator", Some("yinzhou")).await;
        let (s, _) = app.get(&format!("/api/v1/cases/{named}/certificate"), &other.token).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
}
