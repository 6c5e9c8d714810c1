//! A counter built with `#[derive(Message)]` and `#[virtual_actor]` runs on a real node,
//! hosted with its generated `Kind`, and answers asks; messages that share a reply type
//! (in one module and across modules) start the node.

use std::time::Duration;

use granary::prelude::*;
use granary::remote::Registry;
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = u64)]
struct Add(u64);

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = u64, name = "test.macros.Get")]
struct Get;

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = String)]
struct WhoAmI;

/// Another module, as another crate would be: its messages share the reply type
/// `Result<u64, String>` with each other, and `u64` with the messages above.
mod other {
    use granary::Message;
    use serde::{Deserialize, Serialize};

    #[derive(Clone, Serialize, Deserialize, Message)]
    #[message(reply = Result<u64, String>)]
    pub struct AddAtMost(pub u64, pub u64);

    #[derive(Clone, Serialize, Deserialize, Message)]
    #[message(reply = Result<u64, String>)]
    pub struct Halve;

    #[derive(Clone, Serialize, Deserialize, Message)]
    #[message(reply = u64)]
    pub struct Activations;
}

struct Counter {
    key: String,
    activations: u64,
}

#[virtual_actor(kind = "test.macros.Counter", key = String, state = u64)]
impl Counter {
    fn activate(key: &String) -> Self {
        Counter {
            key: key.clone(),
            activations: 0,
        }
    }

    async fn on_activate(&mut self, _ctx: &mut VirtualContext<'_, Self>) -> Result<(), BoxError> {
        self.activations += 1;
        Ok(())
    }

    async fn add(&mut self, msg: Add, ctx: &mut VirtualContext<'_, Self>) -> u64 {
        *ctx.state_mut() += msg.0;
        ctx.write_state().await.expect("durable");
        *ctx.state()
    }

    async fn get(&mut self, _: Get, ctx: &mut VirtualContext<'_, Self>) -> u64 {
        *ctx.state()
    }

    /// A handler without a context.
    async fn who(&mut self, _: WhoAmI) -> String {
        self.key.clone()
    }

    async fn add_at_most(
        &mut self,
        msg: other::AddAtMost,
        ctx: &mut VirtualContext<'_, Self>,
    ) -> Result<u64, String> {
        let n = *ctx.state() + msg.0;
        if n > msg.1 {
            return Err(format!("{n} is over {}", msg.1));
        }
        *ctx.state_mut() = n;
        ctx.write_state().await.map_err(|e| e.to_string())?;
        Ok(n)
    }

    async fn halve(
        &mut self,
        _: other::Halve,
        ctx: &mut VirtualContext<'_, Self>,
    ) -> Result<u64, String> {
        *ctx.state_mut() /= 2;
        Ok(*ctx.state())
    }

    async fn activations(&mut self, _: other::Activations) -> u64 {
        self.activations
    }
}

/// A stateless kind with the defaults: `String` keys, `()` state, built as `Echo {}`.
struct Echo;

#[derive(Clone, Serialize, Deserialize, Message)]
#[message(reply = String)]
struct Shout(String);

#[virtual_actor(kind = "test.macros.Echo")]
impl Echo {
    async fn shout(&mut self, msg: Shout) -> String {
        msg.0.to_uppercase()
    }
}

#[test]
fn messages_sharing_a_reply_type_build_one_registry() {
    let registry = Registry::global().expect("no conflicts");
    assert_eq!(
        registry.by_type::<Add>().unwrap().name(),
        concat!(module_path!(), "::Add"),
        "the default wire name is module_path!()::Type"
    );
    assert_eq!(registry.by_type::<Get>().unwrap().name(), "test.macros.Get");
    let reply = registry.by_type::<Result<u64, String>>().unwrap();
    assert_eq!(reply.name(), std::any::type_name::<Result<u64, String>>());
    assert!(registry.by_type::<u64>().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_macro_built_counter_answers_asks_on_a_node() {
    let node = Node::builder()
        .store("memory:")
        .host(Counter::kind())
        .host(Echo::kind().idle_timeout(Duration::from_secs(60)))
        .start()
        .await
        .expect("the node starts: the registry has no conflicts");
    node.ready(Duration::from_secs(10))
        .await
        .expect("the node holds a host lease");

    let a = node.get::<Counter>("a".to_string());
    assert_eq!(a.ask(Add(2)).await.unwrap(), 2);
    assert_eq!(a.ask(Add(3)).await.unwrap(), 5);
    assert_eq!(a.ask(Get).await.unwrap(), 5);
    assert_eq!(a.ask(WhoAmI).await.unwrap(), "a");
    assert_eq!(a.ask(other::AddAtMost(1, 10)).await.unwrap(), Ok(6));
    assert_eq!(
        a.ask(other::AddAtMost(10, 10)).await.unwrap(),
        Err("16 is over 10".to_string())
    );
    assert_eq!(a.ask(other::Halve).await.unwrap(), Ok(3));
    assert_eq!(a.ask(other::Activations).await.unwrap(), 1);

    let b = node.get::<Counter>("b".to_string());
    assert_eq!(
        b.ask(Add(7)).await.unwrap(),
        7,
        "each key has its own state"
    );
    assert_eq!(b.ask(WhoAmI).await.unwrap(), "b");

    let echo = node.get::<Echo>("e".to_string());
    assert_eq!(echo.ask(Shout("hi".into())).await.unwrap(), "HI");
    node.shutdown().await;
}

/// A client is not a member: each of its asks crosses the wire and each reply comes
/// back encoded under its canonical name, derived (`Result<u64, String>`) or chosen by
/// hand (`u64` is `granary.u64`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_cross_the_wire_to_a_client() {
    let node = Node::builder()
        .store("memory:")
        .host(Counter::kind())
        .start()
        .await
        .expect("the node starts");
    node.ready(Duration::from_secs(10))
        .await
        .expect("the node holds a host lease");
    let client = Client::builder()
        .seeds([node.addr()])
        .connect()
        .await
        .expect("the client connects");
    let c = client.get::<Counter>("remote".to_string());
    assert_eq!(c.ask(Add(4)).await.unwrap(), 4);
    assert_eq!(c.ask(WhoAmI).await.unwrap(), "remote");
    assert_eq!(c.ask(other::AddAtMost(1, 10)).await.unwrap(), Ok(5));
    assert_eq!(
        c.ask(other::AddAtMost(9, 10)).await.unwrap(),
        Err("14 is over 10".to_string())
    );
    assert_eq!(c.ask(other::Halve).await.unwrap(), Ok(2));
    client.close().await;
    node.shutdown().await;
}
