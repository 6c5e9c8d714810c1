//! A connection's bounded outbound queue, drained by its writer in whole batches.
//!
//! Frames longer than the chunk size do not go out in one piece: they wait in a *slow*
//! line and the writer cuts one chunk off its head per batch, behind every small frame
//! queued meanwhile, so a 1 MiB message delays the other pairs on its connection by one
//! chunk instead of the whole message (seed 002 §2.2, head-of-line blocking). FIFO per
//! pair holds: a frame whose pair still has something in the slow line joins the slow
//! line behind it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::Notify;

use super::room::Room;
use crate::error::FrameError;
use crate::wire::{encode_chunk_header, FrameHeader};

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
    /// Large frames being cut into chunks, and frames of their pairs queued behind them.
    slow: VecDeque<Slow>,
    /// Entries in `slow` per pair.
    slow_pairs: HashMap<u64, usize>,
    /// Bytes in `buf` + `chunks` + `slow`.
    bytes: usize,
}

/// An entry of the slow line.
struct Slow {
    pair: u64,
    what: SlowFrame,
}

enum SlowFrame {
    /// A whole encoded frame (length prefix included), sent as is when its turn comes.
    Whole(Bytes),
    /// What is left of a large frame after its length prefix: the rest of the header
    /// and names, then the body. Cut into chunks.
    Large { head: Bytes, body: Bytes },
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
    /// Frames longer than this (after the length prefix) are sent as chunks of it.
    chunk_size: usize,
    frames: AtomicU64,
    /// The peer's room, told whenever a batch is taken or the queue cleared.
    room: Arc<Room>,
}

impl Pending {
    fn pair_is_slow(&self, pair: u64) -> bool {
        !self.slow.is_empty() && self.slow_pairs.contains_key(&pair)
    }

    fn push_slow(&mut self, entry: Slow) {
        *self.slow_pairs.entry(entry.pair).or_default() += 1;
        self.slow.push_back(entry);
    }

    fn pop_slow(&mut self) {
        if let Some(entry) = self.slow.pop_front() {
            if let Some(n) = self.slow_pairs.get_mut(&entry.pair) {
                *n -= 1;
                if *n == 0 {
                    self.slow_pairs.remove(&entry.pair);
                }
            }
        }
    }

    /// Move the slow line's whole frames up to and including one chunk of its first
    /// large frame into `out`; returns the queue bytes they accounted for.
    fn take_slow(&mut self, chunk_size: usize, out: &mut Vec<Bytes>) -> usize {
        let mut taken = 0;
        while let Some(entry) = self.slow.front_mut() {
            match &mut entry.what {
                SlowFrame::Whole(frame) => {
                    taken += frame.len();
                    out.push(std::mem::take(frame));
                    self.pop_slow();
                }
                SlowFrame::Large { head, body } => {
                    let left = head.len() + body.len();
                    let piece = left.min(chunk_size);
                    let last = piece == left;
                    let mut header = BytesMut::new();
                    encode_chunk_header(piece, last, &mut header);
                    out.push(header.freeze());
                    let from_head = piece.min(head.len());
                    if from_head > 0 {
                        out.push(head.split_to(from_head));
                    }
                    if piece > from_head {
                        out.push(body.split_to(piece - from_head));
                    }
                    taken += piece;
                    if last {
                        self.pop_slow();
                    }
                    break;
                }
            }
        }
        taken
    }
}

/// Why a frame was not queued.
#[derive(Debug)]
pub(crate) enum PushError {
    Full,
    Frame(FrameError),
}

impl OutboundQueue {
    pub(crate) fn new(capacity: usize, max_frame: u32, chunk_size: usize, room: Arc<Room>) -> Self {
        Self {
            pending: Mutex::new(Pending::default()),
            notify: Notify::new(),
            capacity,
            max_frame,
            chunk_size: chunk_size.max(1),
            frames: AtomicU64::new(0),
            room,
        }
    }

    /// Queue one frame of the (sender, recipient) pair hashed to `pair`. Fails with
    /// `Full` if the queue holds `capacity` bytes already.
    pub(crate) fn push(
        &self,
        header: &FrameHeader<'_>,
        body: &Bytes,
        pair: u64,
    ) -> Result<(), PushError> {
        let frame_len = header.frame_len(body.len()) as usize;
        let len = 4 + frame_len;
        let was_empty = {
            let mut p = self.pending.lock();
            if p.bytes > 0 && p.bytes + len > self.capacity {
                return Err(PushError::Full);
            }
            let large = frame_len > self.chunk_size;
            if large || p.pair_is_slow(pair) {
                let mut encoded = BytesMut::new();
                header
                    .encode(body.len(), self.max_frame, &mut encoded)
                    .map_err(PushError::Frame)?;
                let what = if large {
                    encoded.advance(crate::wire::LENGTH_PREFIX);
                    SlowFrame::Large {
                        head: encoded.freeze(),
                        body: body.clone(),
                    }
                } else {
                    encoded.extend_from_slice(body);
                    SlowFrame::Whole(encoded.freeze())
                };
                let was_empty = p.bytes == 0;
                // A large frame counts without its length prefix, which is not sent.
                p.bytes += match &what {
                    SlowFrame::Whole(frame) => frame.len(),
                    SlowFrame::Large { head, body } => head.len() + body.len(),
                };
                p.push_slow(Slow { pair, what });
                was_empty
            } else {
                self.push_fast(&mut p, header, body, len)?
            }
        };
        self.frames.fetch_add(1, Ordering::Relaxed);
        if was_empty {
            self.notify.notify_one();
        }
        Ok(())
    }

