//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

/// Fails the test instead of hanging when `fut` does not finish in 10 s.
pub async fn within<F: Future>(fut: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("timed out: the runtime hung")
}

use granary_core::prelude::*;
use tokio::sync::oneshot;

/// A message that parks the actor inside its handler until released, so a test
/// can queue messages behind it deterministically.
pub struct Block {
    pub entered: oneshot::Sender<()>,
    pub release: oneshot::Receiver<()>,
}

impl Message for Block {
    type Reply = ();
}

impl Block {
    /// The message, a receiver that fires once the handler runs, and the
    /// sender that lets it finish.
    pub fn new() -> (Block, oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (entered_tx, entered_rx) = oneshot::channel();
        let (release_tx, release_rx) = oneshot::channel();
        (
            Block {
                entered: entered_tx,
                release: release_rx,
            },
            entered_rx,
            release_tx,
        )
    }

    /// What the handler does: signal, then wait for release.
    pub async fn park(self) {
        let _ = self.entered.send(());
        let _ = self.release.await;
    }
}
