//! `GET /metrics`: Prometheus text with request counts by status class and latency totals.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use super::AppState;

#[derive(Default)]
pub struct Metrics {
    by_class: [AtomicU64; 6],
    micros: AtomicU64,
}

impl Metrics {
    pub fn observe(&self, status: StatusCode, took: Duration) {
        let class = (status.as_u16() / 100).min(5) as usize;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        self.micros.fetch_add(
            took.as_micros().min(u128::from(u64::MAX)) as u64,
            Ordering::Relaxed,
        );
    }
}

pub async fn render(State(s): State<AppState>) -> impl IntoResponse {
    let m = &s.metrics;
    let mut out = String::from(
        "# HELP donorcare_http_requests_total HTTP requests served, by status class.\n\
         # TYPE donorcare_http_requests_total counter\n",
    );
    for (i, c) in m.by_class.iter().enumerate().skip(1) {
        out.push_str(&format!(
            "donorcare_http_requests_total{{class=\"{i}xx\"}} {}\n",
            c.load(Ordering::Relaxed)
        ));
    }
    out.push_str(&format!(
        "# HELP donorcare_http_request_seconds_total Time spent serving requests.\n\
         # TYPE donorcare_http_request_seconds_total counter\n\
         donorcare_http_request_seconds_total {:.6}\n",
        m.micros.load(Ordering::Relaxed) as f64 / 1e6
    ));
    out.push_str(&format!(
        "# HELP donorcare_keyring_version Newest data-key version in use.\n\
         # TYPE donorcare_keyring_version gauge\n\
         donorcare_keyring_version {}\n",
        s.svc.keys.ring().current
    ));
    let b = &s.backups;
    out.push_str(&format!(
        "# HELP donorcare_backup_failures_total Scheduled backups that failed since start.\n\
         # TYPE donorcare_backup_failures_total counter\n\
         donorcare_backup_failures_total {}\n",
        b.failures()
    ));
    if let (Some(at), Some(age)) = (b.last_ok(), b.age_seconds(s.now())) {
        out.push_str(&format!(
            "# HELP donorcare_backup_last_success_timestamp_seconds When the last good scheduled backup was made.\n\
             # TYPE donorcare_backup_last_success_timestamp_seconds gauge\n\
             donorcare_backup_last_success_timestamp_seconds {}\n\
             # HELP donorcare_backup_age_seconds Age of the last good scheduled backup.\n\
             # TYPE donorcare_backup_age_seconds gauge\n\
             donorcare_backup_age_seconds {age}\n",
            at.timestamp()
        ));
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
