//! Versions (ETags) and what a read returns.

use std::fmt;

use bytes::Bytes;

/// The version (ETag) of one identity's stored state.
///
/// Versions start at 1 with the first write and grow by one with every write and
/// every clear of that identity, so a version is never reused: a writer holding a
/// version from before a clear cannot overwrite the state written after it.
///
/// ```
/// use granary_storage::Version;
/// let v = Version::from_raw(3).unwrap();
/// assert_eq!(v.get(), 3);
/// assert_eq!(v.to_string(), "v3");
/// assert!(Version::from_raw(0).is_none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(u64);

impl Version {
    /// The version of the first write of an identity.
    pub const FIRST: Version = Version(1);

    /// Rebuilds a version from its number (for example one kept in a message);
    /// `None` for 0, which no version ever has.
    pub fn from_raw(raw: u64) -> Option<Version> {
        (raw > 0).then_some(Version(raw))
    }

    /// The version's number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The version after this one.
    pub(crate) fn next(self) -> Version {
        Version(self.0 + 1)
    }

    /// Reads a version from a database integer, rejecting what no store writes.
    pub(crate) fn from_stored(raw: i64) -> Result<Version, crate::StorageError> {
        u64::try_from(raw)
            .ok()
            .and_then(Version::from_raw)
            .ok_or_else(|| {
                crate::StorageError::corrupt(format!("stored version {raw} is not positive"))
            })
    }

    /// The version as a database integer.
    pub(crate) fn to_stored(self) -> i64 {
        // Versions grow by one per write; 2^63 writes to one identity cannot happen.
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "v{}", self.0)
    }
}

/// The live state of one identity: its bytes and their version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The state bytes exactly as written.
    pub data: Bytes,
    /// The version to pass as `expected` to the next write or clear.
    pub version: Version,
}