    /// Encode a frame into the batch buffer; returns whether the queue was empty.
    fn push_fast(
        &self,
        p: &mut Pending,
        header: &FrameHeader<'_>,
        body: &Bytes,
        len: usize,
    ) -> Result<bool, PushError> {
        {
            let Pending {
                buf, chunks, bytes, ..
            } = p;
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
            Ok(was_empty)
        }
    }

    /// Queue an already encoded frame of the pair hashed to `pair` (used by the fault
    /// injector's delay line).
    pub(crate) fn push_encoded(&self, frame: Bytes, pair: u64) -> Result<(), PushError> {
        self.push_encoded_inner(frame, pair, true)
    }

    /// [`push_encoded`](Self::push_encoded) without the capacity check: for frames that
    /// were accepted, and bounded, elsewhere (held while their pair switched lanes).
    pub(crate) fn push_encoded_unbounded(&self, frame: Bytes, pair: u64) {
        let _always_ok = self.push_encoded_inner(frame, pair, false);
    }

    fn push_encoded_inner(&self, frame: Bytes, pair: u64, bounded: bool) -> Result<(), PushError> {
        let was_empty = {
            let mut p = self.pending.lock();
            if bounded && p.bytes > 0 && p.bytes + frame.len() > self.capacity {
                return Err(PushError::Full);
            }
            let was_empty = p.bytes == 0;
            let large = frame.len() > crate::wire::LENGTH_PREFIX + self.chunk_size;
            p.bytes += if large {
                frame.len() - crate::wire::LENGTH_PREFIX
            } else {
                frame.len()
            };
            if large {
                let what = SlowFrame::Large {
                    head: frame.slice(crate::wire::LENGTH_PREFIX..),
                    body: Bytes::new(),
                };
                p.push_slow(Slow { pair, what });
            } else if p.pair_is_slow(pair) {
                p.push_slow(Slow {
                    pair,
                    what: SlowFrame::Whole(frame),
                });
            } else {
                let Pending { buf, chunks, .. } = &mut *p;
                if frame.len() <= INLINE_BODY {
                    buf.extend_from_slice(&frame);
                } else {
                    chunks.push_back(buf.split().freeze());
                    chunks.push_back(frame);
                }
            }
            was_empty
        };
        self.frames.fetch_add(1, Ordering::Relaxed);
        if was_empty {
            self.notify.notify_one();
        }
        Ok(())
    }

