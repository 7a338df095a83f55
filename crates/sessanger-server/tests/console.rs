//! The admin console (`/admin`) through the whole app, as a browser drives it: its cookie
//! carried from answer to answer, its forms posted with the token the page gave.

use std::sync::Arc;

use axum::{
    body::Body,
    http::{HeaderMap, Method, Request, StatusCode, header},
};
use serde_json::json;
use sessanger_console::ConsoleOptions;
use sessanger_core::{
    Device, ManagerError, NewSession, Page, Patch, Permission, SessionManager, SessionPolicy, UserId,
};
use sessanger_server::{App, AppState, ServerOptions, app};
use sessanger_store_encrypted::{EncryptedStore, Keyring, Selection};
use sessanger_store_memory::MemoryStore;
use tower::ServiceExt;

/// The app with the console on, its manager, and tokens of `root` (admin) and `auditor` (read).
/// The store seals `access_token`, as `encryption.attributes: [access_token]` would.
struct Console {
    app: App,
    manager: SessionManager,
    root: String,
    auditor: String,
}

impl Console {
    async fn new() -> Console {
        let keys = Keyring::from_spec("k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "k1").unwrap();
        let sealed = Selection::only(["access_token"]);
        let store = EncryptedStore::new(Arc::new(MemoryStore::new()), keys, sealed.clone());
        let manager = SessionManager::with_policy(Arc::new(store), SessionPolicy::default());
        let (_, root) =
            manager.register_service("root".parse().unwrap(), "Root", vec![Permission::Admin]).await.unwrap();
        let (_, auditor) =
            manager.register_service("auditor".parse().unwrap(), "Auditor", vec![Permission::Read]).await.unwrap();
        let console = ConsoleOptions { secure_cookie: false, sealed: Some(sealed), ..ConsoleOptions::default() };
        let options = ServerOptions { console: Some(console), ..ServerOptions::default() };
        Console {
            app: app(AppState::new(manager.clone(), options)),
            manager,
            root: root.expose(),
            auditor: auditor.expose(),
        }
    }

    fn browser(&self) -> Browser<'_> {
        Browser { app: &self.app, cookie: None }
    }

    /// `user`'s sessions, one per device.
    async fn sessions_of(&self, user: &str, devices: &[&str]) {
        let user: UserId = user.parse().unwrap();
        for device in devices {
            let device =
                Device { device_id: Some((*device).into()), user_agent: Some("Firefox".into()), ..Device::default() };
            self.manager.create_session(&user, NewSession { device, ..NewSession::default() }).await.unwrap();
        }
    }

    async fn live(&self, user: &str) -> usize {
        self.manager.list_user_sessions(&user.parse().unwrap(), &Page::DEFAULT).await.unwrap().len()
    }
}

/// One browser: the console's cookie, kept from answer to answer.
struct Browser<'a> {
    app: &'a App,
    cookie: Option<String>,
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).map_or("", |v| v.to_str().unwrap())
    }

    /// The anti-forgery token the page's forms carry.
    fn csrf(&self) -> String {
        let start = self.body.find(r#"name="csrf" value=""#).expect("a form with the token") + 19;
        self.body[start..].split('"').next().unwrap().to_owned()
    }
}

impl Browser<'_> {
    async fn send(&mut self, method: Method, uri: &str, form: Option<&[(&str, &str)]>) -> Answer {
        let mut request = Request::builder().method(method).uri(uri).header(header::USER_AGENT, "TestBrowser/1.0");
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let body = match form {
            Some(form) => {
                request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                Body::from(serde_urlencoded::to_string(form).unwrap())
            }
            None => Body::empty(),
        };
        let response = self.app.clone().oneshot(request.body(body).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        if let Some(set) = parts.headers.get(header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_owned();
            // A cleared cookie comes back empty and already expired.
            self.cookie = (!pair.ends_with('=')).then_some(pair);
        }
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        Answer { status: parts.status, headers: parts.headers, body: String::from_utf8(body.to_vec()).unwrap() }
    }

    async fn get(&mut self, uri: &str) -> Answer {
        self.send(Method::GET, uri, None).await
    }

    async fn post(&mut self, uri: &str, form: &[(&str, &str)]) -> Answer {
        self.send(Method::POST, uri, Some(form)).await
    }

    async fn sign_in(&mut self, token: &str) -> Answer {
        self.post("/admin/sign-in", &[("token", token)]).await
    }
}

