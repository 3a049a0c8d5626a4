//! Reports to the Red Cross: for a month or a year, per programme and region, the follow-up
//! calls and visits due and done, the messages sent and those not sent (and why), consents
//! given, withdrawn and in force, findings opened, closed and open, and new cases. Computed from
//! metadata alone (programme, region, statuses, reasons, times): nothing is decrypted and no
//! case is named, so a report may be printed and passed on.
//!
//! A report of a month carries the twelve months ending with it (a year's report, its own
//! twelve) for the chart of how the work went. Month bounds are the office's midnights
//! (`ScheduleSettings::default_tz`). Standing figures (consents in force, findings open, open
//! cases) are taken at the period's end, or now for a period not over yet.
//!
//! Who: admins and ethics reviewers, any region; supervisors, their own region.

use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::types::{self, Program, Role};
use super::Services;
use crate::error::{Error, Result, Validator};
use crate::policy::{Action, Actor, Resource};
use crate::schedule::calendar;
use crate::store::{ReportQuery, ReportRows};

/// Months in a report's trend.
pub const TREND_MONTHS: u32 = 12;

#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReportFilter {
    /// `YYYY-MM` for a month, `YYYY` for a year; the current month when absent.
    #[param(
        pattern = r"^((20[0-9]{2}|2100)(-(0[1-9]|1[0-2]))?)?$",
        example = "2026-11"
    )]
    pub period: Option<String>,
    /// Only cases of this programme.
    #[param(schema_with = program_param)]
    pub program: Option<String>,
    /// Only cases of this region (a supervisor's is always their own).
    #[param(pattern = r"^[a-z0-9_-]{0,64}$")]
    pub region: Option<String>,
}

fn program_param() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(&super::schema::names(Program::ALL, Program::as_str), true)
}

/// The counts of one period (or of one programme and region in it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct Figures {
    /// Cases opened in the period.
    pub cases_new: i64,
    /// Cases open at the period's end.
    pub cases_open: i64,
    /// Calls and visits due in the period, not cancelled.
    pub followups_due: i64,
    /// Of them, done.
    pub followups_done: i64,
    /// Of those done, done after their grace period (without one: after the month they were
    /// due in).
    pub followups_late: i64,
    /// Due and not done (yet).
    pub followups_open: i64,
    /// Calls and visits due in the period that were cancelled.
    pub followups_cancelled: i64,
    pub outreach_sent: i64,
    /// Messages due in the period that were held (they wait for a person).
    pub outreach_held: i64,
    /// Messages due in the period not sent: held, failed, dead or cancelled.
    pub outreach_not_sent: i64,
    pub consents_given: i64,
    pub consents_withdrawn: i64,
    /// Consents in force at the period's end.
    pub consents_active: i64,
    pub findings_opened: i64,
    pub findings_closed: i64,
    /// Findings open at the period's end.
    pub findings_open: i64,
}

/// One programme in one region.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GroupFigures {
    pub program: String,
    pub region: String,
    pub figures: Figures,
}

/// One month of the trend.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MonthFigures {
    /// `YYYY-MM`.
    pub month: String,
    pub followups_due: i64,
    pub followups_done: i64,
    pub outreach_sent: i64,
    pub outreach_not_sent: i64,
    pub consents_given: i64,
    pub consents_withdrawn: i64,
    pub findings_opened: i64,
    pub findings_closed: i64,
    pub cases_new: i64,
}

/// A count under a name (a channel, a consent kind).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Named {
    pub name: String,
    pub count: i64,
}

/// Messages of the period not sent, by status and reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct NotSent {
    /// `held`, `failed`, `dead` or `cancelled`.
    pub status: String,
    /// Why (`no_consent`, `opted_out`, `paused`, `quiet_hours`, …); empty when none is recorded.
    pub reason: String,
    pub count: i64,
}

