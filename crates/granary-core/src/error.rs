//! Typed errors. Send errors give the unsent message back when it is local.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::ActorId;

/// Failures that only a remote target produces (used by the remote layer through
/// [`crate::RemoteTarget`]).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum RemoteError {
    /// The node that hosts the actor cannot be reached.
    #[error("node unreachable")]
    Unreachable,
    /// The node has no live actor with this id.
    #[error("no such actor: {0}")]
    NoSuchActor(ActorId),
    /// The message or reply was not of the expected type.
    #[error("type mismatch: expected {expected}, found {found}")]
    TypeMismatch {
        /// The type the receiver expected.
        expected: String,
        /// The type it got.
        found: String,
    },
    /// A frame could not be decoded.
    #[error("decode failed: {0}")]
    Decode(String),
    /// A message could not be encoded.
    #[error("encode failed: {0}")]
    Encode(String),
    /// The encoded message is larger than the transport's maximum frame size; it was
    /// not sent.
    #[error("frame too large: {len} bytes, maximum {max}")]
    FrameTooLarge {
        /// The encoded size in bytes.
        len: u64,
        /// The configured maximum in bytes.
        max: u32,
    },
    /// The peer refused the connection: wrong cluster name, protocol version, shared
    /// secret or certificate. Carries the logged reason.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The queue towards the peer is full (a slow or stalled peer); the message was
    /// not sent.
    #[error("backpressure: the queue to {0} is full")]
    Backpressure(String),
    /// Anything else the transport reports.
    #[error("remote error: {0}")]
    Other(String),
    /// The message's contract version is newer than the receiving node's: that node
    /// runs the previous version of the application (a rolling upgrade is under way).
    /// Final: retrying reaches the same node until it is upgraded.
    #[error("{name} is version {theirs}, newer than the receiver's version {ours}")]
    MessageTooNew {
        /// The message's wire name.
        name: String,
        /// The sender's contract version.
        theirs: u32,
        /// The receiver's.
        ours: u32,
    },
    /// The message's contract version is older than the receiver accepts (its own and
    /// the one before): the sender skipped an upgrade. Final.
    #[error("{name} is version {theirs}, older than the receiver accepts (version {ours} and the one before)")]
    MessageTooOld {
        /// The message's wire name.
        name: String,
        /// The sender's contract version.
        theirs: u32,
        /// The receiver's.
        ours: u32,
    },
}

/// A message could not be enqueued. Local failures hand the message back.
#[non_exhaustive]
pub enum SendError<M> {
    /// The actor has stopped (its mailbox is closed).
    ActorStopped(M),
    /// The actor's bounded mailbox is full.
    MailboxFull(M),
    /// The remote layer could not deliver it; the message when it is still at hand.
    Remote {
        /// What went wrong.
        error: RemoteError,
        /// The message, when it was not consumed.
        message: Option<M>,
    },
}

impl<M> SendError<M> {
    /// The unsent message, when it is still at hand.
    pub fn into_message(self) -> Option<M> {
        match self {
            SendError::ActorStopped(m) | SendError::MailboxFull(m) => Some(m),
            SendError::Remote { message, .. } => message,
        }
    }

    /// Converts the carried message.
    pub fn map_message<N>(self, f: impl FnOnce(M) -> N) -> SendError<N> {
        match self {
            SendError::ActorStopped(m) => SendError::ActorStopped(f(m)),
            SendError::MailboxFull(m) => SendError::MailboxFull(f(m)),
            SendError::Remote { error, message } => SendError::Remote {
                error,
                message: message.map(f),
            },
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            SendError::ActorStopped(_) => "ActorStopped",
            SendError::MailboxFull(_) => "MailboxFull",
            SendError::Remote { .. } => "Remote",
        }
    }
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Remote { error, message } => f
                .debug_struct("Remote")
                .field("error", error)
                .field("message_returned", &message.is_some())
                .finish(),
            other => write!(f, "{}(..)", other.kind()),
        }
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::ActorStopped(_) => f.write_str("actor has stopped"),
            SendError::MailboxFull(_) => f.write_str("mailbox is full"),
            SendError::Remote { error, .. } => write!(f, "remote send failed: {error}"),
        }
    }
}

impl<M> std::error::Error for SendError<M> {}

/// An `ask` did not produce a reply.
#[non_exhaustive]
pub enum AskError<M> {
    /// The request was never enqueued; the message is inside.
    Send(SendError<M>),
    /// No reply within the timeout (the request may still be handled later).
    Timeout,
    /// The handler panicked while handling this request.
    ActorPanicked,
    /// The actor stopped before replying (the request was dead-lettered or dropped),
    /// or refused the request without handling it ([`crate::Actor::admits`]).
    ActorStopped,
    /// The remote layer failed after the request left.
    Remote(RemoteError),
}

impl<M> AskError<M> {
    /// The unsent message, when the request was never enqueued.
    pub fn into_message(self) -> Option<M> {
        match self {
            AskError::Send(e) => e.into_message(),
            _ => None,
        }
    }

    /// Converts the carried message.
    pub fn map_message<N>(self, f: impl FnOnce(M) -> N) -> AskError<N> {
        match self {
            AskError::Send(e) => AskError::Send(e.map_message(f)),
            AskError::Timeout => AskError::Timeout,
            AskError::ActorPanicked => AskError::ActorPanicked,
            AskError::ActorStopped => AskError::ActorStopped,
            AskError::Remote(e) => AskError::Remote(e),
        }
    }
}

impl<M> fmt::Debug for AskError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AskError::Send(e) => f.debug_tuple("Send").field(e).finish(),
            AskError::Timeout => f.write_str("Timeout"),
            AskError::ActorPanicked => f.write_str("ActorPanicked"),
            AskError::ActorStopped => f.write_str("ActorStopped"),
            AskError::Remote(e) => f.debug_tuple("Remote").field(e).finish(),
        }
    }
}

impl<M> fmt::Display for AskError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AskError::Send(e) => write!(f, "request not sent: {e}"),
            AskError::Timeout => f.write_str("no reply within the timeout"),
            AskError::ActorPanicked => f.write_str("the actor panicked while handling the request"),
            AskError::ActorStopped => {
                f.write_str("the actor stopped or refused the request before replying")
            }
            AskError::Remote(e) => write!(f, "remote ask failed: {e}"),
        }
    }
}

impl<M> std::error::Error for AskError<M> {}

impl<M> From<SendError<M>> for AskError<M> {
    fn from(e: SendError<M>) -> Self {
        AskError::Send(e)
    }
}

/// The name registry refused a registration.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// Another actor holds this name.
    #[error("name {0:?} is already registered")]
    NameTaken(String),
    /// The actor has already stopped.
    #[error("actor {0} is not alive")]
    NotAlive(ActorId),
}

/// A wait given up at its deadline ([`crate::ActorSystem::within`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the deadline passed before the future completed")]
pub struct DeadlinePassed;
