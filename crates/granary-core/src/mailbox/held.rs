//! A tell that carries a token, dropped once the actor has taken the message.
//!
//! The remote layer uses it for flow control: the token is a credit of the exposed
//! actor, so the node knows how many messages from the wire wait in a mailbox without
//! the mailbox itself being bounded (`granary-remote`, `docs/wire.md`, "Flow control").

use crate::handler_future::HandlerFuture;

use crate::actor::{Handler, Message, Priority};
use crate::context::Context;
use crate::envelope::{handle_through_owned, Envelope, TellEnvelope};

/// A fire-and-forget message and the token that goes with it.
///
/// The token is dropped when the actor starts handling the message, or when the message
/// becomes a dead letter (mailbox closed or full), whichever comes first.
pub(crate) struct HeldTellEnvelope<M, T> {
    pub(crate) tell: TellEnvelope<M>,
    pub(crate) token: T,
}

impl<A, M, T> Envelope<A> for HeldTellEnvelope<M, T>
where
    A: Handler<M>,
    M: Message,
    T: Send + 'static,
{
    handle_through_owned!(A);

    fn handle_owned<'a>(self, actor: &'a mut A, ctx: &'a mut Context<A>) -> HandlerFuture<'a> {
        let HeldTellEnvelope {
            tell: TellEnvelope(msg, parent),
            token,
        } = self;
        // Taken out of the mailbox: the token's job is done.
        drop(token);
        crate::envelope::handle_tell(msg, parent, actor, ctx)
    }

    fn priority(&self) -> Priority {
        <TellEnvelope<M> as Envelope<A>>::priority(&self.tell)
    }

    fn message_type(&self) -> &'static str {
        <TellEnvelope<M> as Envelope<A>>::message_type(&self.tell)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use crate::{Actor, ActorSystem, Context, Handler, Message};

    struct Token(Arc<AtomicUsize>);
    impl Drop for Token {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    struct Echo;
    impl Actor for Echo {}
    struct Ping;
    impl Message for Ping {
        type Reply = ();
    }
    impl Handler<Ping> for Echo {
        async fn handle(&mut self, _msg: Ping, _ctx: &mut Context<Self>) {}
    }

    #[tokio::test]
    async fn the_token_drops_when_the_message_is_handled_or_dead() {
        let system = ActorSystem::new();
        let echo = system.spawn(Echo);
        let dropped = Arc::new(AtomicUsize::new(0));
        echo.tell_holding(Ping, Token(dropped.clone())).unwrap();
        echo.ask(Ping).await.unwrap();
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
        echo.stop();
        echo.wait_stopped().await;
        assert!(echo.tell_holding(Ping, Token(dropped.clone())).is_err());
        assert_eq!(dropped.load(Ordering::SeqCst), 2);
        system.shutdown().await;
    }
}
