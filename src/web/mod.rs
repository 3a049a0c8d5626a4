//! The HTTP surface: the JSON API under `/api/v1`, the pages, health and metrics. Handlers only
//! translate between HTTP and the domain; every decision is made in `domain` and `policy`.

pub mod api;
pub mod error;
pub mod extract;
pub mod i18n;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod session;
pub mod templates;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use tracing::Instrument;
use utoipa_axum::router::OpenApiRouter;

use crate::domain::Services;
use crate::error::Error;

/// Pages load only their own stylesheet; no scripts, no framing, forms post only here.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Largest request body accepted (JSON); larger bodies get 413.
pub const BODY_LIMIT: usize = 256 * 1024;

/// Source of the current time, so tests can fix it.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(Utc::now)
}

/// What every handler shares. Extractors clone it for each request, so it is one reference
/// count to the fields (`Shared`), which it dereferences to.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        AppState(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub svc: Services,
    pub templates: Arc<handlebars::Handlebars<'static>>,
    pub clock: Clock,
    /// Default time zone of new contacts.
    pub default_timezone: Arc<str>,
    pub metrics: Arc<metrics::Metrics>,
    /// The signed audit checkpoints, checked by `GET /api/v1/audit/verify`.
    pub checkpoints: Option<Arc<crate::audit::Checkpoints>>,
    /// The address users reach the service at, for links (`DONORCARE_PUBLIC_URL`).
    pub public_url: Arc<str>,
    /// Mark cookies `Secure` (the service is reached over HTTPS).
    pub secure_cookies: bool,
    /// Scheduled backups: the last good one, the next, failures.
    pub backups: Arc<crate::backup::Status>,
}

impl Shared {
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// The office's time zone: pages show times in it and read a form's bare date in it.
    pub fn zone(&self) -> chrono_tz::Tz {
        self.default_timezone
            .parse()
            .unwrap_or(chrono_tz::Asia::Shanghai)
    }

    /// Today's date in the office's zone.
    pub fn today(&self) -> chrono::NaiveDate {
        crate::schedule::calendar::local_date(self.zone(), self.now())
    }
}

/// The JSON API with its OpenAPI document, both built from the same handler annotations.
pub fn api_router() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut doc) = OpenApiRouter::with_openapi(openapi::base())
        .merge(api::routes())
        .split_for_parts();
    openapi::complete(&mut doc);
    (router, doc)
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    let (api, openapi) = api_router();
    let openapi = Arc::new(openapi);
    Router::new()
        .merge(api)
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = openapi.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .merge(pages::routes())
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics::render))
        .fallback(not_found)
        .method_not_allowed_fallback(|| async { Error::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn not_found(State(s): State<AppState>, req: Request) -> Response {
    if req.uri().path().starts_with("/api/") {
        Error::NotFound.into_response()
    } else {
        let (mut parts, _) = req.into_parts();
        pages::not_found_page(&s, &mut parts).await
    }
}

async fn healthz(State(s): State<AppState>) -> Response {
    match s.svc.store.ping().await {
        Ok(()) => (StatusCode::OK, "ok").into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// One span per request with an id, the method and the route template (never the query string,
/// which may hold a phone number), then one line with the status and time taken.
async fn observe(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let request_id = uuid::Uuid::new_v4().to_string();
    let span = tracing::info_span!(
        "request",
        id = %request_id,
        method = %req.method(),
        route = %route,
        user_id = tracing::field::Empty,
    );
    let is_api = req.uri().path().starts_with("/api/");
    let mut resp = next.run(req).instrument(span.clone()).await;
    let status = resp.status();
    s.metrics.observe(status, started.elapsed());
    span.in_scope(|| {
        tracing::info!(
            status = status.as_u16(),
            ms = started.elapsed().as_millis() as u64,
            "served"
        )
    });
    let h = resp.headers_mut();
    h.insert(
        "x-request-id",
        HeaderValue::from_str(&request_id).unwrap_or(HeaderValue::from_static("-")),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    // API answers and pages may carry personal data: never cached.
    if is_api || !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}
