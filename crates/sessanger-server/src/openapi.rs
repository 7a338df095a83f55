//! The OpenAPI document, generated from the handlers' `#[utoipa::path]`s and the schemas.
//!
//! Errors every authenticated route can give (401, 403, 500, 503) are added by [`Common`]
//! instead of being repeated on each handler, which lists only its own.

use utoipa::{
    Modify, OpenApi,
    openapi::{
        Components, ContentBuilder, Ref, RefOr, ResponseBuilder,
        security::{Http, HttpAuthScheme, SecurityScheme},
    },
};

use sessanger_core::wire::{ErrorBody, ErrorCode, ErrorDetail};

use crate::{
    compat::{back_session, sessman},
    routes::{events, ops, services, sessions, users},
};

/// The name of the bearer scheme in `components.securitySchemes` (also in `security(..)` above,
/// where the macro needs the literal).
const BEARER: &str = "bearer";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sessanger",
        description = "Distributed sessions for services: create, read, patch and revoke sessions over HTTP.\n\n\
            Every `/v1` route needs `Authorization: Bearer <service id>.<secret>`; the token's service \
            needs `read`, `write` or `admin` (which implies both). Every error is \
            `{\"error\": {\"code\": \"<stable_snake_case>\", \"message\": \"...\"}}`.",
    ),
    paths(
        sessions::create_session,
        sessions::list_sessions,
        sessions::get_session,
        sessions::patch_attributes,
        sessions::replace_session,
        sessions::refresh_session,
        sessions::regenerate_session,
        sessions::delete_session,
        sessions::stats,
        users::list_user_sessions,
        users::revoke_user_sessions,
        events::events,
        services::list_services,
        services::register_service,
        services::update_service,
        services::remove_service,
        ops::healthz,
        ops::readyz,
        ops::metrics,
        ops::openapi_json,
        back_session::create,
        back_session::read,
        back_session::update_named_in_body,
        back_session::update_at_path,
        back_session::remove,
        back_session::list_user,
        back_session::list_by_query,
        back_session::revoke_user,
        back_session::revoke_by_query,
        sessman::new,
        sessman::update,
        sessman::read,
    ),
    components(schemas(ErrorBody, ErrorDetail, ErrorCode)),
    modifiers(&Common),
    security(("bearer" = [])),
    tags(
        (name = "sessions", description = "One session's life, from create to delete (`read` to read, `write` to change)"),
        (name = "users", description = "All sessions of one user"),
        (name = "events", description = "What happened to sessions, as the store recorded it (`read`)"),
        (name = "services", description = "The registry of services allowed to call this API (`admin`)"),
        (name = "ops", description = "Health, readiness, metrics and this document; no token needed"),
        (name = "back-session (compat)", description = "back-session's API, served with `--compat back-session`; \
            no token by default (`auth: none`), a service token with `auth: token`"),
        (name = "sessman (compat)", description = "sessman's API, served with `--compat sessman`; errors are \
            `{\"error\": \"…\"}`; no token by default, or its API key (`Authorization: Bearer`, `X-Custom-Auth` \
            or `apikey`), or a service token with `auth: token`"),
    )
)]
struct ApiDoc;

/// The OpenAPI description of the whole API, as served at `/openapi.json`.
///
/// # Examples
/// ```
/// let doc = sessanger_server::openapi();
/// assert!(doc.paths.paths.contains_key("/v1/sessions"));
/// ```
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// Adds the bearer scheme and the errors common to authenticated routes.
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Components::new);
        let mut bearer = Http::new(HttpAuthScheme::Bearer);
        bearer.bearer_format = Some("<service id>.<secret>".into());
        bearer.description = Some("A service token, issued once when the service is registered.".into());
        components.add_security_scheme(BEARER, SecurityScheme::Http(bearer));

        let common = [
            ("401", "Unauthorized", "`unauthorized`: missing, malformed or unknown token"),
            ("403", "Forbidden", "`forbidden`: the service lacks the permission"),
            ("500", "Internal", "`internal`: the store failed; details are only logged"),
            ("503", "Unavailable", "`store_unavailable`, or `request_timeout`"),
        ];
        for (_, name, description) in common {
            let json = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
            let response = ResponseBuilder::new().description(description).content("application/json", json).build();
            components.responses.insert(name.into(), RefOr::T(response));
        }

        for item in doc.paths.paths.values_mut() {
            // A handler serving several methods (sessman's GET and POST) gives each the same
            // id; OpenAPI wants one per operation, and code generators need it.
            let methods = [("get", &mut item.get), ("post", &mut item.post)];
            if let [(_, Some(get)), (_, Some(post))] = &methods
                && get.operation_id.is_some()
                && get.operation_id == post.operation_id
            {
                for (method, operation) in methods.into_iter().filter_map(|(m, o)| Some((m, o.as_mut()?))) {
                    operation.operation_id = operation.operation_id.take().map(|id| format!("{id}_{method}"));
                }
            }
            let operations = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
            // An operation without its own `security` inherits the bearer requirement; the
            // public ones say `security(())`.
            for operation in operations.into_iter().flatten().filter(|o| o.security.is_none()) {
                for (status, name, _) in common {
                    operation.responses.responses.insert(status.into(), RefOr::Ref(Ref::from_response_name(name)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    #[test]
    fn every_operation_has_an_id_of_its_own() {
        let doc = super::openapi();
        let mut seen = HashSet::new();
        for (path, item) in &doc.paths.paths {
            let operations = [&item.get, &item.put, &item.post, &item.delete, &item.patch];
            for operation in operations.into_iter().flatten() {
                let id = operation.operation_id.clone().unwrap_or_else(|| panic!("{path}: an operation without an id"));
                assert!(seen.insert(id.clone()), "{path}: operation id `{id}` is used twice");
            }
        }
        assert!(seen.contains("sessman_read_get") && seen.contains("sessman_read_post"), "{seen:?}");
    }
}
