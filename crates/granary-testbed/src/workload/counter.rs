//! `tb.Counter`: a persisted counter whose state is the op ids it applied, in order.
//!
//! [`Increment`] applies once per op id (a repeat is answered, not applied), writes
//! the state and replies the count only after the write returned: an acknowledged
//! increment is durable.

use granary::virtual_actors::{Kind, VirtualContext, VirtualHandler};
use serde::{Deserialize, Serialize};

use super::{with_final, ActivationLog, FinalState, ReadFinal};
use crate::history::Stamp;

/// The persisted state: every op id applied, in order (the count is its length).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CounterState {
    /// Applied op ids.
    pub applied: Vec<u64>,
}

/// A persisted counter keyed by name.
#[derive(Debug)]
pub struct Counter {
    log: ActivationLog,
}

super::recorded_kind!(Counter, "tb.Counter", CounterState);

/// Adds one, once per `op`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Increment {
    /// The client's op id.
    pub op: u64,
}

/// The count after an increment, or why the state write failed (the increment may or
/// may not be durable then).
pub type IncrementReply = Result<u64, String>;

impl granary::Message for Increment {
    type Reply = IncrementReply;
}
granary::register_message!(Increment, "tb.Increment");

impl VirtualHandler<Increment> for Counter {
    async fn handle(
        &mut self,
        msg: Increment,
        ctx: &mut VirtualContext<'_, Self>,
    ) -> IncrementReply {
        let start = Stamp::now();
        if ctx.state().applied.contains(&msg.op) {
            self.log.handled(msg.op, false, start);
            return Ok(ctx.state().applied.len() as u64);
        }
        ctx.state_mut().applied.push(msg.op);
        let delay = super::handler_delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let written = ctx.write_state().await;
        if let Err(e) = written {
            // Not acknowledged: drop it from memory too, so that a retry applies it
            // (the op id keeps a write that did land from counting twice).
            ctx.state_mut().applied.retain(|o| *o != msg.op);
            self.log.handled(msg.op, false, start);
            return Err(e.to_string());
        }
        self.log.handled(msg.op, true, start);
        Ok(ctx.state().applied.len() as u64)
    }
}

impl VirtualHandler<ReadFinal> for Counter {
    async fn handle(&mut self, msg: ReadFinal, ctx: &mut VirtualContext<'_, Self>) -> FinalState {
        let start = Stamp::now();
        let applied = ctx.state().applied.clone();
        self.log.handled(msg.op, false, start);
        FinalState {
            value: applied.len() as u64,
            applied,
            version: None,
        }
    }
}

/// The kind with its messages registered.
pub fn kind() -> Kind<Counter> {
    with_final(Kind::<Counter>::new()).handles::<Increment>()
}
