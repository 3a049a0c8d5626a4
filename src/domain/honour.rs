//! The year's honour roll and a donor's certificate.
//!
//! A name goes on the honour roll only while the case holds a `publicity` consent about the
//! donor in force (given, not withdrawn, not expired): the roll is published, printed and
//! read out, and without that consent the donor stays anonymous however much the office would
//! like to thank them. A certificate is different: it is handed to the donor or the family
//! themselves, publishes nothing, and so needs no publicity consent; its page says whether one
//! is in force, so no one frames it for a public wall by mistake.
//!
//! Both read names, so both are audited as case views (`case.view`; the roll's with reason
//! `honour_roll`), one entry per case shown.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::cases::{self, CaseView};
use super::consents;
use super::types::Program;
use super::{page_limit, Page, Services};
use crate::error::{Error, Result, Validator};
use crate::policy::{self, Action, Actor};
use crate::store::{CaseQuery, CaseScope};

/// Cases read per store query while the roll is filtered by donation year.
const SCAN_BATCH: i64 = 200;

#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RollFilter {
    /// The year of the donations honoured (YYYY); this year when absent.
    #[param(pattern = r"^(20[0-9]{2}|2100)?$", example = "2026")]
    pub year: Option<String>,
    /// Only cases of this programme.
    #[param(schema_with = program_param)]
    pub program: Option<String>,
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// What the whole roll (print, CSV) is filtered by: no page size or cursor.
#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WholeRollFilter {
    /// The year of the donations honoured (YYYY); this year when absent.
    #[param(pattern = r"^(20[0-9]{2}|2100)?$", example = "2026")]
    pub year: Option<String>,
    /// Only cases of this programme.
    #[param(schema_with = program_param)]
    pub program: Option<String>,
}

fn program_param() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(&super::schema::names(Program::ALL, Program::as_str), true)
}

/// One name on the roll.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RollEntry {
    pub case_id: String,
    pub program: String,
    pub region: String,
    pub full_name: String,
    #[schema(value_type = String, format = Date)]
    pub donation_date: NaiveDate,
    pub donation_kind: String,
    /// A deceased donor is honoured with their family.
    pub deceased: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Roll {
    pub year: i32,
    pub entries: Page<RollEntry>,
}

/// A certificate's content for one case.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Certificate {
    pub case_id: String,
    pub program: String,
    pub full_name: String,
    #[schema(value_type = String, format = Date)]
    pub donation_date: NaiveDate,
    pub donation_kind: String,
    pub deceased: bool,
    /// Whether a publicity consent about the donor is in force (the name may be shown in
    /// public); a certificate itself needs none.
    pub publicity_consent: bool,
}

struct Checked {
    year: i32,
    program: Option<Program>,
    limit: i64,
}

fn check(f: &RollFilter, today: NaiveDate, paged: bool) -> Result<Checked> {
    let mut v = Validator::new();
    let year = match f.year.as_deref().map(str::trim).filter(|y| !y.is_empty()) {
        None => Some(today.year()),
        Some(y) => match y.parse::<i32>() {
            Ok(n) if y.len() == 4 && (2000..=2100).contains(&n) => Some(n),
            Ok(_) => {
                v.add("year", "must be a year from 2000 to 2100");
                None
            }
            Err(_) => {
                v.add("year", "must be a year (YYYY)");
                None
            }
        },
    };
    let program = f
        .program
        .as_deref()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .and_then(|p| v.check("program", Program::parse(p)));
    let limit = if paged {
        match page_limit(f.limit) {
            Ok(l) => l,
            Err(_) => {
                v.add("limit", "must be between 1 and 200");
                0
            }
        }
    } else {
        i64::MAX
    };
    if f.cursor.as_deref().is_some_and(|c| !super::is_id(c)) {
        v.add("cursor", "is not a cursor of this listing");
    }
    v.finish()?;
    Ok(Checked {
        year: year.unwrap_or_default(),
        program,
        limit,
    })
}

fn entry(c: CaseView) -> Option<RollEntry> {
    let (donor, donation) = (c.donor?, c.donation?);
    Some(RollEntry {
        case_id: c.id,
        program: c.program.as_str().to_string(),
        region: c.region,
        full_name: donor.full_name,
        donation_date: donation.date,
        donation_kind: donation.kind,
        deceased: donor.deceased,
    })
}

/// Walk the cases of the actor's scope that hold a publicity consent in force, in id order
/// after `cursor`, keeping those whose donation was in the year, until `limit` are found.
/// Returns them and whether more remain.
async fn scan(
    svc: &Services,
    scope: &CaseScope,
    c: &Checked,
    cursor: Option<String>,
    now: DateTime<Utc>,
) -> Result<(Vec<RollEntry>, bool)> {
    let ring = svc.keys.ring();
    let mut after = cursor;
    let mut found = Vec::new();
    loop {
        let rows = svc
            .store
            .list_cases(&CaseQuery {
                scope: scope.clone(),
                program: c.program.map(|p| p.as_str().to_string()),
                status: None,
                term: None,
                consent_in_force: Some(("publicity".into(), now)),
                after: after.clone(),
                limit: SCAN_BATCH,
            })
            .await?;
        let Some(last) = rows.last() else {
            return Ok((found, false));
        };
        after = Some(last.id.clone());
        let full = rows.len() as i64 == SCAN_BATCH;
        for row in &rows {
            let Some(e) = entry(cases::open_listed(svc, &ring, row)?) else {
                continue;
            };
            if e.donation_date.year() != c.year {
                continue;
            }
            if found.len() as i64 == c.limit {
                return Ok((found, true));
            }
            found.push(e);
        }
        if !full {
            return Ok((found, false));
        }
    }
}

