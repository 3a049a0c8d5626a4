//! `/reports`: a month's or a year's report with two charts (drawn here as SVG, so they need
//! no script and print as they show), the figures by programme and region, what was not sent
//! and why, consents by kind, a CSV download and a print layout.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};

use super::cases::options;
use super::form::{self, blank_none};
use super::view::{filtered_href, Page};
use crate::domain::reports::{self, MonthFigures, Period, Report, ReportFilter};
use crate::domain::types::{Program, Role};
use crate::error::Error;
use crate::schedule::calendar;
use crate::web::i18n;
use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] =
    &[("reports", include_str!("../../../templates/reports.hbs"))];

const READERS: &[Role] = &[Role::Admin, Role::Supervisor, Role::EthicsReviewer];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/reports", get(report_page))
        .route("/reports.csv", get(report_csv))
}

#[derive(Deserialize, Default)]
struct ReportQuery {
    period: Option<String>,
    program: Option<String>,
    region: Option<String>,
}

impl ReportQuery {
    fn filter(&self) -> ReportFilter {
        ReportFilter {
            period: blank_none(&self.period),
            program: blank_none(&self.program),
            region: blank_none(&self.region),
        }
    }
}

/// A period's name in words: "2026 年 2 月", "February 2026".
fn period_title(lang: &str, p: Period) -> String {
    let year = Value::from(p.year.to_string());
    match p.month {
        Some(m) => i18n::text(
            lang,
            "report-period-month",
            &[("year", year), ("month", Value::from(m))],
        ),
        None => i18n::text(lang, "report-period-year", &[("year", year)]),
    }
}

/// The drawing area of a chart, in the SVG's own units (it scales to the page's width).
const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 30.0;

/// A round number at or above `n` for the top of an axis (1, 2 or 5 times a power of ten).
fn axis_top(n: i64) -> i64 {
    let n = n.max(1);
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            if m * step >= n {
                return m * step;
            }
        }
        step *= 10;
    }
}

