//! A client with bad credentials gets a typed error, each refusal is logged once on
//! each side, and the node goes on serving: a wrong secret, a certificate from another
//! CA, plain TCP to a TLS port.
#![cfg(feature = "tls")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use granary_core::RemoteError;
use granary_virtual::prelude::*;
use granary_virtual::{ClientBuilder, ClientConfig, NodeBuilder, NodeConfig, Secret, TlsSettings};

#[path = "../src/bin/granary-virtual-node/demo_counter.rs"]
mod demo_counter;

use demo_counter::{Counter, Increment};

const WAIT: Duration = Duration::from_secs(10);

/// Counts WARN lines about refusals (the only subscriber of this test binary): the
/// client's ("peer refused", its dialled connection) and the node's ("refused inbound
/// connection").
struct RefusalLines {
    client: Arc<AtomicUsize>,
    node: Arc<AtomicUsize>,
}

struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl tracing::Subscriber for RefusalLines {
    fn enabled(&self, metadata: &tracing::Metadata<'_>) -> bool {
        *metadata.level() <= tracing::Level::WARN
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut m = Message(String::new());
        event.record(&mut m);
        match m.0.as_str() {
            "peer refused" => self.client.fetch_add(1, Ordering::SeqCst),
            "refused inbound connection" => self.node.fetch_add(1, Ordering::SeqCst),
            _ => 0,
        };
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

/// A CA and a certificate for 127.0.0.1 issued by it, as PEM files.
fn tls_files(dir: &std::path::Path, tag: &str) -> TlsSettings {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{tag} CA"));
    let ca_key = KeyPair::generate().unwrap();
    let ca = params.self_signed(&ca_key).unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = leaf.signed_by(&key, &ca, &ca_key).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(format!("{tag}-{name}"));
        std::fs::write(&path, text).unwrap();
        path
    };
    TlsSettings {
        ca_file: Some(write("ca.pem", ca.pem())),
        cert_file: Some(write("cert.pem", cert.pem())),
        key_file: Some(write("key.pem", key.serialize_pem())),
        ..Default::default()
    }
}

/// Waits until `count` reaches `n` (a refusal is logged by the node a moment after the
/// client has its error).
async fn reaches(count: &AtomicUsize, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while count.load(Ordering::SeqCst) < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} refusal lines, expected {n}",
            count.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_credentials_are_unauthorized_logged_once_and_the_node_keeps_serving() {
    let client_lines = Arc::new(AtomicUsize::new(0));
    let node_lines = Arc::new(AtomicUsize::new(0));
    tracing::subscriber::set_global_default(RefusalLines {
        client: client_lines.clone(),
        node: node_lines.clone(),
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tls = tls_files(dir.path(), "cluster");
    let mut config = NodeConfig {
        cluster_secret: Secret::new("right-secret"),
        tls: tls.clone(),
        ..NodeConfig::default()
    };
    config.store.url = Some("memory:".into());
    let node = NodeBuilder::from_config(config)
        .host(Kind::<Counter>::new().handles::<Increment>())
        .start()
        .await
        .unwrap();
    let good = ClientConfig {
        seeds: vec![node.addr().to_string()],
        cluster_secret: Secret::new("right-secret"),
        tls: tls.clone(),
        ..ClientConfig::default()
    };
    let bad_clients = [
        (
            "wrong secret",
            ClientConfig {
                cluster_secret: Secret::new("wrong-secret"),
                ..good.clone()
            },
        ),
        (
            "certificate from another CA",
            ClientConfig {
                tls: tls_files(dir.path(), "rogue"),
                ..good.clone()
            },
        ),
        (
            "plain TCP to a TLS port",
            ClientConfig {
                tls: TlsSettings::default(),
                ..good.clone()
            },
        ),
    ];
    for (round, (what, config)) in bad_clients.into_iter().enumerate() {
        let started = tokio::time::Instant::now();
        let err = ClientBuilder::from_config(config)
            .connect()
            .await
            .expect_err(what);
        assert!(
            matches!(err, VirtualError::Remote(RemoteError::Unauthorized(_))),
            "{what}: {err:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{what}: not at once"
        );
        // One line at the client (its control connection refused; its other lanes
        // never dial), and at the node one per refused connection: one, unless the
        // client redialled before it learnt of the refusal (rate limited either way).
        assert_eq!(client_lines.load(Ordering::SeqCst), round + 1, "{what}");
        reaches(&node_lines, round + 1).await;
        // The node goes on serving a client with the right credentials.
        let client = ClientBuilder::from_config(good.clone())
            .connect()
            .await
            .unwrap();
        let (_, n) = client
            .get::<Counter>(format!("after-{round}"))
            .ask(Increment(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1, "{what}");
        client.close().await;
        assert_eq!(
            client_lines.load(Ordering::SeqCst),
            round + 1,
            "{what}: logged once at the client"
        );
    }
    eprintln!(
        "refusal lines: client {}, node {}",
        client_lines.load(Ordering::SeqCst),
        node_lines.load(Ordering::SeqCst)
    );
    node.shutdown().await;
}