/// A consent kind's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ConsentKind {
    pub kind: String,
    pub given: i64,
    pub withdrawn: i64,
    pub active: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Report {
    /// As asked: `YYYY-MM` or `YYYY`.
    pub period: String,
    /// `month` or `year`.
    pub granularity: String,
    /// The period's first and last days (office calendar).
    #[schema(value_type = String, format = Date)]
    pub from: NaiveDate,
    #[schema(value_type = String, format = Date)]
    pub to: NaiveDate,
    /// The office's time zone, whose midnights bound the months.
    pub timezone: String,
    pub program: Option<String>,
    pub region: Option<String>,
    /// When the standing figures (open cases, consents in force, open findings) were taken.
    pub standing_at: DateTime<Utc>,
    pub totals: Figures,
    /// Every programme and region with anything to count, by programme then region.
    pub groups: Vec<GroupFigures>,
    /// The twelve months ending with the period's last, oldest first.
    pub months: Vec<MonthFigures>,
    pub sent_by_channel: Vec<Named>,
    pub not_sent: Vec<NotSent>,
    pub consents_by_kind: Vec<ConsentKind>,
}

/// A period checked: its name, whether a year, and its first month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub year: i32,
    /// `None` for the whole year.
    pub month: Option<u32>,
}

impl Period {
    pub fn parse(s: &str) -> std::result::Result<Period, String> {
        let bad = || "must be a month (YYYY-MM) or a year (YYYY)".to_string();
        let (y, m) = match s.split_once('-') {
            Some((y, m)) => (y, Some(m)),
            None => (s, None),
        };
        if y.len() != 4 || !y.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        if !(2000..=2100).contains(&year) {
            return Err("must be a year from 2000 to 2100".into());
        }
        let month = match m {
            None => None,
            Some(m) if m.len() == 2 && m.bytes().all(|b| b.is_ascii_digit()) => {
                let n: u32 = m.parse().map_err(|_| bad())?;
                if !(1..=12).contains(&n) {
                    return Err("the month must be from 01 to 12".into());
                }
                Some(n)
            }
            Some(_) => return Err(bad()),
        };
        Ok(Period { year, month })
    }

    pub fn current(today: NaiveDate) -> Period {
        Period {
            year: today.year(),
            month: Some(today.month()),
        }
    }

    pub fn name(self) -> String {
        match self.month {
            Some(m) => format!("{:04}-{m:02}", self.year),
            None => format!("{:04}", self.year),
        }
    }

    /// The period's first day.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month.unwrap_or(1), 1).unwrap_or_default()
    }

    /// The day after the period.
    pub fn end(self) -> NaiveDate {
        let months = if self.month.is_some() { 1 } else { 12 };
        self.first_day() + Months::new(months)
    }

    /// The first day of each month of the trend, and the day after the last: 13 days.
    pub fn month_starts(self) -> Vec<NaiveDate> {
        let end = self.end();
        let first = end - Months::new(TREND_MONTHS);
        (0..=TREND_MONTHS).map(|i| first + Months::new(i)).collect()
    }

    /// The months of the trend that are in the period itself (a month: the last; a year: all).
    pub fn own_months(self) -> std::ops::Range<i64> {
        match self.month {
            Some(_) => TREND_MONTHS as i64 - 1..TREND_MONTHS as i64,
            None => 0..TREND_MONTHS as i64,
        }
    }

    /// The period before this one (for the page's links).
    pub fn previous(self) -> Period {
        match self.month {
            Some(_) => {
                let d = self.first_day() - Months::new(1);
                Period {
                    year: d.year(),
                    month: Some(d.month()),
                }
            }
            None => Period {
                year: self.year - 1,
                month: None,
            },
        }
    }

    pub fn next(self) -> Period {
        let d = self.end();
        match self.month {
            Some(_) => Period {
                year: d.year(),
                month: Some(d.month()),
            },
            None => Period {
                year: self.year + 1,
                month: None,
            },
        }
    }
}

