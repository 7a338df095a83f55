//! [`App`]: the router, with the two requests sent most often served before routing:
//! `GET /v1/sessions/{id}` and `GET /healthz`.
//!
//! A session read is what every service behind sessanger sends on each of its own requests,
//! and the one a node cache answers from memory, so what the HTTP layer costs around it is
//! most of what it costs at all. A liveness probe comes from every load balancer and
//! orchestrator every few seconds, and answers a constant. axum's routing was a third of what
//! such a read cost beyond a hello-world (callgrind): matching the path, percent-decoding the
//! parameter into an `Arc<str>`, cloning and calling the route's boxed services. Here the read
//! is recognised by its method and its path alone, and answered by the same code as the routed
//! handler (`routes::sessions::read_session`, after `auth::authenticate`) under the same edge:
//! timeout, metrics under the route's template, `Cache-Control: no-store`.
//!
//! Only a path the router would match to that route with the id as written takes this way: a
//! `GET` of `/v1/sessions/` followed by a well-formed session id (base64url only, so no
//! percent-escape and no further segment), or a `GET` of exactly `/healthz`, answered by the
//! routed handler itself. Anything else, `HEAD` and malformed ids included, goes to the router,
//! which answers it as it always has.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    Router,
    body::{Bytes, HttpBody},
    http::{HeaderMap, Method, Request},
    response::{IntoResponse, Response},
    routing::future::RouteFuture,
};
use sessanger_core::{BoxError, Permission, SessionId};

use crate::{
    AppState,
    auth::authenticate,
    conditional::IfNoneMatch,
    edge::{Answer, EdgeLayer},
    routes::{
        ops::{HEALTH_ROUTE, alive},
        sessions::{SESSION_PATH_PREFIX, SESSION_ROUTE, read_session},
    },
};

/// The whole API: what [`app`](crate::app) returns, a `tower::Service` for `axum::serve`,
/// hyper, or `oneshot` in tests. Cheap to clone.
#[derive(Clone, Debug)]
pub struct App {
    router: Router,
    state: Arc<AppState>,
    edge: EdgeLayer,
}

impl App {
    pub(crate) fn new(router: Router, state: AppState, edge: EdgeLayer) -> App {
        App { router, state: Arc::new(state), edge }
    }
}

impl<B> tower::Service<Request<B>> for App
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = AppFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        tower::Service::<Request<B>>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, request: Request<B>) -> AppFuture {
        if request.method() != Method::GET {
            return self.route(request);
        }
        let path = request.uri().path();
        if path == HEALTH_ROUTE {
            let alive = std::future::ready(Ok(alive().into_response()));
            return AppFuture { inner: Inner::Alive { answer: self.edge.around(HEALTH_ROUTE, "GET", alive) } };
        }
        let Some(id) = path.strip_prefix(SESSION_PATH_PREFIX).and_then(|id| id.parse::<SessionId>().ok()) else {
            return self.route(request);
        };
        let state = Arc::clone(&self.state);
        let (parts, _body) = request.into_parts();
        let read: ReadFuture = Box::pin(async move { Ok(read(&state, &id, &parts.headers).await.into_response()) });
        AppFuture { inner: Inner::Read { answer: self.edge.around(SESSION_ROUTE, "GET", read) } }
    }
}

impl App {
    /// `request` answered by the router: everything not served ahead of it.
    fn route<B>(&mut self, request: Request<B>) -> AppFuture
    where
        B: HttpBody<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        AppFuture { inner: Inner::Routed { answer: tower::Service::call(&mut self.router, request) } }
    }
}

/// `GET /v1/sessions/{id}` as the routed handler answers it.
async fn read(
    state: &AppState,
    id: &SessionId,
    headers: &HeaderMap,
) -> Result<impl IntoResponse, crate::error::ApiError> {
    let manager = authenticate(state, headers, Permission::Read).await?;
    read_session(&manager, state.answers.clone(), id, &IfNoneMatch::from_headers(headers)).await
}

type ReadFuture = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

pin_project_lite::pin_project! {
    /// The answer of an [`App`] to one request.
    pub struct AppFuture {
        #[pin]
        inner: Inner,
    }
}

pin_project_lite::pin_project! {
    #[project = InnerProjection]
    enum Inner {
        Read { #[pin] answer: Answer<ReadFuture> },
        Alive { #[pin] answer: Answer<std::future::Ready<Result<Response, Infallible>>> },
        Routed { #[pin] answer: RouteFuture<Infallible> },
    }
}

impl Future for AppFuture {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.project() {
            InnerProjection::Read { answer } => answer.poll(cx),
            InnerProjection::Alive { answer } => answer.poll(cx),
            InnerProjection::Routed { answer } => answer.poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_recognised_ahead_of_the_router_is_the_routes_own() {
        assert_eq!(SESSION_ROUTE.strip_suffix("{id}"), Some(SESSION_PATH_PREFIX));
    }
}
