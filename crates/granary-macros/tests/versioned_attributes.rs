//! `#[message(version = N)]` registers the contract version; `#[virtual_actor(
//! state_version = N, upgrade_state = f)]` sets the state's version and upgrade hook.

use granary::prelude::*;
use granary::remote::Registry;
use granary::virtual_actors::VirtualActor;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = u64, name = "test.macros.versioned.Put", version = 3)]
struct Put {
    n: u64,
}

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = u64, name = "test.macros.versioned.Plain")]
struct Plain;

#[derive(Serialize, Deserialize, Default)]
struct Total {
    total: u64,
}

/// Version 1 called the field `count`.
fn rename_count(from: u32, mut state: serde_json::Value) -> Result<serde_json::Value, String> {
    if from < 2 {
        let map = state.as_object_mut().ok_or("not an object")?;
        let count = map.remove("count").ok_or("no count")?;
        map.insert("total".into(), count);
    }
    Ok(state)
}

struct Store;

#[virtual_actor(
    kind = "test.macros.versioned.Store",
    state = Total,
    state_version = 2,
    upgrade_state = rename_count
)]
impl Store {
    async fn put(&mut self, msg: Put, ctx: &mut VirtualContext<'_, Self>) -> u64 {
        ctx.state_mut().total += msg.n;
        ctx.state().total
    }
}

#[test]
fn the_message_carries_its_version_and_a_message_without_one_is_version_1() {
    let registry = Registry::global().expect("no conflicts");
    let put = registry.by_name("test.macros.versioned.Put").unwrap();
    assert_eq!(put.version(), 3);
    let plain = registry.by_name("test.macros.versioned.Plain").unwrap();
    assert_eq!(plain.version(), 1);
}

#[test]
fn the_state_version_and_the_hook_are_the_kind_s() {
    assert_eq!(<Store as VirtualActor>::STATE_VERSION, 2);
    let upgraded = <Store as VirtualActor>::upgrade_state(1, serde_json::json!({ "count": 4 }));
    assert_eq!(upgraded.unwrap(), serde_json::json!({ "total": 4 }));
}
