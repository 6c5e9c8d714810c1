//! `tb.Counter`: a persisted counter whose state is the op ids it applied, in order.
//!
//! [`Increment`] applies once per op id (a repeat is answered, not applied), writes
//! the state and replies the count only after the write returned: an acknowledged
//! increment is durable.
//!
//! Two versions of its contract (the rolling upgrade test): with the `app-v2` feature,
//! [`Increment`] gained a field (`via`, defaulted), [`CounterState`] gained a field
//! (`by_v2`, defaulted; state version 2) and the kind takes one more message,
//! `CounterInfo`. What version 1 stores and sends, version 2 reads; what version 2
//! stores and sends, version 1 reads (it skips the fields it does not know).

use granary::virtual_actors::{Kind, VirtualContext, VirtualHandler};
use serde::{Deserialize, Serialize};

use super::{with_final, ActivationLog, FinalState, ReadFinal};
use crate::history::Stamp;

/// The persisted state: every op id applied, in order (the count is its length).
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct CounterState {
    /// Applied op ids.
    pub applied: Vec<u64>,
    /// Version 2: how many of them a version-2 node applied (absent in version-1
    /// state, hence the default).
    #[cfg(feature = "app-v2")]
    #[serde(default)]
    pub by_v2: u64,
}

/// A persisted counter keyed by name.
#[derive(Debug)]
pub struct Counter {
    log: ActivationLog,
}

super::recorded_kind!(Counter, "tb.Counter", CounterState, super::APP_VERSION);

/// Adds one, once per `op`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Increment {
    /// The client's op id.
    pub op: u64,
    /// Version 2: who sent it (absent from a version-1 client's increments).
    #[cfg(feature = "app-v2")]
    #[serde(default)]
    pub via: Option<String>,
}

impl Increment {
    /// The increment of op id `op`, as this version sends it.
    pub fn new(op: u64) -> Increment {
        Increment {
            op,
            #[cfg(feature = "app-v2")]
            via: Some("v2".into()),
        }
    }
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
            self.log.repeated(msg.op, start);
            return Ok(ctx.state().applied.len() as u64);
        }
        ctx.state_mut().applied.push(msg.op);
        #[cfg(feature = "app-v2")]
        {
            ctx.state_mut().by_v2 += 1;
        }
        let delay = super::handler_delay();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let written = ctx.write_state().await;
        if let Err(e) = written {
            // Not acknowledged: drop it from memory too, so that a retry applies it
            // (the op id keeps a write that did land from counting twice).
            ctx.state_mut().applied.retain(|o| *o != msg.op);
            #[cfg(feature = "app-v2")]
            {
                ctx.state_mut().by_v2 -= 1;
            }
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

/// Version 2's added message: the count and how much of it version-2 nodes applied.
#[cfg(feature = "app-v2")]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CounterInfo;

#[cfg(feature = "app-v2")]
impl granary::Message for CounterInfo {
    type Reply = (u64, u64);
}
#[cfg(feature = "app-v2")]
granary::register_message!(CounterInfo, "tb.CounterInfo");
#[cfg(feature = "app-v2")]
granary::register_message!((u64, u64), "tb.CounterInfoReply");

#[cfg(feature = "app-v2")]
impl VirtualHandler<CounterInfo> for Counter {
    async fn handle(&mut self, _: CounterInfo, ctx: &mut VirtualContext<'_, Self>) -> (u64, u64) {
        (ctx.state().applied.len() as u64, ctx.state().by_v2)
    }
}

/// The kind with its messages registered.
pub fn kind() -> Kind<Counter> {
    let kind = with_final(Kind::<Counter>::new()).handles::<Increment>();
    #[cfg(feature = "app-v2")]
    let kind = kind.handles::<CounterInfo>();
    kind
}
