//! (Being built.)

use axum::Router;

use crate::web::AppState;

pub const TEMPLATES: &[(&str, &str)] = &[];

pub fn routes() -> Router<AppState> {
    Router::new()
}
