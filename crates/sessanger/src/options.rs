//! The config file mapped onto the options each library crate owns: the one place that knows
//! both the file's layout (`sessanger-config`) and the libraries' options.

use sessanger_amqp::{Account, BrokerOptions};
use sessanger_config::{
    BrokerConfig, CompatConfig, ConsoleConfig, EncryptedAttributes, EncryptionConfig, EventsConfig, HttpConfig,
    TlsConfig,
};
use sessanger_console::ConsoleOptions;
use sessanger_server::{CompatAuth, CompatOptions, ConnectionOptions, EventOptions, ServerOptions};
use sessanger_store_encrypted::{Keyring, KeyringError, Selection};
use sessanger_tls::TlsOptions;

/// `broker:` as the AMQP crate's options; a `url` written `host:port` gets its `amqp://`.
pub(crate) fn broker(file: &BrokerConfig) -> BrokerOptions {
    let mut options = BrokerOptions::new(file.amqp_url(), &file.sessanger.login, "");
    options.manager = Account { login: file.sessanger.login.clone(), password: file.sessanger.password.clone() };
    if let Some(login) = &file.client.login {
        options.client.login = login.clone();
    }
    options.client.password = file.client.password.clone();
    options.admins = file.admins.iter().cloned().collect();
    options.user_password = file.user.as_ref().map(|user| user.password.clone());
    options.routing_keys = file.routing_keys.clone();
    options.pam_service = file.pam_service.clone();
    options.management_url = file.management_url.clone();
    options.keep_user = file.keep_user;
    options.remove_vhost = file.remove_vhost;
    options.tls = tls(&file.tls);
    options
}

/// `http:` (with `compat:` already mapped, `events.session_ids`, and `console:` if the console
/// is on, with `encryption:` if it seals attributes) as the server's options; what the file
/// leaves out keeps the server's default.
pub(crate) fn server(
    file: &HttpConfig,
    compat: CompatOptions,
    events: &EventsConfig,
    console: Option<&ConsoleConfig>,
    encryption: Option<&EncryptionConfig>,
) -> ServerOptions {
    let defaults = ConnectionOptions::default();
    let connections = ConnectionOptions {
        header_read_timeout: file.header_read_timeout.unwrap_or(defaults.header_read_timeout),
        idle_timeout: file.idle_timeout.unwrap_or(defaults.idle_timeout),
        max_connections: file.max_connections.unwrap_or(defaults.max_connections),
    };
    let events = EventOptions { session_ids: events.session_ids, ..EventOptions::default() };
    ServerOptions {
        body_limit: file.body_limit,
        connections,
        compat,
        events,
        json_cache_size: file.json_cache_size,
        console: console.map(|file| ConsoleOptions {
            secure_cookie: file.secure_cookie,
            idle_timeout: file.idle_timeout,
            sealed: encryption.map(sealed),
        }),
        ..ServerOptions::default()
    }
}

/// `compat:` as the server's options. `Config::load` has already merged the `sessman.json` a
/// `compat.sessman.config` names into the section.
pub(crate) fn compat(file: &CompatConfig) -> CompatOptions {
    let auth = |auth| match auth {
        sessanger_config::CompatAuth::None => CompatAuth::None,
        sessanger_config::CompatAuth::Token => CompatAuth::Token,
    };
    let mut options = CompatOptions::default();
    let back_session = &mut options.back_session;
    back_session.enabled = file.back_session.enabled;
    back_session.auth = auth(file.back_session.auth);
    back_session.service = file.back_session.service.clone();
    back_session.permissions = file.back_session.permissions.clone();
    back_session.session_ttl = file.back_session.session_ttl;
    let sessman = &mut options.sessman;
    (sessman.enabled, sessman.auth) = (file.sessman.enabled, auth(file.sessman.auth));
    sessman.api_key = file.sessman.api_key.clone();
    (sessman.service, sessman.permissions) = (file.sessman.service.clone(), file.sessman.permissions.clone());
    sessman.session_ttl = file.sessman.session_ttl;
    options
}

/// A `tls:` section as the TLS options every store and broker takes.
pub(crate) fn tls(file: &TlsConfig) -> TlsOptions {
    TlsOptions {
        ca_file: file.ca_file.clone(),
        cert_file: file.cert_file.clone(),
        key_file: file.key_file.clone(),
        insecure: file.insecure,
    }
}

/// `encryption:` as the encrypted store's key ring (parsed from `keys`, which may fail) and
/// selection (`attributes`, less `except`).
pub(crate) fn encryption(file: &EncryptionConfig) -> Result<(Keyring, Selection), KeyringError> {
    Ok((Keyring::from_spec(&file.keys, &file.active_key)?, sealed(file)))
}

