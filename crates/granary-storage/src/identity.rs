//! The identity state is stored under.

use std::fmt;
use std::sync::Arc;

/// Who a piece of state belongs to: an actor kind (type name) and a key within it.
///
/// Virtual actors are addressed as `kind/key` (`Counter/user-42`); `Display` prints
/// that form. Both parts are free text: providers store them separately (SQL
/// columns) or length-prefixed (Redis keys), so a `/` inside the key is fine.
///
/// ```
/// use granary_storage::Identity;
/// let id = Identity::new("Counter", "user-42");
/// assert_eq!(id.to_string(), "Counter/user-42");
/// assert_eq!(id.kind(), "Counter");
/// ```
///
/// Cloning is cheap (two reference counts, no copy): one identity is held by the
/// directory, the local table, the location cache and every message on its way.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    kind: Arc<str>,
    key: Arc<str>,
}

impl Identity {
    /// An identity from its kind and key.
    pub fn new(kind: impl Into<String>, key: impl Into<String>) -> Self {
        Identity {
            kind: Arc::from(kind.into()),
            key: Arc::from(key.into()),
        }
    }

    /// The actor kind.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The key within the kind.
    pub fn key(&self) -> &str {
        &self.key
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.key)
    }
}
