//! A door serves every name under a prefix (`RemoteNode::expose_door`): asks, tells,
//! refusals, stop and watch reach a family of actors through one endpoint, with no
//! exposure per actor and the names on the wire unchanged.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use granary_core::prelude::*;
use granary_core::{DeadLetter, DeadLetterReason, RemoteError};
use granary_remote::{
    register_message, ActorRefRemoteExt, Delivery, Door, Opened, Refused, RemoteNode,
    TransportConfig,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

const WAIT: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize, Debug)]
struct Bump(u64);
impl Message for Bump {
    type Reply = u64;
}
register_message!(Bump, "test.door.Bump");

/// Registered, but not a type the door's actors handle.
#[derive(Serialize, Deserialize, Debug)]
struct Other;
impl Message for Other {
    type Reply = ();
}
register_message!(Other, "test.door.Other");

struct Tally(u64);
impl Actor for Tally {}
impl Handler<Bump> for Tally {
    async fn handle(&mut self, m: Bump, _: &mut Context<Self>) -> u64 {
        self.0 += m.0;
        self.0
    }
}
impl Handler<Other> for Tally {
    async fn handle(&mut self, _: Other, _: &mut Context<Self>) {}
}

/// Serves `tally/<name>` from a table of local actors.
#[derive(Default)]
struct Tallies {
    by_name: Mutex<HashMap<String, ActorRef<Tally>>>,
}

impl Tallies {
    fn get(&self, rest: &str) -> Option<ActorRef<Tally>> {
        self.by_name.lock().get(rest).cloned()
    }
}

impl Door for Tallies {
    fn deliver(&self, rest: &str, delivery: Delivery) -> Result<(), Refused> {
        let Some(tally) = self.get(rest) else {
            return Err(Refused::no_such_actor(delivery));
        };
        let Opened {
            message,
            replier,
            credit,
        } = delivery.open::<Bump>().map_err(|d| {
            Refused::new(
                d,
                RemoteError::TypeMismatch {
                    expected: "test.door.Bump".into(),
                    found: "another type".into(),
                },
            )
        })?;
        match replier {
            None => drop(tally.tell_holding(message, credit)),
            // One push; the answer is sent from the tally's task.
            Some(replier) => tally.ask_then(message, move |result| {
                replier.reply(result);
                drop(credit);
            }),
        }
        Ok(())
    }

    fn stop(&self, rest: &str) {
        if let Some(tally) = self.get(rest) {
            tally.stop();
        }
    }

    fn on_stopped(&self, rest: &str, stopped: Box<dyn FnOnce(StopReason) + Send>) -> bool {
        match self.get(rest) {
            Some(tally) => {
                tally.on_stopped(stopped);
                true
            }
            None => false,
        }
    }
}

fn config() -> TransportConfig {
    TransportConfig::new("door-test", b"cookie".to_vec())
}

async fn node() -> RemoteNode {
    RemoteNode::start(ActorSystem::new(), config())
        .await
        .expect("node")
}

/// A server with a door at `tally/` serving `n` tallies named `tally/0`…, and a
/// client.
async fn server_with(n: usize) -> (RemoteNode, Arc<Tallies>, RemoteNode) {
    let server = node().await;
    let tallies = Arc::new(Tallies::default());
    for i in 0..n {
        let tally = server.system().spawn(Tally(0));
        tallies.by_name.lock().insert(i.to_string(), tally);
    }
    server
        .expose_door("tally/", tallies.clone())
        .expect("door opens");
    (server, tallies, node().await)
}

#[tokio::test]
async fn asks_and_tells_reach_every_actor_behind_one_door_without_an_exposure_each() {
    let (server, _tallies, client) = server_with(20).await;
    let before = server.exposed_count();
    for i in 0..20 {
        let tally = ActorRef::<Tally>::remote(&client, server.local_addr(), &format!("tally/{i}"));
        tally.tell(Bump(i)).unwrap();
        // Ordered after the tell (same sender and recipient, one connection).
        assert_eq!(tally.ask(Bump(1)).await.unwrap(), i + 1);
    }
    assert_eq!(server.exposed_count(), before, "no exposure per actor");
    assert_eq!(server.door_prefixes(), vec!["tally/".to_owned()]);
    assert_eq!(server.inbound_backlog("tally/3"), Some(0));
    assert!(server
        .expose_door("tally/", Arc::new(Tallies::default()))
        .is_err());
    client.shutdown();
    server.shutdown();
}

