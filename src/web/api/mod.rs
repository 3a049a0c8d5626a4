//! JSON API handlers under `/api/v1`, each annotated for the OpenAPI document.

pub mod audit;
pub mod auth;
pub mod cases;
pub mod users;

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(users::create_user, users::list_users))
        .routes(routes!(users::update_user))
        .routes(routes!(cases::create_case, cases::list_cases))
        .routes(routes!(cases::get_case, cases::update_case))
        .routes(routes!(cases::assign_case))
        .routes(routes!(cases::create_contact))
        .routes(routes!(cases::update_contact))
        .routes(routes!(audit::break_glass))
        .routes(routes!(audit::list_break_glass))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::verify_audit))
}
