//! The point of a contract crate: this client builds without the implementation.
//! `cargo tree` lists what `counter-client` links (normal and build dependencies),
//! and the implementation, `counter-host`, must not be among them.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

/// The packages `package` links, by name (its own name included).
fn linked_packages(package: &str) -> BTreeSet<String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../..");
    let out = Command::new(env!("CARGO"))
        .current_dir(&workspace)
        .args(["tree", "--offline", "-p", package])
        .args([
            "--edges",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_client_links_the_contract_and_not_the_implementation() {
    let client = linked_packages("counter-client");
    assert!(client.contains("counter-api"), "{client:?}");
    assert!(client.contains("granary-rs"), "{client:?}");
    assert!(
        !client.contains("counter-host"),
        "counter-client links the implementation: {client:?}"
    );
    // The same query sees the implementation where it is linked, so the check above
    // is not vacuous.
    let host = linked_packages("counter-host");
    assert!(host.contains("counter-api"), "{host:?}");
    assert!(host.contains("counter-host"), "{host:?}");
}

#[test]
fn the_client_links_no_optional_part_of_granary() {
    let client = linked_packages("counter-client");
    for optional in [
        "granary-crdt",
        "granary-devices",
        "granary-admin",
        "tokio-postgres",
    ] {
        assert!(!client.contains(optional), "{optional} in {client:?}");
    }
}