/// The filter checked against the caller: the period, and the programme and region to count.
#[derive(Debug, Clone)]
pub struct Checked {
    pub period: Period,
    pub program: Option<Program>,
    pub region: Option<String>,
}

fn blank(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// Check the filter for `actor`: a supervisor's region is their own whatever is asked, and
/// asking for another is refused by name.
pub fn check(actor: &Actor, f: &ReportFilter, today: NaiveDate) -> Result<Checked> {
    let mut v = Validator::new();
    let period = match blank(&f.period) {
        None => Some(Period::current(today)),
        Some(p) => v.check("period", Period::parse(p)),
    };
    let program = blank(&f.program).and_then(|p| v.check("program", Program::parse(p)));
    let asked = blank(&f.region).and_then(|r| v.check("region", types::region(r)));
    let region = match actor.role {
        Role::Supervisor => {
            let own = actor.region.clone().unwrap_or_default();
            if asked.as_ref().is_some_and(|r| *r != own) {
                v.add("region", "a supervisor's reports are of their own region");
            }
            Some(own)
        }
        _ => asked,
    };
    v.finish()?;
    let Some(period) = period else {
        return Err(Error::Internal(anyhow::anyhow!(
            "validation let a bad period through"
        )));
    };
    Ok(Checked {
        period,
        program,
        region,
    })
}

async fn authorized(svc: &Services, actor: &Actor, now: DateTime<Utc>) -> Result<()> {
    svc.authorize(
        actor,
        Action::ReadReports,
        Resource::System,
        svc.entry(actor, Action::ReadReports, "report", now),
    )
    .await
}

/// The report for `actor` (access checked, filter checked, the view audited with what it
/// covered).
pub async fn report(
    svc: &Services,
    actor: &Actor,
    f: &ReportFilter,
    now: DateTime<Utc>,
) -> Result<Report> {
    authorized(svc, actor, now).await?;
    let tz = svc.schedule.default_tz;
    let checked = check(actor, f, calendar::local_date(tz, now))?;
    let r = compute(svc, &checked, now).await?;
    record(svc, actor, &checked, "view", now).await?;
    Ok(r)
}

/// The regions an admin or ethics reviewer may choose from; a supervisor's own.
pub async fn regions(svc: &Services, actor: &Actor) -> Result<Vec<String>> {
    match actor.role {
        Role::Supervisor => Ok(actor.region.clone().into_iter().collect()),
        _ => svc.store.case_regions().await,
    }
}

async fn record(
    svc: &Services,
    actor: &Actor,
    c: &Checked,
    how: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    // Every part is a checked code (period, programme, region token), never free text.
    let mut reason = format!("{how}:{}", c.period.name());
    if let Some(p) = c.program {
        reason.push_str(&format!(" program:{}", p.as_str()));
    }
    if let Some(r) = &c.region {
        reason.push_str(&format!(" region:{r}"));
    }
    svc.audit
        .record(vec![svc
            .entry(actor, Action::ReadReports, "report", now)
            .reason(&reason)])
        .await
}

/// Count the report of a checked filter.
pub async fn compute(svc: &Services, c: &Checked, now: DateTime<Utc>) -> Result<Report> {
    let tz = svc.schedule.default_tz;
    let starts = c.period.month_starts();
    let bounds: Vec<DateTime<Utc>> = starts
        .iter()
        .map(|d| calendar::local_to_utc(tz, d.and_time(chrono::NaiveTime::MIN)))
        .collect();
    let end = bounds.last().copied().unwrap_or(now);
    let q = ReportQuery {
        at: end.min(now),
        bounds,
        program: c.program.map(|p| p.as_str().to_string()),
        region: c.region.clone(),
    };
    let rows = svc.store.report_rows(&q).await?;
    Ok(assemble(c, &starts, rows, tz.name(), q.at))
}

/// Fold the store's rows into a report (pure: tested without a database).
fn assemble(
    c: &Checked,
    starts: &[NaiveDate],
    rows: ReportRows,
    timezone: &str,
    standing_at: DateTime<Utc>,
) -> Report {
    use std::collections::BTreeMap;
    let own = c.period.own_months();
    let mut months: Vec<MonthFigures> = starts
        .iter()
        .take(TREND_MONTHS as usize)
        .map(|d| MonthFigures {
            month: d.format("%Y-%m").to_string(),
            followups_due: 0,
            followups_done: 0,
            outreach_sent: 0,
            outreach_not_sent: 0,
            consents_given: 0,
            consents_withdrawn: 0,
            findings_opened: 0,
            findings_closed: 0,
            cases_new: 0,
        })
        .collect();
    let mut groups: BTreeMap<(String, String), Figures> = BTreeMap::new();
    let mut channels: BTreeMap<String, i64> = BTreeMap::new();
    let mut not_sent: BTreeMap<(String, String), i64> = BTreeMap::new();
    let mut kinds: BTreeMap<String, ConsentKind> = BTreeMap::new();

    for t in &rows.tasks {
        let due = t.total - t.cancelled;
        if let Some(m) = usize::try_from(t.bucket)
            .ok()
            .and_then(|i| months.get_mut(i))
        {
            m.followups_due += due;
            m.followups_done += t.done;
        }
        if own.contains(&t.bucket) {
            let g = groups
                .entry((t.program.clone(), t.region.clone()))
                .or_default();
            g.followups_due += due;
            g.followups_done += t.done;
            g.followups_late += t.late;
            g.followups_open += due - t.done;
            g.followups_cancelled += t.cancelled;
        }
    }
    for n in &rows.counts {
        let standing = n.bucket < 0;
        if let Some(m) = usize::try_from(n.bucket)
            .ok()
            .and_then(|i| months.get_mut(i))
        {
            match n.what.as_str() {
                "sent" => m.outreach_sent += n.count,
                "not_sent" => m.outreach_not_sent += n.count,
                "consent_given" => m.consents_given += n.count,
                "consent_withdrawn" => m.consents_withdrawn += n.count,
                "finding_opened" => m.findings_opened += n.count,
                "finding_closed" => m.findings_closed += n.count,
                "case_new" => m.cases_new += n.count,
                _ => {}
            }
        }
        if !standing && !own.contains(&n.bucket) {
            continue;
        }
        let g = groups
            .entry((n.program.clone(), n.region.clone()))
            .or_default();
        match n.what.as_str() {
            "sent" => {
                g.outreach_sent += n.count;
                *channels.entry(n.detail.clone()).or_default() += n.count;
            }
            "not_sent" => {
                g.outreach_not_sent += n.count;
                let (status, reason) = n.detail.split_once(':').unwrap_or((&n.detail, ""));
                // The reason's code only: some carry a detail after it ("channel_unconfigured:
                // sms (…)"), which would split one reason into many rows.
                let reason = reason.split([':', ' ']).next().unwrap_or_default();
                if status == "held" {
                    g.outreach_held += n.count;
                }
                *not_sent
                    .entry((status.to_string(), reason.to_string()))
                    .or_default() += n.count;
            }
            "consent_given" => {
                g.consents_given += n.count;
                kind_of(&mut kinds, &n.detail).given += n.count;
            }
            "consent_withdrawn" => {
                g.consents_withdrawn += n.count;
                kind_of(&mut kinds, &n.detail).withdrawn += n.count;
            }
            "consent_active" => {
                g.consents_active += n.count;
                kind_of(&mut kinds, &n.detail).active += n.count;
            }
            "finding_opened" => g.findings_opened += n.count,
            "finding_closed" => g.findings_closed += n.count,
            "finding_open" => g.findings_open += n.count,
            "case_new" => g.cases_new += n.count,
            "case_open" => g.cases_open += n.count,
            _ => {}
        }
    }
    let mut totals = Figures::default();
    for f in groups.values() {
        add(&mut totals, f);
    }
    let mut not_sent: Vec<NotSent> = not_sent
        .into_iter()
        .map(|((status, reason), count)| NotSent {
            status,
            reason,
            count,
        })
        .collect();
    not_sent.sort_by(|a, b| b.count.cmp(&a.count).then(a.status.cmp(&b.status)));
    let mut sent_by_channel: Vec<Named> = channels
        .into_iter()
        .map(|(name, count)| Named { name, count })
        .collect();
    sent_by_channel.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)));
    Report {
        period: c.period.name(),
        granularity: if c.period.month.is_some() {
            "month"
        } else {
            "year"
        }
        .into(),
        from: c.period.first_day(),
        to: c.period.end() - chrono::Days::new(1),
        timezone: timezone.to_string(),
        program: c.program.map(|p| p.as_str().to_string()),
        region: c.region.clone(),
        standing_at,
        totals,
        groups: groups
            .into_iter()
            .map(|((program, region), figures)| GroupFigures {
                program,
                region,
                figures,
            })
            .collect(),
        months,
        sent_by_channel,
        not_sent,
        consents_by_kind: kinds.into_values().collect(),
    }
}

