//! The consent register: which open cases lack which consent, and how far each programme is
//! covered. Computed from metadata alone (a case's programme, region and status; a consent's
//! kind, dates and withdrawal link), so nothing is decrypted and no identity is shown: a
//! reviewer sees case numbers, a supervisor their region's, a coordinator their own.
//!
//! What a programme requires, in force (given, not withdrawn, not expired):
//! - marrow: the donor's `registry` consent and a `contact` consent for the follow-up calls;
//! - organ: the `donation` consent and a `contact` consent for the family's care;
//! - body: the `body_donation` consent and a `contact` consent.
//!
//! Whether each is valid (right people, witnesses, document version) is the findings' work
//! (`findings::rules`); the register answers the simpler question of what is there at all.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::types::{Program, Role};
use super::{page_limit, Page, Services};
use crate::error::{Error, Result, Validator};
use crate::policy::{Action, Actor, Resource};
use crate::store::{CaseScope, CoverageRow};

/// Cases read per store query while the register is computed.
const SCAN_BATCH: i64 = 2_000;

/// The kinds of consent a programme's open case should hold in force.
pub fn required(program: Program) -> &'static [&'static str] {
    match program {
        Program::Marrow => &["registry", "contact"],
        Program::Organ => &["donation", "contact"],
        Program::Body => &["body_donation", "contact"],
    }
}

/// Every kind some programme requires, in a stable order.
pub const REQUIRED_KINDS: &[&str] = &["registry", "donation", "body_donation", "contact"];

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RegisterFilter {
    /// Only cases of this programme.
    #[param(schema_with = program_param)]
    pub program: Option<String>,
    /// Only cases that lack this kind.
    #[param(schema_with = kind_param)]
    pub missing: Option<String>,
    #[param(schema_with = crate::domain::schema::limit)]
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// What the CSV download is filtered by: the whole list, so no page size or cursor.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RegisterCsvFilter {
    /// Only cases of this programme.
    #[param(schema_with = program_param)]
    pub program: Option<String>,
    /// Only cases that lack this kind.
    #[param(schema_with = kind_param)]
    pub missing: Option<String>,
}

fn program_param() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(&super::schema::names(Program::ALL, Program::as_str), true)
}

fn kind_param() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    super::schema::one_of(REQUIRED_KINDS, true)
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KindCoverage {
    pub kind: String,
    /// Open cases holding this kind in force.
    pub covered: i64,
    pub missing: i64,
    /// `covered` of the programme's open cases, in whole per cent (0 with no cases).
    pub percent: i64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProgramCoverage {
    pub program: String,
    /// Open cases of the programme in the caller's scope.
    pub cases: i64,
    /// Of them, those holding every required kind.
    pub complete: i64,
    pub percent_complete: i64,
    pub kinds: Vec<KindCoverage>,
}

/// An open case that lacks at least one required kind.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Gap {
    pub case_id: String,
    pub program: String,
    pub region: String,
    /// The required kinds it lacks.
    pub missing: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Register {
    /// Every programme, whatever the filter (coverage is of the whole scope).
    pub coverage: Vec<ProgramCoverage>,
    /// The cases with gaps matching the filter, a page of them.
    pub gaps: Page<Gap>,
    /// All cases with gaps matching the filter.
    pub total_gaps: i64,
}

/// The filter checked: programme and kind names.
struct Checked {
    program: Option<Program>,
    missing: Option<String>,
}

fn check(f: &RegisterFilter) -> Result<(Checked, i64)> {
    let mut v = Validator::new();
    let program = match f.program.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(p) => v.check("program", Program::parse(p)),
    };
    let missing = match f.missing.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(k) if REQUIRED_KINDS.contains(&k) => Some(k.to_string()),
        Some(_) => {
            v.add(
                "missing",
                format!("must be one of {}", REQUIRED_KINDS.join(", ")),
            );
            None
        }
    };
    let limit = match page_limit(f.limit) {
        Ok(l) => l,
        Err(Error::Validation(e)) => {
            for (k, why) in e {
                v.add(k, why);
            }
            0
        }
        Err(e) => return Err(e),
    };
    if f.cursor.as_deref().is_some_and(|c| !super::is_id(c)) {
        v.add("cursor", "is not a cursor of this listing");
    }
    v.finish()?;
    Ok((Checked { program, missing }, limit))
}

