//! The trace context a frame may carry: W3C `traceparent` fields, binary.

use std::fmt;

/// A W3C Trace Context (`traceparent`) in binary form: which trace a frame belongs to
/// and which span sent it.
///
/// A frame carries one when its sender was inside a traced span (`docs/wire.md`,
/// "Trace context"); the receiving node opens its spans as children of `parent_id`, so
/// one request shows as one trace through every node it touched.
///
/// ```
/// use granary_remote::wire::TraceContext;
///
/// let cx = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
/// assert!(cx.sampled());
/// assert_eq!(cx.to_string(), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceContext {
    /// The trace's id (16 bytes, not all zero).
    pub trace_id: [u8; 16],
    /// The id of the span that sent the frame (8 bytes, not all zero).
    pub parent_id: [u8; 8],
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
}

/// Bytes a trace context adds to a frame that carries one.
pub const TRACE_CONTEXT_LEN: usize = 16 + 8 + 1;

impl TraceContext {
    /// Whether the sampled flag (bit 0) is set.
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }

    /// Whether both ids are non-zero, as W3C requires of a valid context.
    pub fn is_valid(&self) -> bool {
        self.trace_id != [0; 16] && self.parent_id != [0; 8]
    }

    /// The trace id as 32 lower-case hex digits.
    pub fn trace_id_hex(&self) -> String {
        hex(&self.trace_id)
    }

    /// Parse a `traceparent` header value (version `00`); `None` if it is malformed or
    /// has an all-zero id.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || version != "00" {
            return None;
        }
        let mut cx = Self {
            trace_id: [0; 16],
            parent_id: [0; 8],
            flags: 0,
        };
        unhex(trace, &mut cx.trace_id)?;
        unhex(parent, &mut cx.parent_id)?;
        let mut f = [0u8; 1];
        unhex(flags, &mut f)?;
        cx.flags = f[0];
        cx.is_valid().then_some(cx)
    }

    pub(crate) fn write(&self, dst: &mut impl bytes::BufMut) {
        dst.put_slice(&self.trace_id);
        dst.put_slice(&self.parent_id);
        dst.put_u8(self.flags);
    }

    /// Read from exactly [`TRACE_CONTEXT_LEN`] bytes.
    pub(crate) fn read(src: &[u8]) -> Option<Self> {
        let src: &[u8; TRACE_CONTEXT_LEN] = src.try_into().ok()?;
        let mut cx = Self {
            trace_id: [0; 16],
            parent_id: [0; 8],
            flags: src[24],
        };
        cx.trace_id.copy_from_slice(&src[..16]);
        cx.parent_id.copy_from_slice(&src[16..24]);
        cx.is_valid().then_some(cx)
    }
}

/// The `traceparent` form: `00-<trace id>-<parent id>-<flags>`.
impl fmt::Display for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.parent_id),
            self.flags
        )
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceContext({self})")
    }
}

fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str, out: &mut [u8]) -> Option<()> {
    if s.len() != out.len() * 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_bad_input_is_refused() {
        let s = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = TraceContext::parse(s).unwrap();
        assert_eq!(cx.to_string(), s);
        let mut buf = Vec::new();
        cx.write(&mut buf);
        assert_eq!(buf.len(), TRACE_CONTEXT_LEN);
        assert_eq!(TraceContext::read(&buf), Some(cx));
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00-4bf92f3577b34da6a3ce929d0e0e47zz-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceContext::parse(bad), None, "{bad}");
        }
        assert_eq!(TraceContext::read(&[0; TRACE_CONTEXT_LEN]), None);
    }
}
