//! Care plans: lists of rules, each making a visit, a call or an outreach message on dates it
//! computes from a case's anchors. Plans are data (stored as JSON, edited by admins); this
//! module validates them, holds the defaults of each programme, and computes occurrences.

use chrono::{DateTime, Duration, Months, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::calendar::{self, Festival};
use super::marrow;
use crate::error::Validator;

/// Built-in outreach templates (each in zh-CN and en under `templates/outreach/`).
pub const TEMPLATES: [&str; 11] = [
    "anniversary_letter",
    "qingming",
    "spring_festival",
    "mourning_day",
    "marrow_followup",
    "blood_donation_reminder",
    "blood_donation_resume",
    "second_donation_window",
    "second_donation_window_closed",
    "memorial_invitation",
    "birthday",
];

/// Every outreach channel: the five a contact may prefer, and the development `file` channel.
pub const CHANNELS: [&str; 6] = ["email", "sms", "letter", "portal", "wechat", "file"];

/// The longest `skip_after_visit_days` a rule may have.
pub const MAX_SKIP_AFTER_VISIT_DAYS: u32 = 366;

/// One rule of a care plan.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable name within the plan (`a-z`, `0-9`, `_`); tasks remember the rule that made them.
    pub id: String,
    /// `offset`, `anniversary`, `festival`, `mourning` or `cron`.
    pub kind: String,
    /// `visit`, `call` or `outreach`.
    pub action: String,
    /// Outreach template (required for `outreach`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Channel for outreach; default: each recipient's preferred channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// `donation`, `death`, `registration` or `birth` (offset and anniversary rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<String>,
    /// For `offset`: a number and a unit, `7d`, `2w`, `6m` or `1y`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<String>,
    /// For `anniversary` and `mourning`: `gregorian` (default) or `lunar`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calendar: Option<String>,
    /// For `anniversary`: first and last anniversary to keep (default 1 and no end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_year: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_year: Option<u32>,
    /// For `festival`: `qingming`, `spring_festival`, `zhongyuan`, `hanyi` or `mid_autumn`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub festival: Option<String>,
    /// For `cron`: six or seven fields, seconds first, read on the recipient's clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// Only for cases whose donation kind is one of these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub donation_kinds: Option<Vec<String>>,
    /// Days after its date that the occurrence may still happen; later it is skipped and
    /// recorded. Default: 3 for festivals, 7 for other outreach, 14 for visits and calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_days: Option<u32>,
    /// Local time of day (`HH:MM`); default the start of waking hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// For outreach: a visit to the case completed up to this many days before a message is
    /// due makes it pointless, and completing the visit cancels it (`visit_done`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_after_visit_days: Option<u32>,
}

/// What a case offers the rules.
#[derive(Debug, Clone, Default)]
pub struct Anchors {
    pub donation: Option<NaiveDate>,
    pub death: Option<NaiveDate>,
    pub registration: Option<NaiveDate>,
    pub birth: Option<NaiveDate>,
    pub donation_kind: Option<String>,
}

/// A family's choices for their case.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct CasePreferences {
    /// Send the traditional mourning days (头七 … 百日, first and third anniversaries).
    #[serde(default)]
    pub mourning_days: bool,
    /// Festivals this family does not want to hear from us on.
    #[serde(default)]
    pub skip_festivals: Vec<String>,
}

/// One occurrence of a rule: the task it makes.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    pub rule_id: String,
    /// Identifies the occurrence within its rule, stable when an anchor moves (`once`, `y3`,
    /// `2027`, `d49`, or a local time for cron rules).
    pub key: String,
    /// The local wall-clock time it is due.
    pub local: NaiveDateTime,
    pub action: String,
    pub template: Option<String>,
    pub channel: Option<String>,
    pub grace: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Offset {
    Days(i64),
    Months(u32),
}

fn parse_offset(s: &str) -> Result<Offset, String> {
    let bad = || "must be a number and a unit: 7d, 2w, 6m or 1y".to_string();
    let s = s.trim();
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u32 = n.parse().map_err(|_| bad())?;
    if n > 1200 {
        return Err("must be at most 100 years".into());
    }
    match unit {
        "d" => Ok(Offset::Days(i64::from(n))),
        "w" => Ok(Offset::Days(i64::from(n) * 7)),
        "m" => Ok(Offset::Months(n)),
        "y" => Ok(Offset::Months(n * 12)),
        _ => Err(bad()),
    }
}

