//! The console's HTML. maud escapes every value written with `(…)`: a user id or a device
//! holding markup shows as text.

use std::fmt::Display;

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use maud::{DOCTYPE, Markup, html};
use sessanger_core::{ServiceRecord, ServiceToken, Session, UserId};

use crate::{MOUNT, operator::Operator};

/// A whole page: the header (with the operator's service and the way out, once signed in),
/// then `body` under its title.
fn layout(title: &str, operator: Option<&Operator>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · sessanger" }
                link rel="stylesheet" href={ (MOUNT) "/static/console.css" };
                script src={ (MOUNT) "/static/console.js" } defer {}
            }
            body {
                header {
                    strong { "sessanger" }
                    @if let Some(operator) = operator {
                        nav {
                            a href={ (MOUNT) "/users" } { "Users" }
                            a href={ (MOUNT) "/services" } { "Services" }
                        }
                        span.who {
                            "Signed in as " code { (operator.service.id) }
                            @if !operator.may_change() { " (read only)" }
                        }
                        form method="post" action={ (MOUNT) "/sign-out" } {
                            input type="hidden" name="csrf" value=(operator.csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn respond(status: StatusCode, page: Markup) -> Response {
    (status, page).into_response()
}

pub(crate) fn sign_in(status: StatusCode, message: Option<&str>) -> Response {
    respond(
        status,
        layout(
            "Sign in",
            None,
            html! {
                @if let Some(message) = message { p.message role="alert" { (message) } }
                form method="post" action={ (MOUNT) "/sign-in" } {
                    p {
                        label for="token" { "Service token (a service with " code { "admin" } ", or " code { "read" } " to look only)" }
                    }
                    p { input #token type="password" name="token" autocomplete="off" required size="60"; }
                    button type="submit" { "Sign in" }
                }
            },
        ),
    )
}

/// A request the console will not carry out, and why.
pub(crate) fn refused(status: StatusCode, message: &str) -> Response {
    respond(
        status,
        layout(
            "Not done",
            None,
            html! {
                p.message role="alert" { (message) }
                p { a href={ (MOUNT) "/users" } { "Back to the console" } }
            },
        ),
    )
}

/// The store or the session could not be reached; the details go to the log only.
pub(crate) fn unavailable(error: &dyn Display) -> Response {
    tracing::error!(%error, "console: a request failed");
    respond(
        StatusCode::SERVICE_UNAVAILABLE,
        layout(
            "Unavailable",
            None,
            html! { p.message role="alert" { "The session store could not be reached. Try again shortly." } },
        ),
    )
}

/// The user search, and the user's sessions if one was asked for.
pub(crate) fn users(operator: &Operator, found: Option<(&UserId, &[Session])>) -> Response {
    let body = html! {
        form method="get" action={ (MOUNT) "/users" } {
            label for="user" { "User id " }
            input #user type="search" name="user" value=[found.map(|(user, _)| user.as_ref())] required;
            " "
            button type="submit" { "Find" }
        }
        @if let Some((user, sessions)) = found {
            h2 { "Sessions of " code { (user) } }
            @if sessions.is_empty() {
                p { "No live sessions." }
            } @else {
                @if sessions.len() >= crate::actions::LISTED_MOST {
                    p.message { "The first " (sessions.len()) " are shown." }
                }
                table #sessions {
                    thead { tr {
                        th { "Session" } th { "Device" } th { "IP" } th { "User agent" } th { "Created" }
                        th { "Last seen" } th { "Expires" } th { "Created by" }
                        @if operator.may_change() { th {} }
                    } }
                    tbody {
                        @for session in sessions {
                            tr {
                                td { code { (session.id.fingerprint()) } }
                                td { (session.device.device_id.as_deref().unwrap_or("")) }
                                td { (session.device.ip.as_deref().unwrap_or("")) }
                                td.agent { (session.device.user_agent.as_deref().unwrap_or("")) }
                                td.time { (session.created_at) }
                                td.time { (session.last_access_at) }
                                td.time { (session.expires_at) }
                                td { @if let Some(service) = &session.created_by { code { (service) } } }
                                @if operator.may_change() {
                                    td {
                                        form.inline method="post" action={ (MOUNT) "/users/revoke" } data-confirm="Revoke this session?" {
                                            input type="hidden" name="csrf" value=(operator.csrf);
                                            input type="hidden" name="user" value=(user);
                                            input type="hidden" name="session" value=(session.id.fingerprint());
                                            button.danger type="submit" { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                @if operator.may_change() {
                    form method="post" action={ (MOUNT) "/users/sign-out-everywhere" } data-confirm="Sign this user out on every device?" {
                        input type="hidden" name="csrf" value=(operator.csrf);
                        input type="hidden" name="user" value=(user);
                        p { button.danger #sign-out-everywhere type="submit" { "Sign out everywhere" } }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, layout("Users", Some(operator), body))
}

/// The registered services; with the token of one just registered, shown this once.
pub(crate) fn services(operator: &Operator, services: &[ServiceRecord], registered: Option<&ServiceToken>) -> Response {
    let body = html! {
        @if let Some(token) = registered {
            p.message role="status" {
                "Registered " code { (token.service()) } ". Its token is shown this once: keep it now."
            }
            div.token {
                input #new-token type="text" readonly value=(token.expose());
                button type="button" data-copy="new-token" { "Copy" }
            }
        }
        table #services {
            thead { tr {
                th { "Id" } th { "Name" } th { "Permissions" } th { "Registered" }
                @if operator.may_change() { th {} }
            } }
            tbody {
                @for service in services {
                    tr {
                        td { code { (service.id) } }
                        td { (service.name) }
                        td { (permissions(service)) }
                        td.time { (service.created_at) }
                        @if operator.may_change() {
                            td {
                                @if service.id != operator.service.id {
                                    form.inline method="post" action={ (MOUNT) "/services/remove" } data-confirm="Remove this service? Its token stops working at once." {
                                        input type="hidden" name="csrf" value=(operator.csrf);
                                        input type="hidden" name="id" value=(service.id);
                                        button.danger type="submit" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if operator.may_change() {
            form method="post" action={ (MOUNT) "/services" } {
                fieldset {
                    legend { "Register a service" }
                    input type="hidden" name="csrf" value=(operator.csrf);
                    p {
                        label for="id" { "Id " }
                        input #id name="id" required pattern="[a-z0-9_-]{1,64}" size="20";
                        " "
                        label for="name" { "Name " }
                        input #name name="name" size="30";
                    }
                    p {
                        label { input type="checkbox" name="read" checked; " read" } " "
                        label { input type="checkbox" name="write"; " write" } " "
                        label { input type="checkbox" name="admin"; " admin" }
                    }
                    button type="submit" { "Register" }
                }
            }
        }
    };
    respond(StatusCode::OK, layout("Services", Some(operator), body))
}

fn permissions(service: &ServiceRecord) -> String {
    service.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
}
