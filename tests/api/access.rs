//! The access table of DESIGN.md, tested as a whole: every role × every endpoint × a record of
//! its own, another region's, and an unassigned one. The expectations are written here from the
//! table, independently of `policy.rs`; a route the table does not cover fails the last test.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{marrow_case, organ_case, TestApp, TestUser};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ownership {
    /// The caller's own record: assigned case, own visit, own family file, own region.
    Own,
    /// A record in another region, assigned to others.
    Other,
    /// A record in the caller's region that nobody is assigned to.
    Unassigned,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Anything but 401/403/404 (200, 201, 204, 409, 422 all mean the access was allowed).
    Allowed,
    Forbidden,
    Hidden,
}

use Expect::*;

const ROLES: [&str; 6] = [
    "admin",
    "supervisor",
    "coordinator",
    "ethics_reviewer",
    "volunteer",
    "family",
];

/// Read and write a case and its contacts.
fn case_rw(role: &str, own: Ownership) -> Expect {
    match (role, own) {
        ("coordinator", Ownership::Own) => Allowed,
        ("coordinator", _) => Hidden,
        ("supervisor", Ownership::Other) => Hidden,
        ("supervisor", _) => Allowed,
        _ => Forbidden,
    }
}

/// Consent records: like the case, and ethics reviewers read all.
fn consent_read(role: &str, own: Ownership) -> Expect {
    if role == "ethics_reviewer" {
        Allowed
    } else {
        case_rw(role, own)
    }
}

/// Adverse events: like the case, and ethics reviewers read every case's (without the
/// descriptions, which are health notes).
fn adverse_event_read(role: &str, own: Ownership) -> Expect {
    consent_read(role, own)
}

/// Letters and correspondents: the case's staff, and ethics reviewers read every case's
/// metadata (never a text).
fn correspondence_read(role: &str, own: Ownership) -> Expect {
    consent_read(role, own)
}

/// A family acts on its own records only.
fn family_own(role: &str, own: Ownership) -> Expect {
    match (role, own) {
        ("family", Ownership::Own) => Allowed,
        ("family", _) => Hidden,
        _ => Forbidden,
    }
}

fn assign(role: &str, own: Ownership) -> Expect {
    match (role, own) {
        ("supervisor", Ownership::Other) => Hidden,
        ("supervisor", _) => Allowed,
        ("coordinator", Ownership::Own) => Forbidden,
        ("coordinator", _) => Hidden,
        _ => Forbidden,
    }
}

fn task_rw(role: &str, own: Ownership) -> Expect {
    match (role, own) {
        ("volunteer" | "coordinator", Ownership::Own) => Allowed,
        ("volunteer" | "coordinator", _) => Hidden,
        ("supervisor", Ownership::Other) => Hidden,
        ("supervisor", _) => Allowed,
        _ => Forbidden,
    }
}

/// Reschedule or cancel a task: the case's coordinators and the region's supervisor, never a
/// volunteer.
fn task_change(role: &str, own: Ownership) -> Expect {
    match (role, own) {
        ("coordinator", Ownership::Own) => Allowed,
        ("coordinator", _) => Hidden,
        ("supervisor", Ownership::Other) => Hidden,
        ("supervisor", _) => Allowed,
        _ => Forbidden,
    }
}

fn erasure_request(role: &str, own: Ownership) -> Expect {
    match (role, own) {
        ("admin", _) => Allowed,
        ("supervisor", Ownership::Other) => Hidden,
        ("supervisor", _) => Allowed,
        _ => Forbidden,
    }
}

fn break_glass(role: &str, _own: Ownership) -> Expect {
    if role == "coordinator" {
        Allowed
    } else {
        Forbidden
    }
}

/// A break-glass use: every one for ethics reviewers, their region's for supervisors.
fn grant_read(role: &str, own: Ownership) -> Expect {
    match (role, own) {
        ("ethics_reviewer", _) => Allowed,
        ("supervisor", Ownership::Other) => Hidden,
        ("supervisor", _) => Allowed,
        _ => Forbidden,
    }
}

/// A region's memorial event: its care team (coordinators and the supervisor) in the region.
fn region_team(role: &str, own: Ownership) -> Expect {
    match (role, own) {
        ("coordinator" | "supervisor", Ownership::Other) => Hidden,
        ("coordinator" | "supervisor", _) => Allowed,
        _ => Forbidden,
    }
}

