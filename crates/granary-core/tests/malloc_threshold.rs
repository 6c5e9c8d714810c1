//! `memory::pin_malloc_mmap_threshold` turns glibc's adjustment of its mmap threshold
//! off. In a process of its own: the setting is process-wide.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

/// Blocks mapped on their own by the allocator right now.
fn mapped_blocks() -> usize {
    // SAFETY: mallinfo2 takes nothing and returns a plain struct of counters.
    #[allow(unsafe_code)]
    let info = unsafe { libc::mallinfo2() };
    info.hblks
}

#[test]
fn a_large_block_freed_does_not_keep_later_blocks_off_their_own_mappings() {
    if !granary_core::memory::pin_malloc_mmap_threshold() {
        eprintln!("skipped: the environment sets glibc's mmap threshold");
        return;
    }
    // Freeing an 8 MiB block would raise glibc's threshold to 8 MiB by default ...
    let big = std::hint::black_box(vec![1u8; 8 << 20]);
    drop(big);
    // ... and a 512 KiB block would then come from the arena; pinned, it is mapped on
    // its own and goes back to the system when freed.
    let before = mapped_blocks();
    let block = std::hint::black_box(vec![1u8; 512 << 10]);
    assert_eq!(mapped_blocks(), before + 1);
    drop(block);
    assert_eq!(mapped_blocks(), before);
}
