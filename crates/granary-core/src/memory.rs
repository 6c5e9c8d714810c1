//! The process allocator and memory handed back after a burst of actors.
//!
//! A node that activated 50,000 virtual actors and passivated them all should come back
//! close to the memory it had before. With glibc's `malloc` it does not by default, and
//! the reason is the allocator's, not a leak: glibc raises its mmap threshold each time a
//! block larger than it is freed (up to 32 MiB), and the trim threshold to twice that. The
//! tables that held 50,000 entries grew past 128 KiB on the way, so their freed arrays
//! raise both; from then on the free space at the top of each worker thread's arena is
//! kept resident below that threshold, and `malloc_trim` does not return it either (it
//! trims the top of the main arena only). Measured with `granary-bench local --tests
//! activate` (50,000 identities activated, passivated, heap trimmed; `docs/BENCHMARKS.md`,
//! session 16): RSS ended +16 % to +42 % over the warm baseline with the defaults (4 runs
//! of 4 above +10 %), and within +2 % in 7 runs of 8 with the threshold pinned, at the
//! same activation rate. The eighth ended +35 %: a worker arena's top is trimmed only when
//! a free of 64 KiB or more reaches it, which the last frees of a burst need not do.
//!
//! [`pin_malloc_mmap_threshold`] pins the threshold at glibc's default, which turns the
//! adjustment off: large blocks are mapped and unmapped on their own, and arena tops are
//! trimmed past 128 KiB of free space instead of past up to 64 MiB. `granary-virtual-node`
//! calls it at start; a program that embeds a node calls it first thing in `main`.

/// glibc's default mmap threshold: blocks at least this large are mapped on their own.
pub const MALLOC_MMAP_THRESHOLD: usize = 128 * 1024;

/// Pins glibc's mmap threshold at its default ([`MALLOC_MMAP_THRESHOLD`]), so that memory
/// freed after a burst (mass passivation, many actors stopped) goes back to the system
/// (see the [module documentation](self)). Process-wide: call it once, at start.
///
/// Returns whether it changed the setting: `false` on targets other than Linux with
/// glibc, and when the environment already sets the threshold (`MALLOC_MMAP_THRESHOLD_`,
/// or `mmap_threshold` in `GLIBC_TUNABLES`), which then wins. A program whose
/// `#[global_allocator]` is not the system's is not affected either way.
///
/// ```
/// // First thing in `main`, before the runtime's threads allocate.
/// let pinned = granary_core::memory::pin_malloc_mmap_threshold();
/// # let _ = pinned;
/// ```
pub fn pin_malloc_mmap_threshold() -> bool {
    if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
        || std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("mmap_threshold"))
    {
        return false;
    }
    set_mmap_threshold()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn set_mmap_threshold() -> bool {
    // 128 KiB fits the 32-bit `c_int` of Linux.
    const THRESHOLD: libc::c_int = MALLOC_MMAP_THRESHOLD as libc::c_int;
    // SAFETY: mallopt takes two integers and only changes the allocator's parameters.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn set_mmap_threshold() -> bool {
    false
}
