//! The admin's care plans and outreach templates. A plan's form lists its rules, one fieldset
//! each (names `rules[0].offset`, as the domain names their errors), and a sample case; the
//! `preview` button lists the dates the edited rules make for the sample, computed by the
//! scheduler's own code, and saves nothing; saving is `PUT /api/v1/care-plans/{program}`. The
//! templates page fills each built-in template with sample values, in both languages.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use chrono::{Datelike, Duration, NaiveDate};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::super::cases::options;
use super::super::form::{self, FormData};
use super::super::view::{format_date, format_lunar, word, Page};
use super::{admin, admin_post};
use crate::domain::outreach::{self, SampleInput};
use crate::domain::schedule::{self, PlanInput, PlanSample, PlanView, PreviewDate};
use crate::domain::types::Program;
use crate::error::{Error, FieldErrors};
use crate::schedule::calendar::{self, Festival};
use crate::schedule::plan::{self, Anchors, Rule};
use crate::web::i18n;
use crate::web::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/plans", get(plans_page))
        .route("/admin/plans/{program}", get(plan_page).post(plan_submit))
        .route("/admin/templates", get(templates_page))
}

const KINDS: &[&str] = &["offset", "anniversary", "festival", "mourning", "cron"];
const ACTIONS: &[&str] = &["visit", "call", "outreach"];
const ANCHORS: &[&str] = &["donation", "death", "registration", "birth"];
const CALENDARS: &[&str] = &["gregorian", "lunar"];
/// A rule's text fields, in the order the form shows them.
const TEXT: &[&str] = &[
    "id", "kind", "action", "template", "channel", "anchor", "offset", "calendar", "festival",
    "cron", "time",
];
/// A rule's whole-number fields.
const NUMBERS: &[&str] = &[
    "first_year",
    "last_year",
    "grace_days",
    "skip_after_visit_days",
];
/// The longest span a preview lists, in years.
const MAX_PREVIEW_YEARS: i32 = 10;

fn festivals() -> Vec<&'static str> {
    Festival::ALL.iter().map(|f| f.as_str()).collect()
}

fn rule_options() -> Value {
    json!({
        "kind": options("admin-rule-kind", KINDS),
        "action": options("task-kind", ACTIONS),
        "template": options("template", &plan::TEMPLATES),
        "channel": options("channel", &plan::CHANNELS),
        "anchor": options("admin-anchor", ANCHORS),
        "calendar": options("admin-calendar", CALENDARS),
        "festival": options("admin-festival", &festivals()),
    })
}

/// A rule in a sentence: what it does and when.
fn describe(lang: &str, r: &Rule) -> String {
    let anchor = r
        .anchor
        .as_deref()
        .map(|a| word(lang, "admin-anchor", a))
        .unwrap_or_default();
    let calendar = word(
        lang,
        "admin-calendar",
        r.calendar.as_deref().unwrap_or("gregorian"),
    );
    let args = [
        ("anchor", json!(anchor)),
        ("offset", json!(r.offset.clone().unwrap_or_default())),
        ("calendar", json!(calendar)),
        (
            "festival",
            json!(r
                .festival
                .as_deref()
                .map(|f| word(lang, "admin-festival", f))
                .unwrap_or_default()),
        ),
        ("cron", json!(r.cron.clone().unwrap_or_default())),
    ];
    i18n::text(lang, &format!("admin-rule-when-{}", r.kind), &args)
}

/// What one date of a preview is: the anniversary, the festival, the mourning day.
fn occasion(lang: &str, rules: &[Rule], d: &PreviewDate) -> String {
    let Some(r) = rules.iter().find(|r| r.id == d.rule_id) else {
        return String::new();
    };
    let years = d.key.strip_prefix('y').and_then(|n| n.parse::<u32>().ok());
    match r.kind.as_str() {
        "mourning" => word(lang, "admin-mourning", &d.key),
        "anniversary" => i18n::text(
            lang,
            "admin-occasion-anniversary",
            &[
                ("n", json!(years.unwrap_or(0))),
                (
                    "anchor",
                    json!(word(
                        lang,
                        "admin-anchor",
                        r.anchor.as_deref().unwrap_or("")
                    )),
                ),
                (
                    "calendar",
                    json!(word(
                        lang,
                        "admin-calendar",
                        r.calendar.as_deref().unwrap_or("gregorian")
                    )),
                ),
            ],
        ),
        _ => describe(lang, r),
    }
}