/// A chart's series: its name's catalogue key and how to read it from a month.
type Series = (&'static str, fn(&MonthFigures) -> i64);

/// Two series over the twelve months, as bars side by side: the geometry the template draws.
fn chart(lang: &str, key: &str, months: &[MonthFigures], series: [Series; 2]) -> Value {
    let top = axis_top(
        months
            .iter()
            .flat_map(|m| series.iter().map(move |(_, f)| f(m)))
            .max()
            .unwrap_or(0),
    );
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / months.len().max(1) as f64;
    let bar = slot * 0.34;
    let y = |v: i64| TOP + plot_h - (v as f64 / top as f64) * plot_h;
    let mut bars = Vec::new();
    let mut labels = Vec::new();
    for (i, m) in months.iter().enumerate() {
        let x0 = LEFT + i as f64 * slot + slot * 0.14;
        for (j, (name, f)) in series.iter().enumerate() {
            let v = f(m);
            let top_y = y(v);
            bars.push(json!({
                "x": format!("{:.1}", x0 + j as f64 * bar),
                "y": format!("{top_y:.1}"),
                "w": format!("{:.1}", bar - 1.0),
                "h": format!("{:.1}", TOP + plot_h - top_y),
                "class": format!("bar-{j}"),
                "title": format!("{} {}: {v}", m.month, i18n::text(lang, name, &[])),
            }));
        }
        let month: u32 = m.month.get(5..).and_then(|s| s.parse().ok()).unwrap_or(1);
        labels.push(json!({
            "x": format!("{:.1}", LEFT + i as f64 * slot + slot / 2.0),
            "text": i18n::text(lang, "report-month-short", &[("month", Value::from(month))]),
        }));
    }
    let ticks: Vec<Value> = [0, top / 2, top]
        .iter()
        .map(|v| json!({"y": format!("{:.1}", y(*v)), "label_y": format!("{:.1}", y(*v) + 4.0), "text": v}))
        .collect();
    json!({
        "id": key,
        "title": i18n::text(lang, key, &[]),
        "series": series.iter().enumerate()
            .map(|(j, (name, _))| json!({"class": format!("bar-{j}"), "name": i18n::text(lang, name, &[])}))
            .collect::<Vec<_>>(),
        "bars": bars,
        "labels": labels,
        "ticks": ticks,
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "tick_x": LEFT - 6.0,
        "right": WIDTH - RIGHT,
        "baseline": format!("{:.1}", TOP + plot_h),
        "label_y": format!("{:.1}", HEIGHT - 8.0),
    })
}

fn charts(lang: &str, r: &Report) -> Value {
    json!([
        chart(
            lang,
            "report-chart-followups",
            &r.months,
            [
                ("report-followups-due", |m| m.followups_due),
                ("report-followups-done", |m| m.followups_done),
            ]
        ),
        chart(
            lang,
            "report-chart-outreach",
            &r.months,
            [
                ("report-outreach-sent", |m| m.outreach_sent),
                ("report-outreach-not-sent", |m| m.outreach_not_sent),
            ]
        ),
    ])
}

/// A month's or a year's report for admins, supervisors (their region) and ethics reviewers.
async fn report_page(
    State(s): State<AppState>,
    page: Page,
    Query(q): Query<ReportQuery>,
) -> Response {
    let user = match page.staff(&s, READERS) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let now = s.now();
    let result = reports::report(&s.svc, &user.actor, &q.filter(), now).await;
    let (code, report, errors) = match result {
        Ok(r) => (StatusCode::OK, Some(r), Value::Null),
        Err(Error::Validation(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            form::errors(page.lang, &e),
        ),
        Err(e) => return page.error(&s, e),
    };
    let lang = page.lang;
    let choose_region = user.actor.role != Role::Supervisor;
    let regions = match reports::regions(&s.svc, &user.actor).await {
        Ok(r) => r,
        Err(e) => return page.error(&s, e),
    };
    let region_options: Vec<Value> = regions
        .iter()
        .map(|r| json!({"value": r, "text": r}))
        .collect();
    let programs: Vec<&str> = Program::ALL.iter().map(|p| p.as_str()).collect();
    let keep = [("program", &q.program), ("region", &q.region)];
    let body = report.as_ref().map(|r| {
        let period = Period::parse(&r.period).unwrap_or(Period::current(
            calendar::local_date(s.svc.schedule.default_tz, now),
        ));
        let link = |p: Period| filtered_href("/reports", &keep, &[("period", &p.name())]);
        let year = Period { year: period.year, month: None };
        json!({
            "report": r,
            "heading": period_title(lang, period),
            "is_year": period.month.is_none(),
            "previous": {"href": link(period.previous()), "text": period_title(lang, period.previous())},
            "next": {"href": link(period.next()), "text": period_title(lang, period.next())},
            "year": {"href": link(year), "text": period_title(lang, year)},
            "csv": filtered_href("/reports.csv", &keep, &[("period", &r.period)]),
            "charts": charts(lang, r),
            "done_percent": if r.totals.followups_due > 0 {
                Some(r.totals.followups_done * 100 / r.totals.followups_due)
            } else {
                None
            },
            "from": super::view::format_date(lang, r.from),
            "to": super::view::format_date(lang, r.to),
            "standing_at": super::view::format_date(
                lang, calendar::local_date(s.svc.schedule.default_tz, r.standing_at)),
        })
    });
    page.render(
        &s,
        code,
        "reports",
        json!({
            "title": "report-title",
            "body": body,
            "choose_region": choose_region,
            "own_region": user.actor.region,
            // The period shown is the one counted, also when none was asked for.
            "values": {
                "period": blank_none(&q.period).or_else(|| report.as_ref().map(|r| r.period.clone())),
                "program": q.program,
                "region": q.region,
            },
            "errors": errors,
            "options": {
                "program": options("program", &programs),
                "region": region_options,
            },
        }),
    )
}

/// The report as a CSV download (the same filter).
async fn report_csv(
    State(s): State<AppState>,
    page: Page,
    Query(q): Query<ReportQuery>,
) -> Response {
    let user = match page.staff(&s, READERS) {
        Ok(u) => u,
        Err(r) => return r,
    };
    match reports::csv(&s.svc, &user.actor, &q.filter(), s.now()).await {
        Ok((period, body)) => {
            crate::web::api::consents::csv_download(body, &format!("donorcare-report-{period}.csv"))
        }
        Err(Error::Validation(_)) => report_page(State(s), page, Query(q)).await,
        Err(e) => page.error(&s, e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_end_on_round_numbers() {
        let got: Vec<i64> = [0, 1, 3, 7, 10, 11, 180, 501]
            .iter()
            .map(|n| axis_top(*n))
            .collect();
        assert_eq!(got, [1, 1, 5, 10, 10, 20, 200, 1000]);
    }
}
