//! Monthly and yearly reports (`domain::reports`): counts from metadata, no identities.

use axum::extract::State;
use axum::Json;

use crate::domain::reports::{self, Report, ReportFilter};
use crate::error::Result;
use crate::web::error::ErrorBody;
use crate::web::extract::{ApiQuery, Auth};
use crate::web::AppState;

/// A month's or a year's report, per programme and region: follow-ups due and done, messages
/// sent and not sent (and why), consents given, withdrawn and in force, findings opened,
/// closed and open, new and open cases, and the twelve months' trend. Admins and ethics
/// reviewers, any region; supervisors, their own. The view is audited.
#[utoipa::path(get, path = "/api/v1/reports", tag = "reports",
    params(ReportFilter),
    responses((status = 200, body = Report),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn report(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<ReportFilter>,
) -> Result<Json<Report>> {
    Ok(Json(reports::report(&s.svc, &actor, &f, s.now()).await?))
}

/// The report as CSV: `period,program,region,` then the figures (`cases_new`, `cases_open`,
/// `followups_due`, …), a row per programme and region and a last `all,all` row of totals.
/// The download is audited.
#[utoipa::path(get, path = "/api/v1/reports.csv", tag = "reports",
    params(ReportFilter),
    responses((status = 200, body = String, content_type = "text/csv"),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn report_csv(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<ReportFilter>,
) -> Result<axum::response::Response> {
    let (period, body) = reports::csv(&s.svc, &actor, &f, s.now()).await?;
    Ok(super::consents::csv_download(
        body,
        &format!("donorcare-report-{period}.csv"),
    ))
}
