//! The seam the remote layer plugs into: `ActorRef::from_remote` with a
//! `RemoteTarget` (here a loopback fake that forwards to a local actor).

mod common;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use common::within;
use futures::future::BoxFuture;
use granary_core::prelude::*;
use granary_core::{ErasedMessage, RemoteError, RemoteTarget};

struct Echo;
impl Actor for Echo {}
struct Say(String);
impl Message for Say {
    type Reply = String;
}
impl Handler<Say> for Echo {
    async fn handle(&mut self, msg: Say, _ctx: &mut Context<Self>) -> String {
        msg.0
    }
}

/// Pretends to be a node that hosts one `Echo`; `answer_wrong_type` makes it
/// reply with a type the caller does not expect; `down` makes it unreachable.
struct Loopback {
    target: ActorRef<Echo>,
    answer_wrong_type: bool,
    down: bool,
}

impl RemoteTarget for Loopback {
    fn id(&self) -> ActorId {
        ActorId::new(7, self.target.id().local())
    }

    fn tell_erased(
        &self,
        msg: ErasedMessage,
        _type_name: &'static str,
    ) -> Result<(), SendError<ErasedMessage>> {
        if self.down {
            return Err(SendError::Remote {
                error: RemoteError::Unreachable,
                message: Some(msg),
            });
        }
        match msg.downcast::<Say>() {
            Ok(say) => self
                .target
                .tell(*say)
                .map_err(|e| e.map_message(|m| Box::new(m) as ErasedMessage)),
            Err(other) => Err(SendError::Remote {
                error: RemoteError::TypeMismatch {
                    expected: "Say".into(),
                    found: format!("{:?}", (*other).type_id()),
                },
                message: Some(other),
            }),
        }
    }

    fn ask_erased(
        &self,
        msg: ErasedMessage,
        _type_name: &'static str,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<ErasedMessage, AskError<ErasedMessage>>> {
        let target = self.target.clone();
        let wrong = self.answer_wrong_type;
        Box::pin(async move {
            let say = match msg.downcast::<Say>() {
                Ok(say) => *say,
                Err(_) => return Err(AskError::Remote(RemoteError::Decode("not a Say".into()))),
            };
            let reply = target
                .ask_timeout(say, timeout)
                .await
                .map_err(|e| e.map_message(|m| Box::new(m) as ErasedMessage))?;
            if wrong {
                Ok(Box::new(reply.len()) as Box<dyn Any + Send>)
            } else {
                Ok(Box::new(reply) as Box<dyn Any + Send>)
            }
        })
    }

    fn stop(&self) {
        self.target.stop();
    }

    fn watch(&self, _watcher: ActorId, notify: Box<dyn FnOnce(Terminated) + Send>) {
        let target = self.target.clone();
        let id = self.id();
        tokio::spawn(async move {
            let reason = target.wait_stopped().await;
            notify(Terminated { id, reason });
        });
    }

    fn unwatch(&self, _watcher: ActorId) {}
}

fn remote(system: &ActorSystem, answer_wrong_type: bool, down: bool) -> ActorRef<Echo> {
    ActorRef::from_remote(Arc::new(Loopback {
        target: system.spawn(Echo),
        answer_wrong_type,
        down,
    }))
}

#[tokio::test]
async fn a_remote_ref_sends_and_asks_through_its_remote_target() {
    let system = ActorSystem::new();
    let r = remote(&system, false, false);
    assert!(!r.is_local());
    assert_eq!(r.id().node(), 7);
    r.tell(Say("one-way".into())).unwrap();
    assert_eq!(within(r.ask(Say("hi".into()))).await.unwrap(), "hi");
    let recipient: Recipient<Say> = r.recipient();
    assert_eq!(
        within(recipient.ask(Say("via recipient".into())))
            .await
            .unwrap(),
        "via recipient"
    );
    r.stop();
    // The fake registers its watch asynchronously, so it may see the stop
    // either happen (Normal) or already done (NotAlive); either way it reports.
    let reason = within(r.wait_stopped()).await;
    assert!(
        matches!(reason, StopReason::Normal | StopReason::NotAlive),
        "{reason:?}"
    );
    within(system.shutdown()).await;
}

#[tokio::test]
async fn a_remote_reply_of_the_wrong_type_is_a_type_mismatch_error_not_a_panic() {
    let system = ActorSystem::new();
    let r = remote(&system, true, false);
    match within(r.ask(Say("hi".into()))).await {
        Err(AskError::Remote(RemoteError::TypeMismatch { expected, .. })) => {
            assert!(expected.contains("String"));
        }
        other => panic!("expected TypeMismatch, got {other:?}"),
    }
    within(system.shutdown()).await;
}

#[tokio::test]
async fn an_unreachable_remote_target_gives_the_message_back() {
    let system = ActorSystem::new();
    let r = remote(&system, false, true);
    match r.tell(Say("lost?".into())) {
        Err(SendError::Remote {
            error: RemoteError::Unreachable,
            message: Some(Say(text)),
        }) => assert_eq!(text, "lost?"),
        other => panic!("expected Remote(Unreachable) with the message, got {other:?}"),
    }
    within(system.shutdown()).await;
}
