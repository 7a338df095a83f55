//! [`ExpressSignatureLayer`]: the session cookie signed as express-session signs it, so an
//! Express app using `sessanger/express` and this app share their users' sessions.
//!
//! Both keep sessions in one sessanger, and both name a session by the same cookie id (the
//! TypeScript store mints tower-sessions ids, see [`session_id_of`](crate::session_id_of)).
//! What differs is the cookie itself: express-session always signs it, as
//! `s:<id>.<base64 HMAC-SHA256 of the id under the app's secret>` (the `cookie-signature`
//! package), percent-encoded, and ignores a cookie without a valid signature. This layer,
//! put outside the session layer, makes this app speak that format: it checks and strips the
//! signature of the cookie a request brings (dropping the cookie if the signature is wrong, as
//! Express does) and signs the cookie a response sets.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use base64::{Engine, engine::general_purpose::STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderValue, Request, Response, header};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::Sha256;
use tower::{Layer, Service};

/// What `encodeURIComponent` leaves as it is: the cookie value is written as Express writes it.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// Signs the session cookie as express-session does; see the [module docs](self).
///
/// # Examples
/// ```
/// use std::{sync::Arc, time::Duration};
/// use sessanger_core::{SessionManager, SessionPolicy};
/// use sessanger_store_memory::MemoryStore;
/// use sessanger_tower::{ExpressSignatureLayer, SessangerStore, SessionOptions};
///
/// let manager = SessionManager::with_policy(Arc::new(MemoryStore::new()), SessionPolicy::default());
/// let sessions = SessionOptions::new().with_cookie_name("sid").layer(SessangerStore::new(manager));
/// // The Express app: session({ name: "sid", secret: "the shared secret", genid: store.genid, ... })
/// let app: axum::Router = axum::Router::new()
///     .layer(sessions)
///     .layer(ExpressSignatureLayer::new("sid", "the shared secret"));
/// # drop(app);
/// ```
#[derive(Clone)]
pub struct ExpressSignatureLayer {
    keys: Arc<Keys>,
}

#[derive(Clone)]
struct Keys {
    cookie_name: String,
    /// The first signs; every one verifies (express-session's `secret` array, for rotation).
    secrets: Vec<Vec<u8>>,
}

/// Never shows the secrets.
impl fmt::Debug for ExpressSignatureLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpressSignatureLayer").field("cookie_name", &self.keys.cookie_name).finish_non_exhaustive()
    }
}

impl ExpressSignatureLayer {
    /// Signs and checks the cookie `cookie_name` with `secret`, express-session's `name` and
    /// `secret`.
    pub fn new(cookie_name: impl Into<String>, secret: impl AsRef<[u8]>) -> Self {
        let keys = Keys { cookie_name: cookie_name.into(), secrets: vec![secret.as_ref().to_vec()] };
        ExpressSignatureLayer { keys: Arc::new(keys) }
    }

    /// Also accepts cookies signed with `secret`, one the app used before (express-session's
    /// `secret: [new, old]`); new cookies are signed with the first.
    #[must_use]
    pub fn with_previous_secret(mut self, secret: impl AsRef<[u8]>) -> Self {
        Arc::make_mut(&mut self.keys).secrets.push(secret.as_ref().to_vec());
        self
    }
}

impl Keys {
    fn mac(secret: &[u8]) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length")
    }

    /// `s:<value>.<signature>`, as `cookie-signature`'s `sign` writes it (base64 without `=`).
    fn sign(&self, value: &str) -> String {
        let mut mac = Keys::mac(&self.secrets[0]);
        mac.update(value.as_bytes());
        format!("s:{value}.{}", STANDARD_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    /// The value a signed cookie holds, if a secret signed it (checked in constant time).
    fn unsign<'a>(&self, signed: &'a str) -> Option<&'a str> {
        let (value, signature) = signed.strip_prefix("s:")?.rsplit_once('.')?;
        // Some signers keep the padding; the HMAC is the same bytes either way.
        let signature = STANDARD_NO_PAD.decode(signature.trim_end_matches('=')).ok()?;
        self.secrets
            .iter()
            .any(|secret| {
                let mut mac = Keys::mac(secret);
                mac.update(value.as_bytes());
                mac.verify_slice(&signature).is_ok()
            })
            .then_some(value)
    }

    /// The request's `Cookie` headers with this cookie's signature checked and stripped; a
    /// cookie of this name that is not validly signed is dropped.
    fn unsign_request(&self, headers: &mut HeaderMap) {
        let mut changed = false;
        let mut rewritten = Vec::new();
        for value in headers.get_all(header::COOKIE) {
            let Ok(text) = value.to_str() else {
                rewritten.push(value.clone());
                continue;
            };
            let mut pairs = Vec::new();
            for pair in text.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                match pair.split_once('=') {
                    Some((name, raw)) if name == self.cookie_name => {
                        changed = true;
                        let decoded = percent_decode_str(raw.trim_matches('"')).decode_utf8_lossy();
                        if let Some(id) = self.unsign(&decoded) {
                            pairs.push(format!("{name}={id}"));
                        }
                    }
                    _ => pairs.push(pair.to_owned()),
                }
            }
            if let Ok(value) = HeaderValue::from_str(&pairs.join("; ")) {
                rewritten.push(value);
            }
        }
        if changed {
            headers.remove(header::COOKIE);
            for value in rewritten.into_iter().filter(|v| !v.is_empty()) {
                headers.append(header::COOKIE, value);
            }
        }
    }

    /// The response's `Set-Cookie` of this cookie signed; a removal (empty value) stays as it is.
    fn sign_response(&self, headers: &mut HeaderMap) {
        let prefix = format!("{}=", self.cookie_name);
        let signed: Vec<HeaderValue> = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|value| {
                let Some(rest) = value.to_str().ok().and_then(|t| t.strip_prefix(&prefix)) else {
                    return value.clone();
                };
                let (id, attributes) = rest.split_once(';').map_or((rest, ""), |(id, a)| (id, a));
                if id.is_empty() {
                    return value.clone();
                }
                let encoded = utf8_percent_encode(&self.sign(id), URI_COMPONENT).to_string();
                let separator = if attributes.is_empty() { "" } else { ";" };
                HeaderValue::from_str(&format!("{prefix}{encoded}{separator}{attributes}"))
                    .unwrap_or_else(|_| value.clone())
            })
            .collect();
        if signed.is_empty() {
            return;
        }
        headers.remove(header::SET_COOKIE);
        for value in signed {
            headers.append(header::SET_COOKIE, value);
        }
    }
}

