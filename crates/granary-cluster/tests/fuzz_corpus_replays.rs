//! Replays the `gossip` fuzz target's corpus (`fuzz/corpus/gossip`) in the normal test
//! suite, through the same steps as the target (`fuzz/fuzz_targets/gossip.rs`): the
//! registered `ClusterFrame` and `RelayFrame` bodies and a bare `Envelope`, plus seeded
//! mutations of the corpus and of real gossip built here. Every input decodes or gives a
//! typed error; none panics.

use std::path::PathBuf;

use granary_cluster::transport::remote::{ClusterFrame, RelayFrame};
use granary_cluster::{ClusterMessage, Envelope, NodeId};
use granary_remote::{type_tag, Registry};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The fuzz target's body; whether any of the three decodes succeeded.
fn run(data: &[u8]) -> bool {
    let registry = Registry::global().expect("registry");
    let mut decoded = false;
    for name in ["granary.cluster.ClusterFrame", "granary.cluster.RelayFrame"] {
        decoded |= registry.decode(type_tag(name), data).is_ok();
    }
    decoded | postcard::from_bytes::<Envelope>(data).is_ok()
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/gossip");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus at {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// Real gossip, encoded as the wire carries it.
fn seeds() -> Vec<Vec<u8>> {
    let from = NodeId::new("127.0.0.1:4000".parse().unwrap(), 7);
    let envelope = |message| Envelope { from, message };
    let registry = Registry::global().expect("registry");
    let mut out = Vec::new();
    for message in [
        ClusterMessage::Heartbeat { seq: 42 },
        ClusterMessage::HeartbeatAck { seq: 42 },
        ClusterMessage::Gossip {
            state_hash: 0xfeed,
            deltas: Vec::new(),
        },
    ] {
        let frame = ClusterFrame(envelope(message));
        out.push(registry.encode(&frame).unwrap().1.to_vec());
        out.push(postcard::to_allocvec(&frame.0).unwrap());
    }
    let relay = RelayFrame {
        target: "127.0.0.1:4001".parse().unwrap(),
        actor: "counter".into(),
        type_tag: 9,
        body: vec![1, 2, 3],
        channel: Some("gossip".into()),
        partition_key: Some(3),
    };
    out.push(registry.encode(&relay).unwrap().1.to_vec());
    out
}

#[test]
fn gossip_corpus_and_real_gossip_decode_or_fail_typed() {
    let files = corpus();
    assert!(
        files.len() >= 100,
        "gossip corpus has {} inputs",
        files.len()
    );
    for data in &files {
        run(data);
    }
    for seed in seeds() {
        assert!(run(&seed), "real gossip must decode: {seed:?}");
    }
}

#[test]
fn seeded_mutations_of_gossip_never_panic() {
    let mut inputs = corpus();
    inputs.extend(seeds());
    let mut rng = StdRng::seed_from_u64(0x676f_7373);
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