fn add_offset(date: NaiveDate, o: Offset) -> Option<NaiveDate> {
    match o {
        Offset::Days(d) => date.checked_add_signed(Duration::days(d)),
        // Month ends clamp: 31 January + 1 month is 28 (or 29) February.
        Offset::Months(m) => date.checked_add_months(Months::new(m)),
    }
}

fn parse_time(s: &str) -> Result<NaiveTime, String> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M").map_err(|_| "must be HH:MM".to_string())
}

fn is_rule_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 40
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Validate a whole plan, naming each bad field as `rules[i].field`.
pub fn validate(rules: &[Rule], v: &mut Validator) {
    if rules.len() > 100 {
        v.add("rules", "a plan has at most 100 rules");
    }
    let mut seen = std::collections::HashSet::new();
    for (i, r) in rules.iter().enumerate() {
        let f = |name: &str| format!("rules[{i}].{name}");
        if !is_rule_id(&r.id) {
            v.add(f("id"), "must be 1–40 characters of a-z, 0-9 and _");
        } else if !seen.insert(r.id.as_str()) {
            v.add(f("id"), "is used by another rule of this plan");
        }
        match r.action.as_str() {
            "visit" | "call" => {
                if r.template.is_some() || r.channel.is_some() {
                    v.add(
                        f("template"),
                        "only outreach rules take a template and channel",
                    );
                }
            }
            "outreach" => match r.template.as_deref() {
                None => v.add(f("template"), "is required for outreach"),
                Some(t) if !TEMPLATES.contains(&t) => v.add(
                    f("template"),
                    format!("must be one of {}", TEMPLATES.join(", ")),
                ),
                Some(_) => {}
            },
            _ => v.add(f("action"), "must be one of visit, call, outreach"),
        }
        if let Some(c) = &r.channel {
            if !CHANNELS.contains(&c.as_str()) {
                v.add(
                    f("channel"),
                    format!("must be one of {}", CHANNELS.join(", ")),
                );
            }
        }
        if let Some(t) = &r.time {
            v.check(&f("time"), parse_time(t));
        }
        let needs_anchor = matches!(r.kind.as_str(), "offset" | "anniversary");
        match (&r.anchor, needs_anchor) {
            (None, true) => v.add(f("anchor"), "is required for this kind"),
            (Some(a), true) => {
                if !["donation", "death", "registration", "birth"].contains(&a.as_str()) {
                    v.add(
                        f("anchor"),
                        "must be one of donation, death, registration, birth",
                    );
                }
            }
            (Some(_), false) => v.add(f("anchor"), "only offset and anniversary rules take one"),
            (None, false) => {}
        }
        let only = |v: &mut Validator, present: bool, name: &str, kind: &str| {
            if present && r.kind != kind {
                v.add(f(name), format!("only {kind} rules take one"));
            }
        };
        only(v, r.offset.is_some(), "offset", "offset");
        only(v, r.festival.is_some(), "festival", "festival");
        only(v, r.cron.is_some(), "cron", "cron");
        only(v, r.first_year.is_some(), "first_year", "anniversary");
        only(v, r.last_year.is_some(), "last_year", "anniversary");
        if let Some(c) = &r.calendar {
            if !["gregorian", "lunar"].contains(&c.as_str()) {
                v.add(f("calendar"), "must be gregorian or lunar");
            } else if !matches!(r.kind.as_str(), "anniversary" | "mourning") {
                v.add(
                    f("calendar"),
                    "only anniversary and mourning rules take one",
                );
            }
        }
        if let Some(g) = r.grace_days {
            if g > 366 {
                v.add(f("grace_days"), "must be at most 366");
            }
        }
        match r.skip_after_visit_days {
            Some(_) if r.action != "outreach" => {
                v.add(f("skip_after_visit_days"), "only outreach rules take one")
            }
            Some(d) if d == 0 || d > MAX_SKIP_AFTER_VISIT_DAYS => v.add(
                f("skip_after_visit_days"),
                format!("must be 1 to {MAX_SKIP_AFTER_VISIT_DAYS}"),
            ),
            _ => {}
        }
        match r.kind.as_str() {
            "offset" => match &r.offset {
                None => v.add(f("offset"), "is required for offset rules"),
                Some(o) => {
                    v.check(&f("offset"), parse_offset(o));
                }
            },
            "anniversary" => {
                if let (Some(a), Some(b)) = (r.first_year, r.last_year) {
                    if a > b {
                        v.add(f("last_year"), "must not be before first_year");
                    }
                }
                if r.first_year == Some(0) {
                    v.add(f("first_year"), "must be at least 1");
                }
            }
            "festival" => match r.festival.as_deref() {
                None => v.add(f("festival"), "is required for festival rules"),
                Some(x) if Festival::parse(x).is_none() => v.add(
                    f("festival"),
                    "must be one of qingming, spring_festival, zhongyuan, hanyi, mid_autumn",
                ),
                Some(_) => {}
            },
            "mourning" => {}
            "cron" => match r.cron.as_deref() {
                None => v.add(f("cron"), "is required for cron rules"),
                Some(c) => {
                    v.check(&f("cron"), parse_cron(c));
                }
            },
            _ => v.add(
                f("kind"),
                "must be one of offset, anniversary, festival, mourning, cron",
            ),
        }
    }
}

