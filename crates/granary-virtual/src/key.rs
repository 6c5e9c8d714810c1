//! [`Key`]: the key half of a virtual actor's identity (string, integer — `i64`, `u64`,
//! `i32`, `u32` — or UUID).

use std::fmt::Debug;

use uuid::Uuid;

use crate::error::VirtualError;

/// A key type for virtual actors. Keys travel as text (`kind/key` identities), so a
/// key must round-trip through [`Key::to_key_string`] and [`Key::parse_key`].
///
/// ```
/// use granary_virtual::Key;
/// assert_eq!(42i64.to_key_string(), "42");
/// assert_eq!(i64::parse_key("42").unwrap(), 42);
/// assert!(i64::parse_key("x").is_err());
/// ```
pub trait Key: Clone + Debug + Send + Sync + 'static {
    /// The key as text.
    fn to_key_string(&self) -> String;
    /// Parses a key written by [`Key::to_key_string`].
    fn parse_key(text: &str) -> Result<Self, VirtualError>;
}

impl Key for String {
    fn to_key_string(&self) -> String {
        self.clone()
    }
    fn parse_key(text: &str) -> Result<Self, VirtualError> {
        Ok(text.to_owned())
    }
}

/// The integer key types: written in decimal, parsed back strictly (a key that does not
/// fit the type is a [`VirtualError::BadKey`]).
macro_rules! integer_keys {
    ($($int:ty),*) => {$(
        impl Key for $int {
            fn to_key_string(&self) -> String {
                self.to_string()
            }
            fn parse_key(text: &str) -> Result<Self, VirtualError> {
                text.parse().map_err(|_| VirtualError::BadKey {
                    key: text.to_owned(),
                    expected: stringify!($int),
                })
            }
        }
    )*};
}

integer_keys!(i64, u64, i32, u32);

impl Key for Uuid {
    fn to_key_string(&self) -> String {
        self.hyphenated().to_string()
    }
    fn parse_key(text: &str) -> Result<Self, VirtualError> {
        Uuid::parse_str(text).map_err(|_| VirtualError::BadKey {
            key: text.to_owned(),
            expected: "uuid",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_type_round_trips_through_text() {
        let u = Uuid::new_v4();
        assert_eq!(Uuid::parse_key(&u.to_key_string()).unwrap(), u);
        assert_eq!(i64::parse_key(&(-7i64).to_key_string()).unwrap(), -7);
        assert_eq!(String::parse_key("a/b").unwrap(), "a/b");
        assert_eq!(u64::parse_key(&u64::MAX.to_key_string()).unwrap(), u64::MAX);
        assert_eq!(i32::parse_key(&i32::MIN.to_key_string()).unwrap(), i32::MIN);
        assert_eq!(u32::parse_key("7").unwrap(), 7);
        assert!(matches!(
            u64::parse_key("-1"),
            Err(VirtualError::BadKey {
                expected: "u64",
                ..
            })
        ));
        assert!(matches!(
            u32::parse_key(&u64::MAX.to_key_string()),
            Err(VirtualError::BadKey {
                expected: "u32",
                ..
            })
        ));
        assert!(matches!(
            Uuid::parse_key("nope"),
            Err(VirtualError::BadKey {
                expected: "uuid",
                ..
            })
        ));
    }
}
