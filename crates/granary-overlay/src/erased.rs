//! [`DynOverlay`]: any [`Overlay`] behind one object-safe trait, its messages as bytes.
//!
//! [`Overlay`] has an associated message type, so overlays of different kinds cannot
//! share a `Box<dyn Overlay>`. A host that picks the overlay at run time (granary-cluster
//! reads it from the node's configuration) holds a `Box<dyn DynOverlay>` instead:
//! [`erase`] wraps any overlay, encoding its messages with postcard on the way out and
//! decoding them on the way in, so the host carries opaque frames and never names the
//! overlay's types. A frame that does not decode is a typed error, never a panic.

use std::time::Duration;

use bytes::Bytes;

use crate::error::FrameError;
use crate::overlay::{Output, Overlay, PeerId};

/// An overlay with its messages encoded: the object-safe face of [`Overlay`] (see the
/// [module docs](self)). Each method is the [`Overlay`] method of the same name.
pub trait DynOverlay: Send + 'static {
    /// [`Overlay::local`].
    fn local(&self) -> PeerId;
    /// [`Overlay::join`].
    fn join(&mut self, contacts: &[PeerId], now: Duration);
    /// [`Overlay::broadcast`].
    fn broadcast(&mut self, payload: Bytes, now: Duration);
    /// [`Overlay::forward`].
    fn forward(&mut self, to: PeerId, payload: Bytes, now: Duration);
    /// [`Overlay::handle_message`] with the message still encoded; a frame that is not
    /// one of the overlay's messages is refused and changes nothing.
    fn handle_frame(&mut self, from: PeerId, frame: &[u8], now: Duration)
        -> Result<(), FrameError>;
    /// [`Overlay::connection_lost`].
    fn connection_lost(&mut self, peer: PeerId, now: Duration);
    /// [`Overlay::tick`].
    fn tick(&mut self, now: Duration);
    /// [`Overlay::connections`].
    fn connections(&self) -> Vec<PeerId>;
    /// [`Overlay::members`].
    fn members(&self) -> Vec<PeerId>;
    /// [`Overlay::next_hop`].
    fn next_hop(&self, to: PeerId) -> Option<PeerId>;
    /// [`Overlay::poll_output`], a message to send encoded with postcard (one that
    /// cannot be encoded is logged and skipped).
    fn poll_frame(&mut self) -> Option<Output<Bytes>>;
}

/// Wraps `overlay` as a [`DynOverlay`].
///
/// ```
/// use granary_overlay::{erase, ClientServer, DynOverlay, Role};
/// let me = "127.0.0.1:7000".parse().unwrap();
/// let overlay: Box<dyn DynOverlay> = erase(ClientServer::new(me, Role::Client));
/// assert_eq!(overlay.local(), me);
/// assert!(overlay.connections().is_empty());
/// ```
pub fn erase<O: Overlay>(overlay: O) -> Box<dyn DynOverlay> {
    Box::new(Erased(overlay))
}

/// An [`Overlay`] seen as a [`DynOverlay`].
struct Erased<O>(O);

impl<O: Overlay> DynOverlay for Erased<O> {
    fn local(&self) -> PeerId {
        self.0.local()
    }

    fn join(&mut self, contacts: &[PeerId], now: Duration) {
        self.0.join(contacts, now)
    }

    fn broadcast(&mut self, payload: Bytes, now: Duration) {
        self.0.broadcast(payload, now)
    }

    fn forward(&mut self, to: PeerId, payload: Bytes, now: Duration) {
        self.0.forward(to, payload, now)
    }

    fn handle_frame(
        &mut self,
        from: PeerId,
        frame: &[u8],
        now: Duration,
    ) -> Result<(), FrameError> {
        let message: O::Message = postcard::from_bytes(frame).map_err(FrameError::Decode)?;
        self.0.handle_message(from, message, now);
        Ok(())
    }

    fn connection_lost(&mut self, peer: PeerId, now: Duration) {
        self.0.connection_lost(peer, now)
    }

    fn tick(&mut self, now: Duration) {
        self.0.tick(now)
    }

    fn connections(&self) -> Vec<PeerId> {
        self.0.connections()
    }

    fn members(&self) -> Vec<PeerId> {
        self.0.members()
    }

    fn next_hop(&self, to: PeerId) -> Option<PeerId> {
        self.0.next_hop(to)
    }

    fn poll_frame(&mut self) -> Option<Output<Bytes>> {
        loop {
            let output = match self.0.poll_output()? {
                Output::Send { to, message } => match postcard::to_allocvec(&message) {
                    Ok(bytes) => Output::Send {
                        to,
                        message: Bytes::from(bytes),
                    },
                    Err(error) => {
                        tracing::warn!(%to, %error, "overlay message not encoded; skipped");
                        continue;
                    }
                },
                Output::Connect(peer) => Output::Connect(peer),
                Output::Disconnect(peer) => Output::Disconnect(peer),
                Output::Deliver(delivery) => Output::Deliver(delivery),
            };
            return Some(output);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientServer, Role};

    #[test]
    fn a_frame_that_is_not_the_overlays_message_is_refused() {
        let me: PeerId = "127.0.0.1:7000".parse().unwrap();
        let from: PeerId = "127.0.0.1:7001".parse().unwrap();
        let mut overlay = erase(ClientServer::new(me, Role::Server));
        let refused = overlay.handle_frame(from, &[0xff, 0xff, 0xff], Duration::ZERO);
        assert!(matches!(refused, Err(FrameError::Decode(_))));
        assert!(overlay.poll_frame().is_none());
    }

    #[test]
    fn frames_round_trip_between_two_erased_overlays() {
        let server: PeerId = "127.0.0.1:7000".parse().unwrap();
        let client: PeerId = "127.0.0.1:7001".parse().unwrap();
        let mut s = erase(ClientServer::new(server, Role::Server));
        let mut c = erase(ClientServer::new(client, Role::Client));
        c.join(&[server], Duration::ZERO);
        let Some(Output::Send { to, message }) = c.poll_frame() else {
            panic!("the client greets its contact");
        };
        assert_eq!(to, server);
        s.handle_frame(client, &message, Duration::ZERO).unwrap();
        assert_eq!(s.connections(), vec![client]);
        let Some(Output::Send { to, message }) = s.poll_frame() else {
            panic!("the server answers with the servers it knows");
        };
        assert_eq!(to, client);
        c.handle_frame(server, &message, Duration::ZERO).unwrap();
        assert_eq!(c.connections(), vec![server]);
        let other: PeerId = "127.0.0.1:7002".parse().unwrap();
        assert_eq!(
            c.next_hop(other),
            Some(server),
            "a client reaches others through its server"
        );
        assert_eq!(s.next_hop(client), Some(client));
    }
}
