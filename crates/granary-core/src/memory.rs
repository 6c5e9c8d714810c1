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
//!
//! Two more calls hand memory back after a burst, and the virtual-actor runtime makes
//! both itself when activations end (`granary-virtual`'s `runtime/heap_return.rs`):
//!
//! - [`return_thread_arena_top`]: the free top of the calling thread's arena. A free of
//!   64 KiB or more makes glibc merge the arena's small free blocks and trim its top;
//!   the small frees of a burst of ended actors need not, and `malloc_trim` never trims
//!   a thread arena's top. Measured on the `activate` test (`docs/BENCHMARKS.md`,
//!   session 34): in 4 runs of 46 a worker's arena kept a 2.8-4.6 MB top resident
//!   through `malloc_trim` (its pages one contiguous run at the heap's end, 0.5 MB of
//!   the heap in use).
//! - [`return_free_heap`]: `malloc_trim(0)` — the free pages inside every arena and the
//!   main arena's top — and the calling thread's top. Without it a node that passivated
//!   50,000 identities stays at ~4x its baseline until something trims.
//!
//! Both are cheap when there is nothing to hand back, harmless under another
//! `#[global_allocator]` (they touch only glibc's heap), and no-ops off glibc.

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

/// The smallest free after which glibc merges an arena's small free blocks and trims
/// its top (`FASTBIN_CONSOLIDATION_THRESHOLD` in glibc's `malloc.c`). Below
/// [`MALLOC_MMAP_THRESHOLD`], so the block comes from the arena, not a mapping of its own.
const CONSOLIDATING_FREE: usize = 64 * 1024;

/// Hands the free top of the calling thread's glibc arena back to the system (see the
/// [module documentation](self)): allocates and frees one 64 KiB block, which makes
/// glibc merge the arena's small free blocks into its top and trim the top past the
/// trim threshold (128 KiB by default). glibc gives each thread that allocates an arena
/// of its own (up to eight per core), so this is per thread: call it on the thread whose
/// frees are to be handed back. Costs one allocation and, when there is a top to trim, one
/// `madvise`; a no-op off Linux with glibc, or when the mmap threshold is set below
/// 64 KiB.
pub fn return_thread_arena_top() {
    return_thread_arena_top_impl();
}

/// Hands free heap memory back to the system (see the [module documentation](self)):
/// `malloc_trim(0)`, which releases the free pages inside every glibc arena and the top
/// of the main one, then [`return_thread_arena_top`] for the calling thread. It walks
/// every arena's free lists with the arena locked: call it after a burst, not per
/// operation. A no-op off Linux with glibc.
pub fn return_free_heap() {
    malloc_trim_impl();
    return_thread_arena_top_impl();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn return_thread_arena_top_impl() {
    // SAFETY: a block from `malloc` is freed once, and nothing reads or writes it. The
    // pointer goes through `black_box` so the pair is not optimised away.
    unsafe {
        let block = libc::malloc(CONSOLIDATING_FREE);
        if !block.is_null() {
            libc::free(std::hint::black_box(block));
        }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_thread_arena_top_impl() {
    let _ = CONSOLIDATING_FREE;
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn malloc_trim_impl() {
    // SAFETY: malloc_trim takes no pointers; it only walks the allocator's free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn malloc_trim_impl() {}
