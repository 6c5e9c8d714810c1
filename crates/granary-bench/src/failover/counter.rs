//! The counter kind of `failover`: persisted state, an increment acknowledged only
//! after `write_state` returned, and an activation log on stdout.
//!
//! Increments carry (client, sequence number); the state keeps each client's last
//! applied number, so a request the framework resends after a lost reply is not
//! applied twice, and every extra count in the final sum is a real double
//! application. Each activation prints `act KEY NODE ID T` when it starts (after
//! its state is loaded) and `deact KEY NODE ID T` when it is dropped (`T` in
//! microseconds since the Unix epoch), and `hdl KEY NODE ID T` when it handles a
//! message (the first one, then at most every [`HANDLED_EVERY_US`], and the last
//! one when it is dropped); the harness checks that no two activations of one
//! identity overlap, and that no two handled messages in overlapping windows.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use granary::prelude::*;
use granary::virtual_actors::NodeBuilder;
use granary_remote::register_message;
use serde::{Deserialize, Serialize};

/// Microseconds since the Unix epoch (comparable across processes on one machine).
pub(crate) fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

/// The persisted state of a counter.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct CountState {
    /// Applied increments.
    pub(crate) n: u64,
    /// The last applied sequence number of each client.
    pub(crate) last: BTreeMap<u32, u64>,
}

impl CountState {
    /// Applies increment `seq` of `client` unless it was applied already; `true`
    /// if the state changed.
    pub(crate) fn apply(&mut self, client: u32, seq: u64) -> bool {
        let last = self.last.entry(client).or_insert(0);
        if *last >= seq {
            return false;
        }
        *last = seq;
        self.n += 1;
        true
    }
}

/// Adds one; the reply (the new count) comes only after the state is durable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Increment {
    /// The client task.
    pub(crate) client: u32,
    /// The client's sequence number for this increment (from 1, increasing).
    pub(crate) seq: u64,
}
impl Message for Increment {
    type Reply = Result<u64, String>;
}
register_message!(Increment, "granary-bench.failover.Increment");
// The reply type `Result<u64, String>` is registered once per binary, and this binary
// links granary-testbed (for `chaos`), which registers it as "tb.NumberReply" (a type
// registered under two names makes `Node::start` fail; see issue 17).

/// Reads the count.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ReadCount;
impl Message for ReadCount {
    type Reply = u64;
}
register_message!(ReadCount, "granary-bench.failover.ReadCount");

/// Activations started in this process (the activation id's second half).
static ACTIVATIONS: AtomicU64 = AtomicU64::new(0);

/// The least time between two `hdl` lines of one activation (microseconds).
pub(crate) const HANDLED_EVERY_US: u64 = 50_000;

/// The counter kind.
pub(crate) struct FailoverCounter {
    key: String,
    logged: Option<(SocketAddr, u64)>,
    /// When the last increment was handled, and whether that was logged.
    handled: Option<(u64, bool)>,
    /// When the last `hdl` line was printed.
    handled_logged: u64,
}

impl FailoverCounter {
    /// Notes a handled increment; prints `hdl` if the last line is old enough.
    fn note_handled(&mut self) {
        let Some((node, id)) = self.logged else {
            return;
        };
        let now = now_micros();
        let print = self.handled.is_none() || now >= self.handled_logged + HANDLED_EVERY_US;
        if print {
            println!("hdl {} {node} {id} {now}", self.key);
            self.handled_logged = now;
        }
        self.handled = Some((now, print));
    }
}

impl VirtualActor for FailoverCounter {
    const KIND: &'static str = "granary-bench.FailoverCounter";
    type Key = String;
    type State = CountState;
    fn activate(key: &String) -> Self {
        Self {
            key: key.clone(),
            logged: None,
            handled: None,
            handled_logged: 0,
        }
    }

    async fn on_activate(&mut self, ctx: &mut VirtualContext<'_, Self>) -> Result<(), BoxError> {
        let node = ctx.node_addr();
        let id = ACTIVATIONS.fetch_add(1, Ordering::Relaxed);
        println!("act {} {node} {id} {}", self.key, now_micros());
        self.logged = Some((node, id));
        Ok(())
    }
}

impl Drop for FailoverCounter {
    fn drop(&mut self) {
        if let Some((node, id)) = self.logged {
            if let Some((last, false)) = self.handled {
                println!("hdl {} {node} {id} {last}", self.key);
            }
            println!("deact {} {node} {id} {}", self.key, now_micros());
        }
    }
}

impl VirtualHandler<Increment> for FailoverCounter {
    async fn handle(
        &mut self,
        msg: Increment,
        ctx: &mut VirtualContext<'_, Self>,
    ) -> Result<u64, String> {
        // Written even when the request is a resend: its first attempt may have
        // failed to write, and the reply promises durability.
        ctx.state_mut().apply(msg.client, msg.seq);
        ctx.write_state().await.map_err(|e| e.to_string())?;
        self.note_handled();
        Ok(ctx.state().n)
    }
}

impl VirtualHandler<ReadCount> for FailoverCounter {
    async fn handle(&mut self, _msg: ReadCount, ctx: &mut VirtualContext<'_, Self>) -> u64 {
        self.note_handled();
        ctx.state().n
    }
}

/// The kind a virtual node hosts for `failover`.
pub(crate) fn kinds(builder: NodeBuilder) -> NodeBuilder {
    builder.host(
        Kind::<FailoverCounter>::new()
            .handles::<Increment>()
            .handles::<ReadCount>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resent_increment_is_applied_once() {
        let mut state = CountState::default();
        assert!(state.apply(7, 1));
        assert!(!state.apply(7, 1), "the same request again");
        assert!(state.apply(7, 2));
        assert!(state.apply(8, 1), "another client");
        assert_eq!(state.n, 3);
    }
}
