//! Plain remote actors through contracts: the calling side names only the contract (the
//! `api` module, as a separate crate would be), the serving side exposes its actor with
//! `expose_contract`, which accepts exactly the contract's messages.

use std::time::Duration;

use granary_core::prelude::*;
use granary_core::RemoteError;
use granary_remote::{
    register_message, ActorRefRemoteExt, RemoteNode, RemoteSetupError, TransportConfig,
};

/// The contract crate: the contract and its messages, no actor.
mod api {
    use granary_core::{Actor, Message};
    use granary_remote::{
        register_message, Acceptance, Accepts, Contract, RemoteSetupError, ServedBy,
    };
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct Add(pub u64);
    impl Message for Add {
        type Reply = u64;
    }
    register_message!(Add, "test.contract.Add");

    #[derive(Clone, Debug, Serialize, Deserialize)]
    pub struct Get;
    impl Message for Get {
        type Reply = u64;
    }
    register_message!(Get, "test.contract.Get");

    /// A counter's public face: `Add` and `Get`.
    pub struct CounterApi;
    impl Contract for CounterApi {
        const NAME: &'static str = "test.contract.Counter";
    }
    impl Accepts<Add> for CounterApi {}
    impl Accepts<Get> for CounterApi {}
    impl<A> ServedBy<A> for CounterApi
    where
        A: Actor + granary_core::Handler<Add> + granary_core::Handler<Get>,
    {
        fn accept_messages(acceptance: Acceptance<A>) -> Result<Acceptance<A>, RemoteSetupError> {
            acceptance.accept::<Add>()?.accept::<Get>()
        }
    }
}

/// The client crate: it knows `api` and nothing of `Counter`.
mod client {
    use std::net::SocketAddr;

    use granary_core::AskError;
    use granary_remote::RemoteNode;

    use super::api::{Add, CounterApi, Get};

    pub async fn add_then_get(
        node: &RemoteNode,
        server: SocketAddr,
        by: u64,
    ) -> Result<u64, AskError<Get>> {
        let counter = node.contract_ref::<CounterApi>(server, "counter");
        counter.tell(Add(by)).expect("handed to the transport");
        // Same (sender, recipient) pair, one connection: the ask is served after the tell.
        counter.ask(Get).await
    }
}

/// A message the counter handles but the contract does not list.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Reset;
impl Message for Reset {
    type Reply = ();
}
register_message!(Reset, "test.contract.Reset");

/// A message registered nowhere.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Unregistered;
impl Message for Unregistered {
    type Reply = ();
}

struct Counter(u64);
impl Actor for Counter {}
impl Handler<api::Add> for Counter {
    async fn handle(&mut self, msg: api::Add, _: &mut Context<Self>) -> u64 {
        self.0 += msg.0;
        self.0
    }
}
impl Handler<api::Get> for Counter {
    async fn handle(&mut self, _: api::Get, _: &mut Context<Self>) -> u64 {
        self.0
    }
}
impl Handler<Reset> for Counter {
    async fn handle(&mut self, _: Reset, _: &mut Context<Self>) {
        self.0 = 0;
    }
}

impl Handler<Unregistered> for Counter {
    async fn handle(&mut self, _: Unregistered, _: &mut Context<Self>) {}
}

/// An actor with only half of the contract's handlers.
struct AddOnly;
impl Actor for AddOnly {}
impl Handler<api::Add> for AddOnly {
    async fn handle(&mut self, msg: api::Add, _: &mut Context<Self>) -> u64 {
        msg.0
    }
}

/// A contract whose message is not registered for the wire.
struct BrokenApi;
impl granary_remote::Contract for BrokenApi {
    const NAME: &'static str = "test.contract.Broken";
}
impl<A: Actor + Handler<Unregistered>> granary_remote::ServedBy<A> for BrokenApi {
    fn accept_messages(
        acceptance: granary_remote::Acceptance<A>,
    ) -> Result<granary_remote::Acceptance<A>, RemoteSetupError> {
        acceptance.accept::<Unregistered>()
    }
}

