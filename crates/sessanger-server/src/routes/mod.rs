//! The routes, one file per resource.

use crate::{AppState, CompatOptions, compat};
use axum::Router;

pub(crate) mod events;
pub(crate) mod ops;
pub(crate) mod services;
pub(crate) mod sessions;
pub(crate) mod users;

/// Every route, the enabled compat APIs included, with JSON answers for unknown paths and
/// methods.
pub(crate) fn router(compat: &CompatOptions) -> Router<AppState> {
    Router::new()
        .merge(compat::routes(compat))
        .merge(sessions::routes())
        .merge(users::routes())
        .merge(events::routes())
        .merge(services::routes())
        .merge(ops::routes())
        .fallback(ops::not_found)
        .method_not_allowed_fallback(ops::method_not_allowed)
}
