//! The ethics reviewers' pages: the findings queue in plain words with its filters, a finding's
//! decision, a consent with its exact text, scan and history and the review form, the audit
//! log with the chain's verification, and the break-glass uses.

use axum::http::{header, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{marrow_case, organ_case, tag, TestApp, TestUser};
use crate::pages::{enc, field, form, get, hidden, page, page_session, raw};

/// A coordinator's organ case with a spouse on file, and a verbal donation consent from the
/// spouse with no witness: the rules find the missing witness and the missing joint written
/// consent (a verbal one does not count).
async fn case_with_findings(app: &TestApp) -> (TestUser, String, String) {
    let c = app.user("coordinator", Some("yinzhou")).await;
    let case = app.create_case(&c.token, organ_case(&tag())).await;
    let id = case["id"].as_str().unwrap().to_string();
    let (s, contact) = app
        .post(
            &format!("/api/v1/cases/{id}/contacts"),
            &c.token,
            json!({"full_name": "周先生", "relationship": "spouse", "phone": "13611112222",
                     "preferred_channel": "sms"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{contact}");
    let contact = contact["id"].as_str().unwrap().to_string();
    let (s, consent) = app
        .post(
            &format!("/api/v1/cases/{id}/consents"),
            &c.token,
            json!({"kind": "donation", "subject": "donor", "given_by": contact,
                     "method": "verbal", "document": "donation-zh-CN-v1",
                     "signed_at": "2025-03-10T10:00:00+08:00"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{consent}");
    (c, id, consent["id"].as_str().unwrap().to_string())
}

async fn findings_of(app: &TestApp, token: &str, case: &str) -> Vec<Value> {
    let (s, b) = app
        .get(&format!("/api/v1/ethics/findings?case_id={case}"), token)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    b["items"].as_array().cloned().unwrap_or_default()
}

on_both_backends! {
    async fn a_reviewer_reads_the_findings_queue_in_plain_words_and_decides_one(app) {
        let (c, case, consent) = case_with_findings(&app).await;
        let r = app.user("ethics_reviewer", None).await;
        let jar = page_session(&app, &r.username).await;

        // Home is the queue.
        let (s, h, _) = raw(&app, get("/", &jar)).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], "/ethics/findings");

        let (s, html) = page(&app, "/ethics/findings", &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        // What is missing, in words: whose written consent, and that the verbal one lacks a witness.
        assert!(html.contains("还缺：配偶"), "{html}");
        assert!(html.contains("这份捐献同意是口头给出的，但没有记录见证人"), "{html}");
        assert!(html.contains(&format!("href=\"/ethics/consents/{consent}\"")), "{html}");
        assert!(html.contains("donation-zh-CN-v1"), "the document version: {html}");
        for name in ["status", "rule", "program", "age"] {
            assert!(field(&html, name).contains("<label"), "{name}");
        }

        // Filters: by rule, by programme, by age.
        let (_, html) = page(&app, "/ethics/findings?rule=verbal_without_witness", &jar).await;
        assert!(html.contains("口头") && !html.contains("还缺：配偶"), "{html}");
        let (_, html) = page(&app, "/ethics/findings?program=marrow", &jar).await;
        assert!(html.contains("没有符合条件的问题"), "{html}");
        let (_, html) = page(&app, "/ethics/findings?age=30", &jar).await;
        assert!(html.contains("没有符合条件的问题"), "found today, not a month ago: {html}");
        let (s, html) = page(&app, "/ethics/findings?age=12&rule=nonsense", &jar).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field(&html, "age").contains("aria-invalid=\"true\""), "{html}");
        let (_, en) = page(&app, "/ethics/findings?lang=en", &jar).await;
        assert!(en.contains("Still missing: Spouse."), "{en}");

        // One finding: decided with a concern; a missing decision is named beside its field.
        let witness = findings_of(&app, &r.token, &case).await.into_iter()
            .find(|f| f["rule"] == "verbal_without_witness").expect("the witness finding");
        let fid = witness["id"].as_str().unwrap();
        let path = format!("/ethics/findings/{fid}");
        let (s, html) = page(&app, &path, &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        let csrf = hidden(&html, "csrf");
        let action = format!("{path}/decision");
        let (s, _, html) = raw(&app, form(&action, &jar, &format!("csrf={csrf}&note=%E8%A7%81%E8%AF%81"))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field(&html, "finding").contains("aria-invalid=\"true\""), "{html}");
        assert!(field(&html, "note").contains("见证"), "the note is kept: {html}");
        assert_eq!(findings_of(&app, &r.token, &case).await.iter()
            .find(|f| f["id"] == fid).unwrap()["status"], "open", "nothing saved");
        let (s, _, _) = raw(&app, form(&action, &jar, "finding=concern")).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "no CSRF token, no decision");
        let body = format!("csrf={csrf}&finding=concern&note=%E8%AF%B7%E8%A1%A5%E8%A7%81%E8%AF%81%E4%BA%BA");
        let (s, h, _) = raw(&app, form(&action, &jar, &body)).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], path.as_str());
        let (_, html) = page(&app, &path, &jar).await;
        assert!(html.contains("有疑虑") && html.contains("请补见证人"), "{html}");
        assert!(!html.contains("name=\"finding\""), "a closed finding has no form");
        let (s, _, html) = raw(&app, form(&action, &jar, &body)).await;
        assert_eq!(s, StatusCode::CONFLICT, "{html}");
        assert!(html.contains("已经关闭"), "{html}");

        // Scope: the case's coordinator reads it, another coordinator does not find it, and a
        // volunteer has no findings queue.
        let (s, html) = page(&app, &path, &page_session(&app, &c.username).await).await;
        assert_eq!(s, StatusCode::OK);
        assert!(!html.contains("name=\"finding\""), "only reviewers decide");
        let other = app.user("coordinator", Some("yinzhou")).await;
        let (s, _) = page(&app, &path, &page_session(&app, &other.username).await).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let v = app.user("volunteer", Some("yinzhou")).await;
        let (s, _) = page(&app, "/ethics/findings", &page_session(&app, &v.username).await).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }

    async fn a_consent_page_shows_the_exact_text_the_scan_and_the_history_and_takes_a_review(app) {
        let (c, case, consent) = case_with_findings(&app).await;
        let png: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
        let req = axum::http::Request::builder()
            .method("POST")
            .uri(format!("/api/v1/consents/{consent}/attachment"))
            .header("authorization", format!("Bearer {}", c.token))
            .header("content-type", "application/octet-stream")
            .body(axum::body::Body::from(png.to_vec()))
            .unwrap();
        let (s, b) = app.send(req).await;
        assert!(s.is_success(), "{s} {b}");
        let r = app.user("ethics_reviewer", None).await;
        let jar = page_session(&app, &r.username).await;
        let path = format!("/ethics/consents/{consent}");

        let (s, html) = page(&app, &path, &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        let (_, doc) = app.get("/api/v1/consent-documents/donation-zh-CN-v1", &r.token).await;
        let sha = doc["sha256"].as_str().expect("the document's hash");
        assert!(html.contains(sha), "the hash it was signed under: {html}");
        assert!(html.contains("与签署时记录的校验值一致"), "{html}");
        let text_start: String = doc["text"].as_str().unwrap_or("").chars().take(12).collect();
        assert!(!text_start.is_empty() && html.contains(&text_start), "the text itself: {html}");
        // Given by the spouse (a relationship, not a name: reviewers see no identities).
        assert!(html.contains("配偶") && !html.contains("周先生"), "{html}");
        assert!(html.contains(&format!("<img class=\"scan\" src=\"/consents/{consent}/attachment\"")), "{html}");

        // The scan itself, as the page's image asks for it, and its viewing audited.
        let (s, h, _) = raw(&app, get(&format!("/consents/{consent}/attachment"), &jar)).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "image/png");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
        let (_, log) = app.get(&format!("/api/v1/audit?case_id={case}&action=consent.view"), &r.token).await;
        assert!(log["items"].as_array().unwrap().iter()
            .any(|e| e["target_type"] == "consent_attachment" && e["actor_id"] == r.id.as_str()), "{log}");
        // Someone else's coordinator gets nothing.
        let other = app.user("coordinator", Some("yinzhou")).await;
        let other_jar = page_session(&app, &other.username).await;
        let (s, _, _) = raw(&app, get(&format!("/consents/{consent}/attachment"), &other_jar)).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        let (s, _) = page(&app, &path, &other_jar).await;
        assert_eq!(s, StatusCode::NOT_FOUND);

        // The review: a bad one is named and saves nothing; a good one joins the history.
        let csrf = hidden(&html, "csrf");
        let action = format!("{path}/review");
        let (s, _, html) = raw(&app, form(&action, &jar, &format!("csrf={csrf}&finding=maybe"))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field(&html, "finding").contains("aria-invalid=\"true\""), "{html}");
        assert!(html.contains("还没有审查记录"), "nothing saved: {html}");
        let (s, h, _) = raw(&app, form(&action, &jar,
            &format!("csrf={csrf}&finding=verified&note=%E5%B7%B2%E6%A0%B8%E5%AF%B9%E5%8E%9F%E4%BB%B6"))).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], format!("{path}#reviews").as_str());
        let (_, html) = page(&app, &path, &jar).await;
        assert!(html.contains("已核对原件") && html.contains("核实无误"), "{html}");
        // Coordinators read the consent page but do not review.
        let (s, html) = page(&app, &path, &page_session(&app, &c.username).await).await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("已核对原件") && !html.contains("name=\"finding\""), "{html}");

        // Withdrawn: both records link to each other.
        let (s, w) = app.post(&format!("/api/v1/consents/{consent}/withdraw"), &c.token,
            json!({"reason": "家属改变了主意"})).await;
        assert!(s.is_success(), "{w}");
        let (_, html) = page(&app, &path, &jar).await;
        let withdrawal = w["id"].as_str().unwrap();
        assert!(html.contains(&format!("/ethics/consents/{withdrawal}")) && html.contains("后来被撤回"), "{html}");
    }

    async fn the_audit_page_filters_entries_and_verifies_the_chain(app) {
        let (_c, case, _consent) = case_with_findings(&app).await;
        let admin = app.user("admin", None).await;
        let jar = page_session(&app, &admin.username).await;
        let (s, html) = page(&app, &format!("/audit?case_id={case}"), &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("case.create") && html.contains("consent.record"), "{html}");
        assert!(!html.contains("<span class=\"mono\">auth.login</span>"), "only this case's entries: {html}");
        assert!(field(&html, "case_id").contains(&case), "the filter is kept");
        let (s, html) = page(&app, &format!("/audit?case_id={case}&verify=1"), &jar).await;
        assert_eq!(s, StatusCode::OK);
        assert!(html.contains("校验通过"), "{html}");
        let (s, html) = page(&app, "/audit?from=2026-13-01", &jar).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(field(&html, "from").contains("aria-invalid=\"true\""), "{html}");
        let c = app.user("coordinator", Some("yinzhou")).await;
        let (s, _) = page(&app, "/audit", &page_session(&app, &c.username).await).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }

    async fn the_break_glass_page_says_who_when_why_and_links_what_was_opened(app) {
        let owner = app.user("coordinator", Some("yinzhou")).await;
        let case = app.create_case(&owner.token, organ_case(&tag())).await;
        let id = case["id"].as_str().unwrap();
        let c = app.user("coordinator", Some("yinzhou")).await;
        let (s, b) = app.post(&format!("/api/v1/cases/{id}/break-glass"), &c.token,
            json!({"reason": "家属深夜来电，负责的同事休假，需要查看联系方式"})).await;
        assert!(s.is_success(), "{b}");
        let r = app.user("ethics_reviewer", None).await;
        let (s, html) = page(&app, "/ethics/break-glass", &page_session(&app, &r.username).await).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("负责的同事休假") && html.contains("仍在有效期内"), "{html}");
        assert!(html.contains(&format!("/audit?case_id&#x3D;{id}&amp;actor_id&#x3D;{}", c.id)), "{html}");
        let (s, _) = page(&app, "/ethics/break-glass", &page_session(&app, &c.username).await).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }

    async fn a_reviewer_acknowledges_a_break_glass_use_or_raises_a_concern(app) {
        let owner = app.user("coordinator", Some("yinzhou")).await;
        let case = app.create_case(&owner.token, organ_case(&tag())).await;
        let id = case["id"].as_str().unwrap();
        let c = app.user("coordinator", Some("yinzhou")).await;
        let (s, b) = app.post(&format!("/api/v1/cases/{id}/break-glass"), &c.token,
            json!({"reason": "家属深夜来电，负责的同事休假，需要查看联系方式"})).await;
        assert!(s.is_success(), "{b}");
        let r = app.user("ethics_reviewer", None).await;
        let jar = page_session(&app, &r.username).await;
        let grants = |token: String, q: &'static str| {
            let app = &app;
            async move {
                let (s, b) = app.get(&format!("/api/v1/break-glass?{q}"), &token).await;
                assert_eq!(s, StatusCode::OK, "{b}");
                b["items"].as_array().unwrap().clone()
            }
        };
        let waiting = grants(r.token.clone(), "unreviewed=true").await;
        let grant = waiting.iter().find(|g| g["case_id"] == id).expect("waiting for review");
        let gid = grant["id"].as_str().unwrap().to_string();

        // The list says it waits, and the filter keeps it.
        let (_, html) = page(&app, "/ethics/break-glass?unreviewed=1", &jar).await;
        assert!(html.contains("待审查") && html.contains(&format!("/ethics/break-glass/{gid}")), "{html}");

        // A concern without saying what it is: refused beside the note, nothing saved.
        let path = format!("/ethics/break-glass/{gid}");
        let (s, html) = page(&app, &path, &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("负责的同事休假") && html.contains("还没有人审查"), "{html}");
        for name in ["decision", "note"] {
            assert!(field(&html, name).contains("<label"), "{name}: {html}");
        }
        let csrf = hidden(&html, "csrf");
        let action = format!("{path}/review");
        let (s, _, html) = raw(&app, form(&action, &jar, &format!("csrf={csrf}&decision=concern&note=%E5%A5%87%E6%80%AA"))).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        let note = field(&html, "note");
        assert!(note.contains("aria-invalid=\"true\"") && note.contains("奇怪"), "kept and marked: {note}");
        assert!(html.contains("请写清楚疑虑是什么，至少 10 个字"), "said why: {html}");
        assert!(html.contains("value=\"concern\" checked"), "the choice is kept: {html}");
        let (s, _, _) = raw(&app, form(&action, &jar, "decision=acknowledged")).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "no CSRF token, no review");
        assert_eq!(grants(r.token.clone(), "unreviewed=true").await.iter()
            .filter(|g| g["id"] == gid.as_str()).count(), 1, "nothing saved");

        // A concern with its reason, then an acknowledgement once it was looked into.
        let concern = "当天通话记录里没有这通电话，请核实";
        let body = format!("csrf={csrf}&decision=concern&note={}", enc(concern));
        let (s, h, _) = raw(&app, form(&action, &jar, &body)).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        assert_eq!(h[header::LOCATION], path.as_str());
        let (_, html) = page(&app, &path, &jar).await;
        assert!(html.contains("有疑虑") && html.contains(concern), "{html}");
        assert!(grants(r.token.clone(), "unreviewed=true").await.iter().all(|g| g["id"] != gid.as_str()));
        let (s, b) = app.post(&format!("/api/v1/break-glass/{gid}/reviews"), &r.token,
            json!({"decision": "acknowledged", "note": "已核实：电话记在家属联系人下"})).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        assert_eq!(b["decision"], "acknowledged");
        let (s, one) = app.get(&format!("/api/v1/break-glass/{gid}"), &r.token).await;
        assert_eq!(s, StatusCode::OK, "{one}");
        let decisions: Vec<&str> = one["reviews"].as_array().unwrap().iter()
            .map(|v| v["decision"].as_str().unwrap()).collect();
        assert_eq!(decisions, ["concern", "acknowledged"], "{one}");
        assert_eq!(one["reviews"][0]["note"], concern);
        let (_, html) = page(&app, "/ethics/break-glass", &jar).await;
        assert!(html.contains("已确认"), "the newest review counts: {html}");
        let (_, en) = page(&app, &format!("{path}?lang=en"), &jar).await;
        assert!(en.contains("concern raised") && en.contains("acknowledged"), "{en}");

        // Audited; and only reviewers judge (a supervisor reads, does not review).
        let (_, entries) = app.get(&format!("/api/v1/audit?action=break_glass.review&case_id={id}"), &r.token).await;
        assert_eq!(entries["items"].as_array().unwrap().len(), 2, "{entries}");
        let (_, views) = app.get(&format!("/api/v1/audit?action=break_glass.list&case_id={id}"), &r.token).await;
        assert!(views["items"].as_array().unwrap().iter()
            .any(|e| e["target_id"] == gid.as_str() && e["reason"] == "view"), "reading a reason is audited: {views}");
        let sup = app.user("supervisor", Some("yinzhou")).await;
        let (s, html) = page(&app, &path, &page_session(&app, &sup.username).await).await;
        assert_eq!(s, StatusCode::OK);
        assert!(!html.contains("name=\"decision\""), "only reviewers review: {html}");
        let (s, _) = app.post(&format!("/api/v1/break-glass/{gid}/reviews"), &sup.token,
            json!({"decision": "acknowledged"})).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
        let (s, b) = app.post(&format!("/api/v1/break-glass/{gid}/reviews"), &r.token,
            json!({"decision": "maybe"})).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(b["error"]["fields"]["decision"].is_string(), "{b}");
        let (s, _) = app.post("/api/v1/break-glass/nope/reviews", &r.token,
            json!({"decision": "acknowledged"})).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }

    async fn the_consent_register_shows_coverage_the_cases_lacking_and_a_csv(app) {
        // An organ case with a verbal donation consent (it lacks the contact consent), and a
        // marrow case with both of its consents, one of which is then withdrawn.
        let (c, organ, _) = case_with_findings(&app).await;
        let marrow = app.create_case(&c.token, marrow_case("林小满", "13900001111")).await;
        let marrow = marrow["id"].as_str().unwrap().to_string();
        let mut consents = Vec::new();
        for kind in ["registry", "contact"] {
            let (s, b) = app.post(&format!("/api/v1/cases/{marrow}/consents"), &c.token,
                json!({"kind": kind, "subject": "donor", "given_by": "donor", "method": "written",
                       "document": format!("{kind}-zh-CN-v1"), "signed_at": "2025-03-10"})).await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            consents.push(b["id"].as_str().unwrap().to_string());
        }
        let r = app.user("ethics_reviewer", None).await;
        let jar = page_session(&app, &r.username).await;
        let (s, html) = page(&app, "/ethics/register", &jar).await;
        assert_eq!(s, StatusCode::OK, "{html}");
        assert!(html.contains("缺少同意书的个案（1 个）"), "{html}");
        assert!(html.contains(&format!("<span class=\"mono\">{organ}</span>")), "a number, not a link: {html}");
        assert!(!html.contains(&format!("/cases/{organ}")), "reviewers do not open cases");
        assert!(!html.contains(&format!(">{marrow}<")), "the marrow case is complete: {html}");
        assert!(!html.contains("林小满") && !html.contains("13900001111"), "no identities");
        for name in ["program", "missing"] {
            assert!(field(&html, name).contains("<label"), "{name}");
        }

        // The API says the same in numbers.
        let (s, reg) = app.get("/api/v1/ethics/consent-register", &r.token).await;
        assert_eq!(s, StatusCode::OK, "{reg}");
        let program = |p: &str| reg["coverage"].as_array().unwrap().iter()
            .find(|c| c["program"] == p).unwrap().clone();
        let o = program("organ");
        assert_eq!((o["cases"].as_i64(), o["complete"].as_i64()), (Some(1), Some(0)), "{o}");
        assert_eq!(o["kinds"], json!([
            {"kind": "donation", "covered": 1, "missing": 0, "percent": 100},
            {"kind": "contact", "covered": 0, "missing": 1, "percent": 0}]));
        assert_eq!(program("marrow")["percent_complete"], 100);
        assert_eq!(reg["gaps"]["items"], json!([{"case_id": organ, "program": "organ",
            "region": "yinzhou", "missing": ["contact"]}]));

        // A withdrawal counts: the marrow case now lacks its contact consent.
        let (s, b) = app.post(&format!("/api/v1/consents/{}/withdraw", consents[1]), &c.token,
            json!({"reason": "家属希望暂时不要联系"})).await;
        assert!(s.is_success(), "{b}");
        let (_, html) = page(&app, "/ethics/register?missing=contact", &jar).await;
        assert!(html.contains("缺少同意书的个案（2 个）"), "{html}");
        let (_, html) = page(&app, "/ethics/register?program=marrow", &jar).await;
        assert!(html.contains("（1 个）") && html.contains(&marrow) && !html.contains(&format!(">{organ}<")), "{html}");
        let (_, html) = page(&app, "/ethics/register?missing=registry", &jar).await;
        assert!(html.contains("没有缺少同意书的个案"), "{html}");

        // The CSV: every matching case, the filter kept, the download audited.
        let (s, h, csv) = raw(&app, get("/ethics/register.csv?missing=contact", &jar)).await;
        assert_eq!(s, StatusCode::OK, "{csv}");
        assert!(h[header::CONTENT_TYPE].to_str().unwrap().starts_with("text/csv"));
        assert!(h[header::CONTENT_DISPOSITION].to_str().unwrap().starts_with("attachment"));
        let mut lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.remove(0), "case_id,program,region,missing");
        lines.sort();
        let mut want = vec![format!("{organ},organ,yinzhou,contact"), format!("{marrow},marrow,yinzhou,contact")];
        want.sort();
        assert_eq!(lines, want);
        let (_, entries) = app.get("/api/v1/audit?action=consent.list", &r.token).await;
        assert!(entries["items"].as_array().unwrap().iter()
            .any(|e| e["target_type"] == "consent_register" && e["reason"] == "csv:2"), "{entries}");
        // The API's CSV is the same list, filtered the same way; it has no pages, so a page size
        // is refused by name rather than silently ignored.
        let (s, api_csv) = app.get("/api/v1/ethics/consent-register.csv?missing=contact", &r.token).await;
        assert_eq!(s, StatusCode::OK, "{api_csv}");
        assert_eq!(api_csv.as_str(), Some(csv.as_str()));
        let (s, b) = app.get("/api/v1/ethics/consent-register.csv?limit=-5", &r.token).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["limit"].is_string(), "{b}");
        let (s, b) = app.get("/api/v1/ethics/consent-register.csv?program=kidney", &r.token).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{b}");
        assert!(b["error"]["fields"]["program"].is_string(), "{b}");

        // Bad filters are named beside their fields; a supervisor elsewhere sees no case; the
        // case's coordinator gets links to the cases.
        let (s, html) = page(&app, "/ethics/register?program=kidney&missing=research", &jar).await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{html}");
        assert!(field(&html, "program").contains("aria-invalid=\"true\""), "{html}");
        assert!(field(&html, "missing").contains("aria-invalid=\"true\""), "{html}");
        let far = app.user("supervisor", Some("haishu")).await;
        let (s, reg) = app.get("/api/v1/ethics/consent-register", &far.token).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(reg["total_gaps"], 0, "{reg}");
        let (_, html) = page(&app, "/ethics/register", &page_session(&app, &c.username).await).await;
        assert!(html.contains(&format!("href=\"/cases/{organ}\"")), "{html}");
        let v = app.user("volunteer", Some("yinzhou")).await;
        let (s, _) = app.get("/api/v1/ethics/consent-register", &v.token).await;
        assert_eq!(s, StatusCode::FORBIDDEN);
    }

    async fn every_role_gets_exactly_what_the_ethics_pages_allow(app) {
        let (owner, case, consent) = case_with_findings(&app).await;
        let r = app.user("ethics_reviewer", None).await;
        let finding = findings_of(&app, &r.token, &case).await[0]["id"].as_str().unwrap().to_string();
        let glass = app.user("coordinator", Some("yinzhou")).await;
        let (s, b) = app.post(&format!("/api/v1/cases/{case}/break-glass"), &glass.token,
            json!({"reason": "家属来电询问，负责同事不在，需要查看联系方式"})).await;
        assert!(s.is_success(), "{b}");
        let grant = b["id"].as_str().unwrap().to_string();
        let users = [
            ("ethics_reviewer", None),
            ("supervisor", Some("yinzhou")),
            ("supervisor", Some("haishu")),
            ("coordinator", Some("yinzhou")),
            ("admin", None),
            ("volunteer", Some("yinzhou")),
        ];
        // The case's own coordinator, then the others in the order above.
        let mut jars = vec![("owner", page_session(&app, &owner.username).await)];
        for (role, region) in users {
            let u = app.user(role, region).await;
            let name = match (role, region) {
                ("supervisor", Some("haishu")) => "supervisor-elsewhere",
                ("coordinator", _) => "coordinator-other",
                _ => role,
            };
            jars.push((name, page_session(&app, &u.username).await));
        }
        let ok = StatusCode::OK;
        let no = StatusCode::FORBIDDEN;
        let none = StatusCode::NOT_FOUND;
        // path, then the status for: owner, reviewer, supervisor (region), supervisor elsewhere,
        // another coordinator, admin, volunteer.
        let table: Vec<(String, [StatusCode; 7])> = vec![
            ("/ethics/findings".into(), [ok, ok, ok, ok, ok, no, no]),
            (format!("/ethics/findings/{finding}"), [ok, ok, ok, none, none, no, no]),
            (format!("/ethics/consents/{consent}"), [ok, ok, ok, none, none, no, no]),
            ("/ethics/break-glass".into(), [no, ok, ok, ok, no, no, no]),
            (format!("/ethics/break-glass/{grant}"), [no, ok, ok, none, no, no, no]),
            ("/audit".into(), [no, ok, ok, ok, no, ok, no]),
            ("/ethics/register".into(), [ok, ok, ok, ok, ok, no, no]),
            ("/ethics/register.csv".into(), [ok, ok, ok, ok, ok, no, no]),
        ];
        for (path, expected) in &table {
            for ((who, jar), want) in jars.iter().zip(expected) {
                let (s, _) = page(&app, path, jar).await;
                assert_eq!(s, *want, "{who} on {path}");
            }
            let (s, h, _) = raw(&app, get(path, "")).await;
            assert_eq!(s, StatusCode::SEE_OTHER, "signed out on {path}");
            assert_eq!(h[header::LOCATION], "/login");
        }
    }
}