async fn plans_page(State(s): State<AppState>, page: Page) -> Response {
    let user = match admin(&s, &page) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let plans = match schedule::list_plans(&s.svc, &user.actor, s.now()).await {
        Ok(p) => p,
        Err(e) => return page.error(&s, e),
    };
    let plans: Vec<Value> = plans
        .iter()
        .map(|p| {
            let rules: Vec<Value> = p
                .rules
                .iter()
                .map(|r| {
                    let mut v = json!(r);
                    v["description"] = json!(describe(page.lang, r));
                    v
                })
                .collect();
            json!({"program": p.program, "version": p.version, "updated_at": p.updated_at,
                   "rules": rules})
        })
        .collect();
    page.render(
        &s,
        StatusCode::OK,
        "admin_plans",
        json!({"title": "admin-plans-title", "plans": plans}),
    )
}

/// The form's values of a stored plan: `rules[i].<field>` for each rule.
fn plan_values(p: &PlanView) -> Map<String, Value> {
    let mut values = Map::new();
    values.insert("version".into(), json!(p.version.to_string()));
    for (i, r) in p.rules.iter().enumerate() {
        let v = json!(r);
        for name in TEXT.iter().chain(NUMBERS) {
            match &v[name] {
                Value::String(t) => {
                    values.insert(format!("rules[{i}].{name}"), json!(t));
                }
                Value::Number(n) => {
                    values.insert(format!("rules[{i}].{name}"), json!(n.to_string()));
                }
                _ => {}
            }
        }
        if let Some(kinds) = &r.donation_kinds {
            values.insert(format!("rules[{i}].donation_kinds"), json!(kinds.join(" ")));
        }
    }
    values
}

/// The sample case a programme's preview starts from: a donation today (marrow) or a death
/// three days ago (organ, body), and two years of dates.
fn default_sample(program: &str, today: NaiveDate) -> Map<String, Value> {
    let mut m = Map::new();
    let day = |d: NaiveDate| json!(d.to_string());
    let start = if program == "marrow" {
        m.insert("sample.donation_date".into(), day(today));
        m.insert("sample.donation_kind".into(), json!("marrow"));
        m.insert("sample.birth_date".into(), json!("1990-05-20"));
        today
    } else {
        let death = today - Duration::days(3);
        m.insert("sample.death_date".into(), day(death));
        m.insert("sample.donation_date".into(), day(death));
        let kind = if program == "body" {
            "whole_body"
        } else {
            "kidney"
        };
        m.insert("sample.donation_kind".into(), json!(kind));
        m.insert("sample.mourning_days".into(), json!("true"));
        death
    };
    m.insert(
        "sample.registration_date".into(),
        day(start - Duration::days(365)),
    );
    m.insert("sample.from".into(), day(start));
    m.insert(
        "sample.to".into(),
        day(start.with_year(start.year() + 2).unwrap_or(start) - Duration::days(1)),
    );
    m
}

/// The rows of the plan form: one per rule given, and one blank row to add a rule.
fn rows(values: &Map<String, Value>) -> Vec<Value> {
    let count = values
        .keys()
        .filter_map(|k| k.strip_prefix("rules["))
        .filter_map(|k| k.split(']').next())
        .filter_map(|n| n.parse::<usize>().ok())
        .map(|n| n + 1)
        .max()
        .unwrap_or(0);
    (0..=count)
        .map(|i| {
            let mut names = Map::new();
            for f in TEXT
                .iter()
                .chain(NUMBERS)
                .chain(["donation_kinds", "remove"].iter())
            {
                names.insert((*f).into(), json!(format!("rules[{i}].{f}")));
            }
            let id = values
                .get(&format!("rules[{i}].id"))
                .and_then(Value::as_str)
                .unwrap_or("");
            json!({"index": i + 1, "id": id, "new": i == count, "n": names})
        })
        .collect()
}

#[derive(Deserialize, Default)]
struct PlanQuery {
    saved: Option<String>,
}

struct PlanForm {
    values: Map<String, Value>,
    errors: Value,
    preview: Option<Vec<Value>>,
    notice: Option<&'static str>,
}

