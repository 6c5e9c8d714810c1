//! Random numbers, without a cryptographic generator where none is needed.
//!
//! Handshake nonces come from the operating system ([`nonce`]): a peer that saw earlier
//! nonces must not be able to predict the next one. Everything else (trace and span ids,
//! reconnect jitter, incarnation noise) only has to be unlikely to collide, so it comes
//! from a per-thread xoshiro generator seeded once from the operating system. That keeps
//! the ChaCha generator (and its SIMD dependencies) out of the build.

use std::cell::RefCell;

use rand::distr::{Distribution, StandardUniform};
use rand::rngs::{OsRng, SmallRng};
use rand::{Rng, SeedableRng, TryRngCore};

thread_local! {
    static THREAD_RNG: RefCell<SmallRng> = RefCell::new(SmallRng::from_os_rng());
}

/// A value from the per-thread generator (not for secrets).
pub(crate) fn random<T>() -> T
where
    StandardUniform: Distribution<T>,
{
    THREAD_RNG.with(|rng| rng.borrow_mut().random())
}

/// A value in `range` from the per-thread generator (not for secrets).
pub(crate) fn random_range(range: std::ops::Range<f64>) -> f64 {
    THREAD_RNG.with(|rng| rng.borrow_mut().random_range(range))
}

/// A handshake nonce straight from the operating system's generator.
pub(crate) fn nonce() -> std::io::Result<[u8; 32]> {
    let mut bytes = [0; 32];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(std::io::Error::other)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce().unwrap(), nonce().unwrap());
    }

    #[test]
    fn ranges_hold() {
        for _ in 0..1000 {
            let x = random_range(0.75..1.25);
            assert!((0.75..1.25).contains(&x));
        }
        assert_ne!(random::<u128>(), random::<u128>());
    }
}
