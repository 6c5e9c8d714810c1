//! Replays the versioned body decoder's fuzz corpus (`fuzz/corpus/versioned_body`) and
//! seeded mutations of it in the normal test suite, through the fuzz target's entry
//! point: every input ends in the type or a typed error, never a panic. The committed
//! corpus is the seeds `__fuzz::versioned_body_seeds` makes; `GRANARY_WRITE_CORPUS=1`
//! rewrites it.

use std::path::PathBuf;

use granary_remote::__fuzz::{corpus, mutations, versioned_body, versioned_body_seeds};
use granary_remote::CodecError;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_seeds_decode_or_are_refused_by_version() {
    let seeds = versioned_body_seeds();
    let (valid, versions) = seeds.split_at(seeds.len() - 2);
    for seed in valid {
        versioned_body(seed).unwrap_or_else(|e| panic!("{seed:?}: {e}"));
    }
    assert!(
        matches!(
            versioned_body(&versions[0]),
            Err(CodecError::TooNew {
                theirs: 9,
                ours: 3,
                ..
            })
        ),
        "{:?}",
        versioned_body(&versions[0])
    );
    assert!(
        matches!(
            versioned_body(&versions[1]),
            Err(CodecError::TooOld {
                theirs: 1,
                ours: 3,
                ..
            })
        ),
        "{:?}",
        versioned_body(&versions[1])
    );
}

#[test]
fn the_committed_corpus_is_the_seeds_and_its_mutations_never_panic() {
    let seeds = versioned_body_seeds();
    let dir = root().join("fuzz/corpus/versioned_body");
    if std::env::var("GRANARY_WRITE_CORPUS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (i, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed).expect("write seed");
        }
    }
    let committed = corpus(&root(), "versioned_body").expect("the committed corpus");
    assert_eq!(committed, seeds, "regenerate with GRANARY_WRITE_CORPUS=1");
    let mut malformed = 0;
    mutations(&committed, 17, 20_000, |input| {
        if let Err(CodecError::Decode { .. }) = versioned_body(input) {
            malformed += 1;
        }
    });
    // The mutations reach the decoder's error paths, not only the happy one.
    assert!(
        malformed > 1_000,
        "only {malformed} malformed inputs of 20,000"
    );
}