fn kind_of<'a>(
    kinds: &'a mut std::collections::BTreeMap<String, ConsentKind>,
    kind: &str,
) -> &'a mut ConsentKind {
    kinds
        .entry(kind.to_string())
        .or_insert_with(|| ConsentKind {
            kind: kind.to_string(),
            given: 0,
            withdrawn: 0,
            active: 0,
        })
}

fn add(to: &mut Figures, f: &Figures) {
    to.cases_new += f.cases_new;
    to.cases_open += f.cases_open;
    to.followups_due += f.followups_due;
    to.followups_done += f.followups_done;
    to.followups_late += f.followups_late;
    to.followups_open += f.followups_open;
    to.followups_cancelled += f.followups_cancelled;
    to.outreach_sent += f.outreach_sent;
    to.outreach_held += f.outreach_held;
    to.outreach_not_sent += f.outreach_not_sent;
    to.consents_given += f.consents_given;
    to.consents_withdrawn += f.consents_withdrawn;
    to.consents_active += f.consents_active;
    to.findings_opened += f.findings_opened;
    to.findings_closed += f.findings_closed;
    to.findings_open += f.findings_open;
}

/// The columns of the CSV, after `program,region`, in the order of [`Figures`].
pub const CSV_COLUMNS: &[&str] = &[
    "cases_new",
    "cases_open",
    "followups_due",
    "followups_done",
    "followups_late",
    "followups_open",
    "followups_cancelled",
    "outreach_sent",
    "outreach_held",
    "outreach_not_sent",
    "consents_given",
    "consents_withdrawn",
    "consents_active",
    "findings_opened",
    "findings_closed",
    "findings_open",
];

