//! Deployment configuration end to end: a `granary-virtual-node` process configured
//! by `GRANARY_…` environment variables alone joins a running node, becomes ready only
//! once joined, and leaves gracefully on SIGTERM; the built-in secret is refused on a
//! non-loopback address; an advertised address differs from the bound one.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use granary_virtual::prelude::*;
use granary_virtual::{ConfigError, NodeBuilder, NodeConfig};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const WAIT: Duration = Duration::from_secs(30);

#[path = "../src/bin/granary-virtual-node/demo_counter.rs"]
mod demo_counter;

use demo_counter::{Counter, Increment};

/// Polls `check` every 20 ms until it holds or `WAIT` passes.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !check() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_alone_starts_a_node_that_joins_and_leaves_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file:{}", dir.path().join("state.db").display());
    let first = Node::builder()
        .cluster_secret("env-test", b"env-secret".to_vec())
        .store(store.clone())
        .host(Kind::<Counter>::new().handles::<Increment>())
        .start()
        .await
        .unwrap();
    let ready_file = dir.path().join("ready");

    let mut child = Command::new(env!("CARGO_BIN_EXE_granary-virtual-node"))
        .env_clear()
        .env("GRANARY_BIND", "127.0.0.1:0")
        .env("GRANARY_CLUSTER_NAME", "env-test")
        .env("GRANARY_CLUSTER_SECRET", "env-secret")
        .env("GRANARY_SEEDS", first.addr().to_string())
        .env("GRANARY_STORE_URL", &store)
        .env("GRANARY_READY_FILE", &ready_file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node process starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(WAIT, lines.next_line())
            .await
            .expect("a line in time")
            .unwrap()
            .expect("a line")
    };
    let line = next().await;
    let addr: SocketAddr = line
        .strip_prefix("listening ")
        .expect("listening line")
        .parse()
        .unwrap();
    assert_eq!(next().await, "ready");
    // Ready means joined: the first node sees it Up already, and the file is there.
    assert!(
        first
            .cluster()
            .up_members()
            .iter()
            .any(|m| m.id.addr == addr),
        "the env-configured node is Up in the first node's view when it says ready"
    );
    assert!(ready_file.exists(), "readiness file written on join");

    // It hosts: some of these identities land on the child process.
    let mut on_child = 0;
    for i in 0..20 {
        let (host, n) = first
            .get::<Counter>(format!("env-{i}"))
            .ask(Increment(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1);
        on_child += usize::from(host == addr);
    }
    assert!(
        on_child > 0,
        "no identity was placed on the env-configured node"
    );

    // SIGTERM: a graceful leave, exit 0, readiness withdrawn.
    let pid = child.id().unwrap() as libc::pid_t;
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .expect("the node exits after SIGTERM")
        .unwrap();
    assert!(status.success(), "graceful exit, got {status:?}");
    assert!(!ready_file.exists(), "readiness file removed on leave");
    eventually("the leaver is gone from the first node's view", || {
        first.cluster().up_members().len() == 1
    })
    .await;
    // Every counter continues from its saved state on the remaining node.
    for i in 0..20 {
        let (host, n) = first
            .get::<Counter>(format!("env-{i}"))
            .ask(Increment(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((host, n), (first.addr(), 2));
    }
    first.shutdown().await;
}

#[tokio::test]
async fn the_default_secret_is_refused_on_a_wildcard_bind() {
    let err = Node::builder()
        .bind("0.0.0.0:0".parse().unwrap())
        .advertise("127.0.0.1")
        .store("memory:")
        .start()
        .await
        .unwrap_err();
    assert!(
        matches!(err, VirtualError::Config(ConfigError::DefaultSecret { .. })),
        "{err:?}"
    );
    // The binary says so and exits 2, before binding anything.
    let out = Command::new(env!("CARGO_BIN_EXE_granary-virtual-node"))
        .env_clear()
        .env("GRANARY_BIND", "0.0.0.0:0")
        .env("GRANARY_ADVERTISE", "127.0.0.1")
        .env("GRANARY_STORE_URL", "memory:")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("GRANARY_CLUSTER_SECRET"), "{stderr}");
}

#[tokio::test]
async fn a_bad_variable_is_named_in_the_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_granary-virtual-node"))
        .env_clear()
        .env("GRANARY_PARALLELISM", "lots")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("GRANARY_PARALLELISM"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_bind_advertises_the_configured_name() {
    let mut config = NodeConfig {
        bind: "0.0.0.0:0".parse().unwrap(),
        // A DNS name, resolved at start; no port: the bound one.
        advertise: Some("localhost".into()),
        cluster_secret: granary_virtual::Secret::new("adv-secret"),
        ..NodeConfig::default()
    };
    config.store.url = Some("memory:".into());
    let a = NodeBuilder::from_config(config.clone())
        .host(Kind::<Counter>::new().handles::<Increment>())
        .start()
        .await
        .unwrap();
    assert!(a.addr().ip().is_loopback(), "advertised {}", a.addr());
    assert_ne!(a.addr().port(), 0);
    config.membership.seeds = vec![format!("localhost:{}", a.addr().port())];
    let b = NodeBuilder::from_config(config)
        .host(Kind::<Counter>::new().handles::<Increment>())
        .start()
        .await
        .unwrap();
    b.ready(WAIT).await.unwrap();
    eventually("both nodes see each other", || {
        a.cluster().up_members().len() == 2 && b.cluster().up_members().len() == 2
    })
    .await;
    b.shutdown().await;
    a.shutdown().await;
}

/// Writes a CA and a certificate for 127.0.0.1 (issued by it) as PEM files; returns the
/// TLS settings naming them.
#[cfg(feature = "tls")]
fn tls_files(dir: &std::path::Path, tag: &str) -> granary_virtual::TlsSettings {
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
    granary_virtual::TlsSettings {
        ca_file: Some(write("ca.pem", ca.pem())),
        cert_file: Some(write("cert.pem", cert.pem())),
        key_file: Some(write("key.pem", key.serialize_pem())),
        ..Default::default()
    }
}

#[cfg(feature = "tls")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_from_certificate_files_in_the_config() {
    use granary_virtual::{ClientBuilder, ClientConfig};
    let dir = tempfile::tempdir().unwrap();
    let tls = tls_files(dir.path(), "cluster");
    let text = format!(
        "cluster_secret = \"tls-secret\"\n[store]\nurl = \"memory:\"\n{}",
        toml_tls(&tls)
    );
    let config = NodeConfig::from_toml_str(&text).unwrap();
    assert!(config.tls.enabled());
    let a = NodeBuilder::from_config(config.clone())
        .host(Kind::<Counter>::new().handles::<Increment>())
        .start()
        .await
        .unwrap();
    let mut joining = config.clone();
    joining.membership.seeds = vec![a.addr().to_string()];
    let b = NodeBuilder::from_config(joining)
        .host(Kind::<Counter>::new().handles::<Increment>())
        .start()
        .await
        .unwrap();
    b.ready(WAIT).await.unwrap();

    let client_config = ClientConfig {
        seeds: vec![a.addr().to_string()],
        cluster_secret: granary_virtual::Secret::new("tls-secret"),
        tls: tls.clone(),
        ..ClientConfig::default()
    };
    let client = ClientBuilder::from_config(client_config.clone())
        .connect()
        .await
        .unwrap();
    for i in 0..10 {
        let (_, n) = client
            .get::<Counter>(format!("tls-{i}"))
            .ask(Increment(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 1);
    }
    client.close().await;

    // A client with a certificate from another CA is not let in.
    let rogue = ClientConfig {
        tls: tls_files(dir.path(), "rogue"),
        ..client_config
    };
    let err = ClientBuilder::from_config(rogue)
        .ask_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            VirtualError::Remote(granary_core::RemoteError::Unauthorized(_))
        ),
        "{err:?}"
    );
    b.shutdown().await;
    a.shutdown().await;
}

#[cfg(feature = "tls")]
fn toml_tls(tls: &granary_virtual::TlsSettings) -> String {
    let path = |p: &Option<std::path::PathBuf>| p.as_ref().unwrap().display().to_string();
    format!(
        "[tls]\nca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\n",
        path(&tls.ca_file),
        path(&tls.cert_file),
        path(&tls.key_file)
    )
}

#[tokio::test]
async fn incomplete_tls_settings_are_refused_before_binding() {
    let mut config = NodeConfig::default();
    config.tls.ca_pem = Some("x".into());
    let err = NodeBuilder::from_config(config).start().await.unwrap_err();
    assert!(matches!(err, VirtualError::Config(_)), "{err:?}");
}
