//! The pages' handlers: a user's sessions, revoking them, the registered services.

use axum::{
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use std::num::NonZeroU32;

use serde::Deserialize;
use sessanger_core::{ManagerError, Page, Permission, ServiceId, Session, UserId};

use crate::{
    Console, Posted, live,
    operator::{Operator, Refusal},
    pages,
};

#[derive(Debug, Deserialize)]
pub(crate) struct UserQuery {
    /// A user id: that user's sessions.
    user: Option<String>,
    /// The start of user ids, as typed in the search box: the users it matches.
    find: Option<String>,
}

/// Most users a search lists; more are left to a longer prefix.
pub(crate) const FOUND_MOST: u32 = 50;

/// Most sessions a user's page lists; a user holding more is told so.
const LISTED: Page = Page { after: None, limit: Page::MAX_LIMIT };
pub(crate) const LISTED_MOST: usize = Page::MAX_LIMIT.get() as usize;

pub(crate) async fn users(operator: Operator, Query(query): Query<UserQuery>) -> Response {
    let given = |text: Option<String>| text.filter(|text| !text.trim().is_empty());
    if let Some(prefix) = given(query.find) {
        return find(&operator, prefix.trim()).await;
    }
    let Some(text) = given(query.user) else {
        return pages::users(&operator, &pages::Users::Search);
    };
    let Ok(user) = text.parse::<UserId>() else {
        return pages::refused(StatusCode::BAD_REQUEST, "A user id is 1 to 256 bytes without control characters.");
    };
    match operator.manager.list_user_sessions(&user, &LISTED).await {
        Ok(sessions) => pages::users(&operator, &pages::Users::Sessions { user: &user, sessions: &sessions }),
        Err(e) => pages::unavailable(&e),
    }
}

/// The users whose id starts with `prefix`; straight to the sessions of the only one.
async fn find(operator: &Operator, prefix: &str) -> Response {
    let most = NonZeroU32::new(FOUND_MOST + 1).expect("not zero");
    match operator.manager.find_users(prefix, most).await {
        Ok(users) if users.len() == 1 => back_to(&users[0]),
        Ok(users) => pages::users(operator, &pages::Users::Found { prefix, users: &users }),
        Err(e) => pages::unavailable(&e),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct SessionQuery {
    user: String,
    /// The session's fingerprint: pages never hold session ids.
    session: String,
}

/// One session: its times, device, attributes (sealed ones without their values) and history.
pub(crate) async fn session(
    operator: Operator,
    State(console): State<Console>,
    Query(query): Query<SessionQuery>,
) -> Response {
    let Ok(user) = query.user.parse::<UserId>() else { return Refusal::NoSuchUser.into_response() };
    let session = match find_by_fingerprint(&operator, &user, &query.session).await {
        Ok(Some(session)) => session,
        Ok(None) => return pages::refused(StatusCode::NOT_FOUND, "This session has ended, or never was."),
        Err(e) => return pages::unavailable(&e),
    };
    let history = match operator.manager.event_log() {
        None => None,
        Some(log) => match live::history(log, &session.id).await {
            Ok(history) => Some(history),
            Err(e) => return pages::unavailable(&e),
        },
    };
    let sealed = |key: &str| console.sealed.as_ref().is_some_and(|selection| selection.covers(key));
    pages::session(&operator, &session, &sealed, history.as_ref().map(|(events, older)| (events.as_slice(), *older)))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RevokeForm {
    // Absent is refused as a wrong one is (403), not as a malformed form.
    #[serde(default)]
    csrf: String,
    user: String,
    /// The session's fingerprint: pages never hold session ids.
    session: String,
}

pub(crate) async fn revoke(operator: Operator, Posted(form): Posted<RevokeForm>) -> Response {
    let user = match authorized_change_of(&operator, &form.csrf, &form.user) {
        Ok(user) => user,
        Err(refused) => return refused.into_response(),
    };
    let found = match find_by_fingerprint(&operator, &user, &form.session).await {
        Ok(found) => found,
        Err(e) => return pages::unavailable(&e),
    };
    match found {
        Some(session) => match operator.manager.delete_session(&session.id).await {
            // Gone meanwhile (expired, revoked elsewhere): what was asked is done.
            Ok(_) | Err(ManagerError::NotFound) => back_to(&user),
            Err(e) => pages::unavailable(&e),
        },
        None => back_to(&user),
    }
}

/// The user a change posted by `operator` is about, if the operator may make it.
fn authorized_change_of(operator: &Operator, csrf: &str, user: &str) -> Result<UserId, Refusal> {
    operator.authorize(csrf)?;
    user.parse().map_err(|_| Refusal::NoSuchUser)
}

/// The user's live session whose fingerprint is `fingerprint`, looked for page by page.
async fn find_by_fingerprint(
    operator: &Operator,
    user: &UserId,
    fingerprint: &str,
) -> Result<Option<Session>, ManagerError> {
    let mut page = LISTED;
    loop {
        let sessions = operator.manager.list_user_sessions(user, &page).await?;
        if let Some(found) = sessions.iter().find(|s| s.id.fingerprint() == fingerprint) {
            return Ok(Some(found.clone()));
        }
        match page.next(&sessions) {
            Some(next) => page = next,
            None => return Ok(None),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct UserForm {
    // Absent is refused as a wrong one is (403), not as a malformed form.
    #[serde(default)]
    csrf: String,
    user: String,
}

pub(crate) async fn sign_out_everywhere(operator: Operator, Posted(form): Posted<UserForm>) -> Response {
    let user = match authorized_change_of(&operator, &form.csrf, &form.user) {
        Ok(user) => user,
        Err(refused) => return refused.into_response(),
    };
    match operator.manager.delete_user_sessions(&user).await {
        Ok(_) => back_to(&user),
        Err(e) => pages::unavailable(&e),
    }
}

/// The user's page (303: after a change, the browser asks for it with `GET`).
fn back_to(user: &UserId) -> Response {
    crate::see(&pages::user_path(user))
}

pub(crate) async fn services(operator: Operator) -> Response {
    match operator.manager.list_services(None, Page::MAX_LIMIT).await {
        Ok(services) => pages::services(&operator, &services, None),
        Err(e) => pages::unavailable(&e),
    }
}

/// The permission checkboxes of a form (`pages::permission_boxes`): a ticked box is sent, an
/// unticked one is not.
#[derive(Debug, Deserialize)]
pub(crate) struct PermissionBoxes {
    read: Option<String>,
    write: Option<String>,
    admin: Option<String>,
}

impl PermissionBoxes {
    /// The ticked permissions, refused if there are none.
    fn ticked(&self) -> Result<Vec<Permission>, Refusal> {
        let permissions: Vec<Permission> =
            [(&self.read, Permission::Read), (&self.write, Permission::Write), (&self.admin, Permission::Admin)]
                .into_iter()
                .filter_map(|(ticked, permission)| ticked.is_some().then_some(permission))
                .collect();
        if permissions.is_empty() {
            return Err(Refusal::NoPermissions);
        }
        Ok(permissions)
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct RegisterForm {
    // Absent is refused as a wrong one is (403), not as a malformed form.
    #[serde(default)]
    csrf: String,
    id: String,
    #[serde(default)]
    name: String,
    #[serde(flatten)]
    permissions: PermissionBoxes,
}

pub(crate) async fn register(operator: Operator, Posted(form): Posted<RegisterForm>) -> Response {
    if let Err(refused) = operator.authorize(&form.csrf) {
        return refused.into_response();
    }
    let Ok(id) = form.id.trim().parse::<ServiceId>() else {
        return pages::refused(
            StatusCode::BAD_REQUEST,
            "A service id is 1 to 64 lowercase letters, digits, '-' and '_'.",
        );
    };
    let permissions = match form.permissions.ticked() {
        Ok(permissions) => permissions,
        Err(refused) => return refused.into_response(),
    };
    let name = if form.name.trim().is_empty() { id.to_string() } else { form.name.trim().to_owned() };
    let registered = match operator.manager.register_service(id, name, permissions).await {
        Ok((_, token)) => token,
        Err(ManagerError::ServiceExists(id)) => {
            return pages::refused(StatusCode::CONFLICT, &format!("A service `{id}` is already registered."));
        }
        Err(e) => return pages::unavailable(&e),
    };
    match operator.manager.list_services(None, Page::MAX_LIMIT).await {
        Ok(services) => pages::services(&operator, &services, Some(&registered)),
        Err(e) => pages::unavailable(&e),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct ServiceForm {
    // Absent is refused as a wrong one is (403), not as a malformed form.
    #[serde(default)]
    csrf: String,
    id: String,
}

#[derive(Debug, Deserialize)]
pub(crate) struct PermissionsForm {
    #[serde(flatten)]
    service: ServiceForm,
    #[serde(flatten)]
    permissions: PermissionBoxes,
}

pub(crate) async fn change_permissions(operator: Operator, Posted(form): Posted<PermissionsForm>) -> Response {
    let changed = changed_service(&operator, &form.service).and_then(|id| Ok((id, form.permissions.ticked()?)));
    let (id, permissions) = match changed {
        Ok(changed) => changed,
        Err(refused) => return refused.into_response(),
    };
    match operator.manager.change_service_permissions(&id, permissions).await {
        Ok(_) => crate::see("/services"),
        Err(ManagerError::ServiceNotFound(id)) => {
            pages::refused(StatusCode::NOT_FOUND, &format!("No service `{id}` is registered (any more)."))
        }
        Err(e) => pages::unavailable(&e),
    }
}

/// The service a change posted by `operator` is about, if the operator may make it: any but
/// the operator's own.
fn changed_service(operator: &Operator, form: &ServiceForm) -> Result<ServiceId, Refusal> {
    operator.authorize(&form.csrf)?;
    let id = form.id.parse::<ServiceId>().map_err(|_| Refusal::NoSuchService)?;
    if id == operator.service.id {
        return Err(Refusal::OwnService);
    }
    Ok(id)
}

pub(crate) async fn remove(operator: Operator, Posted(form): Posted<ServiceForm>) -> Response {
    let id = match changed_service(&operator, &form) {
        Ok(id) => id,
        Err(refused) => return refused.into_response(),
    };
    match operator.manager.remove_service(&id).await {
        Ok(()) | Err(ManagerError::ServiceNotFound(_)) => crate::see("/services"),
        Err(e) => pages::unavailable(&e),
    }
}
