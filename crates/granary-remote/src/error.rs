//! Typed errors of the remote layer, one enum per concern.

use std::fmt;
use std::net::SocketAddr;

use thiserror::Error;

/// One conflict found while building the [`Registry`](crate::Registry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conflict {
    /// Several registrations share one stable name.
    DuplicateName {
        /// The contested name.
        name: String,
        /// Rust type names of every registration under it.
        types: Vec<String>,
    },
    /// One Rust type is registered under several names. No longer reported: the
    /// registry accepts it and encodes the type under a canonical name
    /// (`Registry`, "One type, several names"); the variant stays so that code
    /// matching on it still compiles.
    TypeUnderSeveralNames {
        /// The Rust type name.
        type_name: String,
        /// The names it was registered under.
        names: Vec<String>,
    },
    /// Two different names hash to the same wire tag.
    TagCollision {
        /// The shared tag.
        tag: u64,
        /// The names with that tag.
        names: Vec<String>,
    },
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Conflict::DuplicateName { name, types } => {
                write!(
                    f,
                    "name {name:?} registered by {} types: {types:?}",
                    types.len()
                )
            }
            Conflict::TypeUnderSeveralNames { type_name, names } => {
                write!(
                    f,
                    "type {type_name} registered under several names: {names:?}"
                )
            }
            Conflict::TagCollision { tag, names } => {
                write!(f, "names {names:?} share the wire tag {tag:#018x}")
            }
        }
    }
}

/// The message registry has conflicts; every one found is listed.
#[derive(Debug, Clone, Error)]
#[error("message registry has {} conflict(s): {}", conflicts.len(), join(conflicts))]
pub struct RegistryError {
    /// Every conflict found.
    pub conflicts: Vec<Conflict>,
}

fn join(conflicts: &[Conflict]) -> String {
    conflicts
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Encoding or decoding a message body failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodecError {
    /// The value's type was never registered with `register_message!`.
    #[error("message type is not registered")]
    UnregisteredType,
    /// No registered type has this wire tag.
    #[error("unknown message type tag {0:#018x}")]
    UnknownTag(u64),
    /// An erased value was handed to the codec of another type.
    #[error("value is not a {expected}")]
    WrongType {
        /// The type the codec expected.
        expected: &'static str,
    },
    /// Serialization failed.
    #[error("encode failed: {0}")]
    Encode(String),
    /// The body is not a valid encoding of the type.
    #[error("cannot decode {type_name}: {reason}")]
    Decode {
        /// The type decoding was attempted for.
        type_name: &'static str,
        /// What the decoder reported.
        reason: String,
    },
    /// The peer's contract version of the message is newer than ours: this node is not
    /// upgraded yet (`docs/upgrade.md`).
    #[error("{name} is version {theirs}, newer than this node's version {ours}")]
    TooNew {
        /// The message's wire name.
        name: &'static str,
        /// The sender's contract version.
        theirs: u32,
        /// Ours.
        ours: u32,
    },
    /// The peer's contract version is older than the one before ours: it skipped an
    /// upgrade (`docs/upgrade.md`).
    #[error("{name} is version {theirs}, older than this node accepts (version {ours} and the one before)")]
    TooOld {
        /// The message's wire name.
        name: &'static str,
        /// The sender's contract version.
        theirs: u32,
        /// Ours.
        ours: u32,
    },
}

impl CodecError {
    /// The [`RemoteError`](granary_core::RemoteError) a peer is answered with: the
    /// version errors keep their type, the rest is `Decode` with this text.
    pub fn to_remote(&self) -> granary_core::RemoteError {
        match self {
            Self::TooNew { name, theirs, ours } => granary_core::RemoteError::MessageTooNew {
                name: (*name).to_owned(),
                theirs: *theirs,
                ours: *ours,
            },
            Self::TooOld { name, theirs, ours } => granary_core::RemoteError::MessageTooOld {
                name: (*name).to_owned(),
                theirs: *theirs,
                ours: *ours,
            },
            other => granary_core::RemoteError::Decode(other.to_string()),
        }
    }
}

/// A frame could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// The frame is larger than the configured maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Size of the frame (after the length prefix).
        len: u64,
        /// Configured maximum.
        max: u32,
    },
    /// The frame is shorter than its fixed header or its declared fields.
    #[error("frame truncated: {0}")]
    Truncated(&'static str),
    /// The protocol version byte is not one this build speaks.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// The frame kind byte is unknown.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// Reserved flag bits are set.
    #[error("reserved flags set: {0:#06x}")]
    ReservedFlags(u16),
    /// Sender or recipient is not valid UTF-8.
    #[error("{0} is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// Sender or recipient is longer than 65535 bytes.
    #[error("{0} is longer than 65535 bytes")]
    FieldTooLong(&'static str),
    /// Holding this connection's partial frame would take the bytes held in partial and
    /// chunked frames across all connections over `TransportConfig::max_reassembly_bytes`.
    #[error("partial frames would hold {wanted} bytes on this connection; the node's budget of {budget} bytes for all connections is used up")]
    ReassemblyBudget {
        /// Bytes this connection would hold.
        wanted: u64,
        /// The node-wide budget.
        budget: u64,
    },
}

/// Longest reason kept or logged for a refused connection (bytes); longer ones are cut.
pub(crate) const MAX_REASON: usize = 256;

/// `reason` cut to at most [`MAX_REASON`] bytes (on a character boundary) plus a marker,
/// so no peer-supplied string of unbounded length is kept or logged.
pub(crate) fn bounded_reason(reason: &str) -> String {
    if reason.len() <= MAX_REASON {
        return reason.to_owned();
    }
    let mut end = MAX_REASON;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &reason[..end])
}

