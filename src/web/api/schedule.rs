//! Care plans, a case's schedule choices and outreach, and the family's preferences.

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::contacts::ContactView;
use crate::domain::outreach::{self, AttentionFilter, OutreachFilter, OutreachView, Rendered};
use crate::domain::schedule::{self, PlanInput, PlanView, PreferencesInput, ScheduleView};
use crate::domain::schema;
use crate::domain::Page;
use crate::error::Result;
use crate::schedule::plan::CasePreferences;
use crate::web::error::ErrorBody;
use crate::web::extract::{ApiJson, ApiQuery, Auth};
use crate::web::AppState;

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanList {
    pub items: Vec<PlanView>,
}

/// The care plans of the three programmes (admin, supervisor, coordinator).
#[utoipa::path(get, path = "/api/v1/care-plans", tag = "schedule",
    responses((status = 200, body = PlanList), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn list_plans(State(s): State<AppState>, Auth(actor): Auth) -> Result<Json<PlanList>> {
    Ok(Json(PlanList {
        items: schedule::list_plans(&s.svc, &actor, s.now()).await?,
    }))
}

/// Replace a programme's rules (admin). Give back the `version` you read; every case of the
/// programme then follows the new rules for its future, unfinished occurrences.
#[utoipa::path(put, path = "/api/v1/care-plans/{program}", tag = "schedule",
    request_body = PlanInput, params(("program" = String, Path)),
    responses((status = 200, body = PlanView), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_plan(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(program): Path<String>,
    ApiJson(input): ApiJson<PlanInput>,
) -> Result<Json<PlanView>> {
    Ok(Json(
        schedule::update_plan(&s.svc, &actor, &program, input, s.now()).await?,
    ))
}

/// A case's schedule choices: mourning days, festivals skipped, and the horizon reached.
#[utoipa::path(get, path = "/api/v1/cases/{id}/schedule", tag = "schedule",
    params(("id" = String, Path)),
    responses((status = 200, body = ScheduleView), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_schedule(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<ScheduleView>> {
    Ok(Json(
        schedule::get_schedule(&s.svc, &actor, &id, s.now()).await?,
    ))
}

/// Change a case's schedule choices; the case is re-materialised at once.
#[utoipa::path(patch, path = "/api/v1/cases/{id}/schedule", tag = "schedule",
    request_body = PreferencesInput, params(("id" = String, Path)),
    responses((status = 200, body = ScheduleView), (status = 404, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_schedule(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiJson(input): ApiJson<PreferencesInput>,
) -> Result<Json<ScheduleView>> {
    Ok(Json(
        schedule::update_schedule(&s.svc, &actor, &id, input, s.now()).await?,
    ))
}

/// A case's outreach messages, in due order, with `status` and `reason`.
#[utoipa::path(get, path = "/api/v1/cases/{id}/outreach", tag = "schedule",
    params(("id" = String, Path), OutreachFilter),
    responses((status = 200, body = Page<OutreachView>), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn case_outreach(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    ApiQuery(f): ApiQuery<OutreachFilter>,
) -> Result<Json<Page<OutreachView>>> {
    Ok(Json(
        outreach::case_outreach(&s.svc, &actor, &id, f, s.now()).await?,
    ))
}

/// One message rendered for its recipient, in their language.
#[utoipa::path(get, path = "/api/v1/outreach/{id}/preview", tag = "schedule",
    params(("id" = String, Path)),
    responses((status = 200, body = Rendered), (status = 404, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn preview(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<Rendered>> {
    Ok(Json(outreach::preview(&s.svc, &actor, &id, s.now()).await?))
}

/// What the family was sent or will be sent, with the messages of their portal inbox.
#[utoipa::path(get, path = "/api/v1/me/outreach", tag = "family", params(OutreachFilter),
    responses((status = 200, body = Page<OutreachView>), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn family_outreach(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<OutreachFilter>,
) -> Result<Json<Page<OutreachView>>> {
    Ok(Json(
        outreach::family_outreach(&s.svc, &actor, f, s.now()).await?,
    ))
}

/// A family's outreach preferences: channel, opting out, a quiet period, language, time zone,
/// mourning days and festivals.
#[derive(Debug, Serialize, ToSchema)]
pub struct Preferences {
    pub preferred_channel: String,
    pub opted_out: bool,
    pub do_not_contact_until: Option<chrono::NaiveDate>,
    pub language: String,
    pub timezone: String,
    #[serde(flatten)]
    pub schedule: CasePreferences,
}

fn channel_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use crate::domain::types::Channel;
    schema::one_of(&schema::names(Channel::ALL, Channel::as_str), false)
}

fn language_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use crate::domain::types::Language;
    // Null puts the default (zh-CN) back.
    schema::one_of(&schema::names(Language::ALL, Language::as_str), true)
}

fn timezone_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    // Null puts the service's zone back.
    schema::timezone(true)
}

fn festivals_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use crate::schedule::calendar::Festival;
    schema::list_of(&schema::names(&Festival::ALL, Festival::as_str), false)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreferencesPatch {
    /// `email`, `sms`, `letter`, `portal` or `wechat`.
    #[schema(schema_with = channel_schema)]
    pub preferred_channel: Option<String>,
    /// No outreach at all (null: back to the default, false).
    pub opted_out: Option<bool>,
    /// No outreach before this date (YYYY-MM-DD); null clears it.
    #[schema(schema_with = date_param)]
    pub do_not_contact_until: Option<Option<String>>,
    #[schema(schema_with = language_schema)]
    pub language: Option<String>,
    #[schema(schema_with = timezone_schema)]
    pub timezone: Option<String>,
    /// Hear from us on the traditional mourning days.
    #[schema(nullable = false)]
    pub mourning_days: Option<bool>,
    /// Festivals on which not to hear from us.
    #[schema(schema_with = festivals_schema)]
    pub skip_festivals: Option<Vec<String>>,
}

fn preferences(c: ContactView, schedule: CasePreferences) -> Preferences {
    Preferences {
        preferred_channel: c.preferred_channel.as_str().into(),
        opted_out: c.opted_out,
        do_not_contact_until: c.do_not_contact_until,
        language: c.language.as_str().into(),
        timezone: c.timezone,
        schedule,
    }
}

#[utoipa::path(get, path = "/api/v1/me/preferences", tag = "family",
    responses((status = 200, body = Preferences), (status = 403, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn get_preferences(
    State(s): State<AppState>,
    Auth(actor): Auth,
) -> Result<Json<Preferences>> {
    let (c, p) = schedule::family_preferences(&s.svc, &actor, s.now()).await?;
    Ok(Json(preferences(c, p)))
}

#[utoipa::path(patch, path = "/api/v1/me/preferences", tag = "family",
    request_body = PreferencesPatch,
    responses((status = 200, body = Preferences), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn update_preferences(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiJson(patch): ApiJson<serde_json::Value>,
) -> Result<Json<Preferences>> {
    let (c, p) =
        schedule::update_family_preferences(&s.svc, &actor, patch, &s.default_timezone, s.now())
            .await?;
    Ok(Json(preferences(c, p)))
}

/// The messages that need a person in the caller's cases: held (with why), dead after the last
/// try, or failing; in due order.
#[utoipa::path(get, path = "/api/v1/outreach", tag = "schedule", params(AttentionFilter),
    responses((status = 200, body = Page<OutreachView>), (status = 403, body = ErrorBody),
              (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn attention(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(f): ApiQuery<AttentionFilter>,
) -> Result<Json<Page<OutreachView>>> {
    Ok(Json(outreach::attention(&s.svc, &actor, f, s.now()).await?))
}

/// Put a held or dead message back in the queue; the send-time gate decides again.
#[utoipa::path(post, path = "/api/v1/outreach/{id}/release", tag = "schedule",
    params(("id" = String, Path)),
    responses((status = 200, body = OutreachView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn release(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<OutreachView>> {
    Ok(Json(outreach::release(&s.svc, &actor, &id, s.now()).await?))
}

/// Cancel a held or dead message for good.
#[utoipa::path(post, path = "/api/v1/outreach/{id}/cancel", tag = "schedule",
    params(("id" = String, Path)),
    responses((status = 200, body = OutreachView), (status = 404, body = ErrorBody),
              (status = 409, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn cancel(
    State(s): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> Result<Json<OutreachView>> {
    Ok(Json(outreach::cancel(&s.svc, &actor, &id, s.now()).await?))
}

fn date_param() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    schema::date(true)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LetterParams {
    /// The day the letters went out (YYYY-MM-DD); default today.
    #[param(schema_with = date_param)]
    pub date: Option<String>,
}

/// The day's letters in the caller's cases as one printable HTML page (one letter per sheet),
/// rendered now and not stored.
#[utoipa::path(get, path = "/api/v1/letters", tag = "schedule", params(LetterParams),
    responses((status = 200, content_type = "text/html", body = String),
              (status = 403, body = ErrorBody), (status = 422, body = ErrorBody)),
    security(("bearer" = [])))]
pub async fn letters(
    State(s): State<AppState>,
    Auth(actor): Auth,
    ApiQuery(p): ApiQuery<LetterParams>,
) -> Result<axum::response::Html<String>> {
    let now = s.now();
    let date = p.date.unwrap_or_else(|| {
        crate::schedule::calendar::local_date(s.svc.schedule.default_tz, now).to_string()
    });
    let letters = outreach::letters(&s.svc, &actor, &date, now).await?;
    let page = s
        .templates
        .render(
            "letters",
            &serde_json::json!({"date": date, "letters": letters}),
        )
        .map_err(|e| anyhow::anyhow!("rendering letters: {e}"))?;
    Ok(axum::response::Html(page))
}