async fn node() -> RemoteNode {
    RemoteNode::start(
        ActorSystem::new(),
        TransportConfig::new("contract-test", b"cookie".to_vec()),
    )
    .await
    .expect("node")
}

#[tokio::test]
async fn a_contract_ref_reaches_an_actor_exposed_with_its_contract() {
    let server = node().await;
    let counter = server.system().spawn(Counter(0));
    server
        .expose_contract::<api::CounterApi, _>("counter", &counter)
        .expect("exposed");
    let caller = node().await;
    assert_eq!(
        client::add_then_get(&caller, server.local_addr(), 40)
            .await
            .unwrap(),
        40
    );
    assert_eq!(
        client::add_then_get(&caller, server.local_addr(), 2)
            .await
            .unwrap(),
        42
    );
    let r = caller.contract_ref::<api::CounterApi>(server.local_addr(), "counter");
    assert_eq!(r.addr(), server.local_addr());
    assert_eq!(r.name(), "counter");
    // The same actor id as an `ActorRef` forged to the same name.
    assert_eq!(
        r.id(),
        ActorRef::<Counter>::remote(&caller, server.local_addr(), "counter").id()
    );
    caller.shutdown();
    server.shutdown();
}

#[tokio::test]
async fn an_actor_exposed_with_a_contract_accepts_no_other_message() {
    let server = node().await;
    let counter = server.system().spawn(Counter(5));
    server
        .expose_contract::<api::CounterApi, _>("counter", &counter)
        .expect("exposed");
    let caller = node().await;
    // `Counter` handles `Reset`, but the contract does not list it: refused there.
    let forged = ActorRef::<Counter>::remote(&caller, server.local_addr(), "counter");
    let refused = forged.ask_timeout(Reset, Duration::from_secs(10)).await;
    assert!(
        matches!(
            refused,
            Err(AskError::Remote(RemoteError::TypeMismatch { .. }))
        ),
        "{refused:?}"
    );
    assert_eq!(forged.ask(api::Get).await.unwrap(), 5);
    caller.shutdown();
    server.shutdown();
}

#[tokio::test]
async fn a_contract_ref_to_an_actor_that_does_not_serve_it_gets_typed_errors() {
    let server = node().await;
    // Exposed by hand with `Add` only: `expose_contract::<CounterApi, AddOnly>` would
    // not compile, since `AddOnly` has no handler of `Get`.
    let add_only = server.system().spawn(AddOnly);
    server
        .expose("add-only", &add_only)
        .unwrap()
        .accept::<api::Add>()
        .unwrap();
    let caller = node().await;
    let r = caller.contract_ref::<api::CounterApi>(server.local_addr(), "add-only");
    assert_eq!(r.ask(api::Add(3)).await.unwrap(), 3);
    let missing = r.ask_timeout(api::Get, Duration::from_secs(10)).await;
    assert!(
        matches!(
            missing,
            Err(AskError::Remote(RemoteError::TypeMismatch { .. }))
        ),
        "{missing:?}"
    );
    let nobody = caller.contract_ref::<api::CounterApi>(server.local_addr(), "nobody");
    let unknown = nobody.ask_timeout(api::Get, Duration::from_secs(10)).await;
    assert!(
        matches!(unknown, Err(AskError::Remote(RemoteError::NoSuchActor(_)))),
        "{unknown:?}"
    );
    caller.shutdown();
    server.shutdown();
}

#[tokio::test]
async fn a_contract_with_an_unregistered_message_exposes_nothing() {
    let server = node().await;
    let counter = server.system().spawn(Counter(0));
    let refused = server.expose_contract::<BrokenApi, _>("counter", &counter);
    assert!(
        matches!(refused, Err(RemoteSetupError::Unregistered(_))),
        "{refused:?}"
    );
    // Nothing was exposed: the name is still free.
    server
        .expose_contract::<api::CounterApi, _>("counter", &counter)
        .expect("the name is free");
    server.shutdown();
}