impl<S> Layer<S> for ExpressSignatureLayer {
    type Service = ExpressSignature<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ExpressSignature { inner, keys: Arc::clone(&self.keys) }
    }
}

/// The service of [`ExpressSignatureLayer`].
#[derive(Clone)]
pub struct ExpressSignature<S> {
    inner: S,
    keys: Arc<Keys>,
}

impl<S> fmt::Debug for ExpressSignature<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpressSignature").field("cookie_name", &self.keys.cookie_name).finish_non_exhaustive()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ExpressSignature<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        self.keys.unsign_request(request.headers_mut());
        let answer = self.inner.call(request);
        let keys = Arc::clone(&self.keys);
        Box::pin(async move {
            let mut response = answer.await?;
            keys.sign_response(response.headers_mut());
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What express-session (cookie-signature 1.0) writes for the id `abc` under `keyboard cat`:
    /// `require('cookie-signature').sign('abc', 'keyboard cat')`.
    const SIGNED: &str = "s:abc.BpxCrWRpvZMh/wk/djl34N+m+VQEU7K/5WenLwJCgFU";

    fn keys() -> Keys {
        Keys { cookie_name: "sid".into(), secrets: vec![b"keyboard cat".to_vec()] }
    }

    #[test]
    fn signatures_are_those_of_cookie_signature() {
        assert_eq!(keys().sign("abc"), SIGNED);
        assert_eq!(keys().unsign(SIGNED), Some("abc"));
        assert_eq!(keys().unsign("s:abd.BpxCrWRpvZMh/wk/djl34N+m+VQEU7K/5WenLwJCgFU"), None);
        assert_eq!(keys().unsign("abc.BpxCrWRpvZMh/wk/djl34N+m+VQEU7K/5WenLwJCgFU"), None, "no s: prefix");
        assert_eq!(keys().unsign("s:abc"), None);
        let rotated = Keys { cookie_name: "sid".into(), secrets: vec![b"new".to_vec(), b"keyboard cat".to_vec()] };
        assert_eq!(rotated.unsign(SIGNED), Some("abc"), "an old secret still verifies");
        assert!(rotated.sign("abc").ne(SIGNED), "the first secret signs");
    }

    #[test]
    fn a_request_keeps_the_id_of_a_valid_cookie_only() {
        let mut headers = HeaderMap::new();
        let encoded = utf8_percent_encode(SIGNED, URI_COMPONENT).to_string();
        headers.append(header::COOKIE, HeaderValue::from_str(&format!("theme=dark; sid={encoded}")).unwrap());
        keys().unsign_request(&mut headers);
        assert_eq!(headers.get(header::COOKIE).unwrap(), "theme=dark; sid=abc");

        for forged in
            ["sid=abc", "sid=s%3Aabc.AAAA", "sid=s%3Axyz.BpxCrWRpvZMh%2Fwk%2Fdjl34N%2Bm%2BVQEU7K%2F5WenLwJCgFU"]
        {
            let mut headers = HeaderMap::new();
            headers.append(header::COOKIE, HeaderValue::from_str(&format!("{forged}; theme=dark")).unwrap());
            keys().unsign_request(&mut headers);
            assert_eq!(headers.get(header::COOKIE).unwrap(), "theme=dark", "{forged}");
        }
    }

    #[test]
    fn a_response_signs_the_cookie_as_express_writes_it() {
        let mut headers = HeaderMap::new();
        headers.append(header::SET_COOKIE, HeaderValue::from_static("sid=abc; HttpOnly; Path=/"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("other=1"));
        headers.append(header::SET_COOKIE, HeaderValue::from_static("sid=; Max-Age=0"));
        keys().sign_response(&mut headers);
        let cookies: Vec<_> = headers.get_all(header::SET_COOKIE).iter().map(|v| v.to_str().unwrap()).collect();
        // encodeURIComponent('s:abc.Bpx…') as express-session's cookie.serialize writes it.
        assert_eq!(
            cookies,
            [
                "sid=s%3Aabc.BpxCrWRpvZMh%2Fwk%2Fdjl34N%2Bm%2BVQEU7K%2F5WenLwJCgFU; HttpOnly; Path=/",
                "other=1",
                "sid=; Max-Age=0"
            ]
        );
    }
}
