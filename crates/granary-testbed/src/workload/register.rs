//! `tb.Register`: a persisted register with a version (its count of applied writes).
//!
//! [`Write`] applies once per op id and replies the version it produced (a repeat
//! replies the current version); [`Read`] replies the value and the version. The
//! checker's stale-read rule compares these versions.

use granary::virtual_actors::{Kind, VirtualContext, VirtualHandler};
use serde::{Deserialize, Serialize};

use super::{with_final, ActivationLog, FinalState, ReadFinal};
use crate::history::Stamp;

/// The persisted state.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RegisterState {
    /// The last value written.
    pub value: u64,
    /// Writes applied so far.
    pub version: u64,
    /// The op ids of the writes applied, in order.
    pub applied: Vec<u64>,
}

/// A register keyed by name.
#[derive(Debug)]
pub struct Register {
    log: ActivationLog,
}

super::recorded_kind!(Register, "tb.Register", RegisterState);

/// Sets the register to `value`, once per `op`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Write {
    /// The client's op id.
    pub op: u64,
    /// The value.
    pub value: u64,
}

/// The version after the write, or why the state write failed (the write may or may
/// not be durable then).
pub type WriteReply = Result<u64, String>;

impl granary::Message for Write {
    type Reply = WriteReply;
}
granary::register_message!(Write, "tb.Write");

/// Reads the register.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Read {
    /// The client's op id.
    pub op: u64,
}

/// A read's reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadReply {
    /// The value.
    pub value: u64,
    /// Its version.
    pub version: u64,
}

impl granary::Message for Read {
    type Reply = ReadReply;
}
granary::register_message!(Read, "tb.Read");
granary::register_message!(ReadReply, "tb.ReadReply");

impl VirtualHandler<Write> for Register {
    async fn handle(&mut self, msg: Write, ctx: &mut VirtualContext<'_, Self>) -> WriteReply {
        let start = Stamp::now();
        if ctx.state().applied.contains(&msg.op) {
            self.log.repeated(msg.op, start);
            return Ok(ctx.state().version);
        }
        let before = (ctx.state().value, ctx.state().version);
        let state = ctx.state_mut();
        state.value = msg.value;
        state.version += 1;
        state.applied.push(msg.op);
        if let Err(e) = ctx.write_state().await {
            // Not acknowledged: memory goes back to what was acknowledged.
            let state = ctx.state_mut();
            (state.value, state.version) = before;
            state.applied.retain(|o| *o != msg.op);
            self.log.handled(msg.op, false, start);
            return Err(e.to_string());
        }
        self.log.handled(msg.op, true, start);
        Ok(ctx.state().version)
    }
}

impl VirtualHandler<Read> for Register {
    async fn handle(&mut self, msg: Read, ctx: &mut VirtualContext<'_, Self>) -> ReadReply {
        let start = Stamp::now();
        let reply = ReadReply {
            value: ctx.state().value,
            version: ctx.state().version,
        };
        self.log.handled(msg.op, false, start);
        reply
    }
}

impl VirtualHandler<ReadFinal> for Register {
    async fn handle(&mut self, msg: ReadFinal, ctx: &mut VirtualContext<'_, Self>) -> FinalState {
        let start = Stamp::now();
        let s = ctx.state();
        let reply = FinalState {
            value: s.value,
            applied: s.applied.clone(),
            version: Some(s.version),
        };
        self.log.handled(msg.op, false, start);
        reply
    }
}

/// The kind with its messages registered.
pub fn kind() -> Kind<Register> {
    with_final(Kind::<Register>::new())
        .handles::<Write>()
        .handles::<Read>()
}
