//! Two types registered under one name with the macro are reported at start-up.

use granary_remote::{register_message, Conflict, Registry};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct First(u32);
#[derive(Serialize, Deserialize)]
struct Second(String);
#[derive(Serialize, Deserialize)]
struct Fine;

register_message!(First, "dup.Name");
register_message!(Second, "dup.Name");
register_message!(Fine, "dup.Fine");

#[test]
fn duplicate_link_time_registrations_fail_the_build_with_both_types_named() {
    let err = Registry::build().unwrap_err();
    assert_eq!(err.conflicts.len(), 1, "{err}");
    match &err.conflicts[0] {
        Conflict::DuplicateName { name, types } => {
            assert_eq!(name, "dup.Name");
            assert!(types.iter().any(|t| t.ends_with("First")));
            assert!(types.iter().any(|t| t.ends_with("Second")));
        }
        other => panic!("unexpected conflict {other}"),
    }
    assert!(Registry::global().is_err());
}
