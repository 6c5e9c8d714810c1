//! Catching panics in handler and hook futures.

use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::envelope::while_dropping_panicked;

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

pin_project_lite::pin_project! {
    /// Runs its future, turning a panic in any poll into `Err(message)`. A plain
    /// struct rather than an `async fn`: it is part of every actor's task while a
    /// message is handled, and holds nothing but the future.
    pub(crate) struct CatchPanic<F> {
        #[pin]
        fut: Option<F>,
    }
}

/// Runs `fut`, turning a panic in any poll into `Err(message)`. The panicked
/// future is dropped right away, marked so that a pending ask inside answers
/// `ActorPanicked`.
pub(crate) fn catch_panic<F: Future>(fut: F) -> CatchPanic<F> {
    CatchPanic { fut: Some(fut) }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut slot = self.project().fut;
        let Some(fut) = slot.as_mut().as_pin_mut() else {
            return Poll::Ready(Err("future polled after completion".to_string()));
        };
        match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => {
                slot.set(None);
                Poll::Ready(Ok(value))
            }
            Err(payload) => {
                let message = panic_message(payload.as_ref());
                // Dropping the half-run future may itself panic; contain that too.
                let _ =
                    while_dropping_panicked(|| catch_unwind(AssertUnwindSafe(|| slot.set(None))));
                let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
                Poll::Ready(Err(message))
            }
        }
    }
}
