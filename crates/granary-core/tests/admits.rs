//! `Actor::admits`: a refused message is not handled, an ask ends at once with
//! `ActorStopped`, each refusal is a dead letter, and the actor keeps running.

mod common;

use common::within;
use granary_core::prelude::*;

/// Counts what it handles; takes messages only while `open`.
struct Gate {
    open: bool,
    handled: u64,
}
impl Actor for Gate {
    fn admits(&mut self, _ctx: &mut Context<Self>) -> bool {
        self.open
    }
}

struct Bump;
impl Message for Bump {
    type Reply = u64;
}
impl Handler<Bump> for Gate {
    async fn handle(&mut self, _: Bump, _ctx: &mut Context<Self>) -> u64 {
        self.handled += 1;
        self.handled
    }
}

#[tokio::test]
async fn a_refused_message_is_not_handled_and_the_actor_lives_on() {
    let system = ActorSystem::new();
    let mut dead = system.events().subscribe::<DeadLetter>();
    let gate = system.spawn(Gate {
        open: false,
        handled: 0,
    });
    assert!(matches!(
        within(gate.ask(Bump)).await,
        Err(AskError::ActorStopped)
    ));
    gate.tell(Bump).unwrap();
    for _ in 0..2 {
        let letter = within(dead.recv()).await.unwrap();
        assert_eq!(letter.reason, DeadLetterReason::Refused);
        assert_eq!(letter.recipient, gate.id());
        assert!(letter.message_type.ends_with("Bump"));
    }
    assert!(gate.is_alive(), "refusing does not stop the actor");
    system.shutdown().await;
}

/// Opens after `refusals` refusals: the next ask is handled, and nothing refused
/// was counted.
struct Countdown {
    refusals: u32,
    handled: u64,
}
impl Actor for Countdown {
    fn admits(&mut self, _ctx: &mut Context<Self>) -> bool {
        if self.refusals == 0 {
            return true;
        }
        self.refusals -= 1;
        false
    }
}
impl Handler<Bump> for Countdown {
    async fn handle(&mut self, _: Bump, _ctx: &mut Context<Self>) -> u64 {
        self.handled += 1;
        self.handled
    }
}

#[tokio::test]
async fn once_it_admits_again_messages_are_handled_as_usual() {
    let system = ActorSystem::new();
    let actor = system.spawn(Countdown {
        refusals: 3,
        handled: 0,
    });
    let mut refused = 0;
    let answer = loop {
        match within(actor.ask(Bump)).await {
            Ok(n) => break n,
            Err(AskError::ActorStopped) => refused += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    };
    assert_eq!(refused, 3);
    assert_eq!(answer, 1, "refused requests were never handled");
    system.shutdown().await;
}
