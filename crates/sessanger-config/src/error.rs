//! [`ConfigError`]: every message starts with `file:line:column:` when a place in the file is
//! known, then the key path, so an operator can jump straight to the mistake.

use std::{fmt, path::PathBuf};

use sessanger_core::BoxError;

/// Why a config file was refused.
///
/// Display is `FILE:LINE:COLUMN: KEY.PATH: MESSAGE`; the line and column are left out when no
/// place in the file is known (semantic checks that span several keys), and the key path when
/// the error is about the whole file. Columns count characters of the file as written, before
/// `${VAR}` expansion.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read the config file", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why reading failed.
        #[source]
        source: std::io::Error,
    },
    /// The file name's extension names no format this crate reads.
    #[error("{}: unknown config format: the file name must end in .yaml, .yml or .json", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// `${NAME}` names a variable that is not set, and gives no default.
    #[error(
        "{origin}:{line}:{column}: environment variable `{name}` is not set (write ${{{name}:-default}} to give it a default)"
    )]
    MissingVariable {
        /// The file.
        origin: String,
        /// 1-based line of the placeholder.
        line: usize,
        /// 1-based column of its `$`.
        column: usize,
        /// The variable.
        name: String,
    },
    /// A variable's value holds a line break, which would shift every later line of the file.
    #[error(
        "{origin}:{line}:{column}: environment variable `{name}` holds a line break; config values must fit on one line"
    )]
    MultilineVariable {
        /// The file.
        origin: String,
        /// 1-based line of the placeholder.
        line: usize,
        /// 1-based column of its `$`.
        column: usize,
        /// The variable.
        name: String,
    },
    /// `${` opens something that is not a well-formed placeholder.
    #[error("{origin}:{line}:{column}: {message}")]
    Placeholder {
        /// The file.
        origin: String,
        /// 1-based line of the `${`.
        line: usize,
        /// 1-based column of its `$`.
        column: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The text is not valid YAML or JSON, or does not fit the config's shape (unknown key,
    /// wrong type, bad duration…).
    #[error("{origin}{}: {}{message}", Place(*.line, *.column), KeyPrefix(.path))]
    Parse {
        /// The file.
        origin: String,
        /// 1-based line, when the parser knows it.
        line: Option<usize>,
        /// 1-based column, when the parser knows it.
        column: Option<usize>,
        /// The key path (`session.ttl`, `broker.routing_keys.sessanger1[0]`); empty for the
        /// top level.
        path: String,
        /// The parser's message without its own location.
        message: String,
        /// The YAML or JSON parser's error.
        #[source]
        source: BoxError,
    },
    /// The file parses but its values do not make sense together.
    #[error("{origin}: {path}: {message}")]
    Invalid {
        /// The file.
        origin: String,
        /// The key path of the offending value.
        path: String,
        /// What is wrong.
        message: String,
    },
}

impl ConfigError {
    /// The key path the error is about, if it is about one.
    pub fn key_path(&self) -> Option<&str> {
        match self {
            ConfigError::Parse { path, .. } | ConfigError::Invalid { path, .. } if !path.is_empty() => Some(path),
            _ => None,
        }
    }

    /// The 1-based line of the file the error points at, if known.
    pub fn line(&self) -> Option<usize> {
        match self {
            ConfigError::MissingVariable { line, .. }
            | ConfigError::MultilineVariable { line, .. }
            | ConfigError::Placeholder { line, .. } => Some(*line),
            ConfigError::Parse { line, .. } => *line,
            _ => None,
        }
    }
}

/// `:LINE:COLUMN`, or nothing.
struct Place(Option<usize>, Option<usize>);

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(line), Some(column)) => write!(f, ":{line}:{column}"),
            (Some(line), None) => write!(f, ":{line}"),
            _ => Ok(()),
        }
    }
}

/// `KEY.PATH: `, or nothing at the top level.
struct KeyPrefix<'a>(&'a str);

impl fmt::Display for KeyPrefix<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() { Ok(()) } else { write!(f, "{}: ", self.0) }
    }
}
