//! Prometheus metrics: the recorder, and what is recorded of every request (`edge.rs` calls
//! [`Metrics::observe`] for each).
//!
//! Each [`AppState`](crate::AppState) owns a recorder and records into it with
//! `metrics::with_local_recorder`, instead of installing one globally: a global recorder can
//! be installed only once per process, which many states (one per test) would trip over.
//!
//! | metric | labels |
//! |---|---|
//! | `sessanger_http_requests_total` | `route` (template, or `unmatched`), `method`, `status` |
//! | `sessanger_http_request_duration_seconds` (histogram) | `route`, `method` |
//! | `sessanger_store_errors_total` | `kind`: `unavailable`, `backend`, `encode`, `decode` |

use std::{convert::Infallible, error::Error, sync::Arc, time::Duration};

use ::metrics::{Unit, counter, describe_counter, describe_histogram, histogram};
use axum::{
    http::{Method, StatusCode},
    response::Response,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use sessanger_core::StoreError;

use crate::error::Fault;

const REQUESTS: &str = "sessanger_http_requests_total";
const DURATION: &str = "sessanger_http_request_duration_seconds";
const STORE_ERRORS: &str = "sessanger_store_errors_total";

/// Latency buckets in seconds: a store round trip is around a millisecond, a slow one a second.
const DURATION_BUCKETS: [f64; 13] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// One server's recorder and the handle that renders it.
#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.into()), &DURATION_BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        ::metrics::with_local_recorder(&recorder, || {
            describe_counter!(REQUESTS, "HTTP requests answered, by route template, method and status.");
            describe_histogram!(
                DURATION,
                Unit::Seconds,
                "Time to answer an HTTP request, by route template and method."
            );
            describe_counter!(STORE_ERRORS, "Store failures that reached a client as 500 or 503, by kind.");
        });
        Metrics { recorder: Arc::new(recorder), handle }
    }

    /// The Prometheus text exposition of everything recorded so far.
    pub(crate) fn render(&self) -> String {
        self.handle.render()
    }

    /// Folds histogram samples into their buckets every `period`, forever. Without it, samples
    /// pile up in memory between scrapes (rendering `/metrics` folds them too).
    pub(crate) async fn run_upkeep(self, period: Duration) -> Infallible {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.handle.run_upkeep();
        }
    }

    fn record(&self, f: impl FnOnce()) {
        ::metrics::with_local_recorder(&*self.recorder, f);
    }

    /// Counts and times a request answered with `response`, and logs and counts the cause of
    /// a server-side failure.
    pub(crate) fn observe(&self, route: String, method: &'static str, elapsed: Duration, response: &Response) {
        let mut store_error = None;
        if let Some(Fault(cause)) = response.extensions().get::<Fault>() {
            let status = response.status();
            let chain = error_chain(cause.as_ref());
            // 503 is expected to pass (the store comes back); anything else is a bug or worse.
            if status == StatusCode::SERVICE_UNAVAILABLE {
                tracing::warn!(%route, %method, %status, error = %chain, "request failed");
            } else {
                tracing::error!(%route, %method, %status, error = %chain, "request failed");
            }
            store_error = cause.downcast_ref::<StoreError>().map(store_error_kind);
        }
        let status = response.status().as_u16().to_string();
        self.record(|| {
            counter!(REQUESTS, "route" => route.clone(), "method" => method, "status" => status).increment(1);
            histogram!(DURATION, "route" => route, "method" => method).record(elapsed.as_secs_f64());
            if let Some(kind) = store_error {
                counter!(STORE_ERRORS, "kind" => kind).increment(1);
            }
        });
    }
}

/// The method as a label; anything unusual is `other`, so a client cannot mint time series.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

fn store_error_kind(error: &StoreError) -> &'static str {
    match error {
        StoreError::Unavailable(_) => "unavailable",
        // The label predates the variant's name; dashboards select on it.
        StoreError::Other(_) => "backend",
        StoreError::Encode(_) => "encode",
        StoreError::Decode(_) => "decode",
        _ => "other",
    }
}

/// `outer: cause: root cause`, so the log line carries what the generic response body hides.
fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}
