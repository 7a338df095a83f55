//! The console's HTML. maud escapes every value written with `(…)`: a user id or a device
//! holding markup shows as text.

use std::fmt::Display;

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use maud::{DOCTYPE, Markup, html};
use sessanger_core::{EventId, EventRecord, Permission, ServiceRecord, ServiceToken, Session, SessionEvent, UserId};

use crate::{
    MOUNT,
    operator::Operator,
    overview::{Chart, MINUTES, Overview},
};

/// A whole page: the header (with the operator's service and the way out, once signed in),
/// then `body` under its title.
fn layout(title: &str, operator: Option<&Operator>, body: Markup) -> Markup {
    layout_refreshed(title, operator, None, body)
}

/// [`layout`], reloaded by the browser every `refresh` seconds if given and script is off.
fn layout_refreshed(title: &str, operator: Option<&Operator>, refresh: Option<u32>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // Only without script: with it, the page updates itself.
                @if let Some(seconds) = refresh { noscript { meta http-equiv="refresh" content=(seconds); } }
                title { (title) " · sessanger" }
                link rel="stylesheet" href={ (MOUNT) "/static/console.css" };
                script src={ (MOUNT) "/static/console.js" } defer {}
            }
            body {
                header {
                    strong { "sessanger" }
                    @if let Some(operator) = operator {
                        nav {
                            a href={ (MOUNT) "/" } { "Overview" }
                            a href={ (MOUNT) "/users" } { "Users" }
                            a href={ (MOUNT) "/services" } { "Services" }
                            a href={ (MOUNT) "/live" } { "Live" }
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

/// The store's health, live sessions, and the last hour's chart.
pub(crate) fn overview(operator: &Operator, overview: &Overview) -> Response {
    let count = |n: Option<u64>| n.map_or_else(|| "unknown".to_owned(), |n| n.to_string());
    let body = html! {
        dl.facts {
            dt { "Version" } dd { "sessanger " (env!("CARGO_PKG_VERSION")) }
            dt { "Store" }
            dd {
                @match &overview.store {
                    Ok(()) => span.ok { "answers" },
                    Err(error) => span.failing { "does not answer: " (error) },
                }
            }
            dt { "Live sessions" } dd #active { (count(overview.active)) }
            dt { "Services" }
            dd {
                @match overview.services {
                    Some(n) if n >= sessanger_core::Page::MAX_LIMIT.get() as usize => { "at least " (n) }
                    Some(n) => (n),
                    None => "unknown",
                }
            }
        }
        h2 { "Sessions created and ended per minute, last hour" }
        @match &overview.chart {
            Chart::NoLog => p { "This store keeps no event log, or records no events." },
            Chart::Unavailable => p.message { "The event log could not be read." },
            Chart::Minutes { created, ended, partial } => {
                p.legend { span.created { "created" } " " span.ended { "ended" } }
                (chart(created, ended))
                @if *partial { p.message { "The hour held more events than are read for this chart: the earliest minutes count only the latest events." } }
            }
        }
    };
    respond(StatusCode::OK, layout("Overview", Some(operator), body))
}

/// Bars per minute, created beside ended, in SVG (no script, no inline style: the page's
/// `Content-Security-Policy` allows neither).
fn chart(created: &[u64], ended: &[u64]) -> Markup {
    // Where the axes are, how tall the tallest bar is, how wide a minute is: pixels.
    const LEFT: u64 = 40;
    const BASE: u64 = 170;
    const TALL: u64 = 150;
    const STEP: u64 = 12;
    let most = created.iter().chain(ended).copied().max().unwrap_or(0).max(1);
    let height = |n: u64| n * TALL / most;
    html! {
        svg #chart xmlns="http://www.w3.org/2000/svg" width="780" height="200" viewBox="0 0 780 200" role="img"
            aria-label="Sessions created and ended per minute over the last hour" {
            line x1=(LEFT) y1=(BASE) x2=(LEFT + STEP * MINUTES as u64) y2=(BASE) stroke="#8a93a3" {}
            @for (minute, (created, ended)) in created.iter().zip(ended).enumerate() {
                @let x = LEFT + STEP * minute as u64;
                rect x=(x + 1) y=(BASE - height(*created)) width="5" height=(height(*created)) fill="#2f6fde" {
                    title { (created) " created" }
                }
                rect x=(x + 6) y=(BASE - height(*ended)) width="5" height=(height(*ended)) fill="#c0392b" {
                    title { (ended) " ended" }
                }
            }
            text x=(LEFT - 4) y=(BASE - TALL + 4) font-size="11" text-anchor="end" { (most) }
            text x=(LEFT - 4) y=(BASE + 4) font-size="11" text-anchor="end" { "0" }
            text x=(LEFT) y=(BASE + 20) font-size="11" { "60 min ago" }
            text x=(LEFT + STEP * MINUTES as u64) y=(BASE + 20) font-size="11" text-anchor="end" { "now" }
        }
    }
}

/// The latest events, newest first, and the stream of those after them (the newest shown, or
/// `after`); `None` when the store keeps no log. The page's script adds each streamed event on
/// top; without script, the page reloads itself every 5 seconds.
pub(crate) fn live(operator: &Operator, events: Option<(&[EventRecord], Option<EventId>)>) -> Response {
    let body = html! {
        @match events {
            None => p { "This store keeps no event log, or records no events." },
            Some((events, after)) => {
                p { "The latest events, from every node, newest first: new ones appear as they are recorded." }
                (events_table_streamed(events, Some(&stream_path(after))))
            }
        }
    };
    respond(StatusCode::OK, layout_refreshed("Live", Some(operator), events.map(|_| 5), body))
}

/// Where the live page's script streams the events after `after` from.
fn stream_path(after: Option<EventId>) -> String {
    match after {
        Some(EventId(after)) => format!("{MOUNT}/live/events?after={after}"),
        None => format!("{MOUNT}/live/events"),
    }
}

/// Events as a table, in the order given; sessions by fingerprint.
fn events_table(events: &[EventRecord]) -> Markup {
    events_table_streamed(events, None)
}

/// [`events_table`], to which the page's script adds the events `stream` sends, if given.
fn events_table_streamed(events: &[EventRecord], stream: Option<&str>) -> Markup {
    html! {
        table #events data-stream=[stream] {
            thead { tr {
                th { "#" } th { "At" } th { "Event" } th { "User" } th { "Session" } th { "By" } th { "Details" }
            } }
            tbody {
                @for record in events {
                    tr {
                        td { (record.id.0) }
                        td.time { (record.at) }
                        td { (record.event.kind()) }
                        td { (record.event.user_id()) }
                        td { code { (record.event.session_id().fingerprint()) } }
                        td { @if let Some(service) = &record.service { code { (service) } } }
                        td { (details(&record.event)) }
                    }
                }
            }
        }
    }
}

/// The most of an attribute's JSON a session's page shows.
const VALUE_SHOWN: usize = 2_000;

/// One session: what it is, its attributes (`sealed` ones by name only) and its `history`
/// (`None` without an event log; with whether older events were not looked through).
pub(crate) fn session(
    operator: &Operator,
    session: &Session,
    sealed: &dyn Fn(&str) -> bool,
    history: Option<(&[EventRecord], bool)>,
) -> Response {
    let fingerprint = session.id.fingerprint();
    let body = html! {
        p { a href={ (MOUNT) (user_path(&session.user_id)) } { "All sessions of " code { (session.user_id) } } }
        table #session {
            tbody {
                tr { th { "Session" } td { code { (fingerprint) } } }
                tr { th { "User" } td { code { (session.user_id) } } }
                tr { th { "Device" } td { (session.device.device_id.as_deref().unwrap_or("")) } }
                tr { th { "IP" } td { (session.device.ip.as_deref().unwrap_or("")) } }
                tr { th { "User agent" } td.agent { (session.device.user_agent.as_deref().unwrap_or("")) } }
                tr { th { "Created" } td.time { (session.created_at) } }
                tr { th { "Last seen" } td.time { (session.last_access_at) } }
                tr { th { "Expires" } td.time { (session.expires_at) } }
                tr { th { "Ends at the latest" } td.time { (session.absolute_expires_at) } }
                tr { th { "Idle timeout" } td { (session.idle_ttl.as_secs()) " s" } }
                tr { th { "Created by" } td { @if let Some(service) = &session.created_by { code { (service) } } } }
                tr { th { "Version" } td { (session.version.0) } }
            }
        }
        h2 { "Attributes" }
        @if session.attributes.is_empty() {
            p { "None." }
        } @else {
            table #attributes {
                thead { tr { th { "Key" } th { "Value" } } }
                tbody {
                    @for (key, value) in &session.attributes {
                        tr {
                            td { code { (key) } }
                            td {
                                @if sealed(key) {
                                    span.sealed title="Sealed at rest: its value is never shown here." { "sealed" }
                                } @else {
                                    code.value { (shortened(value.to_string())) }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "History" }
        @match history {
            None => p { "This store keeps no event log, or records no events." },
            Some((events, older)) => {
                @if events.is_empty() {
                    p { "No events of this session are in the log." }
                } @else {
                    (events_table(events))
                }
                @if older {
                    p.message { "Only the latest " (crate::live::HISTORY_SEARCHED) " events of the log were looked through." }
                }
            }
        }
        @if operator.may_change() {
            form method="post" action={ (MOUNT) "/users/revoke" } data-confirm="Revoke this session?" {
                input type="hidden" name="csrf" value=(operator.csrf);
                input type="hidden" name="user" value=(session.user_id);
                input type="hidden" name="session" value=(fingerprint);
                p { button.danger type="submit" { "Revoke" } }
            }
        }
    };
    respond(StatusCode::OK, layout("Session", Some(operator), body))
}

/// `text`, cut after [`VALUE_SHOWN`] bytes (at a character boundary) with how long it was.
fn shortened(mut text: String) -> String {
    if text.len() > VALUE_SHOWN {
        let total = text.len();
        let mut end = VALUE_SHOWN;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str(&format!("… ({total} bytes in all)"));
    }
    text
}

/// What an event says beyond its kind, user and session.
pub(crate) fn details(event: &SessionEvent) -> String {
    match event {
        SessionEvent::AttributesChanged { keys, .. } => keys.join(", "),
        SessionEvent::Deleted { reason, .. } => reason.as_str().to_owned(),
        SessionEvent::Regenerated { old_session_id, .. } => format!("from {}", old_session_id.fingerprint()),
        _ => String::new(),
    }
}

/// The path of `user`'s sessions, relative to [`MOUNT`].
pub(crate) fn user_path(user: &UserId) -> String {
    let query = serde_urlencoded::to_string([("user", user.as_ref())]).expect("a string pair encodes");
    format!("/users?{query}")
}

/// The path of `session`'s page, relative to [`MOUNT`]: named by its fingerprint.
fn session_path(session: &Session) -> String {
    let fingerprint = session.id.fingerprint();
    let query = serde_urlencoded::to_string([("user", session.user_id.as_ref()), ("session", fingerprint.as_str())])
        .expect("string pairs encode");
    format!("/users/session?{query}")
}

/// What the users page shows below its search box.
pub(crate) enum Users<'a> {
    /// Nothing yet.
    Search,
    /// The users a search found.
    Found { prefix: &'a str, users: &'a [UserId] },
    /// One user's sessions.
    Sessions { user: &'a UserId, sessions: &'a [Session] },
}

/// The user search, and what it found or the sessions of the user asked for.
pub(crate) fn users(operator: &Operator, shown: &Users<'_>) -> Response {
    let typed = match shown {
        Users::Search => None,
        Users::Found { prefix, .. } => Some(*prefix),
        Users::Sessions { user, .. } => Some(user.as_ref()),
    };
    let body = html! {
        form method="get" action={ (MOUNT) "/users" } {
            label for="user" { "User id, or its start " }
            input #user type="search" name="find" value=[typed] required;
            " "
            button type="submit" { "Find" }
        }
        @if let Users::Found { prefix, users } = shown {
            h2 { "Users starting with " code { (prefix) } }
            @if users.is_empty() {
                p { "No user with a live session starts with this." }
            } @else {
                @if users.len() > crate::actions::FOUND_MOST as usize {
                    p.message { "The first " (crate::actions::FOUND_MOST) " are shown: type more of the id." }
                }
                ul #found {
                    @for user in users.iter().take(crate::actions::FOUND_MOST as usize) {
                        li { a href={ (MOUNT) (user_path(user)) } { code { (user) } } }
                    }
                }
            }
        }
        @if let Users::Sessions { user, sessions } = shown {
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
                        @for session in sessions.iter() {
                            tr {
                                td { a href={ (MOUNT) (session_path(session)) } { code { (session.id.fingerprint()) } } }
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
                        td {
                            @if operator.may_change() && service.id != operator.service.id {
                                form.inline method="post" action={ (MOUNT) "/services/permissions" } {
                                    input type="hidden" name="csrf" value=(operator.csrf);
                                    input type="hidden" name="id" value=(service.id);
                                    (permission_boxes(&service.permissions))
                                    " "
                                    button type="submit" { "Save" }
                                }
                            } @else {
                                (permissions(service))
                            }
                        }
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
                    p { (permission_boxes(&[Permission::Read])) }
                    button type="submit" { "Register" }
                }
            }
        }
    };
    respond(StatusCode::OK, layout("Services", Some(operator), body))
}

/// A checkbox per permission, named as it is (`read`, `write`, `admin`), ticked if `ticked`
/// holds it: what `actions::PermissionBoxes` reads back.
fn permission_boxes(ticked: &[Permission]) -> Markup {
    html! {
        @for permission in Permission::ALL {
            label { input type="checkbox" name=(permission.as_str()) checked[ticked.contains(&permission)]; " " (permission.as_str()) } " "
        }
    }
}

fn permissions(service: &ServiceRecord) -> String {
    service.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
}
