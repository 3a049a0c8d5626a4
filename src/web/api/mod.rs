//! JSON API handlers under `/api/v1`, each annotated for the OpenAPI document.

pub mod audit;
pub mod auth;
pub mod cases;
pub mod consents;
pub mod correspondence;
pub mod family;
pub mod honour;
pub mod marrow;
pub mod memorials;
pub mod reports;
pub mod schedule;
pub mod tasks;
pub mod users;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

/// Every API route, in groups: one chain of a hundred `routes!` builds its routers by value in
/// one frame, which outgrew a debug build's 2 MiB thread stack.
pub fn routes() -> OpenApiRouter<AppState> {
    later_routes(people_and_cases())
}

fn people_and_cases() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::totp_begin))
        .routes(routes!(auth::totp_confirm))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(users::update_user))
        .routes(routes!(users::reset_totp))
        .routes(routes!(cases::create_case, cases::list_cases))
        .routes(routes!(cases::get_case, cases::update_case))
        .routes(routes!(cases::assign_case))
        .routes(routes!(cases::create_contact))
        .routes(routes!(cases::update_contact))
        .routes(routes!(audit::break_glass))
        .routes(routes!(audit::list_break_glass))
        .routes(routes!(audit::get_break_glass))
        .routes(routes!(audit::review_break_glass))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::verify_audit))
        .routes(routes!(family::invite))
        .routes(routes!(family::accept))
        .routes(routes!(family::access_log))
        .routes(routes!(family::family_erasure))
        .routes(routes!(family::request_erasure))
        .routes(routes!(family::list_erasure))
        .routes(routes!(family::approve_erasure))
        .routes(routes!(family::reject_erasure))
}

fn later_routes(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    care_and_consents(r).merge(records())
}

fn care_and_consents(r: OpenApiRouter<AppState>) -> OpenApiRouter<AppState> {
    r.routes(routes!(tasks::list_tasks))
        .routes(routes!(tasks::create_task))
        .routes(routes!(tasks::get_task))
        .routes(routes!(tasks::complete_task))
        .routes(routes!(tasks::reschedule_task))
        .routes(routes!(tasks::cancel_task))
        .routes(routes!(tasks::digest))
        .routes(routes!(schedule::list_plans))
        .routes(routes!(schedule::update_plan))
        .routes(routes!(schedule::get_schedule, schedule::update_schedule))
        .routes(routes!(schedule::case_outreach))
        .routes(routes!(schedule::preview))
        .routes(routes!(schedule::release))
        .routes(routes!(schedule::cancel))
        .routes(routes!(schedule::letters))
        .routes(routes!(schedule::attention))
        .routes(routes!(schedule::family_outreach))
        .routes(routes!(
            schedule::get_preferences,
            schedule::update_preferences
        ))
        .routes(routes!(consents::list_documents))
        .routes(routes!(consents::get_document))
        .routes(routes!(consents::record))
        .routes(routes!(consents::list))
        .routes(routes!(consents::get))
        .routes(routes!(consents::withdraw))
        .routes(routes!(consents::family_list))
        .routes(routes!(consents::family_withdraw))
        .routes(routes!(consents::findings))
        .routes(routes!(consents::consent_register))
        .routes(routes!(consents::consent_register_csv))
}

fn records() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(reports::report))
        .routes(routes!(honour::roll))
        .routes(routes!(honour::roll_csv))
        .routes(routes!(honour::certificate))
        .routes(routes!(reports::report_csv))
        .routes(routes!(consents::decide_finding))
        .routes(routes!(consents::review))
        .routes(routes!(consents::reveal))
        .routes(routes!(consents::export))
        .routes(routes!(consents::record_use, consents::list_uses))
        .routes(routes!(
            consents::upload_attachment,
            consents::download_attachment
        ))
        .routes(routes!(marrow::create_event, marrow::case_events))
        .routes(routes!(marrow::list_events))
        .routes(routes!(marrow::get_event, marrow::update_event))
        .routes(routes!(marrow::export))
        .routes(routes!(marrow::export_csv))
        .routes(routes!(memorials::create, memorials::list))
        .routes(routes!(memorials::get, memorials::update))
        .routes(routes!(memorials::cancel))
        .routes(routes!(memorials::invite, memorials::guests))
        .routes(routes!(memorials::reply))
        .routes(routes!(memorials::names, memorials::add_name))
        .routes(routes!(memorials::remove_name))
        .routes(routes!(memorials::names_csv))
        .routes(routes!(memorials::family_list))
        .routes(routes!(memorials::family_reply))
        .routes(routes!(
            correspondence::add_correspondent,
            correspondence::case_correspondents
        ))
        .routes(routes!(correspondence::update_correspondent))
        .routes(routes!(
            correspondence::record_letter,
            correspondence::case_letters
        ))
        .routes(routes!(correspondence::list_letters))
        .routes(routes!(
            correspondence::get_letter,
            correspondence::redact_letter
        ))
        .routes(routes!(correspondence::release_letter))
        .routes(routes!(correspondence::withhold_letter))
        .routes(routes!(
            correspondence::family_letters,
            correspondence::family_write
        ))
        .routes(routes!(correspondence::family_correspondents))
}
