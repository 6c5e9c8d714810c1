//! Traces across nodes: W3C trace context for `tracing` spans, carried in frames.
//!
//! granary opens `tracing` spans on the message path — `granary.send` where a message
//! leaves for another node, `granary.receive` where it arrives (the remote hop),
//! `granary.handle` around its handler (granary-core), and `granary.activate` /
//! `granary.store_write` in granary-virtual — all at INFO with a `node` field. A
//! frame sent inside a traced span carries that span's [`TraceContext`] (its trace id
//! and span id, W3C `traceparent` in binary; `docs/wire.md`), and the receiving node
//! opens `granary.receive` with the `traceparent` field, so its spans continue the
//! same trace.
//!
//! Which trace a span belongs to is kept by [`TraceLayer`], a
//! [`tracing_subscriber::Layer`]: install it beside your other layers on a
//! [`tracing_subscriber::Registry`]. Without it (or with INFO spans filtered out)
//! frames go untraced and cost nothing extra.
//!
//! With the `otel` feature, install `tracing_opentelemetry::layer()` (with the tracer
//! of your OpenTelemetry pipeline) on the registry: [`current`] then reads the
//! OpenTelemetry span context (the ids the exported spans have), frames carry it, and
//! `granary.receive` takes the frame's context as its OpenTelemetry remote parent, so
//! the exported trace joins up across nodes. [`TraceLayer`] is then not needed (with
//! both, frames carry the OpenTelemetry ids).
//!
//! ```
//! use tracing_subscriber::layer::SubscriberExt;
//!
//! let subscriber = tracing_subscriber::registry().with(granary_remote::trace::TraceLayer);
//! tracing::subscriber::with_default(subscriber, || {
//!     let span = tracing::info_span!("request");
//!     let _entered = span.enter();
//!     let cx = granary_remote::trace::current().expect("inside a traced span");
//!     assert!(cx.is_valid());
//! });
//! ```

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::wire::TraceContext;

/// The name of the span field that carries a remote parent (`traceparent` form).
pub const TRACEPARENT_FIELD: &str = "traceparent";

/// Gives every span a W3C trace context: a new random span id, the trace id of its
/// parent span, of the remote parent named in its `traceparent` field, or a new random
/// one for a root span. Read it with [`current`] or [`context_of`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl<S> Layer<S> for TraceLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut remote = RemoteParent(None);
        attrs.record(&mut remote);
        let inherited = remote.0.or_else(|| {
            span.parent()
                .and_then(|p| p.extensions().get::<TraceContext>().copied())
        });
        let cx = TraceContext {
            trace_id: inherited.map_or_else(random_nonzero::<16>, |p| p.trace_id),
            parent_id: random_nonzero::<8>(),
            flags: inherited.map_or(1, |p| p.flags),
        };
        span.extensions_mut().insert(cx);
    }
}

/// Picks the `traceparent` field out of a new span's fields.
struct RemoteParent(Option<TraceContext>);

impl Visit for RemoteParent {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == TRACEPARENT_FIELD {
            self.0 = TraceContext::parse(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == TRACEPARENT_FIELD {
            self.0 = TraceContext::parse(&format!("{value:?}"));
        }
    }
}

fn random_nonzero<const N: usize>() -> [u8; N] {
    loop {
        let bytes: [u8; N] = crate::random::random();
        if bytes != [0; N] {
            return bytes;
        }
    }
}

/// The trace context of the current span: its trace id and its own span id (the parent
/// id a frame sent from here carries). `None` outside a span, when INFO spans are
/// disabled, or when the subscriber has no [`TraceLayer`] on a registry.
pub fn current() -> Option<TraceContext> {
    if !tracing::level_enabled!(tracing::Level::INFO) {
        return None;
    }
    context_of(&tracing::Span::current())
}

/// The trace context of `span`: with the `otel` feature its OpenTelemetry span
/// context when that is valid, else the one [`TraceLayer`] gave it, if any.
pub fn context_of(span: &tracing::Span) -> Option<TraceContext> {
    #[cfg(feature = "otel")]
    if let Some(cx) = otel::context_of(span) {
        return Some(cx);
    }
    span.with_subscriber(|(id, dispatch)| {
        let registry = dispatch.downcast_ref::<tracing_subscriber::Registry>()?;
        let data = registry.span(id)?;
        let cx = data.extensions().get::<TraceContext>().copied();
        cx
    })
    .flatten()
}

/// The `granary.receive` span of a message that arrived from `from` for `recipient`,
/// continuing the sender's trace when the frame carried one.
pub(crate) fn receive_span(
    node: std::net::SocketAddr,
    from: crate::NodeId,
    recipient: &str,
    trace: Option<TraceContext>,
) -> tracing::Span {
    match trace {
        Some(cx) => {
            let span = tracing::info_span!(
                "granary.receive",
                node = %node,
                from = %from,
                recipient,
                traceparent = %cx,
            );
            #[cfg(feature = "otel")]
            otel::set_remote_parent(&span, cx);
            span
        }
        None => tracing::info_span!("granary.receive", node = %node, from = %from, recipient),
    }
}

/// The OpenTelemetry side (`otel` feature): span contexts in and out of frames.
#[cfg(feature = "otel")]
mod otel {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt;

    use super::TraceContext;

    /// `span`'s OpenTelemetry span context, when a tracing-opentelemetry layer gave it
    /// a valid one.
    pub(super) fn context_of(span: &tracing::Span) -> Option<TraceContext> {
        if span.is_none() {
            return None;
        }
        let cx = span.context();
        let sc = cx.span().span_context().clone();
        sc.is_valid().then(|| TraceContext {
            trace_id: sc.trace_id().to_bytes(),
            parent_id: sc.span_id().to_bytes(),
            flags: sc.trace_flags().to_u8(),
        })
    }

    /// Make the frame's context `span`'s OpenTelemetry remote parent.
    pub(super) fn set_remote_parent(span: &tracing::Span, cx: TraceContext) {
        let remote = SpanContext::new(
            TraceId::from_bytes(cx.trace_id),
            SpanId::from_bytes(cx.parent_id),
            TraceFlags::new(cx.flags),
            true,
            TraceState::default(),
        );
        let parent = opentelemetry::Context::new().with_remote_span_context(remote);
        // Only fails when no OpenTelemetry layer is installed: nothing to join then.
        let _ = span.set_parent(parent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn children_share_the_trace_and_a_remote_parent_starts_none() {
        let subscriber = tracing_subscriber::registry().with(TraceLayer);
        tracing::subscriber::with_default(subscriber, || {
            assert_eq!(current(), None, "outside any span");
            let root = tracing::info_span!("root");
            let root_cx = context_of(&root).unwrap();
            let child = tracing::info_span!(parent: &root, "child");
            let child_cx = context_of(&child).unwrap();
            assert_eq!(child_cx.trace_id, root_cx.trace_id);
            assert_ne!(child_cx.parent_id, root_cx.parent_id);
            let other = tracing::info_span!("other root");
            assert_ne!(context_of(&other).unwrap().trace_id, root_cx.trace_id);
            let remote = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let hop = tracing::info_span!("hop", traceparent = %remote);
            assert_eq!(
                context_of(&hop).unwrap().trace_id_hex(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            let _entered = hop.enter();
            assert_eq!(current(), context_of(&hop));
        });
    }
}