#[tokio::test]
async fn the_console_is_off_unless_enabled() {
    let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), SessionPolicy::default());
    let app = app(AppState::new(manager, ServerOptions::default()));
    let mut browser = Browser { app: &app, cookie: None };
    assert_eq!(browser.get("/admin/sign-in").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn signing_in_takes_a_token_of_a_service_that_may_read() {
    let console = Console::new().await;
    let mut browser = console.browser();
    let away = browser.get("/admin/users").await;
    assert_eq!((away.status, away.location()), (StatusCode::SEE_OTHER, "/admin/sign-in"));

    let wrong = browser.sign_in("root.not-the-secret").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("That token is not valid."), "{}", wrong.body);
    assert!(browser.cookie.is_none(), "no session for a failed sign-in");
    assert_eq!(browser.sign_in("garbage").await.status, StatusCode::UNAUTHORIZED);

    let (_, writer) =
        console.manager.register_service("writer".parse().unwrap(), "W", vec![Permission::Write]).await.unwrap();
    let refused = browser.sign_in(&writer.expose()).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("may not read sessions"), "{}", refused.body);

    let signed_in = browser.sign_in(&console.root).await;
    assert_eq!((signed_in.status, signed_in.location()), (StatusCode::SEE_OTHER, "/admin/"));
    let cookie = signed_in.headers.get(header::SET_COOKIE).unwrap().to_str().unwrap().to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let page = browser.get("/admin/users").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Signed in as <code>root</code>"), "{}", page.body);
    // The console's own session is a sessanger session, apart from every real user's.
    assert_eq!(console.live("admin-console:root").await, 1);

    let out = browser.post("/admin/sign-out", &[("csrf", &page.csrf())]).await;
    assert_eq!((out.status, out.location()), (StatusCode::SEE_OTHER, "/admin/sign-in"));
    assert_eq!(browser.get("/admin/users").await.status, StatusCode::SEE_OTHER);
    assert_eq!(console.live("admin-console:root").await, 0);
}