async fn show_plan(
    s: &AppState,
    page: &Page,
    program: &str,
    status: StatusCode,
    form: Option<PlanForm>,
) -> Response {
    let user = match admin(s, page) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let plans = match schedule::list_plans(&s.svc, &user.actor, s.now()).await {
        Ok(p) => p,
        Err(e) => return page.error(s, e),
    };
    let Some(plan) = plans.iter().find(|p| p.program == program) else {
        return page.not_found(s);
    };
    let today = calendar::local_date(s.svc.schedule.default_tz, s.now());
    let form = form.unwrap_or_else(|| {
        let mut values = plan_values(plan);
        values.extend(default_sample(program, today));
        PlanForm {
            values,
            errors: json!({}),
            preview: None,
            notice: None,
        }
    });
    let kinds: Vec<&str> = Program::parse(program)
        .map(|p| p.donation_kinds().to_vec())
        .unwrap_or_default();
    page.render(
        s,
        status,
        "admin_plan",
        json!({
            "title": "admin-plan-title",
            "program": program,
            "plan": {"version": plan.version, "updated_at": plan.updated_at},
            "rows": rows(&form.values),
            "values": Value::Object(form.values),
            "errors": form.errors,
            "preview": form.preview,
            "notice": form.notice,
            "options": {"rule": rule_options(), "donation_kind": options("donation-kind", &kinds)},
        }),
    )
}

async fn plan_page(
    State(s): State<AppState>,
    page: Page,
    Path(program): Path<String>,
    Query(q): Query<PlanQuery>,
) -> Response {
    if q.saved.is_some() {
        let user = match admin(&s, &page) {
            Ok(u) => u,
            Err(r) => return r,
        };
        // The saved plan, with the notice and a fresh sample.
        let plans = match schedule::list_plans(&s.svc, &user.actor, s.now()).await {
            Ok(p) => p,
            Err(e) => return page.error(&s, e),
        };
        let Some(plan) = plans.iter().find(|p| p.program == program) else {
            return page.not_found(&s);
        };
        let today = calendar::local_date(s.svc.schedule.default_tz, s.now());
        let mut values = plan_values(plan);
        values.extend(default_sample(&program, today));
        let form = PlanForm {
            values,
            errors: json!({}),
            preview: None,
            notice: Some("admin-plan-saved"),
        };
        return show_plan(&s, &page, &program, StatusCode::OK, Some(form)).await;
    }
    show_plan(&s, &page, &program, StatusCode::OK, None).await
}

/// The rules of a submitted plan form as the API's JSON (the rows of [`kept_rows`]), with the
/// numbers that are not numbers named by their row.
fn rules_of(f: &FormData, kept: &[usize], errors: &mut FieldErrors) -> Vec<Value> {
    kept.iter()
        .map(|i| {
            let key = |name: &str| format!("rules[{i}].{name}");
            let mut rule = Map::new();
            for name in TEXT {
                if let Some(v) = f.text(&key(name)) {
                    rule.insert((*name).into(), json!(v));
                }
            }
            for name in NUMBERS {
                if let Some(v) = f.text(&key(name)) {
                    match v.parse::<u32>() {
                        Ok(n) => {
                            rule.insert((*name).into(), json!(n));
                        }
                        Err(_) => {
                            errors.insert(key(name), "must be a whole number".into());
                        }
                    }
                }
            }
            if let Some(v) = f.text(&key("donation_kinds")) {
                let kinds: Vec<&str> = v
                    .split([' ', ',', '，', '、'])
                    .filter(|k| !k.is_empty())
                    .collect();
                rule.insert("donation_kinds".into(), json!(kinds));
            }
            Value::Object(rule)
        })
        .collect()
}

/// The submitted rows that are rules, in order: all but those ticked for removal and those left
/// wholly blank (the row for a new rule). The domain's errors name rules by their place among
/// these; [`renumber`] names them by the form's row again.
fn kept_rows(f: &FormData) -> Vec<usize> {
    let mut kept = Vec::new();
    let mut i = 0;
    while f
        .0
        .iter()
        .any(|(k, _)| k.starts_with(&format!("rules[{i}].")))
    {
        let key = |name: &str| format!("rules[{i}].{name}");
        let blank = TEXT
            .iter()
            .chain(NUMBERS)
            .chain(["donation_kinds"].iter())
            .all(|n| f.text(&key(n)).is_none());
        if f.get(&key("remove")).is_none() && !blank {
            kept.push(i);
        }
        i += 1;
    }
    kept
}

