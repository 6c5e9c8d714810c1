//! counter-api: the public face of a durable counter kind, and nothing else.
//!
//! A contract crate holds the messages a kind accepts, with their replies, and the
//! contract that lists them ([`CounterApi`]). Clients depend on this crate (see
//! `counter-client`) and never on the implementation (`counter-host`), which proves
//! at compile time that it fulfils the contract. `docs/contracts.md` explains the
//! three crates.
//!
//! The messages carry stable wire names (`name = "..."`): the client and the host are
//! built separately and must agree on them, whatever module the types live in.
#![deny(missing_docs, unreachable_pub, unsafe_code)]

use granary::Message;
use serde::{Deserialize, Serialize};

/// Adds to the counter; answers the new total once it is stored, or why it could
/// not be stored (the counter is then unchanged).
#[derive(Clone, Debug, Serialize, Deserialize, Message)]
#[message(reply = Result<u64, String>, name = "examples.counter.Add")]
pub struct Add(pub u64);

/// Reads the counter's total.
#[derive(Clone, Debug, Serialize, Deserialize, Message)]
#[message(reply = u64, name = "examples.counter.Get")]
pub struct Get;

granary::contract! {
    /// A durable counter per key (`String`): [`Add`] to it, [`Get`] its total. The
    /// kind is named `examples.Counter`, which also names its stored state.
    pub contract CounterApi {
        kind = "examples.Counter";
        key = String;
        accepts = [Add, Get];
    }
}