/// The attributes `encryption:` seals.
fn sealed(file: &EncryptionConfig) -> Selection {
    match &file.attributes {
        EncryptedAttributes::All if file.except.is_empty() => Selection::All,
        EncryptedAttributes::All => Selection::all_except(file.except.iter().cloned()),
        EncryptedAttributes::Only(keys) => Selection::only(keys.iter().cloned()),
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use sessanger_amqp::Routing;
    use sessanger_config::{Config, Format};
    use sessanger_core::{Permission, Store};
    use sessanger_store_encrypted::EncryptedStore;
    use sessanger_store_memory::MemoryStore;

    use super::*;

    fn yaml(text: &str) -> Config {
        Config::parse_with_env(text, Format::Yaml, "c.yaml", |_| None).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_resolver_agrees_with_the_config_on_both_seed_examples() {
        for text in [
            "broker: {url: 127.0.0.1:5672, sessanger: {login: s, password: s}, user: {password: 123}, \
             routing_keys: {sessanger1: ['*']}}",
            "broker: {url: 127.0.0.1:5672, sessanger: {login: s, password: s}, \
             routing_keys: {sessanger1: [sysadm, ok1], sessanger2: [om1]}}",
        ] {
            let file = yaml(text).broker.unwrap();
            let routing = Routing::from_options(&broker(&file)).unwrap();
            for name in ["sysadm", "ok1", "om1", "alice"] {
                let user = name.parse().unwrap();
                assert_eq!(routing.route(&user).map(AsRef::as_ref), file.routing_key_for(name), "{name}");
            }
        }
    }

    #[test]
    fn every_broker_key_reaches_the_options() {
        let file = yaml(
            "broker: {url: 'rabbit:5672', sessanger: {login: s, password: p}, user: {password: 123}, \
             client: {login: c, password: cp}, admins: [ops], \
             pam_service: login, management_url: 'http://mgmt:15672/', keep_user: true, remove_vhost: true}",
        );
        let options = broker(file.broker.as_ref().unwrap());
        assert_eq!((options.url.as_str(), &options.manager), ("amqp://rabbit:5672", &Account::new("s", "p")));
        assert_eq!((&options.client, options.admins.len()), (&Account::new("c", "cp"), 1));
        let client_config = yaml("broker: {url: r, sessanger: {login: s}, client: {password: cp}}");
        let client = broker(client_config.broker.as_ref().unwrap());
        assert_eq!(client.manager.password, None, "a client's config needs no managers' password");
        assert_eq!(client.client, Account::new(BrokerOptions::DEFAULT_CLIENT_LOGIN, "cp"));
        assert_eq!(options.user_password.as_deref(), Some("123"));
        assert_eq!(options.pam_service, "login");
        assert_eq!(options.management_url(), "http://mgmt:15672");
        assert!(options.keep_user && options.remove_vhost);
        assert!(options.routing_keys.is_empty());
        let defaults =
            broker(yaml("broker: {url: rabbit, sessanger: {login: s, password: p}}").broker.as_ref().unwrap());
        assert_eq!(defaults, BrokerOptions::new("amqp://rabbit", "s", "p"));
    }

    #[test]
    fn every_compat_key_reaches_the_options() {
        assert_eq!(compat(&yaml("").compat), CompatOptions::default());
        let options = compat(
            &yaml(
                "compat:\n  back_session: {enabled: true, auth: token, session_ttl: 30d}\n  \
                 sessman: {enabled: true, api_key: 1234, service: legacy, permissions: [read], session_ttl: 1h}\n",
            )
            .compat,
        );
        let (back_session, sessman) = (options.back_session, options.sessman);
        assert!(back_session.enabled && sessman.enabled);
        assert_eq!((back_session.auth, sessman.auth), (CompatAuth::Token, CompatAuth::None));
        assert_eq!(back_session.session_ttl, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(back_session.service.as_ref(), "back-session");
        assert_eq!(sessman.api_key.as_deref(), Some("1234"));
        assert_eq!((sessman.service.as_ref(), sessman.permissions.as_slice()), ("legacy", &[Permission::Read][..]));
        assert_eq!(sessman.session_ttl, Some(Duration::from_secs(3600)));
    }

    #[tokio::test]
    async fn the_encryption_section_gives_the_store_it_describes() {
        let spec = "k1:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=".to_owned();
        let text = "encryption:\n  keys: \"${KEYS}\"\n  active_key: k1\n  attributes: all\n  except: [visits]\n";
        let config = Config::parse_with_env(text, Format::Yaml, "c.yaml", |_| Some(spec.clone())).unwrap();
        let (keyring, selection) = encryption(&config.encryption.unwrap()).unwrap();
        let inner: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let store = EncryptedStore::new(inner, keyring, selection);
        assert_eq!(store.selection(), &Selection::all_except(["visits"]));
        assert_eq!(store.keyring().active().as_ref(), "k1");
        let only = yaml(
            "encryption: {keys: 'k1:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=', active_key: k1, attributes: [a]}",
        );
        assert_eq!(encryption(&only.encryption.unwrap()).unwrap().1, Selection::only(["a"]));
        let bad = yaml("encryption: {keys: 'k1:x', active_key: k1, attributes: all}");
        assert_eq!(encryption(&bad.encryption.unwrap()).unwrap_err(), KeyringError::InvalidKey("k1".parse().unwrap()));
    }

    #[test]
    fn the_console_shows_sealed_what_encryption_seals() {
        let config = yaml(
            "console: {enabled: true, secure_cookie: false}\n\
             encryption: {keys: 'k1:BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=', active_key: k1, attributes: [token]}",
        );
        let events = &config.events;
        let compat = CompatOptions::default();
        let options = server(&config.http, compat.clone(), events, Some(&config.console), config.encryption.as_ref());
        let console = options.console.unwrap();
        assert_eq!((console.secure_cookie, console.sealed), (false, Some(Selection::only(["token"]))));
        let plain = server(&config.http, compat, events, Some(&config.console), None);
        assert_eq!(plain.console.unwrap().sealed, None);
    }
}
