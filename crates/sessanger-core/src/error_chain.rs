//! [`error_chain`]: an error with its causes, for the places that can keep only one string
//! (a log field, a tower-sessions error, a test's message).

/// `outer: cause: root cause`, each `source` after a colon.
///
/// # Examples
/// ```
/// let error = sessanger_core::StoreError::Unavailable("connection refused".into());
/// assert_eq!(sessanger_core::error_chain(&error), "session store unavailable: connection refused");
/// ```
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    chain
}
