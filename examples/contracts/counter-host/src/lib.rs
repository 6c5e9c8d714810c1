//! counter-host: the implementation of the counter kind that `counter-api` describes.
//!
//! `#[virtual_actor(contract = CounterApi, ...)]` takes the kind's name and key type
//! from the contract and proves at compile time that [`Counter`] fulfils it: leave
//! out the handler of one of the contract's messages and this crate does not compile,
//! with an error that names the message. Clients (`counter-client`) never link this
//! crate. The binary (`src/main.rs`) runs a node hosting the kind; `tests/` drives it
//! through `counter-client`'s functions.
#![deny(missing_docs, unreachable_pub, unsafe_code)]

use counter_api::{Add, CounterApi, Get};
use granary::prelude::*;

/// The counter: its state is the total, written before an `Add` is answered.
pub struct Counter;

#[virtual_actor(contract = CounterApi, state = u64)]
impl Counter {
    async fn add(&mut self, msg: Add, ctx: &mut VirtualContext<'_, Self>) -> Result<u64, String> {
        let total = ctx
            .state()
            .checked_add(msg.0)
            .ok_or("the total would overflow")?;
        *ctx.state_mut() = total;
        // A failed write deactivates this activation without saving; the next call
        // activates it again from the stored total.
        ctx.write_state().await.map_err(|e| e.to_string())?;
        Ok(total)
    }

    async fn get(&mut self, _: Get, ctx: &mut VirtualContext<'_, Self>) -> u64 {
        *ctx.state()
    }
}
