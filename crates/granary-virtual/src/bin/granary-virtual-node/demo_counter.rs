//! The demo `demo.Counter` kind the `granary-virtual-node` binary hosts. The
//! multi-process test includes this file too, so both sides name the same kind and
//! messages on the wire.

use std::net::SocketAddr;

use granary_core::Message;
use granary_remote::register_message;
use granary_virtual::prelude::*;
use serde::{Deserialize, Serialize};

/// The persisted state of one counter.
#[derive(Serialize, Deserialize, Default)]
pub struct Count {
    pub n: u64,
}

/// A counter keyed by name, its count kept in the node's store.
pub struct Counter;

impl VirtualActor for Counter {
    const KIND: &'static str = "demo.Counter";
    type Key = String;
    type State = Count;
    fn activate(_: &String) -> Self {
        Counter
    }
}

/// Adds to the counter and writes it; answers (node, new value).
#[derive(Clone, Serialize, Deserialize)]
pub struct Increment(pub u64);
impl Message for Increment {
    type Reply = Result<(SocketAddr, u64), String>;
}
register_message!(Increment, "demo.Increment");
register_message!(Result<(SocketAddr, u64), String>, "demo.IncrementReply");

impl VirtualHandler<Increment> for Counter {
    async fn handle(
        &mut self,
        msg: Increment,
        ctx: &mut VirtualContext<'_, Self>,
    ) -> Result<(SocketAddr, u64), String> {
        ctx.state_mut().n += msg.0;
        ctx.write_state().await.map_err(|e| e.to_string())?;
        Ok((ctx.node_addr(), ctx.state().n))
    }
}
