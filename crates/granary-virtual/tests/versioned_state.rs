//! Virtual-actor state across versions of its type: state stored by a version-1 type
//! (plain JSON, what builds before versioned state wrote) is read by a version-2 type
//! with an added field and by a version-3 type through its upgrade hook; state written
//! by a newer version is read by an older one when it fits, and refused (`BadState`,
//! the stored state left alone) when it does not.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::{cluster_config, WAIT};
use granary_core::Message;
use granary_remote::register_message;
use granary_storage::{Identity, MemoryStore, StateStore};
use granary_virtual::prelude::*;
use serde::{Deserialize, Serialize};

/// Returns the state as text, so every version answers one message type.
#[derive(Clone, Serialize, Deserialize, Debug)]
struct Show;
impl Message for Show {
    type Reply = String;
}
register_message!(Show, "test.vstate.Show");

/// Writes the state as it is (in this version's shape).
#[derive(Clone, Serialize, Deserialize, Debug)]
struct Save;
impl Message for Save {
    type Reply = Result<(), String>;
}
register_message!(Save, "test.vstate.Save");
register_message!(Result<(), String>, "test.vstate.SaveReply");

/// Version 1: `{ "count": n }`.
#[derive(Serialize, Deserialize, Default, Debug)]
struct StateV1 {
    count: u64,
}

/// Version 2 adds a field with a default: no version bump needed, but bumped here to
/// show that the envelope and the hook are optional for additions.
#[derive(Serialize, Deserialize, Default, Debug)]
struct StateV2 {
    count: u64,
    #[serde(default)]
    label: String,
}

/// Version 3 renames `count` to `total`: the hook rewrites older JSON.
#[derive(Serialize, Deserialize, Default, Debug)]
struct StateV3 {
    total: u64,
    #[serde(default)]
    label: String,
}

macro_rules! kind {
    ($actor:ident, $state:ty, $version:expr, $show:expr) => {
        struct $actor;
        impl VirtualActor for $actor {
            const KIND: &'static str = "test.vstate.Counter";
            const STATE_VERSION: u32 = $version;
            type Key = String;
            type State = $state;
            fn activate(_key: &String) -> Self {
                $actor
            }
            fn upgrade_state(
                from: u32,
                mut state: serde_json::Value,
            ) -> Result<serde_json::Value, String> {
                if $version >= 3 && from < 3 {
                    let map = state.as_object_mut().ok_or("state is not an object")?;
                    let count = map.remove("count").ok_or("no count")?;
                    map.insert("total".into(), count);
                }
                Ok(state)
            }
        }
        impl VirtualHandler<Show> for $actor {
            async fn handle(&mut self, _: Show, ctx: &mut VirtualContext<'_, Self>) -> String {
                let show: fn(&$state) -> String = $show;
                show(ctx.state())
            }
        }
        impl VirtualHandler<Save> for $actor {
            async fn handle(
                &mut self,
                _: Save,
                ctx: &mut VirtualContext<'_, Self>,
            ) -> Result<(), String> {
                ctx.write_state().await.map_err(|e| e.to_string())
            }
        }
    };
}

kind!(CounterV1, StateV1, 1, |s| format!("count={}", s.count));
kind!(CounterV2, StateV2, 2, |s| format!(
    "count={} label={:?}",
    s.count, s.label
));
kind!(CounterV3, StateV3, 3, |s| format!(
    "total={} label={:?}",
    s.total, s.label
));

async fn node<A>(store: Arc<MemoryStore>) -> Node
where
    A: VirtualActor + VirtualHandler<Show> + VirtualHandler<Save>,
{
    let node = Node::builder()
        .store_instance(store)
        .cluster_config(cluster_config())
        .host(Kind::<A>::new().handles::<Show>().handles::<Save>())
        .start()
        .await
        .expect("node starts");
    node.ready(WAIT).await.expect("the node holds a host lease");
    node
}

fn id(key: &str) -> Identity {
    Identity::new("test.vstate.Counter", key)
}

async fn store_with(key: &str, json: &str) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::default());
    store
        .write(&id(key), Bytes::copy_from_slice(json.as_bytes()), None)
        .await
        .unwrap();
    store
}

async fn stored(store: &MemoryStore, key: &str) -> serde_json::Value {
    let s = store.read(&id(key)).await.unwrap().expect("stored");
    serde_json::from_slice(&s.data).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_1_state_is_plain_json_and_a_version_2_type_reads_it_with_the_default() {
    // What a version-1 kind (and any build before versioned state) writes.
    let store = Arc::new(MemoryStore::default());
    let v1 = node::<CounterV1>(store.clone()).await;
    let r = v1.get::<CounterV1>("a");
    assert_eq!(r.ask(Show).await.unwrap(), "count=0");
    r.ask(Save).await.unwrap().unwrap();
    assert_eq!(stored(&store, "a").await, serde_json::json!({ "count": 0 }));
    v1.shutdown().await;

    let store = store_with("b", r#"{"count":7}"#).await;
    let v2 = node::<CounterV2>(store.clone()).await;
    let r = v2.get::<CounterV2>("b");
    assert_eq!(r.ask(Show).await.unwrap(), r#"count=7 label="""#);
    // Written back in the envelope, at version 2.
    r.ask(Save).await.unwrap().unwrap();
    assert_eq!(
        stored(&store, "b").await,
        serde_json::json!({ "schema": 2, "state": { "count": 7, "label": "" } })
    );
    v2.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_3_type_upgrades_version_1_and_2_state_through_its_hook() {
    for (key, json) in [
        ("plain", r#"{"count":5}"#),
        ("v2", r#"{"schema":2,"state":{"count":6,"label":"x"}}"#),
    ] {
        let store = store_with(key, json).await;
        let v3 = node::<CounterV3>(store.clone()).await;
        let r = v3.get::<CounterV3>(key);
        let expected = if key == "plain" {
            r#"total=5 label="""#
        } else {
            r#"total=6 label="x""#
        };
        assert_eq!(r.ask(Show).await.unwrap(), expected);
        v3.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_type_reads_newer_state_that_fits_and_refuses_state_that_does_not() {
    // Version 2 state read by version 1 (a node not yet upgraded): the label is skipped.
    let store = store_with("fits", r#"{"schema":2,"state":{"count":4,"label":"x"}}"#).await;
    let v1 = node::<CounterV1>(store.clone()).await;
    assert_eq!(
        v1.get::<CounterV1>("fits").ask(Show).await.unwrap(),
        "count=4"
    );
    v1.shutdown().await;

    // Version 3 state (count renamed) does not fit version 1: the activation fails
    // (BadState, retried until the caller's deadline) and the stored state is left as
    // it is, not replaced by a default.
    let newer = r#"{"schema":3,"state":{"total":4,"label":""}}"#;
    let store = store_with("no", newer).await;
    let v1 = node::<CounterV1>(store.clone()).await;
    let err = v1
        .get::<CounterV1>("no")
        .ask_timeout(Show, std::time::Duration::from_secs(2))
        .await;
    assert!(err.is_err(), "{err:?}");
    assert_eq!(
        stored(&store, "no").await,
        serde_json::from_str::<serde_json::Value>(newer).unwrap()
    );
    v1.shutdown().await;
}
