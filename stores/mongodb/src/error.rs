//! The mapping of driver errors onto [`StoreError`], and the error codes the store branches on.

use mongodb::error::{Error, ErrorKind, WriteFailure};
use sessanger_core::StoreError;

/// `DuplicateKey`: an insert hit a taken `_id`.
const DUPLICATE_KEY: i32 = 11000;
/// `NamespaceExists`: the collection is already there.
const NAMESPACE_EXISTS: i32 = 48;

/// Server error codes that mean "this node cannot serve now; another may, or this one later":
/// `HostUnreachable`, `HostNotFound`, `NetworkTimeout`, `ShutdownInProgress`,
/// `PrimarySteppedDown`, `ExceededTimeLimit`, `SocketException`, `NotWritablePrimary`,
/// `InterruptedAtShutdown`, `InterruptedDueToReplStateChange`, `NotPrimaryNoSecondaryOk`,
/// `NotPrimaryOrSecondary`, `LockTimeout`.
const UNAVAILABLE_CODES: &[i32] = &[6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 24];

/// A driver error as a store error, keeping it as the source. Failures to reach a usable
/// server (I/O, no server selectable in time, a pool cleared after a network error, a primary
/// stepping down, a server shutting down) are [`StoreError::Unavailable`]: retrying later may
/// succeed, and the HTTP server answers 503. Anything else is [`StoreError::Other`].
pub(crate) fn store_error(error: Error) -> StoreError {
    if is_unavailable(&error) { StoreError::Unavailable(error.into()) } else { StoreError::Other(error.into()) }
}

fn is_unavailable(error: &Error) -> bool {
    match error.kind.as_ref() {
        ErrorKind::Io(_) | ErrorKind::ServerSelection { .. } | ErrorKind::ConnectionPoolCleared { .. } => true,
        ErrorKind::Command(command) => UNAVAILABLE_CODES.contains(&command.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(concern)) => UNAVAILABLE_CODES.contains(&concern.code),
        _ => false,
    }
}

/// The server's error code, whichever way the driver reports it.
fn code(error: &Error) -> Option<i32> {
    match error.kind.as_ref() {
        ErrorKind::Command(command) => Some(command.code),
        ErrorKind::Write(WriteFailure::WriteError(write)) => Some(write.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(concern)) => Some(concern.code),
        _ => None,
    }
}

/// Whether an insert failed because the `_id` is taken.
pub(crate) fn is_duplicate_key(error: &Error) -> bool {
    code(error) == Some(DUPLICATE_KEY)
}

/// Whether creating a collection failed because it exists.
pub(crate) fn is_namespace_exists(error: &Error) -> bool {
    code(error) == Some(NAMESPACE_EXISTS)
}

#[cfg(test)]
mod tests {
    use mongodb::{
        bson::{deserialize_from_document, doc},
        error::{CommandError, WriteError},
    };

    use super::*;

    fn command(code: i32) -> Error {
        let command: CommandError =
            deserialize_from_document(doc! { "code": code, "codeName": "X", "errmsg": "x" }).unwrap();
        Error::from(ErrorKind::Command(command))
    }

    fn write(code: i32) -> Error {
        let write: WriteError = deserialize_from_document(doc! { "code": code, "errmsg": "x" }).unwrap();
        Error::from(ErrorKind::Write(WriteFailure::WriteError(write)))
    }

    #[test]
    fn an_unreachable_server_is_unavailable() {
        let io = Error::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(store_error(io), StoreError::Unavailable(_)));
        let timeout = Error::from(std::io::Error::from(std::io::ErrorKind::TimedOut));
        assert!(matches!(store_error(timeout), StoreError::Unavailable(_)));
        assert!(matches!(store_error(command(189)), StoreError::Unavailable(_)), "PrimarySteppedDown");
        assert!(matches!(store_error(command(10107)), StoreError::Unavailable(_)), "NotWritablePrimary");
    }

    #[test]
    fn other_failures_are_other_errors_with_their_source() {
        let failed = store_error(command(2));
        assert!(matches!(failed, StoreError::Other(_)));
        assert!(std::error::Error::source(&failed).is_some());
        assert!(matches!(store_error(write(11000)), StoreError::Other(_)), "a duplicate key nobody expected");
        assert!(matches!(store_error(Error::custom("a callback's own error")), StoreError::Other(_)));
    }

    #[test]
    fn a_taken_id_is_recognised_by_its_code() {
        assert!(is_duplicate_key(&write(11000)));
        assert!(!is_duplicate_key(&write(2)));
        assert!(!is_duplicate_key(&command(48)));
        assert!(is_namespace_exists(&command(48)));
    }
}