fn scope_of(actor: &Actor) -> CaseScope {
    match actor.role {
        Role::EthicsReviewer => CaseScope::All,
        Role::Supervisor => CaseScope::Region(actor.region.clone().unwrap_or_default()),
        _ => CaseScope::AssignedTo(actor.user_id.clone()),
    }
}

/// One case's kinds in force, folded from its rows.
struct CaseKinds {
    case_id: String,
    program: String,
    region: String,
    kinds: Vec<String>,
}

/// Walk every open case of the scope in id order, a batch at a time, calling `each` with the
/// case and what it lacks (empty when complete). Memory stays one batch however many cases.
async fn scan(
    svc: &Services,
    scope: &CaseScope,
    now: DateTime<Utc>,
    mut each: impl FnMut(&CaseKinds, Vec<String>),
) -> Result<()> {
    let mut after: Option<String> = None;
    loop {
        let rows = svc
            .store
            .consent_coverage(scope, now, after.as_deref(), SCAN_BATCH)
            .await?;
        let Some(last) = rows.last() else {
            return Ok(());
        };
        after = Some(last.case_id.clone());
        let mut cases = 0;
        for c in fold(rows) {
            cases += 1;
            let missing = match Program::parse(&c.program) {
                Ok(p) => required(p)
                    .iter()
                    .filter(|k| !c.kinds.iter().any(|h| h == *k))
                    .map(|k| k.to_string())
                    .collect(),
                // A programme this build does not know requires nothing it can name.
                Err(_) => Vec::new(),
            };
            each(&c, missing);
        }
        if cases < SCAN_BATCH {
            return Ok(());
        }
    }
}

/// Rows (one per case and kind, in case order) folded into one per case.
fn fold(rows: Vec<CoverageRow>) -> Vec<CaseKinds> {
    let mut out: Vec<CaseKinds> = Vec::new();
    for r in rows {
        match out.last_mut() {
            Some(c) if c.case_id == r.case_id => c.kinds.extend(r.kind),
            _ => out.push(CaseKinds {
                case_id: r.case_id,
                program: r.program,
                region: r.region,
                kinds: r.kind.into_iter().collect(),
            }),
        }
    }
    out
}

fn percent(part: i64, whole: i64) -> i64 {
    if whole == 0 {
        0
    } else {
        part * 100 / whole
    }
}

/// Whether a case's gaps match the filter.
fn matches(f: &Checked, program: &str, missing: &[String]) -> bool {
    !missing.is_empty()
        && f.program.is_none_or(|p| p.as_str() == program)
        && f.missing.as_ref().is_none_or(|k| missing.contains(k))
}

async fn authorized(svc: &Services, actor: &Actor, now: DateTime<Utc>) -> Result<()> {
    svc.authorize(
        actor,
        Action::ListConsents,
        Resource::System,
        svc.entry(actor, Action::ListConsents, "consent_register", now),
    )
    .await
}

