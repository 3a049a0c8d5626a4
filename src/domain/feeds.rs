//! A staff member's calendar feed: a secret, revocable `.ics` address of their scheduled
//! visits and calls, so they show in a phone's calendar. The address is a random token the
//! store keeps only as its hash; a new one replaces the old, and revoking it ends the feed.
//!
//! A phone's calendar is synced to other services, so an event says only what it is, when,
//! and the link to the task in donorcare: no names, no national ID, no health details, no
//! address. Everything else is one sign-in away.

use chrono::{DateTime, Utc};

use super::tasks::{self, TaskFilter, TaskView};
use super::types::Role;
use super::Services;
use crate::audit::AuditEntry;
use crate::crypto::{random_token, token_hash, SecretString};
use crate::error::{Error, Result};
use crate::policy::Actor;

/// Who may have a feed: the staff who make visits and calls.
const ROLES: &[Role] = &[Role::Coordinator, Role::Supervisor, Role::Volunteer];
/// Events in one feed at most (pages of the task list).
const MAX_EVENTS: usize = 1000;
/// Only these tasks are a person's appointments; messages go by themselves.
const KINDS: &[&str] = &["visit", "call"];

fn allowed(actor: &Actor) -> Result<()> {
    if ROLES.contains(&actor.role) {
        Ok(())
    } else {
        Err(Error::Forbidden)
    }
}

fn entry(actor: &Actor, action: &str, now: DateTime<Utc>) -> AuditEntry {
    AuditEntry::new(Some(actor), action, "calendar", now).target(&actor.user_id)
}

/// When the caller's feed was made, if they have one.
pub async fn status(svc: &Services, actor: &Actor) -> Result<Option<DateTime<Utc>>> {
    allowed(actor)?;
    svc.store.calendar_feed_of(&actor.user_id).await
}

/// A new feed token for the caller; any earlier address stops working.
pub async fn issue(svc: &Services, actor: &Actor, now: DateTime<Utc>) -> Result<SecretString> {
    allowed(actor)?;
    let token = random_token();
    svc.store
        .set_calendar_feed(
            &actor.user_id,
            &token_hash(token.expose()),
            now,
            &[entry(actor, "calendar.issue", now)],
        )
        .await?;
    Ok(token)
}

/// End the caller's feed.
pub async fn revoke(svc: &Services, actor: &Actor, now: DateTime<Utc>) -> Result<bool> {
    allowed(actor)?;
    svc.store
        .delete_calendar_feed(&actor.user_id, &[entry(actor, "calendar.revoke", now)])
        .await
}

/// The scheduled visits and calls behind a feed token, read with its owner's own rights;
/// `NotFound` for an unknown or revoked token or a disabled account.
pub async fn events(svc: &Services, token: &str, now: DateTime<Utc>) -> Result<Vec<TaskView>> {
    let (user_id, _) = svc
        .store
        .calendar_feed(&token_hash(token))
        .await?
        .ok_or(Error::NotFound)?;
    let user = svc
        .store
        .user_by_id(&user_id)
        .await?
        .filter(|u| !u.disabled)
        .ok_or(Error::NotFound)?;
    let actor = super::accounts::actor_of(&user)?;
    allowed(&actor).map_err(|_| Error::NotFound)?;
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = tasks::list(
            svc,
            &actor,
            TaskFilter {
                status: Some("scheduled".into()),
                limit: Some(super::MAX_PAGE),
                cursor,
                ..Default::default()
            },
            now,
        )
        .await?;
        out.extend(
            page.items
                .into_iter()
                .filter(|t| KINDS.contains(&t.kind.as_str())),
        );
        cursor = page.next_cursor;
        if cursor.is_none() || out.len() >= MAX_EVENTS {
            break;
        }
    }
    out.truncate(MAX_EVENTS);
    svc.audit
        .record(vec![entry(&actor, "calendar.feed", now).reason("fetched")])
        .await?;
    Ok(out)
}

/// Text escaped for an iCalendar value (RFC 5545 §3.3.11).
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

/// A content line folded at 75 octets, never inside a character (RFC 5545 §3.1).
fn fold(line: &str, out: &mut String) {
    let mut width = 0;
    for c in line.chars() {
        let n = c.len_utf8();
        if width + n > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(c);
        width += n;
    }
    out.push_str("\r\n");
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// The feed as an iCalendar document: one event per task, `summary(kind)` its title, the
/// task's page its URL.
pub fn ics(
    tasks: &[TaskView],
    calendar_name: &str,
    summary: impl Fn(&str) -> String,
    task_url: impl Fn(&str) -> String,
    now: DateTime<Utc>,
) -> String {
    let mut out = String::new();
    for line in [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Red Cross//donorcare//ZH",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
    ] {
        fold(line, &mut out);
    }
    fold(&format!("X-WR-CALNAME:{}", escape(calendar_name)), &mut out);
    for t in tasks {
        let minutes = if t.kind == "visit" { 60 } else { 15 };
        let end = t.due_at + chrono::Duration::minutes(minutes);
        let url = task_url(&t.id);
        for line in [
            "BEGIN:VEVENT".to_string(),
            format!("UID:{}@donorcare", t.id),
            format!("DTSTAMP:{}", stamp(now)),
            format!("DTSTART:{}", stamp(t.due_at)),
            format!("DTEND:{}", stamp(end)),
            format!("SUMMARY:{}", escape(&summary(&t.kind))),
            format!("URL:{url}"),
            format!("DESCRIPTION:{}", escape(&url)),
            "END:VEVENT".to_string(),
        ] {
            fold(&line, &mut out);
        }
    }
    fold("END:VCALENDAR", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str, kind: &str) -> TaskView {
        TaskView {
            id: id.into(),
            case_id: "c".into(),
            kind: kind.into(),
            due_at: "2026-12-07T01:30:00Z".parse().unwrap(),
            status: "scheduled".into(),
            overdue: false,
            assignee_id: None,
            contact_id: None,
            template: None,
            contact: None,
            outcome: None,
            note: None,
            completed_at: None,
            rule_id: None,
            occurrence: None,
            grace_until: None,
            changes: Vec::new(),
        }
    }

    #[test]
    fn an_event_per_task_with_folded_crlf_lines_and_nothing_personal() {
        let now = "2026-12-06T00:00:00Z".parse().unwrap();
        let long = "探访".repeat(30);
        let doc = ics(
            &[task("t1", "visit"), task("t2", "call")],
            "我的探访, 电话",
            |k| {
                if k == "visit" {
                    long.clone()
                } else {
                    "电话回访".into()
                }
            },
            |id| format!("https://care.example/tasks/{id}"),
            now,
        );
        assert!(doc.starts_with("BEGIN:VCALENDAR\r\n") && doc.ends_with("END:VCALENDAR\r\n"));
        assert_eq!(doc.matches("BEGIN:VEVENT").count(), 2);
        assert!(doc.contains("DTSTART:20261207T013000Z\r\nDTEND:20261207T023000Z"));
        assert!(doc.contains("X-WR-CALNAME:我的探访\\, 电话"));
        assert!(doc.contains("URL:https://care.example/tasks/t2"));
        for line in doc.split("\r\n") {
            assert!(line.len() <= 75, "an unfolded line: {line}");
        }
        assert!(!doc.replace("\r\n", "").contains('\n'), "bare newlines");
    }
}
