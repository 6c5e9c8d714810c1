//! Remote actors over real sockets: typed refs, refs inside messages, forged refs, and
//! every error produced by a real failure.

use std::time::Duration;

use bytes::Bytes;
use granary_core::prelude::*;
use granary_core::{DeadLetter, DeadLetterReason, RemoteError};
use granary_remote::wire::{FrameHeader, FrameKind};
use granary_remote::{
    register_message, type_tag, ActorRefRemoteExt, RemoteNode, RemoteRef, SendOptions,
    TransportConfig,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Serialize, Deserialize, Debug)]
struct Add(u64);
impl Message for Add {
    type Reply = u64;
}
register_message!(Add, "test.Add");

#[derive(Serialize, Deserialize, Debug)]
struct Blob(Vec<u8>);
impl Message for Blob {
    type Reply = ();
}
register_message!(Blob, "test.Blob");

#[derive(Serialize, Deserialize, Debug)]
struct Hang;
impl Message for Hang {
    type Reply = ();
}
register_message!(Hang, "test.Hang");

/// A ref travelling inside a message.
#[derive(Serialize, Deserialize, Debug)]
struct Subscribe(RemoteRef<Listener>);
impl Message for Subscribe {
    type Reply = ();
}
register_message!(Subscribe, "test.Subscribe");

#[derive(Serialize, Deserialize, Debug)]
struct Notice(String);
impl Message for Notice {
    type Reply = ();
}
register_message!(Notice, "test.Notice");

struct Counter {
    total: u64,
    node: Option<RemoteNode>,
}
impl Actor for Counter {}
impl Handler<Add> for Counter {
    async fn handle(&mut self, msg: Add, _ctx: &mut Context<Self>) -> u64 {
        self.total += msg.0;
        self.total
    }
}
impl Handler<Blob> for Counter {
    async fn handle(&mut self, _msg: Blob, _ctx: &mut Context<Self>) {}
}
impl Handler<Hang> for Counter {
    async fn handle(&mut self, _msg: Hang, _ctx: &mut Context<Self>) {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
}
impl Handler<Subscribe> for Counter {
    async fn handle(&mut self, msg: Subscribe, _ctx: &mut Context<Self>) {
        let node = self.node.as_ref().expect("node set");
        let listener = msg.0.resolve(node);
        assert!(!listener.is_local());
        listener
            .tell(Notice(format!("total is {}", self.total)))
            .unwrap();
    }
}

/// Local only: says it is being handled, then holds the actor until released.
struct Hold(
    tokio::sync::oneshot::Sender<()>,
    tokio::sync::oneshot::Receiver<()>,
);
impl Message for Hold {
    type Reply = ();
}
impl Handler<Hold> for Counter {
    async fn handle(&mut self, Hold(entered, release): Hold, _ctx: &mut Context<Self>) {
        let _ = entered.send(());
        let _ = release.await;
    }
}

struct Listener(mpsc::UnboundedSender<String>);
impl Actor for Listener {}
impl Handler<Notice> for Listener {
    async fn handle(&mut self, msg: Notice, _ctx: &mut Context<Self>) {
        let _ = self.0.send(msg.0);
    }
}

/// An actor type that claims to take `Notice`: used to forge a ref of the wrong type.
struct Impostor;
impl Actor for Impostor {}
impl Handler<Notice> for Impostor {
    async fn handle(&mut self, _msg: Notice, _ctx: &mut Context<Self>) {}
}

fn config() -> TransportConfig {
    TransportConfig::new("remote-test", b"cookie".to_vec())
}

async fn node(config: TransportConfig) -> RemoteNode {
    RemoteNode::start(ActorSystem::new(), config)
        .await
        .expect("node")
}

/// A server node exposing a `Counter` as "counter".
async fn server() -> (RemoteNode, ActorRef<Counter>) {
    let server = node(config()).await;
    let counter = server.system().spawn(Counter {
        total: 0,
        node: Some(server.clone()),
    });
    server
        .expose("counter", &counter)
        .unwrap()
        .accept::<Add>()
        .unwrap()
        .accept::<Blob>()
        .unwrap()
        .accept::<Hang>()
        .unwrap()
        .accept::<Subscribe>()
        .unwrap();
    (server, counter)
}

async fn dead_letter(sub: &mut granary_core::EventSubscriber<DeadLetter>) -> DeadLetter {
    tokio::time::timeout(WAIT, sub.recv())
        .await
        .expect("dead letter within timeout")
        .expect("event stream open")
}

/// An exposed actor with a bounded mailbox: a remote ask that finds it full waits for
/// room (as a local ask does) instead of failing or publishing a dead letter.
#[tokio::test]
async fn a_remote_ask_to_a_full_bounded_mailbox_waits_for_room() {
    let server = node(config()).await;
    let counter = server.system().spawn_props(
        granary_core::Props::new(Counter {
            total: 0,
            node: None,
        })
        .with_mailbox(MailboxConfig::bounded(1)),
    );
    assert!(counter.is_bounded());
    server
        .expose("bounded", &counter)
        .unwrap()
        .accept::<Add>()
        .unwrap();
    let mut dead = server.system().events().subscribe::<DeadLetter>();
    // The actor is held in a handler and its one slot is taken.
    let (entered, in_handler) = tokio::sync::oneshot::channel();
    let (release, released) = tokio::sync::oneshot::channel();
    counter.tell(Hold(entered, released)).unwrap();
    tokio::time::timeout(WAIT, in_handler)
        .await
        .unwrap()
        .unwrap();
    counter.tell(Add(1)).unwrap();
    assert!(matches!(
        counter.tell(Add(0)),
        Err(SendError::MailboxFull(_))
    ));
    assert_eq!(
        dead_letter(&mut dead).await.reason,
        DeadLetterReason::MailboxFull,
        "the local tell's dead letter"
    );

    let client = node(config()).await;
    let remote = ActorRef::<Counter>::remote(&client, server.local_addr(), "bounded");
    let asked = tokio::spawn(async move { remote.ask(Add(2)).await });
    // Wait until the remote ask reached the server and waits for the full mailbox.
    let entry = server.inbound_backlog("bounded");
    let deadline = tokio::time::Instant::now() + WAIT;
    while server.inbound_backlog("bounded") == entry {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the ask never arrived"
        );
        tokio::task::yield_now().await;
    }
    release.send(()).unwrap();
    let answer = tokio::time::timeout(WAIT, asked).await.unwrap().unwrap();
    assert_eq!(answer.unwrap(), 3, "served after the queued Add(1)");
    assert!(
        dead.try_recv().is_none(),
        "no dead letter for the ask that waited"
    );
    client.shutdown();
    server.shutdown();
}