#[tokio::test]
async fn an_admin_finds_a_user_revokes_one_session_then_signs_them_out_everywhere() {
    let console = Console::new().await;
    console.sessions_of("carol", &["phone", "laptop", "tablet"]).await;
    console.sessions_of("caroline", &["phone"]).await;
    let mut browser = console.browser();
    browser.sign_in(&console.root).await;

    // The start of an id finds every user it begins; a whole one that begins no other, its page.
    let found = browser.get("/admin/users?find=car").await;
    assert_eq!(found.status, StatusCode::OK);
    assert!(found.body.contains(r#"href="/admin/users?user=carol""#), "{}", found.body);
    assert!(found.body.contains(r#"href="/admin/users?user=caroline""#), "{}", found.body);
    let only = browser.get("/admin/users?find=carol").await;
    assert!(only.body.contains("caroline"), "carol begins caroline too: both listed");
    let caroline = browser.get("/admin/users?find=carolin").await;
    assert_eq!((caroline.status, caroline.location()), (StatusCode::SEE_OTHER, "/admin/users?user=caroline"));
    assert!(browser.get("/admin/users?find=zed").await.body.contains("No user with a live session"));

    let page = browser.get("/admin/users?user=carol").await;
    assert_eq!(page.status, StatusCode::OK);
    for device in ["phone", "laptop", "tablet"] {
        assert!(page.body.contains(device), "{}", page.body);
    }
    assert_eq!(page.body.matches(">Revoke<").count(), 3);
    let sessions = console.manager.list_user_sessions(&"carol".parse().unwrap(), &Page::DEFAULT).await.unwrap();
    for session in &sessions {
        assert!(!page.body.contains(session.id.as_ref()), "a page never holds a session id");
        assert!(page.body.contains(&session.id.fingerprint()));
    }

    let phone = sessions.iter().find(|s| s.device.device_id.as_deref() == Some("phone")).unwrap();
    let fingerprint = phone.id.fingerprint();
    let revoked = browser
        .post("/admin/users/revoke", &[("csrf", &page.csrf()), ("user", "carol"), ("session", &fingerprint)])
        .await;
    assert_eq!((revoked.status, revoked.location()), (StatusCode::SEE_OTHER, "/admin/users?user=carol"));
    assert!(matches!(console.manager.get_session(&phone.id).await, Err(ManagerError::NotFound)));
    let page = browser.get("/admin/users?user=carol").await;
    assert_eq!(page.body.matches(">Revoke<").count(), 2);
    assert!(!page.body.contains("phone"));

    let out = browser.post("/admin/users/sign-out-everywhere", &[("csrf", &page.csrf()), ("user", "carol")]).await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(console.live("carol").await, 0);
    assert!(browser.get("/admin/users?user=carol").await.body.contains("No live sessions."));
}

#[tokio::test]
async fn a_forged_post_and_a_read_only_operator_change_nothing() {
    let console = Console::new().await;
    console.sessions_of("dave", &["phone"]).await;
    let fingerprint =
        console.manager.list_user_sessions(&"dave".parse().unwrap(), &Page::DEFAULT).await.unwrap()[0].id.fingerprint();

    let mut admin = console.browser();
    admin.sign_in(&console.root).await;
    for csrf in [None, Some(""), Some("forged")] {
        let mut form = vec![("user", "dave"), ("session", fingerprint.as_str())];
        form.extend(csrf.map(|csrf| ("csrf", csrf)));
        assert_eq!(admin.post("/admin/users/revoke", &form).await.status, StatusCode::FORBIDDEN, "{csrf:?}");
        assert_eq!(admin.post("/admin/users/sign-out-everywhere", &form).await.status, StatusCode::FORBIDDEN);
    }
    // Another operator's token does not pass either.
    let mut other = console.browser();
    let page = {
        other.sign_in(&console.root).await;
        other.get("/admin/users").await
    };
    assert_eq!(
        admin.post("/admin/users/sign-out-everywhere", &[("csrf", &page.csrf()), ("user", "dave")]).await.status,
        StatusCode::FORBIDDEN
    );
    // A form another site makes the browser post, sign-in included, is refused unread.
    let cross_site = |uri: &str, body: String| {
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "cross-site")
            .body(Body::from(body))
            .unwrap()
    };
    let answer =
        console.app.clone().oneshot(cross_site("/admin/sign-in", format!("token={}", console.root))).await.unwrap();
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert!(answer.headers().get(header::SET_COOKIE).is_none());
    let mut forged = cross_site("/admin/users/sign-out-everywhere", format!("csrf={}&user=dave", page.csrf()));
    forged.headers_mut().insert(header::COOKIE, other.cookie.clone().unwrap().parse().unwrap());
    assert_eq!(console.app.clone().oneshot(forged).await.unwrap().status(), StatusCode::FORBIDDEN);
    // A form missing its fields gets a page saying so.
    let incomplete = other.post("/admin/users/revoke", &[("csrf", &page.csrf())]).await;
    assert_eq!(incomplete.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(incomplete.body.contains("incomplete or malformed"), "{}", incomplete.body);
    assert_eq!(console.live("dave").await, 1);

    let mut auditor = console.browser();
    auditor.sign_in(&console.auditor).await;
    let page = auditor.get("/admin/users?user=dave").await;
    assert!(page.body.contains("phone") && page.body.contains("(read only)"), "{}", page.body);
    assert!(!page.body.contains(">Revoke<") && !page.body.contains("Sign out everywhere"), "{}", page.body);
    let csrf = page.csrf();
    let refused =
        auditor.post("/admin/users/revoke", &[("csrf", &csrf), ("user", "dave"), ("session", &fingerprint)]).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("not change them"), "{}", refused.body);
    let services = auditor.get("/admin/services").await;
    assert!(!services.body.contains("Register a service") && !services.body.contains(">Remove<"));
    assert!(!services.body.contains(">Save<") && !services.body.contains("checkbox"), "{}", services.body);
    assert_eq!(
        auditor.post("/admin/services", &[("csrf", &csrf), ("id", "sneaky"), ("read", "on")]).await.status,
        StatusCode::FORBIDDEN
    );
    let escalated = [("csrf", csrf.as_str()), ("id", "auditor"), ("admin", "on")];
    assert_eq!(auditor.post("/admin/services/permissions", &escalated).await.status, StatusCode::FORBIDDEN);
    let still = console.manager.registered_service(&"auditor".parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(still.permissions, [Permission::Read]);
    assert_eq!(console.live("dave").await, 1);
    assert!(console.manager.registered_service(&"sneaky".parse().unwrap()).await.unwrap().is_none());
}

#[tokio::test]
async fn a_session_page_shows_its_attributes_sealed_ones_by_name_only_and_its_history() {
    let console = Console::new().await;
    let ivy: UserId = "ivy".parse().unwrap();
    let attributes = [("access_token", json!("s3cret-token")), ("note", json!("<script>alert(3)</script>"))];
    let new = NewSession {
        attributes: attributes.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        ..NewSession::default()
    };
    let first = console.manager.create_session(&ivy, new).await.unwrap();
    console.manager.patch_session(&first.id, &Patch::default().set("theme", json!("dark")), None).await.unwrap();
    let session = console.manager.regenerate_id(&first.id).await.unwrap();
    let fingerprint = session.id.fingerprint();

    let mut browser = console.browser();
    browser.sign_in(&console.root).await;
    let listed = browser.get("/admin/users?user=ivy").await;
    let link = format!("/admin/users/session?user=ivy&amp;session={fingerprint}");
    assert!(listed.body.contains(&link), "{}", listed.body);
    let page = browser.get(&format!("/admin/users/session?user=ivy&session={fingerprint}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("access_token") && page.body.contains(r#"<span class="sealed""#), "{}", page.body);
    assert!(!page.body.contains("s3cret-token"), "a sealed value never reaches the page");
    assert!(page.body.contains("&quot;&lt;script&gt;alert(3)&lt;/script&gt;&quot;"), "{}", page.body);
    assert!(page.body.contains("&quot;dark&quot;"), "{}", page.body);
    // Its history, through the regeneration: the events of its first id too.
    for kind in ["created", "attributes_changed", "regenerated"] {
        assert!(page.body.contains(&format!("<td>{kind}</td>")), "{kind}: {}", page.body);
    }
    for id in [&first.id, &session.id] {
        assert!(!page.body.contains(id.as_ref()), "a page never holds a session id");
    }
    assert!(page.body.contains(">Revoke<"));

    let gone = browser.get("/admin/users/session?user=ivy&session=0000000000000000").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(browser.get("/admin/users/session?user=&session=x").await.status, StatusCode::BAD_REQUEST);
    let mut auditor = console.browser();
    auditor.sign_in(&console.auditor).await;
    let read_only = auditor.get(&format!("/admin/users/session?user=ivy&session={fingerprint}")).await;
    assert_eq!(read_only.status, StatusCode::OK);
    assert!(!read_only.body.contains(">Revoke<") && !read_only.body.contains("s3cret-token"));
}

#[tokio::test]
async fn markup_in_a_user_id_or_a_device_is_shown_as_text() {
    let console = Console::new().await;
    let xss = "<script>alert(1)</script>";
    let device = Device { user_agent: Some("<img src=x onerror=alert(2)>".into()), ..Device::default() };
    console
        .manager
        .create_session(&xss.parse().unwrap(), NewSession { device, ..NewSession::default() })
        .await
        .unwrap();
    let mut browser = console.browser();
    browser.sign_in(&console.root).await;
    console.sessions_of("<b>bold</b>", &["phone"]).await;
    let found = browser.get("/admin/users?find=%3C").await;
    assert!(found.body.contains("<code>&lt;script&gt;alert(1)&lt;/script&gt;</code>"), "{}", found.body);
    assert!(found.body.contains("<code>&lt;b&gt;bold&lt;/b&gt;</code>"), "{}", found.body);
    assert!(!found.body.contains("<b>bold"), "{}", found.body);
    let page = browser.get(&format!("/admin/users?user={}", "%3Cscript%3Ealert(1)%3C%2Fscript%3E")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", page.body);
    assert!(page.body.contains("&lt;img src=x onerror=alert(2)&gt;"), "{}", page.body);
    assert!(!page.body.contains(xss) && !page.body.contains("<img"), "{}", page.body);
}

#[tokio::test]
async fn every_console_answer_forbids_frames_inline_script_and_caching() {
    let console = Console::new().await;
    let mut browser = console.browser();
    for answer in [browser.get("/admin/sign-in").await, browser.sign_in("bad.token").await, {
        browser.sign_in(&console.root).await;
        browser.get("/admin/services").await
    }] {
        let header = |name: header::HeaderName| answer.headers.get(name).map_or("", |v| v.to_str().unwrap()).to_owned();
        let csp = header(header::CONTENT_SECURITY_POLICY);
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(header(header::X_FRAME_OPTIONS), "DENY");
        assert_eq!(header(header::REFERRER_POLICY), "no-referrer");
        assert_eq!(header(header::CACHE_CONTROL), "no-store");
        assert!(!answer.body.contains("<script>"), "no inline script: {}", answer.body);
    }
}

#[tokio::test]
async fn services_are_registered_shown_once_changed_and_removed() {
    let console = Console::new().await;
    let mut browser = console.browser();
    browser.sign_in(&console.root).await;
    let page = browser.get("/admin/services").await;
    let registered = browser
        .post("/admin/services", &[("csrf", &page.csrf()), ("id", "billing"), ("name", "Billing"), ("read", "on")])
        .await;
    assert_eq!(registered.status, StatusCode::OK);
    let start = registered.body.find(r#"id="new-token""#).unwrap();
    let token = registered.body[start..].split(r#"value=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
    assert!(token.starts_with("billing."), "{token}");
    // The token works against `/v1` at once, and is never shown again.
    let read = |token: String| {
        let app = console.app.clone();
        async move {
            let request = Request::get("/v1/users/carol/sessions")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty());
            app.oneshot(request.unwrap()).await.unwrap().status()
        }
    };
    assert_eq!(read(token.clone()).await, StatusCode::OK);
    assert!(!browser.get("/admin/services").await.body.contains(&token));
    let again = browser.post("/admin/services", &[("csrf", &page.csrf()), ("id", "billing"), ("read", "on")]).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        browser.post("/admin/services", &[("csrf", &page.csrf()), ("id", "Bad Id"), ("read", "on")]).await.status,
        StatusCode::BAD_REQUEST
    );

    // Its permissions changed: read taken, write given; the same token is now refused a read.
    let csrf = page.csrf();
    let changed =
        browser.post("/admin/services/permissions", &[("csrf", &csrf), ("id", "billing"), ("write", "on")]).await;
    assert_eq!((changed.status, changed.location()), (StatusCode::SEE_OTHER, "/admin/services"));
    assert_eq!(read(token.clone()).await, StatusCode::FORBIDDEN);
    let billing = console.manager.registered_service(&"billing".parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(billing.permissions, [Permission::Write]);
    let listed = browser.get("/admin/services").await.body;
    assert!(listed.contains(r#"name="write" checked"#), "{listed}");
    // None ticked, an unknown service, the operator's own: refused, nothing changed.
    for (form, status) in [
        (vec![("csrf", csrf.as_str()), ("id", "billing")], StatusCode::BAD_REQUEST),
        (vec![("csrf", csrf.as_str()), ("id", "nobody"), ("read", "on")], StatusCode::NOT_FOUND),
        (vec![("csrf", csrf.as_str()), ("id", "root"), ("read", "on")], StatusCode::CONFLICT),
        (vec![("csrf", "forged"), ("id", "billing"), ("admin", "on")], StatusCode::FORBIDDEN),
    ] {
        assert_eq!(browser.post("/admin/services/permissions", &form).await.status, status, "{form:?}");
    }
    let billing = console.manager.registered_service(&"billing".parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(billing.permissions, [Permission::Write]);
    assert!(console.manager.registered_service(&"nobody".parse().unwrap()).await.unwrap().is_none());

    let removed = browser.post("/admin/services/remove", &[("csrf", &page.csrf()), ("id", "billing")]).await;
    assert_eq!((removed.status, removed.location()), (StatusCode::SEE_OTHER, "/admin/services"));
    assert_eq!(read(token).await, StatusCode::UNAUTHORIZED);
    // Not the operator's own service: that would lock them out mid-page.
    assert_eq!(
        browser.post("/admin/services/remove", &[("csrf", &page.csrf()), ("id", "root")]).await.status,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn an_operator_whose_service_is_removed_is_signed_out() {
    let console = Console::new().await;
    let (_, ops) =
        console.manager.register_service("ops".parse().unwrap(), "Ops", vec![Permission::Admin]).await.unwrap();
    let mut browser = console.browser();
    browser.sign_in(&ops.expose()).await;
    assert_eq!(browser.get("/admin/users").await.status, StatusCode::OK);
    console.manager.remove_service(&"ops".parse().unwrap()).await.unwrap();
    let page = browser.get("/admin/users").await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("no longer registered"), "{}", page.body);
}

#[tokio::test]
async fn the_overview_counts_live_sessions_and_charts_the_last_hour() {
    let console = Console::new().await;
    console.sessions_of("gina", &["phone", "laptop"]).await;
    console.manager.delete_user_sessions(&"gina".parse().unwrap()).await.unwrap();
    console.sessions_of("hank", &["phone"]).await;
    let mut browser = console.browser();
    browser.sign_in(&console.root).await;
    let page = browser.get("/admin/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(r#"<span class="ok">answers</span>"#), "{}", page.body);
    // hank's, and the console's own session of the operator.
    assert!(page.body.contains(r#"<dd id="active">2</dd>"#), "{}", page.body);
    assert!(page.body.contains(concat!("sessanger ", env!("CARGO_PKG_VERSION"))));
    // This minute's bars: 4 created (gina's two, hank's, the operator's), 2 ended.
    assert!(page.body.contains("<title>4 created</title>"), "{}", page.body);
    assert!(page.body.contains("<title>2 ended</title>"), "{}", page.body);
}

#[tokio::test]
async fn after_five_failed_sign_ins_each_try_waits() {
    let console = Console::new().await;
    let mut browser = console.browser();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let wrong = browser.sign_in("root.wrong").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert!(started.elapsed() < std::time::Duration::from_millis(500));
    }
    let started = std::time::Instant::now();
    let slowed = browser.sign_in("root.wrong").await;
    assert!(started.elapsed() >= std::time::Duration::from_secs(1), "{:?}", started.elapsed());
    assert!(slowed.body.contains("Too many failed sign-ins"), "{}", slowed.body);
    // The right token still signs in (after its wait), and the address starts over.
    assert_eq!(browser.sign_in(&console.root).await.status, StatusCode::SEE_OTHER);
    let started = std::time::Instant::now();
    browser.sign_in("root.wrong").await;
    assert!(started.elapsed() < std::time::Duration::from_millis(500));
}

#[tokio::test]
async fn the_live_page_shows_the_latest_events_without_session_ids() {
    let console = Console::new().await;
    let ivy: UserId = "ivy".parse().unwrap();
    let session = console.manager.create_session(&ivy, NewSession::default()).await.unwrap();
    let patch = sessanger_core::Patch::default().set("theme", serde_json::json!("dark"));
    console.manager.patch_session(&session.id, &patch, None).await.unwrap();
    console.manager.delete_session(&session.id).await.unwrap();
    let mut browser = console.browser();
    browser.sign_in(&console.root).await;
    let page = browser.get("/admin/live").await;
    assert_eq!(page.status, StatusCode::OK);
    // Reloaded only where script is off: the script follows the stream instead.
    assert!(page.body.contains(r#"<noscript><meta http-equiv="refresh" content="5"></noscript>"#), "{}", page.body);
    for text in ["created", "attributes_changed", "theme", "deleted", "logout", &session.id.fingerprint()] {
        assert!(page.body.contains(text), "{text}: {}", page.body);
    }
    assert!(!page.body.contains(session.id.as_ref()), "a page never holds a session id");
    // Newest first: the deletion comes before the creation.
    let at = |kind: &str| page.body.find(&format!("<td>{kind}</td><td>ivy</td>")).unwrap();
    assert!(at("deleted") < at("attributes_changed") && at("attributes_changed") < at("created"));
}

#[tokio::test]
async fn the_live_page_streams_each_new_event_after_the_newest_shown() {
    use futures::StreamExt;

    let console = Console::new().await;
    let ivy: UserId = "ivy".parse().unwrap();
    let session = console.manager.create_session(&ivy, NewSession::default()).await.unwrap();
    let mut browser = console.browser();
    browser.sign_in(&console.root).await;
    let page = browser.get("/admin/live").await;
    let newest = console.manager.event_log().unwrap().last_event_id().await.unwrap().unwrap();
    let stream = format!("/admin/live/events?after={}", newest.0);
    assert!(page.body.contains(&format!(r#"data-stream="{stream}""#)), "{}", page.body);

    let open = |cookie: Option<String>| {
        let mut request = Request::get(&stream);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        console.app.clone().oneshot(request.body(Body::empty()).unwrap())
    };
    let answer = open(browser.cookie.clone()).await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(answer.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = answer.into_body().into_data_stream();
    // A change made after the stream opened arrives on it, named by fingerprint (the console's
    // own session, refreshed by this very request, may come first).
    console.manager.delete_user_sessions(&ivy).await.unwrap();
    let mut text = String::new();
    while !text.contains(r#""kind":"deleted""#) {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(5), body.next()).await.unwrap();
        text.push_str(std::str::from_utf8(&chunk.unwrap().unwrap()).unwrap());
    }
    assert!(text.starts_with(&format!("id: {}\nevent: row\n", newest.0 + 1)), "{text}");
    assert!(text.contains(r#""user":"ivy""#), "{text}");
    assert!(text.contains(&session.id.fingerprint()) && !text.contains(session.id.as_ref()), "{text}");

    // No console session, no stream.
    assert_eq!(open(None).await.unwrap().status(), StatusCode::SEE_OTHER);
}