/// The engraver's list of a region's event: its supervisor.
fn region_export(role: &str, own: Ownership) -> Expect {
    match (role, own) {
        ("supervisor", Ownership::Other) => Hidden,
        ("supervisor", _) => Allowed,
        _ => Forbidden,
    }
}

fn only(roles: &'static [&'static str]) -> impl Fn(&str, Ownership) -> Expect {
    move |role, _| {
        if roles.contains(&role) {
            Allowed
        } else {
            Forbidden
        }
    }
}

/// What a role gets on a record of some ownership.
type Rule = Box<dyn Fn(&str, Ownership) -> Expect>;

/// One row of the table: method, path template, body, rule.
struct Row {
    method: Method,
    path: &'static str,
    body: Option<Value>,
    rule: Rule,
}

fn row(
    method: Method,
    path: &'static str,
    body: Option<Value>,
    rule: impl Fn(&str, Ownership) -> Expect + 'static,
) -> Row {
    Row {
        method,
        path,
        body,
        rule: Box::new(rule),
    }
}

fn table() -> Vec<Row> {
    let contact =
        json!({"full_name": "Table Kin", "relationship": "sibling", "preferred_channel": "portal"});
    vec![
        row(Method::GET, "/api/v1/cases/{case}", None, case_rw),
        row(
            Method::GET,
            "/api/v1/cases/{case}/certificate",
            None,
            case_rw,
        ),
        row(
            Method::PATCH,
            "/api/v1/cases/{case}",
            Some(json!({"notes": "table check"})),
            case_rw,
        ),
        row(
            Method::POST,
            "/api/v1/cases/{case}/contacts",
            Some(contact),
            case_rw,
        ),
        row(
            Method::PATCH,
            "/api/v1/contacts/{contact}",
            Some(json!({"opted_out": false})),
            case_rw,
        ),
        row(
            Method::POST,
            "/api/v1/contacts/{contact}/invite",
            Some(json!({})),
            case_rw,
        ),
        row(
            Method::POST,
            "/api/v1/cases/{case}/tasks",
            Some(json!({"kind": "call", "due_at": "2030-01-01"})),
            case_rw,
        ),
        row(Method::GET, "/api/v1/tasks/{task}", None, task_rw),
        row(
            Method::POST,
            "/api/v1/tasks/{task}/reschedule",
            Some(json!({"due_at": "2030-02-01", "reason": "table check"})),
            task_change,
        ),
        row(
            Method::GET,
            "/api/v1/tasks/digest",
            None,
            only(&["supervisor", "coordinator", "volunteer"]),
        ),
        row(
            Method::GET,
            "/api/v1/care-plans",
            None,
            only(&["admin", "supervisor", "coordinator"]),
        ),
        row(
            Method::PUT,
            "/api/v1/care-plans/{program}",
            Some(json!({"version": 0, "rules": []})),
            only(&["admin"]),
        ),
        row(Method::GET, "/api/v1/cases/{case}/schedule", None, case_rw),
        row(
            Method::PATCH,
            "/api/v1/cases/{case}/schedule",
            Some(json!({})),
            case_rw,
        ),
        row(Method::GET, "/api/v1/cases/{case}/outreach", None, case_rw),
        row(
            Method::GET,
            "/api/v1/outreach/{outreach}/preview",
            None,
            case_rw,
        ),
        row(Method::GET, "/api/v1/me/outreach", None, only(&["family"])),
        row(Method::GET, "/api/v1/cases/{case}/uses", None, consent_read),
        row(
            Method::POST,
            "/api/v1/cases/{case}/uses",
            Some(json!({"kind": "publicity"})),
            case_rw,
        ),
        row(
            Method::POST,
            "/api/v1/cases/{marrow}/adverse-events",
            Some(json!({"category": "pain"})),
            case_rw,
        ),
        row(
            Method::GET,
            "/api/v1/cases/{marrow}/adverse-events",
            None,
            adverse_event_read,
        ),
        row(
            Method::GET,
            "/api/v1/adverse-events/{event}",
            None,
            adverse_event_read,
        ),
        row(
            Method::PATCH,
            "/api/v1/adverse-events/{event}",
            Some(json!({"outcome": "resolved"})),
            case_rw,
        ),
        row(
            Method::POST,
            "/api/v1/cases/{case}/correspondents",
            Some(json!({"role": "recipient"})),
            case_rw,
        ),
        row(
            Method::GET,
            "/api/v1/cases/{case}/correspondents",
            None,
            correspondence_read,
        ),
        row(
            Method::PATCH,
            "/api/v1/correspondents/{correspondent}",
            Some(json!({"consented_on": "2025-05-01"})),
            case_rw,
        ),
        row(
            Method::POST,
            "/api/v1/cases/{case}/correspondence",
            Some(json!({"direction": "to_family"})),
            case_rw,
        ),
        row(
            Method::GET,
            "/api/v1/cases/{case}/correspondence",
            None,
            correspondence_read,
        ),
        row(
            Method::GET,
            "/api/v1/correspondence",
            None,
            only(&["supervisor", "coordinator", "ethics_reviewer"]),
        ),
        row(
            Method::GET,
            "/api/v1/correspondence/{letter}",
            None,
            correspondence_read,
        ),
        row(
            Method::PATCH,
            "/api/v1/correspondence/{letter}",
            Some(json!({"redacted_text": "With thanks from our family."})),
            case_rw,
        ),
        // No consent is recorded, so an allowed release is refused (422) and nothing changes;
        // likewise the unknown reason of a withholding.
        row(
            Method::POST,
            "/api/v1/correspondence/{letter}/release",
            None,
            case_rw,
        ),
        row(
            Method::POST,
            "/api/v1/correspondence/{letter}/withhold",
            Some(json!({"reason": "unknown"})),
            case_rw,
        ),
        row(
            Method::GET,
            "/api/v1/me/correspondence",
            None,
            only(&["family"]),
        ),
        // The fixture's family has no correspondence consent: an allowed letter is refused (422).
        row(
            Method::POST,
            "/api/v1/me/correspondence",
            Some(json!({"text": "Thank you."})),
            only(&["family"]),
        ),
        row(
            Method::GET,
            "/api/v1/me/correspondents",
            None,
            only(&["family"]),
        ),
        row(
            Method::GET,
            "/api/v1/adverse-events",
            None,
            only(&["supervisor", "coordinator", "ethics_reviewer"]),
        ),
        row(
            Method::GET,
            "/api/v1/registry/adverse-events",
            None,
            only(&["supervisor", "ethics_reviewer"]),
        ),
        row(
            Method::GET,
            "/api/v1/registry/adverse-events.csv",
            None,
            only(&["supervisor", "ethics_reviewer"]),
        ),
        row(
            Method::GET,
            "/api/v1/memorial-events",
            None,
            only(&["supervisor", "coordinator"]),
        ),
        row(
            Method::POST,
            "/api/v1/memorial-events",
            Some(json!({"kind": "qingming"})),
            only(&["supervisor", "coordinator"]),
        ),
        row(
            Method::GET,
            "/api/v1/memorial-events/{memorial}",
            None,
            region_team,
        ),
        row(
            Method::PATCH,
            "/api/v1/memorial-events/{memorial}",
            Some(json!({"reminder_days": 99})),
            region_team,
        ),
        row(
            Method::GET,
            "/api/v1/memorial-events/{memorial}/invitations",
            None,
            region_team,
        ),
        row(
            Method::POST,
            "/api/v1/memorial-events/{memorial}/invitations",
            Some(json!({"case_ids": []})),
            region_team,
        ),
        row(
            Method::POST,
            "/api/v1/memorial-invitations/{invitation}/reply",
            Some(json!({"reply": "perhaps"})),
            case_rw,
        ),
        row(
            Method::GET,
            "/api/v1/memorial-events/{memorial}/names",
            None,
            region_team,
        ),
        row(
            Method::POST,
            "/api/v1/memorial-events/{memorial}/names",
            Some(json!({"case_id": "{case}"})),
            case_rw,
        ),
        row(
            Method::DELETE,
            "/api/v1/memorial-events/{memorial}/names/{case_id}",
            None,
            case_rw,
        ),
        row(
            Method::GET,
            "/api/v1/memorial-events/{memorial}/names.csv",
            None,
            region_export,
        ),
        row(
            Method::GET,
            "/api/v1/me/memorial-invitations",
            None,
            only(&["family"]),
        ),
        row(
            Method::POST,
            "/api/v1/me/memorial-invitations/{invitation}/reply",
            Some(json!({"reply": "perhaps"})),
            family_own,
        ),
        row(
            Method::POST,
            "/api/v1/memorial-events/{memorial}/cancel",
            Some(json!({})),
            region_team,
        ),
        row(
            Method::GET,
            "/api/v1/letters",
            None,
            only(&["supervisor", "coordinator"]),
        ),
        row(
            Method::GET,
            "/api/v1/outreach",
            None,
            only(&["supervisor", "coordinator"]),
        ),
        row(
            Method::POST,
            "/api/v1/outreach/{outreach}/release",
            Some(json!({})),
            case_rw,
        ),
        row(
            Method::POST,
            "/api/v1/outreach/{outreach}/cancel",
            Some(json!({})),
            case_rw,
        ),
        row(
            Method::GET,
            "/api/v1/me/preferences",
            None,
            only(&["family"]),
        ),
        row(
            Method::PATCH,
            "/api/v1/me/preferences",
            Some(json!({})),
            only(&["family"]),
        ),
        row(
            Method::POST,
            "/api/v1/cases/{case}/consents",
            Some(json!({"kind": "publicity"})),
            case_rw,
        ),
        row(
            Method::GET,
            "/api/v1/consents/{consent}",
            None,
            consent_read,
        ),
        row(
            Method::POST,
            "/api/v1/consents/{consent}/withdraw",
            Some(json!({"reason": "table check"})),
            case_rw,
        ),
        row(
            Method::GET,
            "/api/v1/consents",
            None,
            only(&["supervisor", "coordinator", "ethics_reviewer"]),
        ),
        row(Method::GET, "/api/v1/consent-documents", None, only(&ROLES)),
        row(
            Method::GET,
            "/api/v1/consent-documents/{document}",
            None,
            only(&ROLES),
        ),
        row(Method::GET, "/api/v1/me/consents", None, only(&["family"])),
        row(
            Method::GET,
            "/api/v1/consents/{consent}/attachment",
            None,
            consent_read,
        ),
        row(
            Method::POST,
            "/api/v1/consents/{consent}/attachment",
            Some(json!({})),
            case_rw,
        ),
        row(
            Method::POST,
            "/api/v1/consents/{consent}/reviews",
            Some(json!({"finding": "verified"})),
            only(&["ethics_reviewer"]),
        ),
        row(
            Method::POST,
            "/api/v1/cases/{case}/reveal",
            Some(json!({"reason": "checking the access table for reveals"})),
            only(&["ethics_reviewer"]),
        ),
        row(
            Method::POST,
            "/api/v1/ethics/exports",
            Some(
                json!({"recipient": "age1gde3ncmahlqd9gg50tanl99r960llztrhfapnmx853s4tjum8jjs8dvdrs"}),
            ),
            only(&["ethics_reviewer"]),
        ),
        row(
            Method::GET,
            "/api/v1/ethics/findings",
            None,
            only(&["supervisor", "coordinator", "ethics_reviewer"]),
        ),
        row(
            Method::POST,
            "/api/v1/ethics/findings/{finding}/decision",
            Some(json!({"finding": "verified"})),
            only(&["ethics_reviewer"]),
        ),
        row(
            Method::POST,
            "/api/v1/me/consents/{consent}/withdraw",
            Some(json!({"reason": "table check"})),
            family_own,
        ),
        row(
            Method::POST,
            "/api/v1/tasks/{task}/complete",
            Some(json!({"outcome": "visited"})),
            task_rw,
        ),
        row(
            Method::POST,
            "/api/v1/cases/{case}/erasure-requests",
            Some(json!({})),
            erasure_request,
        ),
        row(
            Method::GET,
            "/api/v1/cases",
            None,
            only(&["supervisor", "coordinator"]),
        ),
        row(
            Method::POST,
            "/api/v1/cases",
            Some(json!({})),
            only(&["supervisor", "coordinator"]),
        ),
        row(
            Method::GET,
            "/api/v1/tasks",
            None,
            only(&["supervisor", "coordinator", "volunteer"]),
        ),
        row(Method::GET, "/api/v1/users", None, only(&["admin"])),
        row(
            Method::POST,
            "/api/v1/users",
            Some(json!({})),
            only(&["admin"]),
        ),
        row(
            Method::PATCH,
            "/api/v1/users/{coordinator}",
            Some(json!({})),
            only(&["admin"]),
        ),
        row(
            Method::POST,
            "/api/v1/users/{coordinator}/totp-reset",
            None,
            only(&["admin"]),
        ),
        row(
            Method::GET,
            "/api/v1/audit",
            None,
            only(&["admin", "supervisor", "ethics_reviewer"]),
        ),
        row(
            Method::GET,
            "/api/v1/audit/verify",
            None,
            only(&["admin", "supervisor", "ethics_reviewer"]),
        ),
        row(
            Method::GET,
            "/api/v1/break-glass",
            None,
            only(&["supervisor", "ethics_reviewer"]),
        ),
        row(
            Method::GET,
            "/api/v1/ethics/consent-register",
            None,
            only(&["supervisor", "coordinator", "ethics_reviewer"]),
        ),
        row(
            Method::GET,
            "/api/v1/ethics/consent-register.csv",
            None,
            only(&["supervisor", "coordinator", "ethics_reviewer"]),
        ),
        row(
            Method::GET,
            "/api/v1/reports",
            None,
            only(&["admin", "supervisor", "ethics_reviewer"]),
        ),
        row(
            Method::GET,
            "/api/v1/reports.csv",
            None,
            only(&["admin", "supervisor", "ethics_reviewer"]),
        ),
        row(
            Method::GET,
            "/api/v1/honour-roll",
            None,
            only(&["supervisor", "coordinator"]),
        ),
        row(
            Method::GET,
            "/api/v1/honour-roll.csv",
            None,
            only(&["supervisor", "coordinator"]),
        ),
        row(Method::GET, "/api/v1/break-glass/{grant}", None, grant_read),
        row(
            Method::POST,
            "/api/v1/break-glass/{grant}/reviews",
            Some(json!({"decision": "acknowledged"})),
            only(&["ethics_reviewer"]),
        ),
        row(
            Method::GET,
            "/api/v1/erasure-requests",
            None,
            only(&["admin", "supervisor", "ethics_reviewer"]),
        ),
        row(
            Method::POST,
            "/api/v1/erasure-requests/{erasure}/reject",
            Some(json!({})),
            only(&["ethics_reviewer"]),
        ),
        row(
            Method::POST,
            "/api/v1/erasure-requests/{erasure}/approve",
            Some(json!({})),
            only(&["ethics_reviewer"]),
        ),
        row(
            Method::GET,
            "/api/v1/me/access-log",
            None,
            only(&["family"]),
        ),
        row(
            Method::POST,
            "/api/v1/me/erasure-request",
            Some(json!({})),
            only(&["family"]),
        ),
        row(Method::GET, "/api/v1/me", None, only(&ROLES)),
        row(
            Method::POST,
            "/api/v1/me/password",
            Some(json!({"current_password": "x", "new_password": "y"})),
            only(&ROLES),
        ),
        row(
            Method::POST,
            "/api/v1/me/totp",
            Some(json!({})),
            only(&ROLES),
        ),
        row(
            Method::POST,
            "/api/v1/me/totp/confirm",
            Some(json!({"code": "000000"})),
            only(&ROLES),
        ),
        row(
            Method::POST,
            "/api/v1/tasks/{task}/cancel",
            Some(json!({"reason": "table check"})),
            task_change,
        ),
        // Last: these two change who may see what.
        row(
            Method::POST,
            "/api/v1/cases/{case}/assign",
            Some(json!({"coordinator_id": "{coordinator}"})),
            assign,
        ),
        row(
            Method::POST,
            "/api/v1/cases/{case}/break-glass",
            Some(json!({"reason": "checking the access table works"})),
            break_glass,
        ),
    ]
}