    /// Wait until frames are queued and take every whole frame, in order, then at most
    /// one chunk of the slow line (and the whole frames of the slow line before it).
    pub(crate) async fn take(&self) -> Vec<Bytes> {
        loop {
            {
                let mut p = self.pending.lock();
                if p.bytes > 0 {
                    let rest = p.buf.split().freeze();
                    let mut out: Vec<Bytes> = p.chunks.drain(..).collect();
                    if !rest.is_empty() {
                        out.push(rest);
                    }
                    let fast: usize = out.iter().map(Bytes::len).sum();
                    let slow = p.take_slow(self.chunk_size, &mut out);
                    p.bytes -= fast + slow;
                    drop(p);
                    self.room.drained();
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

    /// Whether part of a large frame or frames of its pair are waiting to be cut.
    #[cfg(test)]
    fn has_slow(&self) -> bool {
        !self.pending.lock().slow.is_empty()
    }

    /// Drop everything queued; returns the number of bytes dropped.
    pub(crate) fn clear(&self) -> usize {
        let mut p = self.pending.lock();
        let dropped = p.bytes;
        *p = Pending::default();
        drop(p);
        self.room.drained();
        dropped
    }

    /// Bytes waiting to be written.
    pub(crate) fn bytes_pending(&self) -> usize {
        self.pending.lock().bytes
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
            trace: None,
        }
    }

    #[tokio::test]
    async fn queued_frames_come_out_in_order_in_one_batch() {
        let q = OutboundQueue::new(1 << 20, 1 << 20, 1 << 20, Arc::default());
        q.push(&header("a"), &Bytes::from_static(b"small"), 0)
            .unwrap();
        q.push(&header("b"), &Bytes::from(vec![7u8; 10_000]), 0)
            .unwrap();
        q.push(&header("c"), &Bytes::from_static(b"tail"), 0)
            .unwrap();
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
        let q = OutboundQueue::new(100, 1 << 20, 1 << 20, Arc::default());
        q.push(&header("x"), &Bytes::from(vec![0u8; 500]), 0)
            .unwrap();
        assert!(matches!(
            q.push(&header("x"), &Bytes::from_static(b"1"), 0),
            Err(PushError::Full)
        ));
        assert!(q.clear() > 500);
        q.push(&header("x"), &Bytes::from_static(b"1"), 0).unwrap();
    }

    /// The receiving side: decodes what the writer sends, rebuilding chunked frames.
    struct Receiver {
        wire: BytesMut,
        reassembler: crate::wire::Reassembler,
    }

    impl Receiver {
        fn new() -> Self {
            Self {
                wire: BytesMut::new(),
                reassembler: crate::wire::Reassembler::new(1 << 24),
            }
        }

        /// The recipients of the frames completed by one write.
        fn feed(&mut self, write: Vec<Bytes>) -> Vec<String> {
            for c in write {
                self.wire.extend_from_slice(&c);
            }
            let dec = FrameDecoder::new(1 << 24);
            let mut names = Vec::new();
            while let Some(f) = dec.decode(&mut self.wire).unwrap() {
                if let Some(f) = self.reassembler.push(f).unwrap() {
                    names.push(f.recipient().to_owned());
                }
            }
            names
        }
    }

    /// Take and decode until the queue is empty; recipients in arrival order.
    async fn drain(q: &OutboundQueue) -> Vec<String> {
        let mut rx = Receiver::new();
        let mut names = Vec::new();
        while !q.is_empty() {
            names.extend(rx.feed(q.take().await));
        }
        assert!(!rx.reassembler.in_progress());
        names
    }

    #[tokio::test]
    async fn a_small_frame_of_another_pair_is_not_stuck_behind_a_large_one() {
        let q = OutboundQueue::new(1 << 24, 1 << 24, 64 * 1024, Arc::default());
        q.push(&header("big"), &Bytes::from(vec![1u8; 1 << 20]), 1)
            .unwrap();
        let mut rx = Receiver::new();
        // The writer sends one 64 KiB chunk of the 1 MiB frame...
        let first = q.take().await;
        assert!(first.iter().map(Bytes::len).sum::<usize>() < 65 * 1024);
        assert!(rx.feed(first).is_empty());
        assert!(q.has_slow());
        // ...a small frame of another pair arrives, and the very next write delivers it.
        q.push(&header("small"), &Bytes::from_static(b"x"), 2)
            .unwrap();
        assert_eq!(rx.feed(q.take().await), ["small"]);
        assert!(rx.reassembler.in_progress());
        let mut rest = Vec::new();
        while !q.is_empty() {
            rest.extend(rx.feed(q.take().await));
        }
        assert_eq!(rest, ["big"]);
    }

    #[tokio::test]
    async fn frames_of_one_pair_stay_in_order_around_a_large_frame() {
        let q = OutboundQueue::new(1 << 24, 1 << 24, 64 * 1024, Arc::default());
        q.push(&header("a1"), &Bytes::from_static(b"1"), 7).unwrap();
        q.push(&header("a2"), &Bytes::from(vec![2u8; 300_000]), 7)
            .unwrap();
        q.push(&header("b1"), &Bytes::from_static(b"1"), 8).unwrap();
        q.push(&header("a3"), &Bytes::from_static(b"3"), 7).unwrap();
        q.push(&header("a4"), &Bytes::from(vec![4u8; 100_000]), 7)
            .unwrap();
        q.push(&header("b2"), &Bytes::from_static(b"2"), 8).unwrap();
        let names = drain(&q).await;
        let of = |p: char| {
            names
                .iter()
                .filter(|n| n.starts_with(p))
                .cloned()
                .collect::<Vec<_>>()
        };
        assert_eq!(of('a'), ["a1", "a2", "a3", "a4"]);
        assert_eq!(of('b'), ["b1", "b2"]);
        // Pair b did not wait for pair a's large frames.
        assert_eq!(names[..3], ["a1", "b1", "b2"]);
        assert_eq!(q.clear(), 0);
    }

    #[tokio::test]
    async fn delayed_large_frames_are_cut_as_well() {
        let q = OutboundQueue::new(1 << 24, 1 << 24, 1024, Arc::default());
        let big = header("big")
            .encode_with_body(&[5u8; 10_000], 1 << 24)
            .unwrap();
        q.push_encoded(big, 1).unwrap();
        q.push(&header("small"), &Bytes::from_static(b"x"), 2)
            .unwrap();
        assert_eq!(drain(&q).await, ["small", "big"]);
    }
}
