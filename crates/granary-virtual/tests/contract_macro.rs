//! What `contract!` writes works end to end: a plain actor's contract (`name = ...`)
//! served with `expose_contract` and called with `contract_ref`, and a kind's
//! contract whose `ServedBy` impl lets a plain actor serve the same messages.

use std::time::Duration;

use granary_core::prelude::*;
use granary_remote::{register_message, Contract, RemoteNode, TransportConfig};
use granary_virtual::contract;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Ping(u32);
impl Message for Ping {
    type Reply = u32;
}
register_message!(Ping, "test.contract_macro.Ping");

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Total;
impl Message for Total {
    type Reply = u32;
}
register_message!(Total, "test.contract_macro.Total");

contract! {
    /// A plain actor's face: pings, and the sum of the pings so far.
    pub contract PingApi {
        name = "test.contract_macro.Pinger";
        accepts = [Ping, Total];
    }
}

contract! {
    /// A kind's face with the same messages.
    pub contract PingKindApi {
        kind = "test.contract_macro.PingKind";
        key = i64;
        accepts = [Ping, Total];
    }
}

struct Pinger(u32);
impl Actor for Pinger {}
impl Handler<Ping> for Pinger {
    async fn handle(&mut self, msg: Ping, _: &mut Context<Self>) -> u32 {
        self.0 += msg.0;
        msg.0
    }
}
impl Handler<Total> for Pinger {
    async fn handle(&mut self, _: Total, _: &mut Context<Self>) -> u32 {
        self.0
    }
}

async fn node() -> RemoteNode {
    RemoteNode::start(
        ActorSystem::new(),
        TransportConfig::new("contract-macro", b"cookie".to_vec()),
    )
    .await
    .expect("node")
}

#[tokio::test]
async fn a_plain_contract_from_the_macro_is_served_and_called() {
    assert_eq!(PingApi::NAME, "test.contract_macro.Pinger");
    let server = node().await;
    let pinger = server.system().spawn(Pinger(0));
    server
        .expose_contract::<PingApi, _>("pinger", &pinger)
        .expect("exposed");
    let caller = node().await;
    let r = caller.contract_ref::<PingApi>(server.local_addr(), "pinger");
    assert_eq!(r.ask(Ping(2)).await.unwrap(), 2);
    r.tell(Ping(3)).unwrap();
    assert_eq!(
        r.ask_timeout(Total, Duration::from_secs(10)).await.unwrap(),
        5
    );
    caller.shutdown();
    server.shutdown();
}

#[tokio::test]
async fn a_kind_contract_can_be_served_by_a_plain_actor_too() {
    let server = node().await;
    let pinger = server.system().spawn(Pinger(10));
    server
        .expose_contract::<PingKindApi, _>("pinger", &pinger)
        .expect("exposed");
    let caller = node().await;
    let r = caller.contract_ref::<PingKindApi>(server.local_addr(), "pinger");
    assert_eq!(r.ask(Total).await.unwrap(), 10);
    assert!(format!("{r:?}").contains("test.contract_macro.PingKind"));
    caller.shutdown();
    server.shutdown();
}
