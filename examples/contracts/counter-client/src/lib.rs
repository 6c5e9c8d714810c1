//! counter-client: calls the counter kind through its contract only.
//!
//! It depends on `counter-api` (the contract and its messages) and on the `granary`
//! facade, not on `counter-host`, the crate with the implementation: a
//! [`ContractRef<CounterApi>`](granary::virtual_actors::ContractRef) sends exactly the
//! contract's messages, and no actor type is named. `tests/no_implementation.rs` fails
//! if the implementation ever becomes a dependency; `counter-host`'s tests drive a
//! real node through these functions. The binary (`src/bin/counter-client.rs`)
//! connects by seeds from the command line.
#![deny(missing_docs, unreachable_pub, unsafe_code)]

use std::fmt;

use counter_api::{Add, CounterApi, Get};
use granary::virtual_actors::{Client, ContractRef, VirtualError};

/// Why [`bump`] failed.
#[derive(Debug)]
pub enum BumpError {
    /// The call failed (no host, timeout, unreachable...).
    Call(VirtualError),
    /// The counter answered that it could not store the new total; it is unchanged.
    NotStored(String),
}

impl fmt::Display for BumpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BumpError::Call(e) => write!(f, "call failed: {e}"),
            BumpError::NotStored(why) => write!(f, "not stored: {why}"),
        }
    }
}

impl std::error::Error for BumpError {}

/// The counter with `key`, through its contract.
pub fn counter(client: &Client, key: &str) -> ContractRef<CounterApi> {
    client.contract::<CounterApi>(key.to_owned())
}

/// Adds `by` to the counter `key` and returns its new total (durable when this
/// returns: the host writes its state before answering).
pub async fn bump(client: &Client, key: &str, by: u64) -> Result<u64, BumpError> {
    match counter(client, key).ask(Add(by)).await {
        Ok(Ok(total)) => Ok(total),
        Ok(Err(why)) => Err(BumpError::NotStored(why)),
        Err(e) => Err(BumpError::Call(e)),
    }
}

/// The total of the counter `key`.
pub async fn read(client: &Client, key: &str) -> Result<u64, VirtualError> {
    counter(client, key).ask(Get).await
}
