//! The honour roll and certificates (`domain::honour`).

use axum::extract::{Path, State};
use axum::Json;

use crate::domain::honour::{self, Certificate, Roll, RollFilter, WholeRollFilter};
use crate::error::Result;
use crate::web::error::ErrorBody;
use crate::web::extract::{ApiQuery, Auth};
use crate::web::AppState;

/// A page of the year's honour roll: donors whose donation was in the year and whose case
/// holds a publicity consent about them in force; others stay anonymous. Coordinators see
/// their cases, supervisors their region. Each name shown is audited.
#[utoipa::path(get, path = "/api/v1/honour-roll", tag = "honour",
    params(RollFilter),
    responses((status = 200, body = Roll),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn roll(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<RollFilter>,
) -> Result<Json<Roll>> {
    Ok(Json(honour::roll(&s.svc, &actor, f, s.now()).await?))
}

/// The whole roll of the year as CSV for the engraver or printer:
/// `full_name,donation_date,program,donation_kind,region`, by donation date. Audited.
#[utoipa::path(get, path = "/api/v1/honour-roll.csv", tag = "honour",
    params(WholeRollFilter),
    responses((status = 200, body = String, content_type = "text/csv"),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn roll_csv(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<WholeRollFilter>,
) -> Result<axum::response::Response> {
    let (year, entries) = honour::whole_roll(&s.svc, &actor, f, s.now()).await?;
    Ok(super::consents::csv_download(
        honour::to_csv(&entries),
        &format!("honour-roll-{year}.csv"),
    ))
}

/// What a case's certificate says, and whether a publicity consent is in force (a
/// certificate is handed to the donor or family and needs none). Audited as a view.
#[utoipa::path(get, path = "/api/v1/cases/{id}/certificate", tag = "honour",
    params(("id" = String, Path)),
    responses((status = 200, body = Certificate), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn certificate(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<Certificate>> {
    Ok(Json(
        honour::certificate(&s.svc, &actor, &id, s.now()).await?,
    ))
}