/// Rename `rules[j].x` (the j-th kept rule) to the form row it came from.
fn renumber(errors: &FieldErrors, kept: &[usize]) -> FieldErrors {
    errors
        .iter()
        .map(|(k, v)| {
            let renamed = k
                .strip_prefix("rules[")
                .and_then(|rest| rest.split_once(']'))
                .and_then(|(n, tail)| {
                    let j: usize = n.parse().ok()?;
                    Some(format!("rules[{}]{tail}", kept.get(j)?))
                })
                .unwrap_or_else(|| k.clone());
            (renamed, v.clone())
        })
        .collect()
}

/// The sample case of a submitted form; bad values are named.
fn sample_of(f: &FormData, errors: &mut FieldErrors) -> Option<PlanSample> {
    let mut date = |name: &str| -> Option<NaiveDate> {
        let v = f.text(name)?;
        match crate::domain::types::parse_date(&v) {
            Ok(d) => Some(d),
            Err(e) => {
                errors.insert(name.into(), e);
                None
            }
        }
    };
    let donation = date("sample.donation_date");
    let death = date("sample.death_date");
    let birth = date("sample.birth_date");
    let registration = date("sample.registration_date");
    let from = date("sample.from");
    let to = date("sample.to");
    for (name, v) in [("sample.from", from), ("sample.to", to)] {
        if v.is_none() && !errors.contains_key(name) {
            errors.insert(name.into(), "is required".into());
        }
    }
    let (from, to) = (from?, to?);
    if to < from {
        errors.insert("sample.to".into(), "must not be before sample.from".into());
        return None;
    }
    if to
        > from
            .with_year(from.year() + MAX_PREVIEW_YEARS)
            .unwrap_or(from)
    {
        errors.insert(
            "sample.to".into(),
            format!("must be at most {MAX_PREVIEW_YEARS} years after sample.from"),
        );
        return None;
    }
    Some(PlanSample {
        anchors: Anchors {
            donation,
            death,
            registration,
            birth,
            donation_kind: f.text("sample.donation_kind"),
        },
        mourning_days: f.get("sample.mourning_days").is_some(),
        from,
        to,
    })
}

/// Preview (the `preview` button) or save the edited plan.
async fn plan_submit(
    State(s): State<AppState>,
    page: Page,
    Path(program): Path<String>,
    f: FormData,
) -> Response {
    let user = match admin_post(&s, &page, &f) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let mut own_errors = FieldErrors::new();
    let kept = kept_rows(&f);
    let rules = rules_of(&f, &kept, &mut own_errors);
    let version = f
        .text("version")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    let previewing = f.get("preview").is_some();
    let sample = if previewing {
        sample_of(&f, &mut own_errors)
    } else {
        None
    };
    let values = match f.values() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let refuse = |status: StatusCode, errors: &FieldErrors, notice: Option<&'static str>| {
        let form = PlanForm {
            values: values.clone(),
            errors: form::errors(page.lang, errors),
            preview: None,
            notice,
        };
        (status, form)
    };
    let input = crate::domain::from_json::<PlanInput>(json!({"version": version, "rules": rules}));
    let input = match input {
        Ok(i) => i,
        Err(Error::Validation(e)) => {
            let mut all = renumber(&e, &kept);
            all.extend(own_errors);
            let (status, form) = refuse(StatusCode::UNPROCESSABLE_ENTITY, &all, None);
            return show_plan(&s, &page, &program, status, Some(form)).await;
        }
        Err(e) => return page.error(&s, e),
    };
    if !own_errors.is_empty() {
        let (status, form) = refuse(StatusCode::UNPROCESSABLE_ENTITY, &own_errors, None);
        return show_plan(&s, &page, &program, status, Some(form)).await;
    }
    let now = s.now();
    if previewing {
        let Some(sample) = sample else {
            let (status, form) = refuse(StatusCode::UNPROCESSABLE_ENTITY, &own_errors, None);
            return show_plan(&s, &page, &program, status, Some(form)).await;
        };
        return match schedule::preview_plan(
            &s.svc,
            &user.actor,
            &program,
            &input.rules,
            &sample,
            now,
        )
        .await
        {
            Ok(dates) => {
                let preview: Vec<Value> = dates
                    .iter()
                    .map(|d| {
                        json!({
                            "date": format_date(page.lang, d.date),
                            "iso": d.date.to_string(),
                            "lunar_date": format_lunar(page.lang, calendar::lunar_of(d.date)),
                            "weekday": i18n::text(page.lang, &format!("admin-weekday-{}", d.date.weekday().num_days_from_monday()), &[]),
                            "time": d.time,
                            "rule_id": d.rule_id,
                            "action": d.action,
                            "template": d.template,
                            "channel": d.channel,
                            "occasion": occasion(page.lang, &input.rules, d),
                        })
                    })
                    .collect();
                let form = PlanForm {
                    values,
                    errors: json!({}),
                    preview: Some(preview),
                    notice: None,
                };
                show_plan(&s, &page, &program, StatusCode::OK, Some(form)).await
            }
            Err(Error::Validation(e)) => {
                let (status, form) =
                    refuse(StatusCode::UNPROCESSABLE_ENTITY, &renumber(&e, &kept), None);
                show_plan(&s, &page, &program, status, Some(form)).await
            }
            Err(e) => page.error(&s, e),
        };
    }
    match schedule::update_plan(&s.svc, &user.actor, &program, input, now).await {
        Ok(_) => page.see_other(&s, &format!("/admin/plans/{program}?saved=1")),
        Err(Error::Validation(e)) => {
            let (status, form) =
                refuse(StatusCode::UNPROCESSABLE_ENTITY, &renumber(&e, &kept), None);
            show_plan(&s, &page, &program, status, Some(form)).await
        }
        Err(Error::Conflict { .. }) => {
            let (status, form) = refuse(
                StatusCode::CONFLICT,
                &FieldErrors::new(),
                Some("admin-plan-changed"),
            );
            show_plan(&s, &page, &program, status, Some(form)).await
        }
        Err(e) => page.error(&s, e),
    }
}

