//! Replays the `gossip` fuzz target's corpus (`fuzz/corpus/gossip`) in the normal test
//! suite, through the same steps as the target (`fuzz/fuzz_targets/gossip.rs`): the
//! registered `ClusterFrame` and `RelayFrame` bodies and a bare `Envelope`, plus seeded
//! mutations of the corpus and of real gossip built here. Every input decodes or gives a
//! typed error; none panics.

use std::path::PathBuf;

use granary_cluster::transport::remote::{ClusterFrame, RelayFrame};
use granary_cluster::{ClusterMessage, Envelope, NodeId};
use granary_remote::{type_tag, Registry};

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
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    granary_remote::__fuzz::corpus(&root, "gossip")
        .unwrap_or_else(|e| panic!("the gossip corpus under {}: {e}", root.display()))
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
    granary_remote::__fuzz::mutations(&inputs, 0x676f_7373, 20_000, |data| {
        run(data);
    });
}
