//! Each role's home: what needs doing first.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use super::view::Page;
use crate::domain::findings::{self, FindingFilter};
use crate::domain::outreach::{self, AttentionFilter};
use crate::domain::tasks::{self, TaskFilter};
use crate::domain::{cases, types::Role};
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[
    ("home", include_str!("../../../templates/home.hbs")),
    (
        "home_care",
        include_str!("../../../templates/home_care.hbs"),
    ),
    (
        "home_volunteer",
        include_str!("../../../templates/home_volunteer.hbs"),
    ),
    (
        "home_admin",
        include_str!("../../../templates/home_admin.hbs"),
    ),
];

/// Items of each list on the home page; each list links to the whole of it.
const ON_HOME: i64 = 12;
/// Tasks listed in each of "overdue" and "due today"; the tiles count them all and the rest
/// are a link away (a coordinator back from leave should see a page, not a wall).
const TASKS_ON_HOME: usize = 20;
/// Messages read once for the tiles' counts; more reads "100+".
const TALLY: i64 = 100;

pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(home))
}

async fn home(State(s): State<AppState>, page: Page) -> Response {
    let Some(user) = &page.user else {
        return page.render(&s, StatusCode::OK, "home", json!({"title": "home-title"}));
    };
    let result = match user.actor.role {
        Role::Coordinator | Role::Supervisor => care_home(&s, &page).await,
        Role::Volunteer => volunteer_home(&s, &page).await,
        Role::Admin => admin_home(&s, &page).await,
        // A family's home is their portal.
        Role::Family => return Redirect::to("/me").into_response(),
        // A reviewer's home is the findings queue.
        Role::EthicsReviewer => return Redirect::to("/ethics/findings").into_response(),
    };
    result.unwrap_or_else(|e| page.error(&s, e))
}

/// Coordinator and supervisor: due today, overdue, messages held or dead, open findings, and
/// the cases by programme.
async fn care_home(s: &AppState, page: &Page) -> crate::error::Result<Response> {
    let actor = &page.user.as_ref().expect("signed in").actor;
    let now = s.now();
    let digest = tasks::digest(&s.svc, actor, now).await?;
    let attention = outreach::attention(
        &s.svc,
        actor,
        AttentionFilter {
            status: Some("held,dead,failed".into()),
            limit: Some(TALLY),
            cursor: None,
        },
        now,
    )
    .await?;
    // One read serves the tiles (up to a hundred) and the list (the first few).
    let more = if attention.next_cursor.is_some() {
        "+"
    } else {
        ""
    };
    let held = attention
        .items
        .iter()
        .filter(|m| m.status == "held")
        .count();
    let held = format!("{held}{more}");
    let dead = format!(
        "{}{more}",
        attention.items.len()
            - attention
                .items
                .iter()
                .filter(|m| m.status == "held")
                .count()
    );
    let more_attention = attention.items.len() as i64 > ON_HOME || attention.next_cursor.is_some();
    let mut attention = attention;
    attention.items.truncate(ON_HOME as usize);
    let findings = findings::list(
        &s.svc,
        actor,
        FindingFilter {
            status: Some("open".into()),
            limit: Some(ON_HOME),
            ..Default::default()
        },
        now,
    )
    .await?;
    let counts = cases::counts(&s.svc, actor).await?;
    // Each item is named by its donor, so a coordinator knows whom a call is for.
    let more_overdue = digest.overdue.len() > TASKS_ON_HOME;
    let more_today = digest.due_today.len() > TASKS_ON_HOME;
    let mut overdue = json!(digest.overdue[..digest.overdue.len().min(TASKS_ON_HOME)]);
    let mut due_today = json!(digest.due_today[..digest.due_today.len().min(TASKS_ON_HOME)]);
    let mut attention_items = json!(attention.items);
    let mut open_findings = json!(findings.items);
    super::view::name_donors(
        s,
        actor,
        &mut [
            &mut overdue,
            &mut due_today,
            &mut attention_items,
            &mut open_findings,
        ],
    )
    .await?;
    let mut programs: Vec<Value> = Vec::new();
    for c in &counts {
        let entry = match programs.iter_mut().find(|p| p["program"] == c.program) {
            Some(e) => e,
            None => {
                programs.push(json!({"program": c.program, "open": 0, "closed": 0}));
                programs.last_mut().expect("just pushed")
            }
        };
        let field = if c.status == "open" { "open" } else { "closed" };
        entry[field] = json!(entry[field].as_i64().unwrap_or(0) + c.count);
    }

    Ok(page.render(
        s,
        StatusCode::OK,
        "home_care",
        json!({
            "title": "home-title",
            "overdue_count": digest.overdue.len(),
            "today_count": digest.due_today.len(),
            "overdue": overdue,
            "more_overdue": more_overdue,
            "more_today": more_today,
            "due_today": due_today,
            "attention": attention_items,
            "held": held,
            "dead": dead,
            "more_attention": more_attention,
            "findings": open_findings,
            "more_findings": findings.next_cursor.is_some(),
            "programs": programs,
        }),
    ))
}

/// Volunteer: the visits assigned to them, soonest first.
async fn volunteer_home(s: &AppState, page: &Page) -> crate::error::Result<Response> {
    let actor = &page.user.as_ref().expect("signed in").actor;
    let visits = tasks::list(
        &s.svc,
        actor,
        TaskFilter {
            status: Some("scheduled".into()),
            limit: Some(50),
            ..Default::default()
        },
        s.now(),
    )
    .await?;
    Ok(page.render(
        s,
        StatusCode::OK,
        "home_volunteer",
        json!({"title": "nav-my-visits", "visits": visits.items,
               "more": visits.next_cursor.is_some()}),
    ))
}

/// Admin: the accounts by role (disabled, with TOTP) and the keyring's state.
async fn admin_home(s: &AppState, page: &Page) -> crate::error::Result<Response> {
    let actor = &page.user.as_ref().expect("signed in").actor;
    let now = s.now();
    let counts = crate::domain::accounts::account_counts(&s.svc, actor, now).await?;
    let keys = crate::domain::keys::status(&s.svc, actor, now).await?;
    let roles: Vec<Value> = counts
        .by_role
        .iter()
        .map(|(role, n)| json!({"role": role, "count": n}))
        .collect();
    Ok(page.render(
        s,
        StatusCode::OK,
        "home_admin",
        json!({"title": "home-title", "accounts": counts, "roles": roles, "keys": keys}),
    ))
}
