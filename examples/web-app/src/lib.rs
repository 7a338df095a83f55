//! An axum app keeping its sessions in sessanger through `sessanger-tower`.
//!
//! Run with `cargo run -p example-web-app`, then open <http://127.0.0.1:3000> and log in as
//! `alice` / `wonderland` (users come from `fixtures/users.json`, or `--users FILE`). Sessions
//! are kept in `./web-app-data` (sessanger's embedded store), so they survive a restart.
//!
//! Or keep them in a running sessanger, shared with every other instance of the app and
//! every other service:
//!
//! ```text
//! sessanger serve &
//! sessanger service add web --permissions read,write     # prints the token, once
//! cargo run -p example-web-app -- --remote http://127.0.0.1:8090 --token 'web.…'
//! ```
//!
//! `examples/express-app` is this app written for Express on the TypeScript package's
//! express-session store; run with `--express-secret` and the same secret, the two share
//! their users' sessions (the cookie is signed as express-session signs it).
//!
//! # Layout
//! - `lib.rs`: [`app`], the router (tests drive it without a socket), its pages and the
//!   [`Users`] fixture.
//! - `main.rs`: flags, the store (embedded, or a remote sessanger with `--remote`), `axum::serve`.

use std::{collections::HashMap, fmt::Write as _, path::Path};

use axum::{
    Form, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use sessanger_core::{Device, Page, UserId};
use sessanger_tower::{SessangerStore, SessionOptions, Upstream};
use subtle::ConstantTimeEq;
use tower_sessions::Session;

/// The users who may log in, and their passwords: a demo fixture, not a password store.
#[derive(Clone, Debug, Default)]
pub struct Users(HashMap<String, String>);

impl Users {
    /// The users of `fixtures/users.json`, built into the binary.
    pub fn fixture() -> Self {
        Self::parse(include_str!("../fixtures/users.json")).expect("the built-in fixture is valid JSON")
    }

    /// Users from a JSON object of user name to password.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        Self::parse(&std::fs::read_to_string(path)?)
    }

    fn parse(json: &str) -> anyhow::Result<Self> {
        Ok(Users(serde_json::from_str(json)?))
    }

    /// The user, if the password is right. Compared in constant time so response times do
    /// not reveal how much of a password was right.
    fn check(&self, name: &str, password: &str) -> Option<UserId> {
        let expected = self.0.get(name)?;
        bool::from(expected.as_bytes().ct_eq(password.as_bytes())).then(|| name.parse().ok())?
    }
}

#[derive(Clone, Debug)]
struct AppState<U: Upstream> {
    store: SessangerStore<U>,
    users: Users,
}

/// The session cookie's name (the Express example's too, so the two can share it).
pub const COOKIE_NAME: &str = "sid";

/// The whole app: pages, and sessions in `store` (in process or remote) under the cookie
/// [`COOKIE_NAME`]. `secure` makes the cookie HTTPS-only; turn it off only to serve plain HTTP.
pub fn app<U: Upstream>(store: SessangerStore<U>, users: Users, secure: bool) -> Router {
    let layer = SessionOptions::new().with_cookie_name(COOKIE_NAME).with_secure(secure).layer(store.clone());
    Router::new()
        .route("/", get(home::<U>))
        .route("/login", get(login_form).post(login::<U>))
        .route("/logout", post(logout))
        .route("/sign-out-everywhere", post(sign_out_everywhere::<U>))
        .with_state(AppState { store, users })
        .layer(layer)
}

/// Every failure of a page: logged, and shown to the browser as a bare 500.
struct AppError(Box<dyn std::error::Error + Send + Sync>);

impl<E: std::error::Error + Send + Sync + 'static> From<E> for AppError {
    fn from(error: E) -> Self {
        AppError(Box::new(error))
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self.0, "request failed");
        (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong").into_response()
    }
}

