//! Server-rendered pages, one module per area of work. Each module lists its templates and
//! routes; [`view`] holds what they share and [`form`] the one form convention.

// A refused page is answered at once: the `Err` of a page helper is that answer, returned
// straight to axum, so its size is never copied around.
#![allow(clippy::result_large_err)]

pub mod account;
pub mod calendar;
pub mod cases;
pub mod consents;
pub mod form;
pub mod home;
pub mod outreach;
pub mod tasks;
pub mod view;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::AppState;

/// Templates every page uses: the layout and the one-paragraph message page.
const SHARED: &[(&str, &str)] = &[
    ("base", include_str!("../../../templates/base.hbs")),
    ("message", include_str!("../../../templates/message.hbs")),
    (
        "form_errors",
        include_str!("../../../templates/form_errors.hbs"),
    ),
];

/// Every page template, by name.
pub fn templates() -> impl Iterator<Item = &'static (&'static str, &'static str)> {
    SHARED
        .iter()
        .chain(account::TEMPLATES)
        .chain(home::TEMPLATES)
        .chain(cases::TEMPLATES)
        .chain(tasks::TEMPLATES)
        .chain(outreach::TEMPLATES)
        .chain(calendar::TEMPLATES)
        .chain(consents::TEMPLATES)
}

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/static/app.css", get(css))
        .merge(account::routes())
        .merge(home::routes())
        .merge(cases::routes())
        .merge(tasks::routes())
        .merge(outreach::routes())
        .merge(calendar::routes())
        .merge(consents::routes())
}

/// The stylesheet of every page (screen and print): the shared rules, then each area's.
pub const APP_CSS: &str = concat!(
    include_str!("../../../templates/static/app.css"),
    include_str!("../../../templates/static/tasks.css"),
    include_str!("../../../templates/static/outreach.css"),
    include_str!("../../../templates/static/print.css"),
);

async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        APP_CSS,
    )
        .into_response()
}

/// The 404 page for a path no route has.
pub async fn not_found_page(s: &AppState, parts: &mut axum::http::request::Parts) -> Response {
    use axum::extract::FromRequestParts;
    match view::Page::from_request_parts(parts, s).await {
        Ok(page) => page.not_found(s),
        Err(e) => e.into_response(),
    }
}
