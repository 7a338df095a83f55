//! `compat:`: the HTTP APIs of services sessanger replaces (back-session, sessman), and the
//! original sessman's `sessman.json`.
//!
//! Each API is off unless enabled. An enabled API is open by default (`auth: none`), because
//! the clients it replaces send no sessanger token; it then acts as its configured `service`
//! (the audit trail names it) with its configured `permissions`. `auth: token` makes it demand
//! a sessanger service token, as `/v1` does.

use std::{fmt, path::PathBuf, time::Duration};

use serde::Deserialize;

use sessanger_core::{Permission, ServiceId};

use super::{ConfigError, de};

/// `compat:`: which foreign APIs sessanger also serves.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a mapping of compat settings")]
#[non_exhaustive]
pub struct CompatConfig {
    /// back-session's API under `/a01` (`back_session:`).
    #[serde(deserialize_with = "de::null_as_default")]
    pub back_session: BackSessionConfig,
    /// sessman's API under `/sessman` (`sessman:`).
    #[serde(deserialize_with = "de::null_as_default")]
    pub sessman: SessmanConfig,
}

/// How a compat API authenticates its callers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompatAuth {
    /// No sessanger token (`none`, the default): the API acts as its configured service, with
    /// its configured permissions. sessman may still demand its own API key (`api_key`).
    #[default]
    None,
    /// A sessanger service token as `Authorization: Bearer` (`token`), exactly as `/v1`.
    Token,
}

/// `compat.back_session:`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a mapping of back-session settings")]
#[non_exhaustive]
pub struct BackSessionConfig {
    /// Serve `/a01/session..` (`enabled`, default false).
    pub enabled: bool,
    /// `none` (default) or `token`.
    pub auth: CompatAuth,
    /// The service requests act as under `auth: none` (`service`, default `back-session`).
    pub service: ServiceId,
    /// What requests may do under `auth: none` (`permissions`, default `[read, write]`).
    pub permissions: Vec<Permission>,
    /// Idle lifetime of sessions created here (`session_ttl`); absent means `session.ttl`.
    #[serde(deserialize_with = "de::optional_duration")]
    pub session_ttl: Option<Duration>,
}

impl Default for BackSessionConfig {
    fn default() -> Self {
        BackSessionConfig {
            enabled: false,
            auth: CompatAuth::None,
            service: "back-session".parse().expect("a valid service id"),
            permissions: vec![Permission::Read, Permission::Write],
            session_ttl: None,
        }
    }
}

/// `compat.sessman:`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields, expecting = "a mapping of sessman settings")]
#[non_exhaustive]
pub struct SessmanConfig {
    /// Serve `/sessman/{new,update,get}` (`enabled`, default false).
    pub enabled: bool,
    /// `none` (default) or `token`.
    pub auth: CompatAuth,
    /// sessman's own API key (`api_key`): when set (with `auth: none`), every request must
    /// send it as `Authorization: Bearer`, `X-Custom-Auth` or an `apikey` parameter.
    #[serde(deserialize_with = "de::optional_text")]
    pub api_key: Option<String>,
    /// The service requests act as under `auth: none` (`service`, default `sessman`).
    pub service: ServiceId,
    /// What requests may do under `auth: none` (`permissions`, default `[read, write]`).
    pub permissions: Vec<Permission>,
    /// Idle lifetime of sessions created or updated here (`session_ttl`); absent means the
    /// `session_ttl` of `config`, else sessman's own default (the server's).
    #[serde(deserialize_with = "de::optional_duration")]
    pub session_ttl: Option<Duration>,
    /// The original's `sessman.json` (`config`), read for `session_ttl` and `apikey`.
    #[serde(deserialize_with = "optional_path")]
    pub config: Option<PathBuf>,
}

impl Default for SessmanConfig {
    fn default() -> Self {
        SessmanConfig {
            enabled: false,
            auth: CompatAuth::None,
            api_key: None,
            service: "sessman".parse().expect("a valid service id"),
            permissions: vec![Permission::Read, Permission::Write],
            session_ttl: None,
            config: None,
        }
    }
}

impl fmt::Debug for SessmanConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessmanConfig")
            .field("enabled", &self.enabled)
            .field("auth", &self.auth)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("service", &self.service)
            .field("permissions", &self.permissions)
            .field("session_ttl", &self.session_ttl)
            .field("config", &self.config)
            .finish()
    }
}

impl SessmanConfig {
    /// Fills what the file left out from the original's `sessman.json`: `session_ttl` and,
    /// when its `auth_type` asks for one, `apikey`. A lifetime neither names is left to the
    /// server, whose default is sessman's.
    pub fn merge_file(&mut self, file: &SessmanFile) {
        if let Some(ttl) = file.session_ttl {
            self.session_ttl.get_or_insert(Duration::from_secs(ttl));
        }
        if self.api_key.is_none() && self.auth == CompatAuth::None && file.requires_api_key() {
            self.api_key.clone_from(&file.apikey);
        }
    }
}