/// A cron expression that fires at most once an hour (care is not sent by the minute).
pub fn parse_cron(s: &str) -> Result<cron::Schedule, String> {
    let fields = s.split_whitespace().count();
    if !(6..=7).contains(&fields) {
        return Err("must have six or seven fields, seconds first".into());
    }
    let sched: cron::Schedule = s
        .parse()
        .map_err(|e| format!("is not a cron expression: {e}"))?;
    let start = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
    let times: Vec<DateTime<Utc>> = sched.after(&start).take(25).collect();
    if times.is_empty() {
        return Err("never fires".into());
    }
    if times.windows(2).any(|w| w[1] - w[0] < Duration::hours(1)) {
        return Err("fires more than once an hour".into());
    }
    Ok(sched)
}

fn default_grace(r: &Rule) -> Duration {
    Duration::days(i64::from(r.grace_days.unwrap_or(
        match (r.action.as_str(), r.kind.as_str()) {
            ("outreach", "festival") => 3,
            ("outreach", _) => 7,
            _ => 14,
        },
    )))
}

/// The occurrences of `rules` whose local date falls in `[from, to]`, for a case with `anchors`
/// and `prefs`. `waking_start` is the time of day used when a rule names none.
pub fn occurrences(
    rules: &[Rule],
    anchors: &Anchors,
    prefs: &CasePreferences,
    from: NaiveDate,
    to: NaiveDate,
    waking_start: NaiveTime,
    tz: chrono_tz::Tz,
) -> Vec<Occurrence> {
    let mut out = Vec::new();
    for r in rules {
        if let (Some(kinds), Some(k)) = (&r.donation_kinds, &anchors.donation_kind) {
            if !kinds.contains(k) {
                continue;
            }
        } else if r.donation_kinds.is_some() {
            continue;
        }
        let time = r
            .time
            .as_deref()
            .and_then(|t| parse_time(t).ok())
            .unwrap_or(waking_start);
        let mut push = |key: String, date: NaiveDate| {
            if date >= from && date <= to {
                out.push(Occurrence {
                    rule_id: r.id.clone(),
                    key,
                    local: date.and_time(time),
                    action: r.action.clone(),
                    template: r.template.clone(),
                    channel: r.channel.clone(),
                    grace: default_grace(r),
                });
            }
        };
        let anchor = match r.anchor.as_deref() {
            Some("donation") => anchors.donation,
            Some("death") => anchors.death,
            Some("registration") => anchors.registration,
            Some("birth") => anchors.birth,
            _ => None,
        };
        let lunar = r.calendar.as_deref() == Some("lunar");
        let yearly = |base: NaiveDate, n: i32| -> Option<NaiveDate> {
            if lunar {
                calendar::lunar_anniversary(
                    calendar::lunar_of(base),
                    calendar::lunar_of(base).year + n,
                )
            } else {
                calendar::gregorian_anniversary(base, base.year_ce().1 as i32 + n)
            }
        };
        match r.kind.as_str() {
            "offset" => {
                if let (Some(a), Some(Ok(o))) = (anchor, r.offset.as_deref().map(parse_offset)) {
                    if let Some(d) = add_offset(a, o) {
                        push("once".into(), d);
                    }
                }
            }
            "anniversary" => {
                if let Some(a) = anchor {
                    let first = r.first_year.unwrap_or(1).max(1) as i32;
                    let last = r.last_year.map(|l| l as i32).unwrap_or(i32::MAX);
                    // Only the years that can land in the window.
                    let lo = (from.year_ce().1 as i32 - a.year_ce().1 as i32 - 1).max(first);
                    let hi = (to.year_ce().1 as i32 - a.year_ce().1 as i32 + 1).min(last);
                    for n in lo..=hi {
                        if let Some(d) = yearly(a, n) {
                            push(format!("y{n}"), d);
                        }
                    }
                }
            }
            "festival" => {
                let Some(f) = r.festival.as_deref().and_then(Festival::parse) else {
                    continue;
                };
                if prefs.skip_festivals.iter().any(|s| s == f.as_str()) {
                    continue;
                }
                for y in from.year_ce().1 as i32..=to.year_ce().1 as i32 {
                    if let Some(d) = f.date(y) {
                        push(y.to_string(), d);
                    }
                }
            }
            "mourning" => {
                let Some(death) = anchors.death else { continue };
                if !prefs.mourning_days {
                    continue;
                }
                for n in calendar::MOURNING_DAYS {
                    push(format!("d{n}"), calendar::mourning_day(death, n));
                }
                for n in [1, 3] {
                    if let Some(d) = yearly(death, n) {
                        push(format!("y{n}"), d);
                    }
                }
            }
            "cron" => {
                let Some(Ok(s)) = r.cron.as_deref().map(parse_cron) else {
                    continue;
                };
                let start = calendar::local_instant(tz, from, NaiveTime::MIN);
                let end = calendar::local_instant(tz, to + Duration::days(1), NaiveTime::MIN);
                for (local, _) in calendar::cron_occurrences(&s, tz, start, end, 500) {
                    out.push(Occurrence {
                        rule_id: r.id.clone(),
                        key: local.format("%Y-%m-%dT%H:%M").to_string(),
                        local,
                        action: r.action.clone(),
                        template: r.template.clone(),
                        channel: r.channel.clone(),
                        grace: default_grace(r),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

use chrono::Datelike;

fn rule(id: &str, kind: &str, action: &str) -> Rule {
    Rule {
        id: id.into(),
        kind: kind.into(),
        action: action.into(),
        template: None,
        channel: None,
        anchor: None,
        offset: None,
        calendar: None,
        first_year: None,
        last_year: None,
        festival: None,
        cron: None,
        donation_kinds: None,
        grace_days: None,
        time: None,
        skip_after_visit_days: None,
    }
}

fn offset(id: &str, action: &str, anchor: &str, off: &str) -> Rule {
    Rule {
        anchor: Some(anchor.into()),
        offset: Some(off.into()),
        ..rule(id, "offset", action)
    }
}

fn outreach(mut r: Rule, template: &str) -> Rule {
    r.template = Some(template.into());
    r
}

fn festival(id: &str, f: &str, template: &str) -> Rule {
    outreach(
        Rule {
            festival: Some(f.into()),
            ..rule(id, "festival", "outreach")
        },
        template,
    )
}

/// The message on the day a blood-donation deferral of `months` ends, for the kinds it follows.
fn blood_donation_resume(id: &str, months: u32) -> Rule {
    outreach(
        Rule {
            donation_kinds: Some(marrow::kinds_deferred_for(months)),
            ..offset(id, "outreach", "donation", &format!("{months}m"))
        },
        "blood_donation_resume",
    )
}

fn first_collections() -> Vec<String> {
    marrow::FIRST_COLLECTIONS
        .iter()
        .map(|k| k.to_string())
        .collect()
}

/// The default plan of a programme (DESIGN.md, "Programs and the care they need").
pub fn default_rules(program: &str) -> Vec<Rule> {
    match program {
        "marrow" => vec![
            offset("call_day_2", "call", "donation", "2d"),
            offset("call_day_7", "call", "donation", "7d"),
            Rule {
                donation_kinds: Some(vec!["marrow".into()]),
                ..offset("call_day_14", "call", "donation", "14d")
            },
            offset("call_day_30", "call", "donation", "30d"),
            offset("call_month_6", "call", "donation", "6m"),
            Rule {
                anchor: Some("donation".into()),
                first_year: Some(1),
                last_year: Some(10),
                ..rule("call_yearly", "anniversary", "call")
            },
            // After the collection: until when not to give blood (the date depends on the
            // kind, `marrow::blood_until`), and a word on the day it ends.
            outreach(
                offset("blood_donation_reminder", "outreach", "donation", "3d"),
                "blood_donation_reminder",
            ),
            blood_donation_resume("blood_donation_resume", 6),
            blood_donation_resume("blood_donation_resume_marrow", 12),
            // The second-donation window runs from a first collection for two years: told once
            // the donor has recovered (with the day-30 call), and again when it closes.
            outreach(
                Rule {
                    donation_kinds: Some(first_collections()),
                    ..offset("second_donation_window", "outreach", "donation", "30d")
                },
                "second_donation_window",
            ),
            outreach(
                Rule {
                    donation_kinds: Some(first_collections()),
                    ..offset(
                        "second_donation_window_closed",
                        "outreach",
                        "donation",
                        &format!("{}y", marrow::SECOND_WINDOW_YEARS),
                    )
                },
                "second_donation_window_closed",
            ),
            outreach(
                Rule {
                    anchor: Some("birth".into()),
                    ..rule("birthday", "anniversary", "outreach")
                },
                "birthday",
            ),
            outreach(
                Rule {
                    anchor: Some("donation".into()),
                    ..rule("donation_anniversary", "anniversary", "outreach")
                },
                "anniversary_letter",
            ),
        ],
        "organ" | "body" => {
            let mut rules = vec![
                Rule {
                    grace_days: Some(4),
                    ..offset("condolence_visit", "visit", "death", "3d")
                },
                offset("call_day_30", "call", "death", "30d"),
                outreach(
                    Rule {
                        anchor: Some("death".into()),
                        ..rule("death_anniversary", "anniversary", "outreach")
                    },
                    "anniversary_letter",
                ),
                festival("qingming", "qingming", "qingming"),
                festival("spring_festival", "spring_festival", "spring_festival"),
                outreach(
                    Rule {
                        cron: Some("0 0 10 1 3 * *".into()),
                        grace_days: Some(14),
                        ..rule("memorial_invitation", "cron", "outreach")
                    },
                    "memorial_invitation",
                ),
                outreach(
                    rule("mourning_days", "mourning", "outreach"),
                    "mourning_day",
                ),
            ];
            if program == "body" {
                rules.push(outreach(
                    Rule {
                        grace_days: Some(30),
                        ..offset("ceremony_notice", "outreach", "death", "2y")
                    },
                    "memorial_invitation",
                ));
            }
            rules
        }
        _ => Vec::new(),
    }
}

/// The instant an occurrence is due in `tz`.
pub fn due_at(o: &Occurrence, tz: chrono_tz::Tz) -> DateTime<Utc> {
    calendar::local_to_utc(tz, o.local)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn nine() -> NaiveTime {
        NaiveTime::from_hms_opt(9, 0, 0).unwrap()
    }

    #[test]
    fn default_plans_are_valid() {
        for p in ["marrow", "organ", "body"] {
            let mut v = Validator::new();
            validate(&default_rules(p), &mut v);
            assert!(v.is_empty(), "{p}: {v:?}");
        }
    }

    #[test]
    fn validation_names_each_bad_field() {
        let mut bad = default_rules("organ");
        bad[0].offset = Some("7x".into());
        bad[1].id = "call_day_30".into();
        bad[2].id = bad[0].id.clone();
        bad[3].festival = Some("christmas".into());
        bad[5].cron = Some("* * * * * *".into());
        bad[6].template = None;
        let mut v = Validator::new();
        validate(&bad, &mut v);
        for f in [
            "rules[0].offset",
            "rules[2].id",
            "rules[3].festival",
            "rules[5].cron",
            "rules[6].template",
        ] {
            assert!(v.has(f), "{f} missing from {v:?}");
        }
    }

    #[test]
    fn marrow_plan_follows_the_donation() {
        let a = Anchors {
            donation: Some(d("2026-01-31")),
            birth: Some(d("1990-03-01")),
            donation_kind: Some("pbsc".into()),
            ..Anchors::default()
        };
        let occ = occurrences(
            &default_rules("marrow"),
            &a,
            &CasePreferences::default(),
            d("2026-01-01"),
            d("2027-03-01"),
            nine(),
            chrono_tz::Asia::Shanghai,
        );
        let find = |id: &str| {
            occ.iter()
                .filter(|o| o.rule_id == id)
                .map(|o| o.local.date())
                .collect::<Vec<_>>()
        };
        assert_eq!(find("call_day_7"), [d("2026-02-07")]);
        assert_eq!(
            find("call_day_14"),
            Vec::<NaiveDate>::new(),
            "PBSC has no day-14 call"
        );
        assert_eq!(find("call_month_6"), [d("2026-07-31")]);
        assert_eq!(find("call_yearly"), [d("2027-01-31")]);
    }

    /// The marrow plan's outreach dates for a donation of `kind` on `date`, by rule.
    fn marrow_outreach(kind: &str, date: &str) -> Vec<(String, NaiveDate)> {
        let a = Anchors {
            donation: Some(d(date)),
            donation_kind: Some(kind.into()),
            ..Anchors::default()
        };
        occurrences(
            &default_rules("marrow"),
            &a,
            &CasePreferences::default(),
            d(date),
            d(date) + Duration::days(3 * 366),
            nine(),
            chrono_tz::Asia::Shanghai,
        )
        .into_iter()
        .filter(|o| o.action == "outreach" && o.rule_id != "donation_anniversary")
        .map(|o| (o.rule_id, o.local.date()))
        .collect()
    }

    #[test]
    fn after_a_pbsc_collection_blood_waits_six_months_and_the_window_closes_at_two_years() {
        assert_eq!(
            marrow_outreach("pbsc", "2026-01-31"),
            [
                ("blood_donation_reminder".to_string(), d("2026-02-03")),
                ("blood_donation_resume".into(), d("2026-07-31")),
                ("second_donation_window".into(), d("2026-03-02")),
                ("second_donation_window_closed".into(), d("2028-01-31")),
            ]
        );
    }

    #[test]
    fn after_a_marrow_harvest_blood_waits_twelve_months() {
        assert_eq!(
            marrow_outreach("marrow", "2026-03-14"),
            [
                ("blood_donation_reminder".to_string(), d("2026-03-17")),
                ("blood_donation_resume_marrow".into(), d("2027-03-14")),
                ("second_donation_window".into(), d("2026-04-13")),
                ("second_donation_window_closed".into(), d("2028-03-14")),
            ]
        );
    }

    #[test]
    fn a_lymphocyte_donation_opens_no_second_window() {
        assert_eq!(
            marrow_outreach("lymphocytes", "2026-03-14"),
            [
                ("blood_donation_reminder".to_string(), d("2026-03-17")),
                ("blood_donation_resume".into(), d("2026-09-14")),
            ]
        );
    }

    #[test]
    fn the_plan_and_the_messages_agree_on_the_dates() {
        for (kind, resume) in [("pbsc", "2026-09-14"), ("marrow", "2027-03-14")] {
            let got = marrow_outreach(kind, "2026-03-14");
            let rule_date = got
                .iter()
                .find(|(r, _)| r.starts_with("blood_donation_resume"))
                .map(|(_, d)| *d);
            assert_eq!(rule_date, Some(d(resume)), "{kind}");
            assert_eq!(marrow::blood_until(kind, d("2026-03-14")), d(resume));
            let closed = got
                .iter()
                .find(|(r, _)| r == "second_donation_window_closed")
                .map(|(_, d)| *d);
            assert_eq!(closed, marrow::second_window_closes(kind, d("2026-03-14")));
        }
    }

    #[test]
    fn mourning_days_only_when_the_family_opts_in_and_festivals_can_be_skipped() {
        let a = Anchors {
            death: Some(d("2026-03-01")),
            ..Anchors::default()
        };
        let run = |prefs: &CasePreferences| {
            occurrences(
                &default_rules("organ"),
                &a,
                prefs,
                d("2026-03-01"),
                d("2027-12-31"),
                nine(),
                chrono_tz::Asia::Shanghai,
            )
        };
        let none = run(&CasePreferences::default());
        assert!(!none.iter().any(|o| o.rule_id == "mourning_days"));
        let opted = run(&CasePreferences {
            mourning_days: true,
            skip_festivals: vec!["qingming".into()],
        });
        let days: Vec<(String, NaiveDate)> = opted
            .iter()
            .filter(|o| o.rule_id == "mourning_days")
            .map(|o| (o.key.clone(), o.local.date()))
            .collect();
        assert_eq!(
            days,
            [
                ("d7".to_string(), d("2026-03-07")),
                ("d21".into(), d("2026-03-21")),
                ("d35".into(), d("2026-04-04")),
                ("d49".into(), d("2026-04-18")),
                ("d100".into(), d("2026-06-08")),
                ("y1".into(), d("2027-03-01")),
            ]
        );
        assert!(!opted.iter().any(|o| o.rule_id == "qingming"));
        assert!(none
            .iter()
            .any(|o| o.rule_id == "qingming" && o.local.date() == d("2026-04-05")));
    }
}
