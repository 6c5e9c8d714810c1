//! [`DeviceId`]: the name a device is known by in the cluster.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::DeviceError;

/// Longest accepted device id, in bytes.
pub const MAX_DEVICE_ID_LEN: usize = 256;

/// A device's name: 1 to [`MAX_DEVICE_ID_LEN`] bytes, no `/` and no control characters
/// (the id becomes part of actor names such as `granary.devices/<id>/<name>`, so a `/`
/// would make two devices' names collide).
///
/// The id is also the key of the hash ring: the server owning it on the ring tracks the
/// device. Ids that arrive from the wire are checked the same way.
///
/// ```
/// use granary_devices::DeviceId;
/// let id: DeviceId = "sensor-7".parse().unwrap();
/// assert_eq!(id.as_str(), "sensor-7");
/// assert!("a/b".parse::<DeviceId>().is_err());
/// assert!("".parse::<DeviceId>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

impl DeviceId {
    /// Checks `id` and wraps it.
    pub fn new(id: impl Into<String>) -> Result<Self, DeviceError> {
        let id = id.into();
        let valid = !id.is_empty()
            && id.len() <= MAX_DEVICE_ID_LEN
            && !id.chars().any(|c| c == '/' || c.is_control());
        if valid {
            Ok(Self(id))
        } else {
            Err(DeviceError::InvalidId(id))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key this device has on the hash ring.
    pub(crate) fn ring_key(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl FromStr for DeviceId {
    type Err = DeviceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for DeviceId {
    type Error = DeviceError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<DeviceId> for String {
    fn from(id: DeviceId) -> Self {
        id.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_from_the_wire_are_checked_like_local_ones() {
        let good = postcard::to_allocvec(&"meter-1".to_string()).expect("encode");
        let id: DeviceId = postcard::from_bytes(&good).expect("decode");
        assert_eq!(id.as_str(), "meter-1");
        let bad = postcard::to_allocvec(&"x/y".to_string()).expect("encode");
        assert!(postcard::from_bytes::<DeviceId>(&bad).is_err());
        let long = "x".repeat(MAX_DEVICE_ID_LEN + 1);
        assert!(DeviceId::new(long).is_err());
        assert!(DeviceId::new("tab\there").is_err());
    }
}
