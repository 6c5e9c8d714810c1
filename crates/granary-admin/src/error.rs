//! Typed errors of the endpoint and its client.

/// Why the endpoint could not start, or a request to an endpoint failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The endpoint's address could not be bound.
    #[error("cannot bind the management endpoint to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The endpoint could not be reached or the connection failed.
    #[error("cannot reach the management endpoint {endpoint}: {reason}")]
    Unreachable {
        /// The `host:port` asked.
        endpoint: String,
        /// What failed.
        reason: String,
    },
    /// The endpoint did not answer in time.
    #[error("the management endpoint {endpoint} did not answer within {after:?}")]
    Timeout {
        /// The `host:port` asked.
        endpoint: String,
        /// How long the client waited.
        after: std::time::Duration,
    },
    /// The endpoint answered with an error status.
    #[error("the management endpoint answered {status}: {body}")]
    Status {
        /// The HTTP status code.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The answer was not the JSON document expected.
    #[error("the management endpoint's answer is not the expected JSON: {0}")]
    Decode(#[from] serde_json::Error),
}
