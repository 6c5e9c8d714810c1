//! The identity state is stored under.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
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
///
/// A table keyed by `Identity` can be searched with borrowed parts, without building
/// one: `map.get(&("Counter", "user-42") as &dyn IdentityParts)` (see
/// [`IdentityParts`]).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Identity {
    kind: Arc<str>,
    key: Arc<str>,
}

impl Identity {
    /// An identity from its kind and key (one allocation for each).
    pub fn new(kind: impl AsRef<str>, key: impl AsRef<str>) -> Self {
        Identity {
            kind: Arc::from(kind.as_ref()),
            key: Arc::from(key.as_ref()),
        }
    }

    /// An identity of a kind whose name is already shared (a host keeps one per
    /// kind): one allocation, for the key.
    pub fn of_kind(kind: &Arc<str>, key: impl AsRef<str>) -> Self {
        Identity {
            kind: kind.clone(),
            key: Arc::from(key.as_ref()),
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

impl Hash for Identity {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_parts(&self.kind, &self.key, state);
    }
}

/// The one way an identity's parts are hashed, owned or borrowed (the two must agree
/// for [`Borrow`]).
fn hash_parts<H: Hasher>(kind: &str, key: &str, state: &mut H) {
    kind.hash(state);
    key.hash(state);
}

/// An identity's kind and key, borrowed: what a table keyed by [`Identity`] can be
/// searched with, without allocating (an `Identity` is one; so is a `(&str, &str)`
/// pair of kind and key).
///
/// ```
/// use std::collections::HashMap;
/// use granary_storage::{Identity, IdentityParts};
/// let mut table = HashMap::new();
/// table.insert(Identity::new("Counter", "user-42"), 7);
/// assert_eq!(table.get(&("Counter", "user-42") as &dyn IdentityParts), Some(&7));
/// ```
pub trait IdentityParts {
    /// The actor kind.
    fn kind(&self) -> &str;
    /// The key within the kind.
    fn key(&self) -> &str;
}

impl IdentityParts for Identity {
    fn kind(&self) -> &str {
        &self.kind
    }
    fn key(&self) -> &str {
        &self.key
    }
}

impl IdentityParts for (&str, &str) {
    fn kind(&self) -> &str {
        self.0
    }
    fn key(&self) -> &str {
        self.1
    }
}

impl Hash for dyn IdentityParts + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_parts(self.kind(), self.key(), state);
    }
}

impl PartialEq for dyn IdentityParts + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.kind() == other.kind() && self.key() == other.key()
    }
}

impl Eq for dyn IdentityParts + '_ {}

impl<'a> Borrow<dyn IdentityParts + 'a> for Identity {
    fn borrow(&self) -> &(dyn IdentityParts + 'a) {
        self
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::hash_map::DefaultHasher;

    fn hash_of<T: Hash + ?Sized>(t: &T) -> u64 {
        let mut h = DefaultHasher::new();
        t.hash(&mut h);
        h.finish()
    }

    #[test]
    fn an_identity_and_its_borrowed_parts_hash_and_compare_alike() {
        let id = Identity::new("bank.Account", "a/b");
        let parts: &dyn IdentityParts = &("bank.Account", "a/b");
        assert_eq!(hash_of(&id), hash_of(parts));
        assert_eq!(
            hash_of(Borrow::<dyn IdentityParts>::borrow(&id)),
            hash_of(parts)
        );
        assert!(Borrow::<dyn IdentityParts>::borrow(&id) == parts);
        // The split matters: "ab"/"c" is not "a"/"bc".
        let other: &dyn IdentityParts = &("bank.Accoun", "ta/b");
        assert!(parts != other);
        let mut table = std::collections::HashMap::new();
        table.insert(id.clone(), 1);
        assert_eq!(table.get(parts), Some(&1));
        assert_eq!(table.get(other), None);
    }

    #[test]
    fn an_identity_of_a_shared_kind_is_the_same_identity() {
        let kind: Arc<str> = Arc::from("Counter");
        assert_eq!(Identity::of_kind(&kind, "k"), Identity::new("Counter", "k"));
    }
}