#[tokio::test]
async fn a_name_the_door_does_not_serve_or_a_type_it_refuses_is_answered_with_the_error() {
    let (server, _tallies, client) = server_with(1).await;
    let mut dead = server.system().events().subscribe::<DeadLetter>();

    let missing = ActorRef::<Tally>::remote(&client, server.local_addr(), "tally/9");
    let err = missing.ask(Bump(1)).await.unwrap_err();
    // The id of a forged ref to the name, as for a name nothing is exposed under.
    assert!(
        matches!(err, AskError::Remote(RemoteError::NoSuchActor(id)) if id == missing.id()),
        "{err:?}"
    );
    // A refused tell becomes a dead letter on the serving node.
    missing.tell(Bump(1)).unwrap();
    let letter = tokio::time::timeout(WAIT, dead.recv())
        .await
        .expect("a dead letter")
        .expect("the event stream is open");
    assert!(
        matches!(
            letter.reason,
            DeadLetterReason::Remote(RemoteError::NoSuchActor(id)) if id == missing.id()
        ),
        "{letter:?}"
    );
    // It names the refused name, as the forged ref does (worked out only on refusal).
    assert_eq!(letter.recipient, missing.id());

    let served = ActorRef::<Tally>::remote(&client, server.local_addr(), "tally/0");
    let err = served.ask(Other).await.unwrap_err();
    assert!(
        matches!(err, AskError::Remote(RemoteError::TypeMismatch { .. })),
        "{err:?}"
    );
    // Outside every door's prefix: nothing there.
    let elsewhere = ActorRef::<Tally>::remote(&client, server.local_addr(), "tallyho");
    let err = elsewhere.ask(Bump(1)).await.unwrap_err();
    assert!(
        matches!(err, AskError::Remote(RemoteError::NoSuchActor(_))),
        "{err:?}"
    );
    client.shutdown();
    server.shutdown();
}

#[tokio::test]
async fn an_exact_exposure_wins_over_a_door_and_the_longest_prefix_wins_between_doors() {
    let (server, _tallies, client) = server_with(1).await;
    let exact = server.system().spawn(Tally(100));
    server
        .expose("tally/0", &exact)
        .unwrap()
        .accept::<Bump>()
        .unwrap();
    let inner = Arc::new(Tallies::default());
    inner
        .by_name
        .lock()
        .insert("x".into(), server.system().spawn(Tally(1000)));
    server.expose_door("tally/inner/", inner).unwrap();
    assert_eq!(
        server.door_prefixes(),
        vec!["tally/inner/".to_owned(), "tally/".to_owned()]
    );

    let to = |name: &str| ActorRef::<Tally>::remote(&client, server.local_addr(), name);
    assert_eq!(to("tally/0").ask(Bump(1)).await.unwrap(), 101);
    assert_eq!(to("tally/inner/x").ask(Bump(1)).await.unwrap(), 1001);
    client.shutdown();
    server.shutdown();
}

#[tokio::test]
async fn a_remote_stop_and_watch_reach_an_actor_behind_a_door() {
    let (server, tallies, client) = server_with(2).await;
    let remote = ActorRef::<Tally>::remote(&client, server.local_addr(), "tally/0");
    assert_eq!(remote.ask(Bump(1)).await.unwrap(), 1);
    let stopped = remote.wait_stopped();
    tokio::pin!(stopped);
    // The first poll sends the watch; watch and stop travel in order on the control
    // connection, so the actor is watched before it stops.
    assert!(futures::poll!(&mut stopped).is_pending());
    remote.stop();
    let reason = tokio::time::timeout(WAIT, stopped).await.unwrap();
    assert_eq!(reason, StopReason::Normal);
    let local = tallies.get("0").expect("still in the door's table");
    assert!(!local.is_alive());

    // A watch of a name the door does not serve is answered at once.
    let missing = ActorRef::<Tally>::remote(&client, server.local_addr(), "tally/7");
    let reason = tokio::time::timeout(WAIT, missing.wait_stopped())
        .await
        .unwrap();
    assert_eq!(reason, StopReason::NotAlive);

    // The other actor behind the door still serves.
    let other = ActorRef::<Tally>::remote(&client, server.local_addr(), "tally/1");
    assert_eq!(other.ask(Bump(2)).await.unwrap(), 2);
    client.shutdown();
    server.shutdown();
}
