//! `--observe`: granary with metrics and tracing on, as an operator would run it.
//!
//! A Prometheus recorder (`metrics-exporter-prometheus`, the exporter
//! `granary-admin` serves) is the process's `metrics` recorder, and the `tracing`
//! subscriber is a registry with granary's `TraceLayer` under a WARN level filter:
//! spans at INFO are filtered out, so every span callsite and every metric call on
//! the message path is live but nothing is exported per message.

use metrics_exporter_prometheus::PrometheusHandle;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;

/// Installs the recorder and the subscriber for this process; call once, before any
/// node or actor starts. Returns the recorder's handle (to render what it recorded),
/// or `None` when a recorder was already installed: a second call leaves the first
/// in place.
pub(crate) fn install() -> Option<PrometheusHandle> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok();
    let subscriber = tracing_subscriber::registry()
        .with(LevelFilter::WARN)
        .with(granary_remote::trace::TraceLayer);
    let _ = tracing::subscriber::set_global_default(subscriber);
    handle
}
