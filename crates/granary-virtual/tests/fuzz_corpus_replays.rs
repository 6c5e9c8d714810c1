//! Replays the `virtual_control` fuzz target's corpus (`fuzz/corpus/virtual_control`) in
//! the normal test suite, through the same steps as the target
//! (`fuzz/fuzz_targets/virtual_control.rs`): a `ControlFrame` body decoded through the
//! message registry, as a node decodes it off the wire; plus seeded mutations. Every input
//! decodes or gives a typed error; none panics.

use std::path::PathBuf;

use granary_remote::{type_tag, Registry};

const CONTROL_FRAME: &str = "granary.virtual.ControlFrame";

fn run(data: &[u8]) -> bool {
    let registry = Registry::global().expect("registry");
    registry.decode(type_tag(CONTROL_FRAME), data).is_ok()
}

fn corpus() -> Vec<Vec<u8>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    granary_remote::__fuzz::corpus(&root, "virtual_control")
        .unwrap_or_else(|e| panic!("the virtual_control corpus under {}: {e}", root.display()))
}

#[test]
fn control_corpus_decodes_or_fails_typed() {
    // Naming the type links granary-virtual, whose registration the decode needs.
    let name = std::any::type_name::<granary_virtual::ControlFrame>();
    let registry = Registry::global().expect("registry");
    assert!(
        registry.by_tag(type_tag(CONTROL_FRAME)).is_some(),
        "{name} is not registered"
    );
    let files = corpus();
    assert!(
        files.len() >= 100,
        "virtual_control corpus has {} inputs",
        files.len()
    );
    let decoded = files.iter().filter(|data| run(data)).count();
    // The corpus holds real control frames (kept by the fuzzer for their coverage), not
    // only garbage: some must decode.
    assert!(decoded > 0, "no input of the corpus decodes");
}

#[test]
fn seeded_mutations_of_control_frames_never_panic() {
    let inputs = corpus();
    granary_remote::__fuzz::mutations(&inputs, 0x7669_7274, 20_000, |data| {
        run(data);
    });
}