#[tokio::test]
async fn remote_tell_and_ask_reach_the_actor_and_replies_come_back() {
    let (server, _counter) = server().await;
    let client = node(config()).await;
    let remote = ActorRef::<Counter>::remote(&client, server.local_addr(), "counter");
    assert!(!remote.is_local());
    remote.tell(Add(40)).unwrap();
    // Same pair, same connection: the ask is handled after the tell.
    assert_eq!(remote.ask(Add(2)).await.unwrap(), 42);
    client.shutdown();
    server.shutdown();
}

#[tokio::test]
async fn a_ref_sent_inside_a_message_works_on_the_receiving_node() {
    let (server, _counter) = server().await;
    let client = node(config()).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = client.system().spawn(Listener(tx));
    client
        .expose("listener", &listener)
        .unwrap()
        .accept::<Notice>()
        .unwrap();
    let remote = client.remote_ref::<Counter>(server.local_addr(), "counter");
    remote.ask(Add(5)).await.unwrap();
    remote
        .tell(Subscribe(client.remote_ref_to::<Listener>("listener")))
        .unwrap();
    let notice = tokio::time::timeout(WAIT, rx.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(notice, "total is 5");
    // Resolved on its own node, the same ref is the local actor.
    let local = client
        .remote_ref_to::<Listener>("listener")
        .resolve(&client);
    assert!(local.is_local());
    assert_eq!(local, listener);
    client.shutdown();
    server.shutdown();
}

#[tokio::test]
async fn forged_ref_of_the_wrong_type_gets_type_mismatch_and_a_dead_letter() {
    let (server, _counter) = server().await;
    let mut dead = server.system().events().subscribe::<DeadLetter>();
    let client = node(config()).await;
    let forged = ActorRef::<Impostor>::remote(&client, server.local_addr(), "counter");
    let err = forged.ask(Notice("hi".into())).await.unwrap_err();
    match err {
        AskError::Remote(RemoteError::TypeMismatch { expected, found }) => {
            assert_eq!(found, "test.Notice");
            assert!(expected.contains("test.Add"), "{expected}");
        }
        other => panic!("expected a type mismatch, got {other:?}"),
    }
    forged.tell(Notice("hi".into())).unwrap();
    let letter = dead_letter(&mut dead).await;
    assert_eq!(letter.message_type, "test.Notice");
    assert!(matches!(
        letter.reason,
        DeadLetterReason::Remote(RemoteError::TypeMismatch { .. })
    ));
    client.shutdown();
    server.shutdown();
}

#[tokio::test]
async fn unknown_name_answers_no_such_actor() {
    let (server, _counter) = server().await;
    let client = node(config()).await;
    let nobody = ActorRef::<Counter>::remote(&client, server.local_addr(), "nobody");
    let err = nobody.ask(Add(1)).await.unwrap_err();
    assert!(
        matches!(err, AskError::Remote(RemoteError::NoSuchActor(_))),
        "{err:?}"
    );
    client.shutdown();
    server.shutdown();
}

#[tokio::test]
async fn ask_without_a_reply_times_out() {
    let (server, _counter) = server().await;
    let client = node(config()).await;
    let remote = ActorRef::<Counter>::remote(&client, server.local_addr(), "counter");
    let err = remote
        .ask_timeout(Hang, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(err, AskError::Timeout), "{err:?}");
    client.shutdown();
    server.shutdown();
}

#[tokio::test]
async fn dropped_asks_leave_no_pending_entry_behind() {
    use futures::FutureExt;
    let (server, _counter) = server().await;
    let client = node(config()).await;
    let remote = ActorRef::<Counter>::remote(&client, server.local_addr(), "counter");
    // The first ask opens the connection; the actor hangs on it and answers nothing.
    let mut first = remote.ask_timeout(Hang, Duration::from_secs(3600)).boxed();
    assert!(futures::poll!(&mut first).is_pending());
    assert_eq!(client.pending_asks(), 1);
    for _ in 0..10_000 {
        // One poll sends the ask, then the future is dropped unanswered.
        let ask = remote.ask_timeout(Hang, Duration::from_secs(3600));
        assert!(ask.now_or_never().is_none());
    }
    assert_eq!(
        client.pending_asks(),
        1,
        "only the ask still awaited is pending"
    );
    drop(first);
    assert_eq!(client.pending_asks(), 0);
    client.shutdown();
    server.shutdown();
}

#[tokio::test]
async fn ask_to_a_dead_node_fails_with_unreachable() {
    let (server, _counter) = server().await;
    let addr = server.local_addr();
    server.shutdown();
    let client = node(config()).await;
    let remote = ActorRef::<Counter>::remote(&client, addr, "counter");
    let err = remote.ask_timeout(Add(1), WAIT).await.unwrap_err();
    assert!(
        matches!(err, AskError::Remote(RemoteError::Unreachable)),
        "{err:?}"
    );
    // Once declared unreachable, sends fail at once.
    let err = remote.tell(Add(1)).unwrap_err();
    assert!(matches!(
        err,
        granary_core::SendError::Remote {
            error: RemoteError::Unreachable,
            message: Some(_)
        }
    ));
    client.shutdown();
}

#[tokio::test]
async fn undecodable_body_becomes_a_decode_dead_letter() {
    let (server, _counter) = server().await;
    let mut dead = server.system().events().subscribe::<DeadLetter>();
    let client = node(config()).await;
    // Right tag, garbage body (a varint that never ends).
    let header = FrameHeader {
        kind: FrameKind::Tell,
        channel: 0,
        type_tag: type_tag("test.Add"),
        correlation: 0,
        sender: "",
        recipient: "counter",
        trace: None,
    };
    client
        .transport()
        .send(
            server.local_addr(),
            header,
            Bytes::from_static(&[0xff; 12]),
            SendOptions::data(),
        )
        .unwrap();
    let letter = dead_letter(&mut dead).await;
    assert!(
        matches!(
            letter.reason,
            DeadLetterReason::Remote(RemoteError::Decode(_))
        ),
        "{letter:?}"
    );
    client.shutdown();
    server.shutdown();
}

#[tokio::test]
async fn oversized_message_is_refused_at_the_sender() {
    let (server, _counter) = server().await;
    let client = node(config().with_max_frame(1024)).await;
    let remote = ActorRef::<Counter>::remote(&client, server.local_addr(), "counter");
    let err = remote.tell(Blob(vec![0; 4096])).unwrap_err();
    match err {
        granary_core::SendError::Remote {
            error: RemoteError::FrameTooLarge { len, max },
            message,
        } => {
            assert!(len > u64::from(max) && max == 1024, "len {len}, max {max}");
            assert_eq!(message.unwrap().0.len(), 4096, "the message is handed back");
        }
        other => panic!("{other:?}"),
    }
    client.shutdown();
    server.shutdown();
}

#[tokio::test]
async fn wrong_secret_fails_the_ask_as_unauthorized() {
    let (server, _counter) = server().await;
    let client = node(TransportConfig::new("remote-test", b"wrong".to_vec())).await;
    let remote = ActorRef::<Counter>::remote(&client, server.local_addr(), "counter");
    let err = remote.ask_timeout(Add(1), WAIT).await.unwrap_err();
    match err {
        AskError::Remote(RemoteError::Unauthorized(text)) => {
            assert!(text.contains("unauthorized"), "{text}")
        }
        other => panic!("{other:?}"),
    }
    client.shutdown();
    server.shutdown();
}

#[tokio::test]
async fn remote_watch_reports_a_stop_and_a_lost_node() {
    let (server, _counter) = server().await;
    let other = server.system().spawn(Counter {
        total: 0,
        node: None,
    });
    server
        .expose("other", &other)
        .unwrap()
        .accept::<Add>()
        .unwrap();
    let client = node(config()).await;

    // Stop through the remote ref: the watcher learns the actor stopped normally.
    let remote = ActorRef::<Counter>::remote(&client, server.local_addr(), "counter");
    remote.ask(Add(1)).await.unwrap();
    let stopped = remote.wait_stopped();
    tokio::pin!(stopped);
    // First poll registers the watch; Watch and Stop then travel in order on the control
    // connection, so the actor is watched before it stops.
    assert!(futures::poll!(&mut stopped).is_pending());
    remote.stop();
    let reason = tokio::time::timeout(WAIT, stopped).await.unwrap();
    assert_eq!(reason, StopReason::Normal);
    let err = remote.ask(Add(1)).await.unwrap_err();
    assert!(
        matches!(err, AskError::Remote(RemoteError::NoSuchActor(_))),
        "{err:?}"
    );

    // Lose the whole node: the watcher of "other" is told too.
    let other_remote = ActorRef::<Counter>::remote(&client, server.local_addr(), "other");
    other_remote.ask(Add(1)).await.unwrap();
    let lost = other_remote.wait_stopped();
    tokio::pin!(lost);
    assert!(futures::poll!(&mut lost).is_pending());
    server.shutdown();
    let reason = tokio::time::timeout(WAIT, lost).await.unwrap();
    assert_eq!(reason, StopReason::NodeLost);
    client.shutdown();
}

#[tokio::test]
async fn an_actor_exposed_for_the_network_only_is_served_but_not_named_locally() {
    let server = node(config()).await;
    let counter = server.system().spawn(Counter {
        total: 0,
        node: None,
    });
    let acceptance = server.acceptance::<Counter>().accept::<Add>().unwrap();
    server
        .expose_accepting_remote_only("counter", &counter, &acceptance)
        .unwrap();
    assert!(
        server.system().lookup::<Counter>("counter").is_none(),
        "no local name"
    );
    assert!(
        server
            .expose_accepting_remote_only("counter", &counter, &acceptance)
            .is_err(),
        "the exposed name is still taken"
    );
    let client = node(config()).await;
    let remote = ActorRef::<Counter>::remote(&client, server.local_addr(), "counter");
    assert_eq!(remote.ask(Add(5)).await.unwrap(), 5);
    // The exposure ends with the actor: the name answers NoSuchActor afterwards.
    counter.stop();
    counter.wait_stopped().await;
    let gone = tokio::time::timeout(WAIT, async {
        loop {
            match remote.ask(Add(1)).await {
                Err(AskError::Remote(RemoteError::NoSuchActor(_))) => break,
                _ => tokio::task::yield_now().await,
            }
        }
    })
    .await;
    assert!(gone.is_ok(), "the name is unexposed once the actor stopped");
    client.shutdown();
    server.shutdown();
}
