//! What every request goes through on its way in and out: its body limit, its deadline, its
//! metrics and log line, and `Cache-Control: no-store`.
//!
//! One layer rather than four: axum wraps each route in every layer added to the router, and
//! a request clones each wrapping box on its way in, so every layer is paid per request (the
//! profile of a session read showed five such clones). And a layer of its own rather than
//! `middleware::from_fn`, which clones and boxes the inner service and boxes its future for
//! every request: this one calls the route in place and polls its answer without a box.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use axum::{
    extract::{DefaultBodyLimit, MatchedPath, Request},
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use tokio::time::Timeout;

use crate::{AppState, error::ApiError, metrics};

/// Runs every request under the server's body limit and timeout, then stamps and records its
/// response.
///
/// - A body longer than `body_limit` is refused by whichever extractor reads it (413).
/// - A handler that takes longer than `request_timeout` (body reading included) is dropped and
///   the client gets 503 `request_timeout`.
/// - Session data and service tokens must never sit in a shared cache; health and metrics are
///   live readings too, so every response says `no-store`.
/// - The metrics see every response, timeouts and fallbacks included.
#[derive(Clone, Debug)]
pub(crate) struct EdgeLayer(Arc<Edge>);

/// The layer's share of [`AppState`], behind one `Arc`: a route's service is cloned per request.
#[derive(Debug)]
struct Edge {
    body_limit: DefaultBodyLimit,
    timeout: Duration,
    metrics: metrics::Metrics,
}

impl EdgeLayer {
    pub(crate) fn new(state: &AppState) -> EdgeLayer {
        EdgeLayer(Arc::new(Edge {
            body_limit: DefaultBodyLimit::max(state.options.body_limit),
            timeout: state.options.request_timeout,
            metrics: state.metrics.clone(),
        }))
    }
}

impl<S> tower::Layer<S> for EdgeLayer {
    type Service = AtTheEdge<S>;

    fn layer(&self, route: S) -> AtTheEdge<S> {
        AtTheEdge { route, edge: Arc::clone(&self.0) }
    }
}

/// A route behind the [`EdgeLayer`].
#[derive(Clone, Debug)]
pub(crate) struct AtTheEdge<S> {
    route: S,
    edge: Arc<Edge>,
}

impl<S> tower::Service<Request> for AtTheEdge<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.route.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        self.edge.body_limit.apply(&mut request);
        let template = Template::Routed(request.extensions().get::<MatchedPath>().cloned());
        let method = metrics::method_label(request.method());
        answer(&self.edge, template, method, self.route.call(request))
    }
}

impl EdgeLayer {
    /// `answer`, the answer to a request that `App` served without the router, on its way out
    /// through the edge as if routed by `template`.
    pub(crate) fn around<F: Future>(&self, template: &'static str, method: &'static str, answer: F) -> Answer<F> {
        self::answer(&self.0, Template::Direct(template), method, answer)
    }
}

fn answer<F: Future>(edge: &Arc<Edge>, template: Template, method: &'static str, answer: F) -> Answer<F> {
    Answer {
        answer: tokio::time::timeout(edge.timeout, answer),
        edge: Arc::clone(edge),
        template,
        method,
        started: Instant::now(),
    }
}

/// What the metrics call a request's route: its template (`/v1/sessions/{id}`), never the raw
/// path: ids would make every session a new time series, and unmatched paths are whatever a
/// scanner invents.
#[derive(Debug)]
enum Template {
    /// As the router matched it; `None` when nothing matched.
    Routed(Option<MatchedPath>),
    /// Served ahead of the router (`app.rs`).
    Direct(&'static str),
}

impl Template {
    fn as_str(&self) -> &str {
        match self {
            Template::Routed(matched) => matched.as_ref().map_or("unmatched", MatchedPath::as_str),
            Template::Direct(template) => template,
        }
    }
}

pin_project_lite::pin_project! {
    /// A route's answer on its way out through the edge.
    pub(crate) struct Answer<F> {
        #[pin]
        answer: Timeout<F>,
        edge: Arc<Edge>,
        template: Template,
        method: &'static str,
        started: Instant,
    }
}

impl<F: Future<Output = Result<Response, Infallible>>> Future for Answer<F> {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match ready!(this.answer.poll(cx)) {
            Ok(Ok(response)) => response,
            Ok(Err(never)) => match never {},
            Err(_) => {
                tracing::warn!(limit = ?this.edge.timeout, "request timed out");
                ApiError::Timeout.into_response()
            }
        };
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        this.edge.metrics.observe(this.template.as_str(), this.method, this.started.elapsed(), &response);
        Poll::Ready(Ok(response))
    }
}
