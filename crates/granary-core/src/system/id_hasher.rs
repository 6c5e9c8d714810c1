//! The hasher of the live-actor table: actor ids are small sequential
//! integers that no outsider chooses, so the table needs no protection against
//! hash flooding and std's SipHash (about a tenth of a spawn/stop cycle in the
//! profiles) buys nothing. The table of kind meters (`observe.rs`, keyed by the
//! address and length of a type name, looked up once per actor) uses it too. A 128-bit folded multiply (the mixing step of
//! wyhash/foldhash) spreads sequential ids over every bit, which hashbrown
//! needs: it takes the bucket from the low bits and a tag from the top seven.
//! Twenty lines here rather than a dependency for one `u64` key.

use std::hash::{BuildHasher, Hasher};

/// Builds [`IdHasher`]s.
#[derive(Clone, Copy, Default)]
pub(crate) struct IdHash;

impl BuildHasher for IdHash {
    type Hasher = IdHasher;

    #[inline]
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

/// Hashes one `u64` key (other input is folded in the same way, so any key
/// type still works, only without the fast path).
pub(crate) struct IdHasher(u64);

/// An odd constant with well-spread bits (2^64 / golden ratio).
const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

#[inline]
fn fold(acc: u64, x: u64) -> u64 {
    let product = u128::from(acc ^ x) * u128::from(MULTIPLIER);
    (product as u64) ^ ((product >> 64) as u64)
}

impl Hasher for IdHasher {
    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = fold(self.0, x);
    }

    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = fold(self.0, u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Sequential ids of one shard (every 16th) must not collide in the low
    /// bits (the bucket) nor share one top-seven-bit tag.
    #[test]
    fn sequential_ids_of_one_shard_spread_over_buckets_and_tags() {
        let hashes: Vec<u64> = (0..4096u64).map(|i| IdHash.hash_one(i * 16 + 3)).collect();
        let buckets: HashSet<u64> = hashes.iter().map(|h| h & 4095).collect();
        let tags: HashSet<u64> = hashes.iter().map(|h| h >> 57).collect();
        assert!(
            buckets.len() > 2048,
            "only {} of 4096 buckets",
            buckets.len()
        );
        assert_eq!(tags.len(), 128);
    }
}
