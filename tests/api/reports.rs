//! Monthly and yearly reports: the counts against what was done, the trend, the standing
//! figures at a period's end, scope by region, the CSV, the page, and bad filters by name.

use axum::http::{header, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{marrow_case, TestApp, TestUser};
use crate::pages::{field, get, page, page_session, raw};

/// A marrow case in `region` (its plan's own dates are from June 2026 on) with three manual
/// calls due in February 2026 (one done late, one cancelled, one open), a registry consent
/// signed in February and withdrawn now, and two of its plan's messages marked sent and held.
/// Returns the case id and the months (`YYYY-MM`) the two messages fall in.
async fn case_with_work(app: &TestApp, c: &TestUser, phone: &str) -> (String, String, String) {
    let mut case = marrow_case("林小满", phone);
    case["donation"]["date"] = json!("2026-06-01");
    case["donor"]["birth_date"] = json!("1990-08-08");
    let case = app.create_case(&c.token, case).await;
    let id = case["id"].as_str().unwrap().to_string();
    let mut tasks = Vec::new();
    for due in [
        "2026-02-03T02:00:00Z",
        "2026-02-10T02:00:00Z",
        "2026-02-27T02:00:00Z",
    ] {
        let (s, t) = app
            .post(
                &format!("/api/v1/cases/{id}/tasks"),
                &c.token,
                json!({"kind": "call", "due_at": due}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{t}");
        tasks.push(t["id"].as_str().unwrap().to_string());
    }
    let (s, b) = app
        .post(
            &format!("/api/v1/tasks/{}/complete", tasks[0]),
            &c.token,
            json!({"outcome": "called, all well"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, b) = app
        .post(
            &format!("/api/v1/tasks/{}/cancel", tasks[1]),
            &c.token,
            json!({"reason": "donor asked to call later"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let (s, k) = app
        .post(
            &format!("/api/v1/cases/{id}/consents"),
            &c.token,
            json!({"kind": "registry", "subject": "donor", "given_by": "donor", "method": "written",
                   "document": "registry-zh-CN-v1", "signed_at": "2026-02-15"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{k}");
    let (s, b) = app
        .post(
            &format!("/api/v1/consents/{}/withdraw", k["id"].as_str().unwrap()),
            &c.token,
            json!({"reason": "donor moved abroad"}),
        )
        .await;
    assert!(s.is_success(), "{b}");

    // Two of the plan's messages: one sent when due, one held for want of consent.
    let (s, out) = app
        .get(&format!("/api/v1/cases/{id}/outreach"), &c.token)
        .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    let items = out["items"].as_array().unwrap();
    assert!(items.len() >= 2, "the marrow plan makes messages: {out}");
    let month = |m: &Value| m["due_at"].as_str().unwrap()[..7].to_string();
    // Two messages due in the same year, so that one year's report holds both.
    let (sent, held) = items
        .iter()
        .enumerate()
        .find_map(|(i, a)| {
            items[i + 1..]
                .iter()
                .find(|b| month(b)[..4] == month(a)[..4])
                .map(|b| (a, b))
        })
        .unwrap_or_else(|| panic!("two of the plan's messages in one year: {out}"));
    app.exec(
        "update outreach set status = 'sent', sent_at = due_at where id = $1 and $2 = $2",
        sent["id"].as_str().unwrap(),
        "",
    )
    .await;
    app.exec(
        "update outreach set status = 'held', reason = 'no_consent' where id = $1 and $2 = $2",
        held["id"].as_str().unwrap(),
        "",
    )
    .await;
    (id, month(sent), month(held))
}

fn month_of<'a>(r: &'a Value, m: &str) -> &'a Value {
    r["months"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["month"] == m)
        .unwrap_or(&Value::Null)
}

on_both_backends! {
    async fn a_report_counts_the_months_work_from_metadata(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        let (id, sent_month, held_month) = case_with_work(&app, &c, "13900002222").await;
        let admin = app.user("admin", None).await;

        let (s, r) = app.get("/api/v1/reports?period=2026-02&region=yinzhou", &admin.token).await;
        assert_eq!(s, StatusCode::OK, "{r}");
        assert_eq!((r["granularity"].as_str(), r["from"].as_str(), r["to"].as_str()),
            (Some("month"), Some("2026-02-01"), Some("2026-02-28")), "{r}");
        let t = &r["totals"];
        assert_eq!((t["followups_due"].as_i64(), t["followups_done"].as_i64(),
                    t["followups_open"].as_i64(), t["followups_cancelled"].as_i64()),
            (Some(2), Some(1), Some(1), Some(1)), "{t}");
        // Done in December for a call due in February: after its grace period.
        assert_eq!(t["followups_late"], 1, "{t}");
        assert_eq!((t["consents_given"].as_i64(), t["consents_withdrawn"].as_i64(),
                    t["consents_active"].as_i64()), (Some(1), Some(0), Some(1)),
            "in force at the end of February: {t}");
        assert_eq!(t["cases_open"], 0, "the case was opened later: {t}");
        assert_eq!(r["groups"].as_array().unwrap().len(), 1, "{r}");
        assert_eq!(r["groups"][0]["program"], "marrow");
        assert_eq!(r["consents_by_kind"], json!([{"kind": "registry", "given": 1, "withdrawn": 0, "active": 1}]));
        assert_eq!(r["months"].as_array().unwrap().len(), 12);
        assert_eq!(r["months"][11]["month"], "2026-02");
        assert_eq!(r["months"][0]["month"], "2025-03");
        assert!(!r.to_string().contains("林小满") && !r.to_string().contains(&id),
            "no identity and no case named: {r}");

        // The year: the February calls, the messages in the months they were due, the
        // consent withdrawn (this year) and the case opened this year.
        let year = &sent_month[..4];
        let (s, y) = app.get(&format!("/api/v1/reports?period={year}"), &admin.token).await;
        assert_eq!(s, StatusCode::OK, "{y}");
        assert_eq!(month_of(&y, &sent_month)["outreach_sent"], 1, "{y}");
        assert_eq!(month_of(&y, &held_month)["outreach_not_sent"], 1, "{y}");
        if year == "2026" {
            let feb = month_of(&y, "2026-02");
            assert_eq!((feb["followups_due"].as_i64(), feb["followups_done"].as_i64()), (Some(2), Some(1)), "{y}");
        }
        assert_eq!(y["totals"]["outreach_sent"], 1, "{y}");
        assert_eq!(y["totals"]["outreach_held"], 1, "{y}");
        assert_eq!(y["not_sent"], json!([{"status": "held", "reason": "no_consent", "count": 1}]), "{y}");
        assert_eq!(y["sent_by_channel"].as_array().unwrap().len(), 1, "{y}");

        // This month: the withdrawal and the new case; the consent no longer in force.
        let (s, now) = app.get("/api/v1/reports", &admin.token).await;
        assert_eq!(s, StatusCode::OK, "{now}");
        let n = &now["totals"];
        assert_eq!((n["consents_withdrawn"].as_i64(), n["consents_active"].as_i64(),
                    n["cases_new"].as_i64(), n["cases_open"].as_i64()),
            (Some(1), Some(0), Some(1), Some(1)), "{n}");
        // Open findings now are those the ethics queue lists as open.
        let r = app.user("ethics_reviewer", None).await;
        let (_, queue) = app.get("/api/v1/ethics/findings?status=open&limit=200", &r.token).await;
        assert_eq!(n["findings_open"].as_u64(), Some(queue["items"].as_array().unwrap().len() as u64),
            "{n} {queue}");

        // Filters: another programme has nothing; a region with no case has nothing.
        let (_, organ) = app.get("/api/v1/reports?period=2026-02&program=organ", &admin.token).await;
        assert_eq!(organ["totals"]["followups_due"], 0, "{organ}");
        assert_eq!(organ["groups"], json!([]), "{organ}");
        let (_, far) = app.get("/api/v1/reports?period=2026-02&region=haishu", &admin.token).await;
        assert_eq!(far["totals"]["followups_due"], 0, "{far}");

        // The CSV says the same, one row per programme and region and the totals.
        let (s, csv) = app.get("/api/v1/reports.csv?period=2026-02", &admin.token).await;
        assert_eq!(s, StatusCode::OK, "{csv}");
        let lines: Vec<&str> = csv.as_str().unwrap().lines().collect();
        assert_eq!(lines.len(), 3, "{csv}");
        let head: Vec<&str> = lines[0].split(',').collect();
        let total: Vec<&str> = lines[2].split(',').collect();
        let col = |name: &str| total[head.iter().position(|h| *h == name).unwrap()];
        assert_eq!((total[0], total[1], total[2]), ("2026-02", "all", "all"));
        assert_eq!((col("followups_due"), col("followups_done"), col("consents_active")), ("2", "1", "1"));
        assert!(lines[1].starts_with("2026-02,marrow,yinzhou,"), "{csv}");

        // Each view and download is audited with what it covered.
        let (_, entries) = app.get("/api/v1/audit?action=report.view", &admin.token).await;
        let reasons: Vec<&str> = entries["items"].as_array().unwrap().iter()
            .filter_map(|e| e["reason"].as_str()).collect();
        assert!(reasons.contains(&"view:2026-02 region:yinzhou"), "{reasons:?}");
        assert!(reasons.contains(&"csv:2026-02"), "{reasons:?}");
    }

    async fn reports_keep_to_the_callers_region_and_name_bad_filters(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        case_with_work(&app, &c, "13900003333").await;
        let here = app.user("supervisor", Some("yinzhou")).await;
        let far = app.user("supervisor", Some("haishu")).await;
        let (s, r) = app.get("/api/v1/reports?period=2026-02", &here.token).await;
        assert_eq!(s, StatusCode::OK, "{r}");
        assert_eq!((r["region"].as_str(), r["totals"]["followups_due"].as_i64()), (Some("yinzhou"), Some(2)));
        let (s, r) = app.get("/api/v1/reports?period=2026-02", &far.token).await;
        assert_eq!(s, StatusCode::OK, "{r}");
        assert_eq!((r["region"].as_str(), r["totals"]["followups_due"].as_i64()), (Some("haishu"), Some(0)));
        let (s, b) = app.get("/api/v1/reports?period=2026-02&region=yinzhou", &far.token).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["region"].is_string(), "{b}");

        let admin = app.user("admin", None).await;
        for (query, field) in [("period=2026-13", "period"), ("period=26", "period"),
                               ("program=kidney", "program"), ("region=Not%20a%20region", "region")] {
            let (s, b) = app.get(&format!("/api/v1/reports?{query}"), &admin.token).await;
            assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {b}");
            assert!(b["error"]["fields"][field].is_string(), "{query}: {b}");
        }
        let (s, b) = app.get("/api/v1/reports?limit=5", &admin.token).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "unknown parameters are refused: {b}");
        for role in ["coordinator", "volunteer"] {
            let u = app.user(role, Some("yinzhou")).await;
            let (s, _) = app.get("/api/v1/reports", &u.token).await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{role}");
        }
    }

    async fn the_report_page_shows_figures_a_chart_and_the_csv(app) {
        let c = app.user("coordinator", Some("yinzhou")).await;
        case_with_work(&app, &c, "13900004444").await;
        let sup = app.user("supervisor", Some("yinzhou")).await;
        let jar = page_session(&app, &sup.username).await;
        let (s, html) = page(&app, "/reports?period=2026-02", &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        let html = html.replace("&#x3D;", "=");
        assert!(html.contains("2026 年 2 月"), "{html}");
        assert!(html.contains("<svg") && html.contains("role=\"img\""), "a chart: {html}");
        assert!(html.contains("href=\"/reports.csv?period=2026-02"), "{html}");
        assert!(html.contains("href=\"/reports?period=2026-01"), "the month before: {html}");
        assert!(!html.contains("林小满"), "no identity");
        assert!(field(&html, "period").contains("<label"), "{html}");
        assert!(!html.contains("name=\"region\""), "a supervisor's region is fixed: {html}");
        let (_, en) = page(&app, "/reports?period=2026-02&lang=en", &jar).await;
        assert!(en.contains("February 2026"), "{en}");

        let (s, h, csv) = raw(&app, get("/reports.csv?period=2026-02", &jar)).await;
        assert_eq!(s, StatusCode::OK, "{csv}");
        assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
        assert!(csv.lines().last().unwrap().starts_with("2026-02,all,all,"), "{csv}");

        let (s, html) = page(&app, "/reports?period=2026-13&program=kidney", &jar).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field(&html, "period").contains("aria-invalid=\"true\""), "{html}");
        assert!(field(&html, "program").contains("aria-invalid=\"true\""), "{html}");

        let admin = app.user("admin", None).await;
        let (s, html) = page(&app, "/reports?period=2026", &page_session(&app, &admin.username).await).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(field(&html, "region").contains("<label"), "an admin chooses the region: {html}");
        let (s, _) = page(&app, "/reports", &page_session(&app, &c.username).await).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }
}