async fn audit_shown(
    svc: &Services,
    actor: &Actor,
    shown: &[RollEntry],
    now: DateTime<Utc>,
) -> Result<()> {
    let entries: Vec<_> = shown
        .iter()
        .map(|e| {
            svc.entry(actor, Action::ReadCase, "case", now)
                .target(&e.case_id)
                .case(&e.case_id)
                .reason("honour_roll")
        })
        .collect();
    if entries.is_empty() {
        return Ok(());
    }
    svc.audit.record(entries).await
}

/// The cases the caller may list; a role that lists none is refused, and the refusal recorded.
async fn scope_checked(svc: &Services, actor: &Actor, now: DateTime<Utc>) -> Result<CaseScope> {
    match policy::case_scope(actor) {
        Ok(scope) => Ok(scope),
        Err(e) => {
            let entry = svc
                .entry(actor, Action::ListCases, "honour_roll", now)
                .denied("role");
            svc.audit.record(vec![entry]).await?;
            Err(e)
        }
    }
}

/// A page of the year's honour roll in the caller's scope.
pub async fn roll(
    svc: &Services,
    actor: &Actor,
    f: RollFilter,
    now: DateTime<Utc>,
) -> Result<Roll> {
    let scope = scope_checked(svc, actor, now).await?;
    let today = crate::schedule::calendar::local_date(svc.schedule.default_tz, now);
    let c = check(&f, today, true)?;
    let (items, more) = scan(svc, &scope, &c, f.cursor.clone(), now).await?;
    audit_shown(svc, actor, &items, now).await?;
    let next_cursor = if more {
        items.last().map(|e| e.case_id.clone())
    } else {
        None
    };
    Ok(Roll {
        year: c.year,
        entries: Page { items, next_cursor },
    })
}

/// The whole roll of the year, in name order, for printing and for the engraver's list.
pub async fn whole_roll(
    svc: &Services,
    actor: &Actor,
    f: WholeRollFilter,
    now: DateTime<Utc>,
) -> Result<(i32, Vec<RollEntry>)> {
    let scope = scope_checked(svc, actor, now).await?;
    let today = crate::schedule::calendar::local_date(svc.schedule.default_tz, now);
    let c = check(
        &RollFilter {
            year: f.year,
            program: f.program,
            limit: None,
            cursor: None,
        },
        today,
        false,
    )?;
    let (mut items, _) = scan(svc, &scope, &c, None, now).await?;
    audit_shown(svc, actor, &items, now).await?;
    items.sort_by(|a, b| {
        a.donation_date
            .cmp(&b.donation_date)
            .then(a.full_name.cmp(&b.full_name))
    });
    Ok((c.year, items))
}

/// The roll as CSV for the engraver: `full_name,donation_date,program,donation_kind,region`.
pub fn to_csv(entries: &[RollEntry]) -> String {
    let mut out = String::from("full_name,donation_date,program,donation_kind,region\r\n");
    for e in entries {
        out.push_str(&format!(
            "{},{},{},{},{}\r\n",
            csv_field(&e.full_name),
            e.donation_date,
            e.program,
            csv_field(&e.donation_kind),
            e.region
        ));
    }
    out
}

pub(crate) fn csv_field(s: &str) -> String {
    // A leading =, +, - or @ would be a formula in a spreadsheet.
    let s = if s.starts_with(['=', '+', '-', '@']) {
        format!("'{s}")
    } else {
        s.to_string()
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// A certificate for one case the caller may read (`cases::get` decides and records the view).
pub async fn certificate(
    svc: &Services,
    actor: &Actor,
    case_id: &str,
    now: DateTime<Utc>,
) -> Result<Certificate> {
    let view = cases::get(svc, actor, case_id, now).await?;
    let (Some(donor), Some(donation)) = (view.donor.clone(), view.donation.clone()) else {
        return Err(Error::Conflict {
            field: None,
            message: "the case's personal data was erased".into(),
        });
    };
    let publicity = consents::publicity_in_force(svc, case_id, now).await?;
    Ok(Certificate {
        case_id: view.id,
        program: view.program.as_str().to_string(),
        full_name: donor.full_name,
        donation_date: donation.date,
        donation_kind: donation.kind,
        deceased: donor.deceased,
        publicity_consent: publicity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_roll_checks_its_year_and_names_bad_fields() {
        let today = NaiveDate::from_ymd_opt(2026, 12, 5).unwrap();
        let c = check(&RollFilter::default(), today, true).unwrap();
        assert_eq!((c.year, c.limit), (2026, 50));
        let bad = RollFilter {
            year: Some("26".into()),
            program: Some("kidney".into()),
            limit: Some(0),
            cursor: Some("x y".into()),
        };
        let Err(Error::Validation(e)) = check(&bad, today, true) else {
            panic!("refused");
        };
        let fields: Vec<&str> = e.keys().map(String::as_str).collect();
        assert_eq!(fields, ["cursor", "limit", "program", "year"]);
    }

    #[test]
    fn the_engravers_list_is_safe_in_a_spreadsheet() {
        let e = |name: &str| RollEntry {
            case_id: "c".into(),
            program: "organ".into(),
            region: "yinzhou".into(),
            full_name: name.into(),
            donation_date: NaiveDate::from_ymd_opt(2026, 4, 5).unwrap(),
            donation_kind: "kidney".into(),
            deceased: true,
        };
        let csv = to_csv(&[e("林小满"), e("=HYPERLINK(\"x\")"), e("王, 芳")]);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[1], "林小满,2026-04-05,organ,kidney,yinzhou");
        assert_eq!(
            lines[2],
            "\"'=HYPERLINK(\"\"x\"\")\",2026-04-05,organ,kidney,yinzhou"
        );
        assert_eq!(lines[3], "\"王, 芳\",2026-04-05,organ,kidney,yinzhou");
    }
}