fn values(f: &Figures) -> [i64; 16] {
    [
        f.cases_new,
        f.cases_open,
        f.followups_due,
        f.followups_done,
        f.followups_late,
        f.followups_open,
        f.followups_cancelled,
        f.outreach_sent,
        f.outreach_held,
        f.outreach_not_sent,
        f.consents_given,
        f.consents_withdrawn,
        f.consents_active,
        f.findings_opened,
        f.findings_closed,
        f.findings_open,
    ]
}

/// The report as CSV: `period,program,region,` then [`CSV_COLUMNS`]; a row per programme and
/// region, and a last row `all,all` of the totals; with the period's name (for the file's).
/// The download is audited.
pub async fn csv(
    svc: &Services,
    actor: &Actor,
    f: &ReportFilter,
    now: DateTime<Utc>,
) -> Result<(String, String)> {
    authorized(svc, actor, now).await?;
    let checked = check(actor, f, calendar::local_date(svc.schedule.default_tz, now))?;
    let r = compute(svc, &checked, now).await?;
    record(svc, actor, &checked, "csv", now).await?;
    Ok((r.period.clone(), to_csv(&r)))
}

pub fn to_csv(r: &Report) -> String {
    let mut out = format!("period,program,region,{}\r\n", CSV_COLUMNS.join(","));
    let mut line = |program: &str, region: &str, f: &Figures| {
        // Period, programme and region are codes (no commas, quotes or line breaks).
        out.push_str(&format!("{},{program},{region}", r.period));
        for v in values(f) {
            out.push_str(&format!(",{v}"));
        }
        out.push_str("\r\n");
    };
    for g in &r.groups {
        line(&g.program, &g.region, &g.figures);
    }
    line("all", "all", &r.totals);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ReportCount, ReportTasks};

    fn actor(role: Role, region: Option<&str>) -> Actor {
        Actor {
            user_id: "u".into(),
            username: "u".into(),
            role,
            region: region.map(Into::into),
            contact_id: None,
            must_enrol: false,
        }
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn periods_parse_and_bound_their_months() {
        let m = Period::parse("2026-03").unwrap();
        assert_eq!(m.first_day(), d(2026, 3, 1));
        assert_eq!(m.end(), d(2026, 4, 1));
        let starts = m.month_starts();
        assert_eq!(starts.len(), 13);
        assert_eq!(starts[0], d(2025, 4, 1));
        assert_eq!(starts[11], d(2026, 3, 1));
        assert_eq!(starts[12], d(2026, 4, 1));
        assert_eq!(m.own_months(), 11..12);
        assert_eq!(m.previous().name(), "2026-02");
        assert_eq!(
            Period::parse("2026-01").unwrap().previous().name(),
            "2025-12"
        );
        assert_eq!(Period::parse("2026-12").unwrap().next().name(), "2027-01");

        let y = Period::parse("2025").unwrap();
        assert_eq!(y.first_day(), d(2025, 1, 1));
        assert_eq!(y.end(), d(2026, 1, 1));
        assert_eq!(y.month_starts()[0], d(2025, 1, 1));
        assert_eq!(y.own_months(), 0..12);
        assert_eq!(y.previous().name(), "2024");

        for bad in [
            "26",
            "2026-13",
            "2026-00",
            "2026-1",
            "1999",
            "2026-03-01",
            "２０２６",
            "",
        ] {
            assert!(Period::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_supervisor_reports_on_their_region_only() {
        let today = d(2026, 12, 5);
        let sup = actor(Role::Supervisor, Some("yinzhou"));
        let c = check(&sup, &ReportFilter::default(), today).unwrap();
        assert_eq!(c.region.as_deref(), Some("yinzhou"));
        assert_eq!(c.period.name(), "2026-12");
        let other = ReportFilter {
            region: Some("haishu".into()),
            ..Default::default()
        };
        let Err(Error::Validation(e)) = check(&sup, &other, today) else {
            panic!("another region refused");
        };
        assert!(e.contains_key("region"));
        let admin = actor(Role::Admin, None);
        assert_eq!(
            check(&admin, &other, today).unwrap().region.as_deref(),
            Some("haishu")
        );
        let bad = ReportFilter {
            period: Some("2026-13".into()),
            program: Some("kidney".into()),
            region: Some("Not A Region!".into()),
        };
        let Err(Error::Validation(e)) = check(&admin, &bad, today) else {
            panic!("refused");
        };
        let fields: Vec<&str> = e.keys().map(String::as_str).collect();
        assert_eq!(fields, ["period", "program", "region"]);
    }

    fn count(program: &str, bucket: i64, what: &str, detail: &str, n: i64) -> ReportCount {
        ReportCount {
            program: program.into(),
            region: "yinzhou".into(),
            bucket,
            what: what.into(),
            detail: detail.into(),
            count: n,
        }
    }

    #[test]
    fn rows_fold_into_the_period_and_its_trend() {
        let period = Period::parse("2026-03").unwrap();
        let c = Checked {
            period,
            program: None,
            region: None,
        };
        let rows = ReportRows {
            tasks: vec![
                ReportTasks {
                    program: "marrow".into(),
                    region: "yinzhou".into(),
                    bucket: 11,
                    total: 10,
                    done: 6,
                    late: 1,
                    cancelled: 2,
                },
                // An earlier month: in the trend, not in the month's figures.
                ReportTasks {
                    program: "marrow".into(),
                    region: "yinzhou".into(),
                    bucket: 3,
                    total: 4,
                    done: 4,
                    late: 0,
                    cancelled: 0,
                },
            ],
            counts: vec![
                count("marrow", 11, "sent", "email", 5),
                count("marrow", 11, "sent", "sms", 2),
                count("organ", 11, "not_sent", "held:no_consent", 3),
                count("organ", 11, "not_sent", "cancelled:opted_out", 1),
                count(
                    "organ",
                    11,
                    "not_sent",
                    "held:channel_unconfigured: sms (unset)",
                    1,
                ),
                count(
                    "organ",
                    11,
                    "not_sent",
                    "held:channel_unconfigured: email (unset)",
                    1,
                ),
                count("organ", 2, "not_sent", "held:no_consent", 9),
                count("organ", 11, "consent_given", "contact", 2),
                count("organ", 11, "consent_withdrawn", "contact", 1),
                count("organ", -1, "consent_active", "contact", 7),
                count("marrow", -1, "case_open", "marrow", 40),
                count("marrow", -1, "finding_open", "missing_witness", 2),
                count("marrow", 11, "finding_closed", "missing_witness", 1),
                count("marrow", 0, "case_new", "marrow", 30),
            ],
        };
        let r = assemble(
            &c,
            &period.month_starts(),
            rows,
            "Asia/Shanghai",
            Utc::now(),
        );
        let t = &r.totals;
        assert_eq!(
            (
                t.followups_due,
                t.followups_done,
                t.followups_late,
                t.followups_open
            ),
            (8, 6, 1, 2)
        );
        assert_eq!(t.followups_cancelled, 2);
        assert_eq!(
            (t.outreach_sent, t.outreach_not_sent, t.outreach_held),
            (7, 6, 5)
        );
        assert_eq!(
            (t.consents_given, t.consents_withdrawn, t.consents_active),
            (2, 1, 7)
        );
        assert_eq!((t.cases_open, t.cases_new), (40, 0));
        assert_eq!((t.findings_open, t.findings_closed), (2, 1));
        assert_eq!(r.groups.len(), 2);
        assert_eq!(r.groups[0].program, "marrow");
        assert_eq!(r.months.len(), 12);
        assert_eq!(r.months[0].month, "2025-04");
        assert_eq!(r.months[0].cases_new, 30);
        assert_eq!(r.months[2].outreach_not_sent, 9);
        assert_eq!(
            (r.months[3].followups_due, r.months[3].followups_done),
            (4, 4)
        );
        assert_eq!(r.months[11].followups_due, 8);
        assert_eq!(
            r.sent_by_channel[0],
            Named {
                name: "email".into(),
                count: 5
            }
        );
        assert_eq!(r.not_sent[0].reason, "no_consent");
        assert_eq!(
            (r.not_sent[1].reason.as_str(), r.not_sent[1].count),
            ("channel_unconfigured", 2)
        );
        assert_eq!(
            r.consents_by_kind,
            vec![ConsentKind {
                kind: "contact".into(),
                given: 2,
                withdrawn: 1,
                active: 7
            }]
        );
        let csv = to_csv(&r);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("period,program,region,cases_new,"));
        assert_eq!(lines[0].split(',').count(), 3 + CSV_COLUMNS.len());
        assert!(lines[3].starts_with("2026-03,all,all,0,40,8,6,1,2,2,7,5,6,2,1,7,0,1,2"));
    }
}
