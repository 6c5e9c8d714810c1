//! A connection's bounded outbound queue, drained by its writer in whole batches.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::error::FrameError;
use crate::wire::FrameHeader;

/// Bodies up to this size are copied into the batch buffer (one write for many frames);
/// larger ones travel as their own `Bytes` in the vectored write (no copy).
const INLINE_BODY: usize = 4 * 1024;

/// The batch buffer is cut into a chunk of its own at this size, so it never grows (and
/// re-copies itself) without bound when the writer falls behind.
const CHUNK_SIZE: usize = 256 * 1024;

#[derive(Default)]
struct Pending {
    /// Headers and small bodies, contiguous.
    buf: BytesMut,
    /// Finished chunks in order, before `buf`.
    chunks: VecDeque<Bytes>,
    /// Bytes in `buf` + `chunks`.
    bytes: usize,
}

/// Frames waiting for one connection.
///
/// Producers encode straight into the pending batch under a short lock; the writer takes
/// the whole batch at once, so every frame queued while a write was in progress goes out
/// in the next single (vectored) write.
pub(crate) struct OutboundQueue {
    pending: Mutex<Pending>,
    notify: Notify,
    capacity: usize,
    max_frame: u32,
    frames: AtomicU64,
}

/// Why a frame was not queued.
#[derive(Debug)]
pub(crate) enum PushError {
    Full,
    Frame(FrameError),
}

impl OutboundQueue {
    pub(crate) fn new(capacity: usize, max_frame: u32) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            notify: Notify::new(),
            capacity,
            max_frame,
            frames: AtomicU64::new(0),
        }
    }

    /// Queue one frame. Fails with `Full` if the queue holds `capacity` bytes already.
    pub(crate) fn push(&self, header: &FrameHeader<'_>, body: &Bytes) -> Result<(), PushError> {
        let len = 4 + header.frame_len(body.len()) as usize;
        let was_empty = {
            let mut p = self.pending.lock();
            if p.bytes > 0 && p.bytes + len > self.capacity {
                return Err(PushError::Full);
            }
            let Pending { buf, chunks, bytes } = &mut *p;
            if buf.capacity() == 0 {
                buf.reserve(CHUNK_SIZE);
            }
            header
                .encode(body.len(), self.max_frame, buf)
                .map_err(PushError::Frame)?;
            if body.len() <= INLINE_BODY {
                buf.extend_from_slice(body);
                if buf.len() >= CHUNK_SIZE {
                    chunks.push_back(buf.split().freeze());
                }
            } else {
                chunks.push_back(buf.split().freeze());
                chunks.push_back(body.clone());
            }
            let was_empty = *bytes == 0;
            *bytes += len;
            was_empty
        };
        self.frames.fetch_add(1, Ordering::Relaxed);
        if was_empty {
            self.notify.notify_one();
        }
        Ok(())
    }

    /// Queue an already encoded frame (used by the fault injector's delay line).
    pub(crate) fn push_encoded(&self, frame: Bytes) -> Result<(), PushError> {
        let was_empty = {
            let mut p = self.pending.lock();
            if p.bytes > 0 && p.bytes + frame.len() > self.capacity {
                return Err(PushError::Full);
            }
            let Pending { buf, chunks, bytes } = &mut *p;
            let was_empty = *bytes == 0;
            *bytes += frame.len();
            if frame.len() <= INLINE_BODY {
                buf.extend_from_slice(&frame);
            } else {
                chunks.push_back(buf.split().freeze());
                chunks.push_back(frame);
            }
            was_empty
        };
        self.frames.fetch_add(1, Ordering::Relaxed);
        if was_empty {
            self.notify.notify_one();
        }
        Ok(())
    }

    /// Wait until frames are queued and take all of them, in order.
    pub(crate) async fn take(&self) -> Vec<Bytes> {
        loop {
            {
                let mut p = self.pending.lock();
                if p.bytes > 0 {
                    p.bytes = 0;
                    let rest = p.buf.split().freeze();
                    let mut out: Vec<Bytes> = p.chunks.drain(..).collect();
                    if !rest.is_empty() {
                        out.push(rest);
                    }
                    return out;
                }
            }
            self.notify.notified().await;
        }
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.pending.lock().bytes == 0
    }

    /// Drop everything queued; returns the number of bytes dropped.
    pub(crate) fn clear(&self) -> usize {
        let mut p = self.pending.lock();
        let dropped = p.bytes;
        *p = Pending::default();
        dropped
    }

    /// Frames accepted so far.
    pub(crate) fn frames_queued(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{FrameDecoder, FrameKind};

    fn header(recipient: &str) -> FrameHeader<'_> {
        FrameHeader {
            kind: FrameKind::Tell,
            channel: 1,
            type_tag: 2,
            correlation: 0,
            sender: "",
            recipient,
        }
    }

    #[tokio::test]
    async fn queued_frames_come_out_in_order_in_one_batch() {
        let q = OutboundQueue::new(1 << 20, 1 << 20);
        q.push(&header("a"), &Bytes::from_static(b"small")).unwrap();
        q.push(&header("b"), &Bytes::from(vec![7u8; 10_000]))
            .unwrap();
        q.push(&header("c"), &Bytes::from_static(b"tail")).unwrap();
        let chunks = q.take().await;
        let mut all = BytesMut::new();
        for c in chunks {
            all.extend_from_slice(&c);
        }
        let dec = FrameDecoder::new(1 << 20);
        let names: Vec<String> = std::iter::from_fn(|| dec.decode(&mut all).unwrap())
            .map(|f| f.recipient().to_owned())
            .collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert!(q.is_empty());
    }

    #[test]
    fn full_queue_refuses_with_backpressure_but_empty_queue_takes_a_big_frame() {
        let q = OutboundQueue::new(100, 1 << 20);
        q.push(&header("x"), &Bytes::from(vec![0u8; 500])).unwrap();
        assert!(matches!(
            q.push(&header("x"), &Bytes::from_static(b"1")),
            Err(PushError::Full)
        ));
        assert!(q.clear() > 500);
        q.push(&header("x"), &Bytes::from_static(b"1")).unwrap();
    }
}
