//! The one error type every provider returns.

use std::fmt;
use std::time::Duration;

use crate::Version;

/// Which part of a store URL was wrong (carried by [`StorageError::InvalidUrl`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UrlPart {
    /// The whole text is not a URL, or its scheme is unknown (`mysql://…`, `""`).
    Scheme,
    /// The host name or address (`postgres:///db`, `redis://[::1/`).
    Host,
    /// The port (`postgres://127.0.0.1:99999/test`).
    Port,
    /// The user name or password.
    Credentials,
    /// The path: the database file for `file:`, the database name for `postgres://`,
    /// the database number for `redis://`.
    Path,
    /// The query string (`?…`): an unsupported or malformed parameter.
    Query,
}

impl fmt::Display for UrlPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlPart::Scheme => "scheme",
            UrlPart::Host => "host",
            UrlPart::Port => "port",
            UrlPart::Credentials => "credentials",
            UrlPart::Path => "path",
            UrlPart::Query => "query",
        })
    }
}

/// Everything that can go wrong talking to a [`StateStore`](crate::StateStore).
///
/// The variants are what a caller acts on: `Conflict` means "re-read and retry (or
/// give up: somebody else owns this identity)", `Unavailable` and `Timeout` mean
/// "the store could not answer, try later", `Corrupt` means "the stored bytes are
/// not what they should be", and the `Invalid*` variants mean "fix the input".
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The expected version did not match the stored one (optimistic concurrency).
    /// `current` is the version of the live state at the time of the check, or
    /// `None` when the identity has no live state.
    #[error("version conflict: the stored version is {}", display_version(.current))]
    Conflict {
        /// The version the store holds now (`None`: no live state).
        current: Option<Version>,
    },
    /// The store could not be reached or refused the operation (connection refused,
    /// connect timed out, file locked by another process past the busy timeout,
    /// server shutting down, disk full, ...).
    #[error("store unavailable: {reason}")]
    Unavailable {
        /// What failed, in words.
        reason: String,
    },
    /// Stored data could not be understood: a database file that is not a database,
    /// a version field that is not a number, state bytes that do not decode.
    #[error("corrupt data: {reason}")]
    Corrupt {
        /// What was wrong with the data.
        reason: String,
    },
    /// The operation did not finish within the configured operation timeout. It may
    /// or may not have taken effect: read the identity to find out.
    #[error("{operation} timed out after {after:?}")]
    Timeout {
        /// The operation that timed out (`"read"`, `"write"`, ...).
        operation: &'static str,
        /// The configured limit that ran out.
        after: Duration,
    },
    /// A store URL could not be used; `part` names the part that is wrong.
    #[error("invalid store URL: the {part} is wrong: {reason}")]
    InvalidUrl {
        /// The wrong part of the URL.
        part: UrlPart,
        /// Why it is wrong.
        reason: String,
    },
    /// An option or argument is out of range (a namespace with bad characters, a
    /// reminder due before 1970, ...).
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// The option or argument.
        what: &'static str,
        /// Why it is wrong.
        reason: String,
    },
    /// Typed state was stored by a newer build whose schema this build does not know.
    #[error("stored state has schema version {stored}, newer than the {supported} this build understands")]
    SchemaTooNew {
        /// The schema version found in the store.
        stored: u32,
        /// The newest schema version this build knows.
        supported: u32,
    },
    /// Typed state could not be encoded.
    #[error("could not encode state: {reason}")]
    Encode {
        /// The serializer's message.
        reason: String,
    },
}

fn display_version(v: &Option<Version>) -> String {
    match v {
        Some(v) => v.to_string(),
        None => "none (no live state)".to_owned(),
    }
}

impl StorageError {
    /// Shorthand for [`StorageError::Unavailable`].
    pub(crate) fn unavailable(reason: impl Into<String>) -> Self {
        StorageError::Unavailable {
            reason: reason.into(),
        }
    }

    /// Shorthand for [`StorageError::Corrupt`].
    pub(crate) fn corrupt(reason: impl Into<String>) -> Self {
        StorageError::Corrupt {
            reason: reason.into(),
        }
    }

    /// Shorthand for [`StorageError::InvalidUrl`].
    pub(crate) fn url(part: UrlPart, reason: impl Into<String>) -> Self {
        StorageError::InvalidUrl {
            part,
            reason: reason.into(),
        }
    }

    /// True for `Conflict`: the caller should re-read before trying again.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StorageError::Conflict { .. })
    }
}
