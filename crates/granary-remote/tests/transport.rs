//! Transport scenarios over real sockets on 127.0.0.1.

mod transport {
    pub(crate) mod support;

    mod backpressure_and_channels;
    mod bulk_lane;
    mod delivery_and_fifo;
    mod failures_and_restarts;
    mod faults_over_the_wire;
    mod tls_mutual_auth;
}
