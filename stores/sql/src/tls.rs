//! How `store.tls` ([`LoadedTls`]) bears on a SQL URL's own TLS mode.

use sessanger_tls::LoadedTls;

/// The TLS mode `store.tls` sets, over what the URL would have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Verify the server's certificate and its name.
    Verify,
    /// Encrypt without verifying anything (`insecure`).
    Encrypt,
}

/// The mode to set on a connection to `url`, whose own mode is its query parameter `sslmode`
/// (or `ssl-mode`: both drivers read either): `insecure` encrypts without verifying, whatever
/// the URL says; CAs or a client certificate without a mode in the URL verify (a file given to
/// trust is meant to be checked against); otherwise the URL decides (`None`).
pub(crate) fn mode(url: &str, tls: &LoadedTls) -> Option<Mode> {
    if tls.insecure {
        return Some(Mode::Encrypt);
    }
    (url_mode(url).is_none() && (tls.ca_pem.is_some() || tls.identity.is_some())).then_some(Mode::Verify)
}

/// The TLS mode `url` names, if it names one.
fn url_mode(url: &str) -> Option<&str> {
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|pair| match pair.split_once('=') {
        Some(("sslmode" | "ssl-mode", value)) => Some(value),
        _ => None,
    })
}

/// `url` as errors name it: with a word on TLS if the URL turns it off, since MariaDB refuses
/// such a login to a server that takes TLS only as if the password were wrong.
pub(crate) fn described(url: &str) -> String {
    match url_mode(url) {
        Some(mode) if mode.eq_ignore_ascii_case("disable") || mode.eq_ignore_ascii_case("disabled") => {
            format!("{url} (TLS off: a server that takes TLS only refuses it)")
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_decides_unless_told_to_trust_a_ca_or_to_trust_anything() {
        let plain = LoadedTls::default();
        let ca = LoadedTls { ca_pem: Some(b"pem".to_vec()), ..LoadedTls::default() };
        let insecure = LoadedTls { insecure: true, ..LoadedTls::default() };
        assert_eq!(mode("postgres://h/db", &plain), None);
        assert_eq!(mode("postgres://h/db", &ca), Some(Mode::Verify));
        assert_eq!(mode("postgres://h/db?sslmode=verify-ca", &ca), None);
        assert_eq!(mode("postgres://h/db?ssl-mode=require", &ca), None);
        assert_eq!(mode("mysql://h/db?charset=utf8&ssl-mode=required", &ca), None);
        assert_eq!(mode("mysql://h/db?ssl-mode-x=1", &ca), Some(Mode::Verify));
        assert_eq!(mode("postgres://h/db?sslmode=verify-full", &insecure), Some(Mode::Encrypt));
        assert_eq!(described("mysql://h/db"), "mysql://h/db");
        assert!(described("mysql://h/db?ssl-mode=DISABLED").contains("TLS off"));
        assert!(described("postgres://h/db?sslmode=disable").contains("TLS off"));
    }
}
