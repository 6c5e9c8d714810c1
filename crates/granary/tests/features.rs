//! Whatever features this build has, a node runs virtual actors on the embedded store,
//! and settings that need a missing feature are refused at start with a typed error
//! instead of being ignored. `cargo test -p granary-rs --no-default-features` runs the
//! minimal build's side.

use std::time::Duration;

use granary::prelude::*;
use granary::register_message;
use granary::virtual_actors::{NodeBuilder, NodeConfig};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Default)]
struct Count {
    n: u64,
}

struct Tally;

impl VirtualActor for Tally {
    const KIND: &'static str = "features.Tally";
    type Key = String;
    type State = Count;
    fn activate(_: &String) -> Self {
        Tally
    }
}

#[derive(Clone, Serialize, Deserialize)]
struct Bump;
impl Message for Bump {
    type Reply = Result<u64, String>;
}
register_message!(Bump, "features.Bump");
register_message!(Result<u64, String>, "features.BumpReply");

impl VirtualHandler<Bump> for Tally {
    async fn handle(&mut self, _: Bump, ctx: &mut VirtualContext<'_, Self>) -> Result<u64, String> {
        ctx.state_mut().n += 1;
        ctx.write_state().await.map_err(|e| e.to_string())?;
        Ok(ctx.state().n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_keeps_state_in_the_embedded_store_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file:{}", dir.path().join("state.db").display());
    for expected in 1..=2 {
        let node = Node::builder()
            .store(store.clone())
            .host(Kind::<Tally>::new().handles::<Bump>())
            .start()
            .await
            .unwrap();
        let n = node
            .get::<Tally>("t".to_string())
            .ask_timeout(Bump, Duration::from_secs(10))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, expected);
        node.shutdown().await;
    }
}

#[cfg_attr(
    all(feature = "tls", feature = "dns", feature = "postgres"),
    allow(dead_code)
)]
fn config(vars: &[(&str, &str)]) -> NodeConfig {
    let mut c = NodeConfig::default();
    c.apply_env(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap();
    c.store.url = Some("memory:".into());
    c
}

#[cfg_attr(
    all(feature = "tls", feature = "dns", feature = "postgres"),
    allow(dead_code)
)]
async fn start(c: NodeConfig) -> Result<Node, VirtualError> {
    NodeBuilder::from_config(c)
        .host(Kind::<Tally>::new().handles::<Bump>())
        .start()
        .await
}

#[cfg(not(feature = "tls"))]
#[tokio::test]
async fn tls_settings_are_refused_without_the_tls_feature() {
    let c = config(&[
        ("GRANARY_TLS_CA_PEM", "x"),
        ("GRANARY_TLS_CERT_PEM", "x"),
        ("GRANARY_TLS_KEY_PEM", "x"),
    ]);
    let err = start(c).await.unwrap_err();
    assert!(
        matches!(
            err,
            VirtualError::Config(granary::virtual_actors::ConfigError::FeatureDisabled {
                feature: "tls",
                ..
            })
        ),
        "{err:?}"
    );
}

#[cfg(not(feature = "dns"))]
#[tokio::test]
async fn dns_membership_is_refused_without_the_dns_feature() {
    let c = config(&[
        ("GRANARY_MEMBERSHIP", "dns"),
        ("GRANARY_DNS_NAME", "granary.invalid"),
    ]);
    let err = start(c).await.unwrap_err();
    assert!(
        matches!(
            err,
            VirtualError::Config(granary::virtual_actors::ConfigError::FeatureDisabled {
                feature: "dns",
                ..
            })
        ),
        "{err:?}"
    );
}

#[cfg(not(feature = "postgres"))]
#[tokio::test]
async fn a_postgres_store_is_refused_without_the_postgres_feature() {
    let mut c = config(&[]);
    c.store.url = Some("postgres://u@127.0.0.1/test".into());
    let err = start(c).await.unwrap_err();
    assert!(matches!(err, VirtualError::Storage(_)), "{err:?}");
}
