//! Replays the `virtual_control` fuzz target's corpus (`fuzz/corpus/virtual_control`) in
//! the normal test suite, through the same steps as the target
//! (`fuzz/fuzz_targets/virtual_control.rs`): a `ControlFrame` body decoded through the
//! message registry, as a node decodes it off the wire; plus seeded mutations. Every input
//! decodes or gives a typed error; none panics.

use std::path::PathBuf;

use granary_remote::{type_tag, Registry};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const CONTROL_FRAME: &str = "granary.virtual.ControlFrame";

fn run(data: &[u8]) -> bool {
    let registry = Registry::global().expect("registry");
    registry.decode(type_tag(CONTROL_FRAME), data).is_ok()
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/virtual_control");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
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
    let mut rng = StdRng::seed_from_u64(0x7669_7274);
    for _ in 0..20_000 {
        let mut data = inputs[rng.random_range(0..inputs.len())].clone();
        for _ in 0..rng.random_range(1..5) {
            match rng.random_range(0..3) {
                0 if !data.is_empty() => {
                    let i = rng.random_range(0..data.len());
                    data[i] = rng.random();
                }
                1 if !data.is_empty() => data.truncate(rng.random_range(0..data.len())),
                _ => data.extend((0..rng.random_range(0..16)).map(|_| rng.random::<u8>())),
            }
        }
        run(&data);
    }
}