#[derive(Deserialize, Default)]
struct TemplateQuery {
    template: Option<String>,
    recipient_name: Option<String>,
    donor_name: Option<String>,
    date: Option<String>,
    donation_date: Option<String>,
    donation_kind: Option<String>,
    years: Option<String>,
    mourning_day: Option<String>,
}

/// The built-in templates, one filled with sample values in zh-CN and en. The sample form is a
/// GET: a preview saves nothing, and the link can be shared.
async fn templates_page(
    State(s): State<AppState>,
    page: Page,
    Query(q): Query<TemplateQuery>,
) -> Response {
    let user = match admin(&s, &page) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let chosen =
        super::super::form::blank_none(&q.template).unwrap_or_else(|| plan::TEMPLATES[0].into());
    if !plan::TEMPLATES.contains(&chosen.as_str()) {
        return page.not_found(&s);
    }
    let blank = super::super::form::blank_none;
    let input = SampleInput {
        recipient_name: blank(&q.recipient_name),
        donor_name: blank(&q.donor_name),
        date: blank(&q.date),
        donation_date: blank(&q.donation_date),
        donation_kind: blank(&q.donation_kind),
        years: blank(&q.years),
        mourning_day: blank(&q.mourning_day),
    };
    let (status, rendered, errors) =
        match outreach::sample_preview(&s.svc, &user.actor, &chosen, &input, s.now()).await {
            Ok(r) => (StatusCode::OK, r, json!({})),
            Err(Error::Validation(e)) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Vec::new(),
                form::errors(page.lang, &e),
            ),
            Err(e) => return page.error(&s, e),
        };
    let kinds: Vec<&str> = Program::ALL
        .iter()
        .flat_map(|p| p.donation_kinds().iter().copied())
        .collect();
    let mourning: Vec<&str> = outreach::mourning_keys().collect();
    let list: Vec<Value> = plan::TEMPLATES
        .iter()
        .map(|t| json!({"name": t, "current": *t == chosen}))
        .collect();
    page.render(
        &s,
        status,
        "admin_templates",
        json!({
            "title": "admin-templates-title",
            "templates": list,
            "template": chosen,
            "anniversary": chosen == "anniversary_letter",
            "mourning": chosen == "mourning_day",
            "rendered": rendered,
            "values": {
                "template": chosen,
                "recipient_name": q.recipient_name, "donor_name": q.donor_name, "date": q.date,
                "donation_date": q.donation_date, "donation_kind": q.donation_kind,
                "years": q.years, "mourning_day": q.mourning_day,
            },
            "errors": errors,
            "options": {
                "template": options("template", &plan::TEMPLATES),
                "donation_kind": options("donation-kind", &kinds),
                "mourning_day": options("admin-mourning", &mourning),
            },
        }),
    )
}