/// The original sessman's `sessman.json`. The MongoDB fields are kept for a MongoDB store;
/// only `session_ttl` and the API key matter to the HTTP API. Unknown keys are ignored, as
/// the original passes the whole object to its plugin as keyword arguments.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct SessmanFile {
    /// MongoDB user.
    #[serde(deserialize_with = "de::optional_text")]
    pub username: Option<String>,
    /// MongoDB password.
    #[serde(deserialize_with = "de::optional_text")]
    pub password: Option<String>,
    /// MongoDB `host:port`.
    #[serde(deserialize_with = "de::optional_text")]
    pub server_url: Option<String>,
    /// MongoDB database.
    #[serde(deserialize_with = "de::optional_text")]
    pub database: Option<String>,
    /// MongoDB collection (the original's default: `sessions`).
    #[serde(deserialize_with = "de::optional_text")]
    pub collection: Option<String>,
    /// Session lifetime in seconds.
    pub session_ttl: Option<u64>,
    /// The plugin's auth mode: `plugin` or `global` require `apikey`.
    #[serde(deserialize_with = "de::optional_text")]
    pub auth_type: Option<String>,
    /// The plugin's API key.
    #[serde(deserialize_with = "de::optional_text")]
    pub apikey: Option<String>,
}

impl fmt::Debug for SessmanFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "<redacted>");
        f.debug_struct("SessmanFile")
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("server_url", &self.server_url)
            .field("database", &self.database)
            .field("collection", &self.collection)
            .field("session_ttl", &self.session_ttl)
            .field("auth_type", &self.auth_type)
            .field("apikey", &redacted(&self.apikey))
            .finish()
    }
}

impl SessmanFile {
    /// Reads a `sessman.json`; see [`SessmanFile::parse`].
    pub fn load(path: &std::path::Path) -> Result<SessmanFile, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        SessmanFile::parse(&text, &path.display().to_string())
    }

    /// Parses a `sessman.json`, tolerating trailing commas before `}` and `]` as the
    /// original's parser does (sessman's own example has one).
    ///
    /// # Examples
    /// ```
    /// use sessanger_config::SessmanFile;
    ///
    /// let file = SessmanFile::parse(r#"{"database": "sessman", "session_ttl": 86400,}"#, "sessman.json")?;
    /// assert_eq!(file.session_ttl, Some(86400));
    /// let err = SessmanFile::parse("{\n  \"session_ttl\": \"soon\"\n}", "sessman.json").unwrap_err();
    /// assert!(err.to_string().starts_with("sessman.json:2:"), "{err}");
    /// # Ok::<(), sessanger_config::ConfigError>(())
    /// ```
    pub fn parse(text: &str, origin: &str) -> Result<SessmanFile, ConfigError> {
        // Removing a comma keeps every line and every column before it, so error locations
        // still point into the file as written.
        let cleaned = strip_trailing_commas(text);
        let mut deserializer = serde_json::Deserializer::from_str(&cleaned);
        let (path, error) = match serde_path_to_error::deserialize(&mut deserializer) {
            Ok(file) => match deserializer.end() {
                Ok(()) => return Ok(file),
                Err(error) => (String::new(), error),
            },
            Err(error) => (error.path().to_string(), error.into_inner()),
        };
        let mut message = error.to_string();
        let marker = format!(" at line {} column {}", error.line(), error.column());
        if let Some(at) = message.find(&marker) {
            message.replace_range(at..at + marker.len(), "");
        }
        let known = error.line() != 0;
        Err(ConfigError::Parse {
            origin: origin.to_owned(),
            line: known.then_some(error.line()),
            column: known.then_some(error.column()),
            path: if path == "." { String::new() } else { path },
            message,
            source: Box::new(error),
        })
    }

    fn requires_api_key(&self) -> bool {
        matches!(self.auth_type.as_deref().map(str::to_ascii_lowercase).as_deref(), Some("plugin" | "global"))
    }
}

/// `text` without the commas that directly precede (whitespace aside) a `}` or `]`, outside
/// strings.
fn strip_trailing_commas(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut pending: Option<usize> = None;
    for c in text.chars() {
        if in_string {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            out.push(c);
            continue;
        }
        match c {
            '}' | ']' => {
                if let Some(at) = pending.take() {
                    out.remove(at);
                }
            }
            ',' => pending = Some(out.len()),
            c if c.is_whitespace() => {}
            _ => pending = None,
        }
        if c == '"' {
            in_string = true;
        }
        out.push(c);
    }
    out
}

fn optional_path<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<PathBuf>, D::Error> {
    Ok(de::optional_text(deserializer)?.map(PathBuf::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailing_commas_go_only_outside_strings() {
        assert_eq!(strip_trailing_commas("{\"a\": [1, 2,],\n}"), "{\"a\": [1, 2]\n}");
        assert_eq!(strip_trailing_commas(r#"{"a": ",}", "b": "\",]"}"#), r#"{"a": ",}", "b": "\",]"}"#);
        assert_eq!(strip_trailing_commas("[1, 2]"), "[1, 2]");
    }
}
