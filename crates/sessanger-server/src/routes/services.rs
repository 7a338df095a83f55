//! `/v1/services`: the registry of services allowed to call this API (`admin` only).

use axum::{
    Json, Router,
    http::StatusCode,
    routing::{delete, get},
};
use sessanger_core::{
    Page, ServiceId,
    wire::{CreateService, CreatedService, ErrorBody, ServiceBody, ServiceList, UpdateService},
};

use crate::{
    AppState,
    auth::{Admin, Caller},
    error::ApiError,
    extract::{JsonBody, Listing, PathId},
};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/services", get(list_services).post(register_service))
        .route("/v1/services/{id}", delete(remove_service).patch(update_service))
}

/// List registered services (never their secrets), ordered by id, a page at a time.
#[utoipa::path(
    get, path = "/v1/services", tag = "services",
    params(
        ("limit" = Option<u32>, Query, description = "The most services in the page: 1 to 1000, default 100"),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the page before; absent for the first"),
    ),
    responses(
        (status = 200, description = "One page of the services, and where the next starts", body = ServiceList),
        (status = 400, description = "`invalid_request`: not a valid limit or cursor", body = ErrorBody),
    )
)]
pub(crate) async fn list_services(
    caller: Caller<Admin>,
    Listing { after, limit }: Listing<ServiceId>,
) -> Result<Json<ServiceList>, ApiError> {
    let services = caller.manager.list_services(after.as_ref(), limit).await?;
    let next_cursor = Page::continues_after(&services, limit).map(|last| last.id.clone());
    Ok(Json(ServiceList { services: services.into_iter().map(ServiceBody::from).collect(), next_cursor }))
}

/// Register a service and issue its token.
#[utoipa::path(
    post, path = "/v1/services", tag = "services", request_body = CreateService,
    responses(
        (status = 201, description = "The service and its token, shown once", body = CreatedService),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 409, description = "`service_exists`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
    )
)]
pub(crate) async fn register_service(
    caller: Caller<Admin>,
    JsonBody(body): JsonBody<CreateService>,
) -> Result<(StatusCode, Json<CreatedService>), ApiError> {
    let name = body.name.unwrap_or_else(|| body.id.to_string());
    let (record, token) = caller.manager.register_service(body.id, name, body.permissions).await?;
    Ok((StatusCode::CREATED, Json(CreatedService { service: record.into(), token: token.expose() })))
}

/// Replace a service's permissions; its token keeps working, with the new permissions, on this
/// node at once and on the others as soon as the store announces the change.
#[utoipa::path(
    patch, path = "/v1/services/{id}", tag = "services", request_body = UpdateService,
    params(("id" = String, Path, description = "The service id")),
    responses(
        (status = 200, description = "The service as it is now", body = ServiceBody),
        (status = 400, description = "`invalid_request`", body = ErrorBody),
        (status = 404, description = "`service_not_found`", body = ErrorBody),
        (status = 413, description = "`payload_too_large`", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`", body = ErrorBody),
    )
)]
pub(crate) async fn update_service(
    caller: Caller<Admin>,
    PathId(id): PathId<ServiceId>,
    JsonBody(body): JsonBody<UpdateService>,
) -> Result<Json<ServiceBody>, ApiError> {
    Ok(Json(caller.manager.change_service_permissions(&id, body.permissions).await?.into()))
}

/// Remove a service; its token stops working.
#[utoipa::path(
    delete, path = "/v1/services/{id}", tag = "services",
    params(("id" = String, Path, description = "The service id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "`service_not_found`", body = ErrorBody),
    )
)]
pub(crate) async fn remove_service(
    caller: Caller<Admin>,
    PathId(id): PathId<ServiceId>,
) -> Result<StatusCode, ApiError> {
    caller.manager.remove_service(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