/// The register: coverage of every programme in the caller's scope, and a page of the cases
/// lacking a required consent (filtered by programme and by the kind they lack).
pub async fn register(
    svc: &Services,
    actor: &Actor,
    f: RegisterFilter,
    now: DateTime<Utc>,
) -> Result<Register> {
    authorized(svc, actor, now).await?;
    let (checked, limit) = check(&f)?;
    let mut coverage: Vec<ProgramCoverage> = Program::ALL
        .iter()
        .map(|p| ProgramCoverage {
            program: p.as_str().to_string(),
            cases: 0,
            complete: 0,
            percent_complete: 0,
            kinds: required(*p)
                .iter()
                .map(|k| KindCoverage {
                    kind: k.to_string(),
                    covered: 0,
                    missing: 0,
                    percent: 0,
                })
                .collect(),
        })
        .collect();
    let mut items = Vec::new();
    let mut more = false;
    let mut total = 0;
    scan(svc, &scope_of(actor), now, |c, missing| {
        if let Some(p) = coverage.iter_mut().find(|p| p.program == c.program) {
            p.cases += 1;
            if missing.is_empty() {
                p.complete += 1;
            }
            for k in &mut p.kinds {
                if missing.contains(&k.kind) {
                    k.missing += 1;
                } else {
                    k.covered += 1;
                }
            }
        }
        if matches(&checked, &c.program, &missing) {
            total += 1;
            let after_cursor = f
                .cursor
                .as_deref()
                .is_none_or(|cur| c.case_id.as_str() > cur);
            if after_cursor {
                if (items.len() as i64) < limit {
                    items.push(Gap {
                        case_id: c.case_id.clone(),
                        program: c.program.clone(),
                        region: c.region.clone(),
                        missing,
                    });
                } else {
                    more = true;
                }
            }
        }
    })
    .await?;
    for p in &mut coverage {
        p.percent_complete = percent(p.complete, p.cases);
        for k in &mut p.kinds {
            k.percent = percent(k.covered, p.cases);
        }
    }
    let next_cursor = if more {
        items.last().map(|g: &Gap| g.case_id.clone())
    } else {
        None
    };
    Ok(Register {
        coverage,
        gaps: Page { items, next_cursor },
        total_gaps: total,
    })
}

/// The register's gaps as CSV (`case_id,program,region,missing`, the kinds separated by `;`),
/// every matching case, for the committee's records. The download is audited.
pub async fn csv(
    svc: &Services,
    actor: &Actor,
    f: RegisterCsvFilter,
    now: DateTime<Utc>,
) -> Result<String> {
    authorized(svc, actor, now).await?;
    let (checked, _) = check(&RegisterFilter {
        program: f.program,
        missing: f.missing,
        limit: None,
        cursor: None,
    })?;
    let mut out = String::from("case_id,program,region,missing\r\n");
    let mut rows = 0;
    scan(svc, &scope_of(actor), now, |c, missing| {
        if matches(&checked, &c.program, &missing) {
            rows += 1;
            // Ids, programme and region names are tokens (no commas, quotes or line breaks).
            out.push_str(&format!(
                "{},{},{},{}\r\n",
                c.case_id,
                c.program,
                c.region,
                missing.join(";")
            ));
        }
    })
    .await?;
    svc.audit
        .record(vec![svc
            .entry(actor, Action::ListConsents, "consent_register", now)
            .reason(&format!("csv:{rows}"))])
        .await?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(case: &str, program: &str, kind: Option<&str>) -> CoverageRow {
        CoverageRow {
            case_id: case.into(),
            program: program.into(),
            region: "yinzhou".into(),
            kind: kind.map(Into::into),
        }
    }

    #[test]
    fn rows_fold_into_one_case_each_with_its_kinds() {
        let cases = fold(vec![
            row("a", "marrow", Some("contact")),
            row("a", "marrow", Some("registry")),
            row("b", "organ", None),
            row("c", "body", Some("body_donation")),
        ]);
        let got: Vec<(&str, Vec<&str>)> = cases
            .iter()
            .map(|c| {
                (
                    c.case_id.as_str(),
                    c.kinds.iter().map(String::as_str).collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                ("a", vec!["contact", "registry"]),
                ("b", vec![]),
                ("c", vec!["body_donation"]),
            ]
        );
    }

    #[test]
    fn every_required_kind_is_a_consent_kind_and_listed() {
        for p in Program::ALL {
            for k in required(*p) {
                assert!(super::super::consents::KINDS.contains(k), "{k}");
                assert!(REQUIRED_KINDS.contains(k), "{k}");
            }
        }
    }

    #[test]
    fn the_filter_names_its_bad_fields() {
        let f = RegisterFilter {
            program: Some("kidney".into()),
            missing: Some("research".into()),
            limit: Some(0),
            cursor: Some("x".into()),
        };
        let Err(Error::Validation(e)) = check(&f) else {
            panic!("refused");
        };
        let fields: Vec<&str> = e.keys().map(String::as_str).collect();
        assert_eq!(fields, ["cursor", "limit", "missing", "program"]);
    }
}
