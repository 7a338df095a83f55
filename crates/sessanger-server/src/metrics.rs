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
//! | `sessanger_store_cache_hits_total`, `…_misses_total` | `cache`: `sessions`, `services` |
//! | `sessanger_store_cache_entries`, `…_bytes` (gauges) | `cache` |
//! | `sessanger_store_cache_drops_total` | |
//!
//! The `store_cache` metrics exist with a store that keeps a node cache (Redis); the store
//! counts, and each scrape copies its figures here ([`Metrics::observe_cache`]).

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, RwLock},
    time::Duration,
};

use ::metrics::{
    Counter, Histogram, Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use axum::{
    http::{Method, StatusCode},
    response::Response,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use sessanger_core::{CacheStats, StoreError, error_chain};

use crate::error::Fault;

const REQUESTS: &str = "sessanger_http_requests_total";
const DURATION: &str = "sessanger_http_request_duration_seconds";
const STORE_ERRORS: &str = "sessanger_store_errors_total";
const CACHE_HITS: &str = "sessanger_store_cache_hits_total";
const CACHE_MISSES: &str = "sessanger_store_cache_misses_total";
const CACHE_ENTRIES: &str = "sessanger_store_cache_entries";
const CACHE_BYTES: &str = "sessanger_store_cache_bytes";
const CACHE_DROPS: &str = "sessanger_store_cache_drops_total";

/// Latency buckets in seconds: a store round trip is around a millisecond, a slow one a second.
const DURATION_BUCKETS: [f64; 13] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// One server's recorder and the handle that renders it.
#[derive(Clone, Debug)]
pub(crate) struct Metrics {
    recorder: Arc<PrometheusRecorder>,
    handle: PrometheusHandle,
    /// The request metrics' handles by route, registered once each: registering through the
    /// recorder (label strings built, the key hashed and looked up) cost about as much as the
    /// rest of a `/healthz` answer (callgrind).
    // Found on every request; its keys are the router's own templates, so the fast hasher.
    by_route: Arc<RwLock<HashMap<String, RouteHandles, foldhash::fast::RandomState>>>,
}

/// The handles of one route's request metrics: few methods and statuses each, so a list.
#[derive(Debug, Default)]
struct RouteHandles {
    requests: Vec<(&'static str, u16, Counter)>,
    durations: Vec<(&'static str, Histogram)>,
}

impl RouteHandles {
    /// Counts a request and records its duration, if both handles are here.
    fn observe(&self, method: &'static str, status: u16, seconds: f64) -> bool {
        let requests = self.requests.iter().find(|(m, s, _)| *m == method && *s == status);
        let durations = self.durations.iter().find(|(m, _)| *m == method);
        let (Some((_, _, requests)), Some((_, durations))) = (requests, durations) else { return false };
        requests.increment(1);
        durations.record(seconds);
        true
    }
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
            describe_counter!(CACHE_HITS, "Reads the store's node cache answered from memory.");
            describe_counter!(CACHE_MISSES, "Reads that went through the store's node cache to the database.");
            describe_gauge!(CACHE_ENTRIES, "Entries held in the store's node cache.");
            describe_gauge!(CACHE_BYTES, Unit::Bytes, "Bytes held in the store's node cache, about.");
            describe_counter!(
                CACHE_DROPS,
                "Times the store's node cache was dropped whole: its invalidations may have been lost."
            );
        });
        Metrics { recorder: Arc::new(recorder), handle, by_route: Arc::default() }
    }

    /// Copies the figures of the store's node cache, which counts them itself.
    pub(crate) fn observe_cache(&self, stats: &CacheStats) {
        self.record(|| {
            for (cache, counts) in [("sessions", &stats.sessions), ("services", &stats.services)] {
                counter!(CACHE_HITS, "cache" => cache).absolute(counts.hits);
                counter!(CACHE_MISSES, "cache" => cache).absolute(counts.misses);
                gauge!(CACHE_ENTRIES, "cache" => cache).set(counts.entries as f64);
                gauge!(CACHE_BYTES, "cache" => cache).set(counts.bytes as f64);
            }
            counter!(CACHE_DROPS).absolute(stats.drops);
        });
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

    fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        ::metrics::with_local_recorder(&*self.recorder, f)
    }

    /// Counts and times a request answered with `response`, and logs and counts the cause of
    /// a server-side failure.
    pub(crate) fn observe(&self, route: &str, method: &'static str, elapsed: Duration, response: &Response) {
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
        let (status, seconds) = (response.status().as_u16(), elapsed.as_secs_f64());
        let observed = {
            let by_route = self.by_route.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            by_route.get(route).is_some_and(|handles| handles.observe(method, status, seconds))
        };
        if !observed {
            self.register(route, method, status, seconds);
        }
        if let Some(kind) = store_error {
            self.record(|| counter!(STORE_ERRORS, "kind" => kind).increment(1));
        }
    }

    /// Registers the request metrics of `route`, `method` and `status` (once: later requests
    /// find the handles), and records this request with them.
    fn register(&self, route: &str, method: &'static str, status: u16, seconds: f64) {
        let (requests, durations) = self.record(|| {
            let labels = [("route", route.to_owned()), ("method", method.to_owned())];
            let requests = counter!(REQUESTS, &[labels[0].clone(), labels[1].clone(), ("status", status.to_string())]);
            (requests, histogram!(DURATION, &labels))
        });
        let mut by_route = self.by_route.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        let handles = by_route.entry(route.to_owned()).or_default();
        if !handles.requests.iter().any(|(m, s, _)| *m == method && *s == status) {
            handles.requests.push((method, status, requests));
        }
        if !handles.durations.iter().any(|(m, _)| *m == method) {
            handles.durations.push((method, durations));
        }
        handles.observe(method, status, seconds);
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