/// Routes that need no bearer token, and the logout that ends it.
const OUTSIDE_THE_TABLE: &[(&str, &str)] = &[
    ("post", "/api/v1/auth/login"),
    ("post", "/api/v1/auth/logout"),
    ("post", "/api/v1/invites/{token}/accept"),
];

/// One record of each kind, per ownership.
struct Fixture {
    case: String,
    contact: String,
    task: String,
    consent: String,
    /// One of the case's plan-made outreach messages.
    outreach: String,
    /// A break-glass use of the case by a coordinator who is not one of the callers.
    grant: String,
    /// A marrow case of the same ownership, and an adverse event on it.
    marrow: String,
    event: String,
    /// A memorial event of the record's region, and the case's invitation to it.
    memorial: String,
    invitation: String,
    /// A correspondent of the case, and a letter from them awaiting review.
    correspondent: String,
    letter: String,
    distinctive: String,
}

struct World {
    users: Vec<(String, TestUser)>,
    coordinator_id: String,
    erasure: String,
    /// An open finding (the organ cases have no donation consent).
    finding: String,
    records: Vec<(Ownership, Fixture)>,
}

async fn build(app: &TestApp) -> World {
    let sup = app.user("supervisor", Some("yinzhou")).await;
    let coord = app.user("coordinator", Some("yinzhou")).await;
    let vol = app.user("volunteer", Some("yinzhou")).await;
    let far_sup = app.user("supervisor", Some("haishu")).await;
    let far_coord = app.user("coordinator", Some("haishu")).await;
    let far_vol = app.user("volunteer", Some("haishu")).await;
    let glass = app.user("coordinator", Some("yinzhou")).await;
    let mut records = Vec::new();
    let mut family = None;
    for own in [Ownership::Own, Ownership::Other, Ownership::Unassigned] {
        let tag = format!(
            "Tbl{own:?}{}",
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        let (creator, region, volunteer) = match own {
            Ownership::Own => (&coord, "yinzhou", Some(&vol)),
            Ownership::Other => (&far_coord, "haishu", Some(&far_vol)),
            Ownership::Unassigned => (&sup, "yinzhou", None),
        };
        let mut body = organ_case(&tag);
        body["region"] = json!(region);
        let token = if own == Ownership::Other {
            &far_sup.token
        } else {
            &creator.token
        };
        let case = app.create_case(token, body).await;
        let case_id = case["id"].as_str().unwrap().to_string();
        if own == Ownership::Other {
            let (s, b) = app
                .post(
                    &format!("/api/v1/cases/{case_id}/assign"),
                    &far_sup.token,
                    json!({"coordinator_id": far_coord.id}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{b}");
        }
        let (_, contact) = app
            .post(&format!("/api/v1/cases/{case_id}/contacts"), token,
                  json!({"full_name": format!("Kin{tag}"), "relationship": "spouse", "phone": "13711112222", "preferred_channel": "sms"}))
            .await;
        let contact_id = contact["id"].as_str().unwrap().to_string();
        let mut task_body =
            json!({"kind": "visit", "due_at": "2030-01-01", "contact_id": contact_id});
        if let Some(v) = volunteer {
            task_body["assignee_id"] = json!(v.id);
        }
        let (s, task) = app
            .post(&format!("/api/v1/cases/{case_id}/tasks"), token, task_body)
            .await;
        assert_eq!(s, StatusCode::CREATED, "{task}");
        if own == Ownership::Own {
            let (_, inv) = app
                .post(
                    &format!("/api/v1/contacts/{contact_id}/invite"),
                    token,
                    json!({}),
                )
                .await;
            let t = inv["invite_url"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string();
            let name = format!("family-{}", &uuid::Uuid::new_v4().simple().to_string()[..6]);
            let (s, _) = app
                .call(
                    Method::POST,
                    &format!("/api/v1/invites/{t}/accept"),
                    None,
                    Some(json!({"username": name, "password": "family-password-1"})),
                )
                .await;
            assert_eq!(s, StatusCode::CREATED);
            family = Some(TestUser {
                id: String::new(),
                token: app.login(&name, "family-password-1").await,
                username: name,
            });
        }
        let consent = json!({"kind": "contact", "subject": contact_id, "given_by": contact_id,
                             "method": "electronic", "document": "contact-en-v1", "signed_at": "2025-04-01"});
        let (s, consent) = app
            .post(&format!("/api/v1/cases/{case_id}/consents"), token, consent)
            .await;
        assert_eq!(s, StatusCode::CREATED, "{consent}");
        let form = axum::http::Request::builder()
            .method(Method::POST)
            .uri(format!(
                "/api/v1/consents/{}/attachment",
                consent["id"].as_str().unwrap()
            ))
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::from(
                &b"%PDF-1.4 signed form of the table check"[..],
            ))
            .unwrap();
        let (s, body) = app.send(form).await;
        assert_eq!(s, StatusCode::CREATED, "{body}");
        let mut marrow = marrow_case(&format!("Marrow{tag}"), "13900005555");
        marrow["region"] = json!(region);
        let marrow = app.create_case(token, marrow).await;
        let marrow_id = marrow["id"].as_str().unwrap().to_string();
        if own == Ownership::Other {
            let (s, b) = app
                .post(
                    &format!("/api/v1/cases/{marrow_id}/assign"),
                    &far_sup.token,
                    json!({"coordinator_id": far_coord.id}),
                )
                .await;
            assert_eq!(s, StatusCode::OK, "{b}");
        }
        let (s, event) = app
            .post(
                &format!("/api/v1/cases/{marrow_id}/adverse-events"),
                token,
                json!({"occurred_on": "2025-05-22", "category": "fatigue", "grade": 1,
                       "relation": "possibly", "outcome": "recovering",
                       "description": format!("Tired {tag}")}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{event}");
        let (s, correspondent) = app
            .post(
                &format!("/api/v1/cases/{case_id}/correspondents"),
                token,
                json!({"label": "Recipient A", "role": "recipient"}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{correspondent}");
        let (s, letter) = app
            .post(
                &format!("/api/v1/cases/{case_id}/correspondence"),
                token,
                json!({"correspondent_id": correspondent["id"], "direction": "to_family",
                       "addressee": contact_id, "received_on": "2025-06-01",
                       "text": format!("Dear family {tag}, thank you.")}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{letter}");
        let (s, msgs) = app
            .get(&format!("/api/v1/cases/{case_id}/outreach"), token)
            .await;
        assert_eq!(s, StatusCode::OK, "{msgs}");
        let outreach = msgs["items"][0]["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no outreach for {own:?}: {msgs}"))
            .to_string();
        let (s, grant) = app
            .post(
                &format!("/api/v1/cases/{case_id}/break-glass"),
                &glass.token,
                json!({"reason": "a family called at night; the case's coordinator is away"}),
            )
            .await;
        assert_eq!(s, StatusCode::OK, "{grant}");
        records.push((
            own,
            Fixture {
                grant: grant["id"].as_str().unwrap().to_string(),
                event: event["id"].as_str().unwrap().to_string(),
                correspondent: correspondent["id"].as_str().unwrap().to_string(),
                letter: letter["id"].as_str().unwrap().to_string(),
                marrow: marrow_id,
                outreach,
                consent: consent["id"].as_str().unwrap().to_string(),
                case: case_id,
                contact: contact_id,
                task: task["id"].as_str().unwrap().to_string(),
                memorial: String::new(),
                invitation: String::new(),
                distinctive: tag,
            },
        ));
    }
    // A memorial event in each region; each case invited by someone who may invite it.
    let day = (chrono::Utc::now() + chrono::Duration::days(60)).date_naive();
    let mut events = Vec::new();
    for planner in [&coord, &far_coord] {
        let (s, e) = app
            .post(
                "/api/v1/memorial-events",
                &planner.token,
                json!({"kind": "qingming", "title": "Qingming", "place": "Hill",
                       "starts_at": format!("{day}T09:30")}),
            )
            .await;
        assert_eq!(s, StatusCode::CREATED, "{e}");
        events.push(e["id"].as_str().unwrap().to_string());
    }
    for (own, rec) in records.iter_mut() {
        let (event, inviter) = match own {
            Ownership::Own => (&events[0], &coord),
            Ownership::Unassigned => (&events[0], &sup),
            Ownership::Other => (&events[1], &far_coord),
        };
        let (s, r) = app
            .post(
                &format!("/api/v1/memorial-events/{event}/invitations"),
                &inviter.token,
                json!({"case_ids": [rec.case]}),
            )
            .await;
        assert_eq!((s, r["invited"].as_u64()), (StatusCode::OK, Some(1)), "{r}");
        let invitation = app
            .state
            .svc
            .store
            .invitation_for(event, &rec.case)
            .await
            .unwrap()
            .expect("the invitation");
        rec.memorial = event.clone();
        rec.invitation = invitation.id;
    }
    let (s, er) = app
        .post(
            &format!("/api/v1/cases/{}/erasure-requests", records[1].1.case),
            &far_sup.token,
            json!({}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{er}");
    // Assignments in the table go to a coordinator who is not one of the callers.
    let spare = app.user("coordinator", Some("yinzhou")).await;
    let users = vec![
        ("admin".to_string(), app.user("admin", None).await),
        ("supervisor".to_string(), sup),
        ("coordinator".to_string(), coord),
        (
            "ethics_reviewer".to_string(),
            app.user("ethics_reviewer", None).await,
        ),
        ("volunteer".to_string(), vol),
        ("family".to_string(), family.expect("family account")),
    ];
    World {
        coordinator_id: spare.id.clone(),
        users,
        erasure: er["id"].as_str().unwrap().to_string(),
        finding: app
            .state
            .svc
            .store
            .list_findings(&donorcare::store::FindingQuery {
                case_id: Some(records[0].1.case.clone()),
                status: Some("open".into()),
                limit: 1,
                ..Default::default()
            })
            .await
            .unwrap()
            .first()
            .expect("an open finding")
            .id
            .clone(),
        records,
    }
}

fn classify(status: StatusCode) -> Expect {
    match status {
        StatusCode::FORBIDDEN => Forbidden,
        StatusCode::NOT_FOUND => Hidden,
        _ => Allowed,
    }
}

on_both_backends! {
    async fn every_role_gets_exactly_what_the_access_table_allows(app) {
        let world = build(&app).await;
        let mut failures = Vec::new();
        for r in table() {
            // Admins and supervisors last: their allowed writes (assign) change what others see.
            for (role, user) in world.users.iter().rev() {
                for (own, rec) in &world.records {
                    let fill = |s: &str| {
                        s.replace("{case}", &rec.case)
                            .replace("{contact}", &rec.contact)
                            .replace("{task}", &rec.task)
                            .replace("{outreach}", &rec.outreach)
                            .replace("{program}", "marrow")
                            .replace("{coordinator}", &world.coordinator_id)
                            .replace("{erasure}", &world.erasure)
                            .replace("{consent}", &rec.consent)
                            .replace("{document}", "contact-en-v1")
                            .replace("{finding}", &world.finding)
                            .replace("{grant}", &rec.grant)
                            .replace("{marrow}", &rec.marrow)
                            .replace("{event}", &rec.event)
                            .replace("{memorial}", &rec.memorial)
                            .replace("{invitation}", &rec.invitation)
                            .replace("{case_id}", &rec.case)
                            .replace("{correspondent}", &rec.correspondent)
                            .replace("{letter}", &rec.letter)
                    };
                    let path = fill(r.path);
                    let body = r.body.as_ref().map(|b| serde_json::from_str(&fill(&b.to_string())).unwrap());
                    let (status, resp) = app.call(r.method.clone(), &path, Some(&user.token), body).await;
                    assert_ne!(status, StatusCode::UNAUTHORIZED, "{role} {} {path}: {resp}", r.method);
                    assert!(status != StatusCode::INTERNAL_SERVER_ERROR, "{role} {} {path}: {resp}", r.method);
                    let got = classify(status);
                    let want = (r.rule)(role, *own);
                    if got != want {
                        failures.push(format!("{role:>15} {own:?} {} {}: expected {want:?}, got {status} {resp}", r.method, r.path));
                    }
                    if got != Allowed {
                        // A refusal reveals nothing of any record.
                        let text = resp.to_string();
                        for (_, other) in &world.records {
                            assert!(!text.contains(&other.distinctive), "{role} {path} leaked: {text}");
                        }
                    }
                }
            }
        }
        assert!(failures.is_empty(), "{} mismatches:\n{}", failures.len(), failures.join("\n"));
    }

    async fn every_api_route_has_a_row_in_the_access_table(app) {
        let (_, doc) = app.call(Method::GET, "/api/v1/openapi.json", None, None).await;
        let rows: Vec<(String, String)> = table()
            .iter()
            .map(|r| (r.method.as_str().to_lowercase(), r.path.to_string()))
            .collect();
        let normalise = |p: &str| {
            p.replace("{case}", "{id}").replace("{contact}", "{id}").replace("{task}", "{id}")
                .replace("{coordinator}", "{id}").replace("{erasure}", "{id}")
                .replace("{consent}", "{id}").replace("{document}", "{id}")
                .replace("{finding}", "{id}").replace("{outreach}", "{id}")
                .replace("{grant}", "{id}").replace("{marrow}", "{id}")
                .replace("{event}", "{id}").replace("{memorial}", "{id}")
                .replace("{invitation}", "{id}")
                .replace("{event}", "{id}").replace("{correspondent}", "{id}")
                .replace("{letter}", "{id}")
        };
        let mut missing = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                let covered = rows.iter().any(|(m, p)| m == method && normalise(p) == *path)
                    || OUTSIDE_THE_TABLE.iter().any(|(m, p)| m == method && p == path);
                if !covered {
                    missing.push(format!("{method} {path}"));
                }
            }
        }
        assert!(missing.is_empty(), "routes without a row in the access table: {missing:?}");
    }
}