/// The connection handshake failed.
#[derive(Debug, Error)]
pub enum HandshakeError {
    /// The peer failed the shared-secret challenge (or refused ours).
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The peer belongs to another cluster.
    #[error("cluster name mismatch: ours {ours:?}, theirs {theirs:?}")]
    ClusterMismatch {
        /// Our cluster name.
        ours: String,
        /// The peer's cluster name.
        theirs: String,
    },
    /// The peer speaks another protocol version.
    #[error("protocol version mismatch: ours {ours}, theirs {theirs}")]
    VersionMismatch {
        /// Our version.
        ours: u8,
        /// The peer's version.
        theirs: u8,
    },
    /// The peer sent something that is not a valid handshake step.
    #[error("handshake protocol violation: {0}")]
    Protocol(String),
    /// The handshake did not finish in time.
    #[error("handshake timed out")]
    Timeout,
    /// TLS negotiation failed (bad or missing certificate, ...).
    #[error("TLS: {0}")]
    Tls(std::io::Error),
    /// The socket failed.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

impl HandshakeError {
    /// A failed TLS negotiation, dialled or accepted: a refusal (a certificate or
    /// protocol one side rejected, which rustls reports as invalid data) is
    /// [`HandshakeError::Tls`]; the socket dying under it (a peer killed mid-handshake
    /// resets the connection) is [`HandshakeError::Io`], a failed connection like any
    /// other, which a dialler retries and never remembers as the peer's refusal.
    pub(crate) fn from_tls(e: std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        match e.kind() {
            ConnectionReset | ConnectionAborted | ConnectionRefused | BrokenPipe | NotConnected
            | TimedOut => HandshakeError::Io(e),
            _ => HandshakeError::Tls(e),
        }
    }
}

/// Configuring TLS failed.
#[derive(Debug, Error)]
pub enum TlsConfigError {
    /// A PEM input could not be parsed.
    #[error("invalid PEM for {what}: {reason}")]
    Pem {
        /// Which input.
        what: &'static str,
        /// Parser message.
        reason: String,
    },
    /// rustls rejected the configuration.
    #[cfg(feature = "tls")]
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
    /// TLS was configured, but this build has no TLS (the `tls` feature is off).
    #[error("TLS is configured but this build lacks the `tls` feature")]
    Disabled,
    /// The client certificate verifier could not be built.
    #[error("client verifier: {0}")]
    Verifier(String),
    /// The server name is not a valid DNS name or IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
}

/// A frame could not be queued for a peer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SendError {
    /// The connection's bounded queue is full (the peer is slow); the frame was not queued.
    #[error("backpressure: queue to {peer} is full")]
    Backpressure {
        /// The peer.
        peer: SocketAddr,
    },
    /// The peer has been unreachable for longer than the configured grace.
    #[error("peer {peer} is unreachable")]
    Unreachable {
        /// The peer.
        peer: SocketAddr,
    },
    /// The frame is larger than the configured maximum frame size.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Encoded frame size.
        len: u64,
        /// Configured maximum.
        max: u32,
    },
    /// The frame's header could not be encoded.
    #[error("frame: {0}")]
    Frame(FrameError),
    /// The channel name is not configured on this transport.
    #[error("unknown channel {0:?}")]
    UnknownChannel(String),
    /// The transport has shut down.
    #[error("transport is shut down")]
    Shutdown,
}

impl From<FrameError> for SendError {
    fn from(e: FrameError) -> Self {
        match e {
            FrameError::TooLarge { len, max } => SendError::FrameTooLarge { len, max },
            other => SendError::Frame(other),
        }
    }
}

/// Starting a transport failed.
#[derive(Debug, Error)]
pub enum TransportError {
    /// Binding the listen socket failed.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// Requested address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// TLS configuration is invalid.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
}

#[cfg(test)]
mod tests {
    use super::HandshakeError;
    use std::io;

    /// A peer killed mid-handshake resets the TLS negotiation: that is a failed
    /// connection (the dialler retries and reports the peer unreachable), not a refusal
    /// that would make every send to the address fail as `Unauthorized` (found by
    /// `cross_host_client_on_bed`: after a kill, a client's ask failed with
    /// "unauthorized: TLS: Connection reset by peer" instead of going to another
    /// gateway). A rejected certificate stays a TLS failure.
    #[test]
    fn a_reset_under_tls_is_a_failed_connection_and_a_rejection_a_tls_failure() {
        for kind in [
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::ConnectionAborted,
            io::ErrorKind::BrokenPipe,
        ] {
            let e = HandshakeError::from_tls(io::Error::new(kind, "socket gone"));
            assert!(matches!(e, HandshakeError::Io(_)), "{kind:?}: {e:?}");
        }
        let rejected = io::Error::new(io::ErrorKind::InvalidData, "invalid peer certificate");
        assert!(matches!(
            HandshakeError::from_tls(rejected),
            HandshakeError::Tls(_)
        ));
    }
}
