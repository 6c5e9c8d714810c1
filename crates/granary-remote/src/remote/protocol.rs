//! What the remote layer puts in frame bodies besides user messages.

use granary_core::{Failure, RemoteError, StopReason};
use serde::{Deserialize, Serialize};

/// Control-channel messages between remote layers (frame kind `System`, type tag 0).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum SystemMessage {
    /// Tell me when the actor exposed under `name` stops.
    Watch { name: String },
    /// Forget my watch on `name`.
    Unwatch { name: String },
    /// The actor exposed under `name` stopped (or was never there).
    Terminated {
        name: String,
        reason: WireStopReason,
    },
    /// Stop the actor exposed under `name`.
    Stop { name: String },
}

/// [`StopReason`] as it crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum WireStopReason {
    Normal,
    ParentStopped,
    Shutdown,
    Failed(String),
    NotAlive,
    Killed,
    NodeLost,
}

impl From<&StopReason> for WireStopReason {
    fn from(r: &StopReason) -> Self {
        match r {
            StopReason::Normal => Self::Normal,
            StopReason::ParentStopped => Self::ParentStopped,
            StopReason::Shutdown => Self::Shutdown,
            StopReason::Failed(f) => Self::Failed(f.to_string()),
            StopReason::NotAlive => Self::NotAlive,
            StopReason::NodeLost => Self::NodeLost,
            _ => Self::Killed,
        }
    }
}

impl From<WireStopReason> for StopReason {
    fn from(r: WireStopReason) -> Self {
        match r {
            WireStopReason::Normal => Self::Normal,
            WireStopReason::ParentStopped => Self::ParentStopped,
            WireStopReason::Shutdown => Self::Shutdown,
            // The remote failure's own type does not cross the wire; its text does.
            WireStopReason::Failed(text) => Self::Failed(Failure::Panic(text)),
            WireStopReason::NotAlive => Self::NotAlive,
            WireStopReason::Killed => Self::Killed,
            WireStopReason::NodeLost => Self::NodeLost,
        }
    }
}

/// The body of a `Reply` frame whose ask failed on the serving node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ReplyFailure {
    Remote(RemoteError),
    Panicked,
    Stopped,
    Timeout,
}

/// Wire name of [`ReplyFailure`].
pub(crate) const REPLY_FAILURE: &str = "granary.ReplyFailure";

crate::register_message!(ReplyFailure, REPLY_FAILURE);

// Common reply types, registered once here so applications need not (and must not:
// registering them again under another name is a reported conflict).
crate::register_message!((), "granary.unit");
crate::register_message!(bool, "granary.bool");
crate::register_message!(u32, "granary.u32");
crate::register_message!(u64, "granary.u64");
crate::register_message!(i32, "granary.i32");
crate::register_message!(i64, "granary.i64");
crate::register_message!(String, "granary.String");
crate::register_message!(Vec<u8>, "granary.Bytes");
