//! Checks that need more than one key, or more than a type, to decide: they run after parsing,
//! so each failure is reported as a key path and a message.

use std::{collections::BTreeMap, net::SocketAddr, time::Duration};

use sessanger_core::UserId;

use super::{BrokerConfig, CompatAuth, Config, STORE_SCHEMES, WILDCARD};

/// A failed check: the key path and what is wrong there.
pub(crate) type Failure = (String, String);

fn fail<T>(path: impl Into<String>, message: impl Into<String>) -> Result<T, Failure> {
    Err((path.into(), message.into()))
}

/// The first failed check of `config`, if any.
pub(crate) fn check(config: &Config) -> Result<(), Failure> {
    check_session(config)?;
    if let Some(broker) = &config.broker {
        check_broker(broker)?;
        if let Some(key) = &config.session.routing_key
            && !broker.routing_keys.is_empty()
            && !broker.routing_keys.contains_key(key)
        {
            let known: Vec<_> = broker.routing_keys.keys().map(|k| format!("`{k}`")).collect();
            return fail(
                "session.routing_key",
                format!("`{key}` is not a key of broker.routing_keys (those are {})", known.join(", ")),
            );
        }
    }
    if config.http.listen.parse::<SocketAddr>().is_err() {
        return fail(
            "http.listen",
            format!(
                "`{}` is not a socket address (write IP:PORT, like 127.0.0.1:8090 or [::]:8090)",
                config.http.listen
            ),
        );
    }
    if config.http.body_limit == 0 {
        return fail("http.body_limit", "must be at least 1 byte");
    }
    for (key, value) in
        [("header_read_timeout", config.http.header_read_timeout), ("idle_timeout", config.http.idle_timeout)]
    {
        if value.is_some_and(|timeout| timeout < Duration::from_secs(1)) {
            return fail(format!("http.{key}"), "must be at least 1s");
        }
    }
    if config.console.idle_timeout < Duration::from_secs(1) {
        return fail("console.idle_timeout", "must be at least 1s");
    }
    if config.session.refresh_threshold_percent > 100 {
        return fail("session.refresh_threshold_percent", "must be 0 to 100".to_owned());
    }
    if config.store.cache_size == 0 {
        return fail("store.cache_size", "must be more than 0 (turn the cache off with `cache: false`)".to_owned());
    }
    if config.store.tls.cert_file.is_some() != config.store.tls.key_file.is_some() {
        return fail("store.tls", "a client certificate needs both cert_file and key_file".to_owned());
    }
    if let Some(tls) = config.broker.as_ref().map(|broker| &broker.tls)
        && tls.cert_file.is_some() != tls.key_file.is_some()
    {
        return fail("broker.tls", "a client certificate needs both cert_file and key_file".to_owned());
    }
    if let Some(url) = &config.store.url {
        check_store_url(url)?;
    }
    if let Some(encryption) = &config.encryption {
        super::encryption::check(encryption)?;
    }
    check_compat(config)
}

fn check_compat(config: &Config) -> Result<(), Failure> {
    let (back_session, sessman) = (&config.compat.back_session, &config.compat.sessman);
    for (path, ttl) in [("compat.back_session", back_session.session_ttl), ("compat.sessman", sessman.session_ttl)] {
        if ttl == Some(Duration::ZERO) {
            return fail(format!("{path}.session_ttl"), "must be longer than zero");
        }
    }
    if sessman.auth == CompatAuth::Token && sessman.api_key.is_some() {
        return fail(
            "compat.sessman.api_key",
            "only applies with `auth: none`; with `auth: token` callers send a sessanger service token",
        );
    }
    Ok(())
}

fn check_session(config: &Config) -> Result<(), Failure> {
    let session = &config.session;
    for (key, value) in
        [("ttl", session.ttl), ("max_lifetime", session.max_lifetime), ("gc_interval", session.gc_interval)]
    {
        if value == Duration::ZERO {
            return fail(format!("session.{key}"), "must be longer than zero");
        }
    }
    if session.ttl > session.max_lifetime {
        // Allowed by the manager (it caps), but the idle TTL would never be reached.
        return fail(
            "session.ttl",
            format!(
                "{} is longer than session.max_lifetime ({}), so it would never apply",
                display_duration(session.ttl),
                display_duration(session.max_lifetime)
            ),
        );
    }
    Ok(())
}