async fn home<U: Upstream>(State(state): State<AppState<U>>, session: Session) -> Result<Response, AppError> {
    let Some(user) = state.store.current_user(&session).await? else {
        return Ok(Redirect::to("/login").into_response());
    };
    let counter: u64 = session.get("counter").await?.unwrap_or(0) + 1;
    session.insert("counter", counter).await?;
    let this = state.store.session_id(&session);
    let mut rows = String::new();
    for s in state.store.list_user_sessions(&user, &Page::DEFAULT).await? {
        let marker = if Some(&s.id) == this.as_ref() { " (this device)" } else { "" };
        let agent = s.device.user_agent.as_deref().unwrap_or("unknown device");
        let _ = write!(
            rows,
            "<tr><td>{}{marker}</td><td>{}</td><td>{}</td></tr>",
            escape(agent),
            s.created_at,
            s.last_access_at
        );
    }
    let body = format!(
        "<h1>Hello, {user}</h1>\
         <p>You have seen this page <span id=\"counter\">{counter}</span> times in this session.</p>\
         <h2>Your active sessions</h2>\
         <table id=\"sessions\"><tr><th>Device</th><th>Logged in</th><th>Last seen</th></tr>{rows}</table>\
         <form method=\"post\" action=\"/logout\"><button id=\"logout\">Log out</button></form>\
         <form method=\"post\" action=\"/sign-out-everywhere\">\
         <button id=\"sign-out-everywhere\">Sign out all my devices</button></form>",
        user = escape(user.as_ref()),
    );
    Ok(page("Your sessions", &body).into_response())
}

/// The key of the login form's anti-forgery token in the session.
const LOGIN_TOKEN: &str = "login_token";

/// The login form, with a token that only this browser's session knows: another site cannot
/// post the form and log the visitor in to an account of its choosing (login CSRF). Storing
/// it also gives the visitor an anonymous session, whose id login then replaces.
async fn login_form(session: Session) -> Result<Html<String>, AppError> {
    // 128 bits from tower-sessions' own id generator: random enough, and no new dependency.
    let token = tower_sessions::session::Id::default().to_string();
    session.insert(LOGIN_TOKEN, &token).await?;
    Ok(page(
        "Log in",
        &format!(
            "<h1>Log in</h1><form method=\"post\" action=\"/login\">\
             <input type=\"hidden\" name=\"token\" value=\"{token}\">\
             <label>User <input id=\"user\" name=\"user\" autocomplete=\"username\"></label>\
             <label>Password <input id=\"password\" name=\"password\" type=\"password\" \
             autocomplete=\"current-password\"></label>\
             <button id=\"login\">Log in</button></form>"
        ),
    ))
}

#[derive(Deserialize)]
struct Credentials {
    token: String,
    user: String,
    password: String,
}

async fn login<U: Upstream>(
    State(state): State<AppState<U>>,
    session: Session,
    headers: HeaderMap,
    Form(form): Form<Credentials>,
) -> Result<Response, AppError> {
    let expected: Option<String> = session.remove(LOGIN_TOKEN).await?;
    if expected.is_none_or(|t| !bool::from(t.as_bytes().ct_eq(form.token.as_bytes()))) {
        return Ok(
            (StatusCode::FORBIDDEN, page("Log in", "<p id=\"error\">The form expired; reload it.</p>")).into_response()
        );
    }
    let Some(user) = state.users.check(&form.user, &form.password) else {
        return Ok(
            (StatusCode::UNAUTHORIZED, page("Log in", "<p id=\"error\">Wrong user or password.</p>")).into_response()
        );
    };
    let user_agent = headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()).map(str::to_owned);
    state.store.log_in(&session, &user, Device { user_agent, ..Device::default() }).await?;
    Ok(Redirect::to("/").into_response())
}

async fn logout(session: Session) -> Result<Redirect, AppError> {
    session.flush().await?;
    Ok(Redirect::to("/login"))
}

async fn sign_out_everywhere<U: Upstream>(
    State(state): State<AppState<U>>,
    session: Session,
) -> Result<Redirect, AppError> {
    state.store.sign_out_everywhere(&session).await?;
    Ok(Redirect::to("/login"))
}

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:.2em 1em;text-align:left}}</style>\
         </head><body>{body}</body></html>"
    ))
}

/// User agents and user names are the visitor's text: escaped before they reach the page.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_password_logs_in() {
        let users = Users::fixture();
        assert_eq!(users.check("alice", "wonderland"), Some("alice".parse().unwrap()));
        assert_eq!(users.check("alice", "wonderlan"), None);
        assert_eq!(users.check("mallory", "wonderland"), None);
    }

    #[test]
    fn markup_in_visitor_text_is_escaped() {
        assert_eq!(escape("<script>\"x\"&"), "&lt;script&gt;&quot;x&quot;&amp;");
    }
}
