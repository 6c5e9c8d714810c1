//! One node's in-memory key-value replica (seed 002 §6.2.3): every operation waits
//! the simulated storage delay (1 ms, "a sequential seek of 1 MB"), then reads or
//! writes under last-writer-wins.
//!
//! Values are kept as their timestamp and length, and a read answers with that many
//! bytes sliced from one shared buffer: the bytes on the wire are what a real store
//! would send, while memory stays flat when thousands of keys hold 8 MB values.
//!
//! Operation encoding (little endian): `[op u8][key u32][timestamp u64][value len u32]`;
//! the answer is `[timestamp u64]` followed, for a read, by the value (timestamp 0
//! and no value when the key was never written).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// A read.
pub(crate) const GET: u8 = 0;
/// A write.
pub(crate) const PUT: u8 = 1;

/// A replica's contents and its storage delay.
pub(crate) struct Replica {
    /// key → (timestamp, value length).
    values: Mutex<HashMap<u32, (u64, u32)>>,
    storage_delay: Duration,
    /// Read answers are slices of this (as long as the largest payload of the run).
    filler: Bytes,
}

/// One operation as the coordinator sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Operation {
    /// [`GET`] or [`PUT`].
    pub(crate) op: u8,
    /// The key, 0..10,000.
    pub(crate) key: u32,
    /// The write's timestamp (ignored for reads).
    pub(crate) timestamp: u64,
    /// The written value's length (ignored for reads).
    pub(crate) len: u32,
}

impl Operation {
    /// The request body: the header, and for a write the value itself.
    pub(crate) fn encode(&self, value: &Bytes) -> Bytes {
        let mut buf = BytesMut::with_capacity(17 + if self.op == PUT { value.len() } else { 0 });
        buf.put_u8(self.op);
        buf.put_u32_le(self.key);
        buf.put_u64_le(self.timestamp);
        buf.put_u32_le(self.len);
        if self.op == PUT {
            buf.put_slice(value);
        }
        buf.freeze()
    }

    fn decode(mut body: &[u8]) -> Option<Operation> {
        if body.len() < 17 {
            return None;
        }
        Some(Operation {
            op: body.get_u8(),
            key: body.get_u32_le(),
            timestamp: body.get_u64_le(),
            len: body.get_u32_le(),
        })
    }
}

/// The timestamp and value length of an answer (`None` if malformed).
pub(crate) fn decode_answer(answer: &[u8]) -> Option<(u64, usize)> {
    let timestamp = u64::from_le_bytes(answer.get(..8)?.try_into().ok()?);
    Some((timestamp, answer.len() - 8))
}

impl Replica {
    /// An empty replica whose reads can answer values up to `max_value` bytes.
    pub(crate) fn new(storage_delay: Duration, max_value: usize) -> Self {
        Self {
            values: Mutex::new(HashMap::new()),
            storage_delay,
            filler: Bytes::from(vec![0x6b; max_value]),
        }
    }

    /// Applies one encoded operation after the storage delay; answers per the module
    /// docs. A malformed operation is answered with timestamp 0 and no value.
    pub(crate) async fn serve(&self, body: &[u8]) -> Bytes {
        let operation = Operation::decode(body);
        // The simulated disk: the replica is busy for this long, like a seek.
        tokio::time::sleep(self.storage_delay).await;
        let mut answer = BytesMut::with_capacity(8);
        let Some(operation) = operation else {
            answer.put_u64_le(0);
            return answer.freeze();
        };
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        match operation.op {
            PUT => {
                let entry = values.entry(operation.key).or_insert((0, 0));
                if operation.timestamp > entry.0 {
                    *entry = (operation.timestamp, operation.len);
                }
                answer.put_u64_le(entry.0);
                answer.freeze()
            }
            _ => {
                let (timestamp, len) = values.get(&operation.key).copied().unwrap_or((0, 0));
                drop(values);
                answer.put_u64_le(timestamp);
                let len = (len as usize).min(self.filler.len());
                let mut out = BytesMut::with_capacity(8 + len);
                out.put_slice(&answer);
                out.put_slice(&self.filler[..len]);
                out.freeze()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn last_writer_wins_and_reads_return_the_winning_length() {
        let replica = Replica::new(Duration::ZERO, 64);
        let put = |timestamp, len| {
            Operation {
                op: PUT,
                key: 5,
                timestamp,
                len,
            }
            .encode(&Bytes::from(vec![1; len as usize]))
        };
        let get = Operation {
            op: GET,
            key: 5,
            timestamp: 0,
            len: 0,
        }
        .encode(&Bytes::new());
        assert_eq!(decode_answer(&replica.serve(&get).await), Some((0, 0)));
        assert_eq!(
            decode_answer(&replica.serve(&put(10, 32)).await),
            Some((10, 0))
        );
        // An older write loses and is told the winner's timestamp.
        assert_eq!(
            decode_answer(&replica.serve(&put(7, 8)).await),
            Some((10, 0))
        );
        assert_eq!(decode_answer(&replica.serve(&get).await), Some((10, 32)));
        assert_eq!(decode_answer(&replica.serve(b"bad").await), Some((0, 0)));
    }
}