/// `40d`, `1h 30m`, `90s`: the units a config file uses; humantime's own formatting counts in
/// months of 30.44 days, which nobody writes.
fn display_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    let parts = [(secs / 86_400, "d"), (secs / 3600 % 24, "h"), (secs / 60 % 60, "m"), (secs % 60, "s")];
    let text: Vec<_> = parts.iter().filter(|(n, _)| *n > 0).map(|(n, unit)| format!("{n}{unit}")).collect();
    if text.is_empty() { format!("{}ms", duration.as_millis()) } else { text.join(" ") }
}

fn check_broker(broker: &BrokerConfig) -> Result<(), Failure> {
    check_amqp_url(&broker.amqp_url())?;
    if broker.sessanger.login.is_empty() {
        return fail("broker.sessanger.login", "must not be empty");
    }
    if broker.client.login.as_ref() == Some(&broker.sessanger.login) {
        // Setting up the client account would strip the managers' own of its rights.
        return fail("broker.client.login", "must differ from broker.sessanger.login");
    }
    if broker.admins.iter().any(String::is_empty) {
        return fail("broker.admins", "an account name must not be empty");
    }
    if broker.pam_service.is_empty() {
        return fail("broker.pam_service", "must not be empty");
    }
    // user name → the routing key that lists it, to report both keys of a duplicate.
    let mut owners: BTreeMap<&str, &str> = BTreeMap::new();
    for (key, users) in &broker.routing_keys {
        let path = format!("broker.routing_keys.{key}");
        if key.trim().is_empty() {
            return fail("broker.routing_keys", "a routing key must not be empty");
        }
        if users.iter().any(|u| u == WILDCARD) && users.len() > 1 {
            return fail(path, "`'*'` (every other user) must be alone in its list");
        }
        for user in users {
            if user != WILDCARD && user.parse::<UserId>().is_err() {
                return fail(path, format!("{user:?} is not a user name (1 to 256 bytes of printable text)"));
            }
            if let Some(first) = owners.insert(user, key) {
                let message = match (first == key, user == WILDCARD) {
                    (true, _) => format!("user `{user}` is listed twice"),
                    (false, true) => format!("only one routing key may list `'*'`, and `{first}` already does"),
                    (false, false) => format!("user `{user}` is already listed under `{first}`"),
                };
                return fail(path, message);
            }
        }
    }
    Ok(())
}

/// `amqp[s]://[user[:password]@]host[:port][/vhost]`: enough to catch a typo before the first
/// connection attempt does.
fn check_amqp_url(url: &str) -> Result<(), Failure> {
    let bad = |why: &str| fail("broker.url", format!("`{url}` is not a broker URL: {why}"));
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    if !["amqp", "amqps"].contains(&scheme.to_ascii_lowercase().as_str()) {
        return bad("the scheme must be amqp:// or amqps://");
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, host_port)| host_port);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((host, port)) if !host_port.ends_with(']') => (host, Some(port)),
        _ => (host_port, None),
    };
    if host.is_empty() {
        return bad("it names no host");
    }
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return bad("the port must be a number from 0 to 65535");
    }
    Ok(())
}

fn check_store_url(url: &str) -> Result<(), Failure> {
    let known = || STORE_SCHEMES.iter().map(|s| format!("{s}://")).collect::<Vec<_>>().join(", ");
    match url.split_once("://") {
        None => fail("store.url", format!("`{url}` has no scheme (expected one of {})", known())),
        Some((scheme, _)) if !STORE_SCHEMES.contains(&scheme) => {
            fail("store.url", format!("unknown store scheme `{scheme}://` (expected one of {})", known()))
        }
        Some(_) => Ok(()),
    }
}
