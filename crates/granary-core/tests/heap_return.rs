//! `memory::return_thread_arena_top` hands back the free top of a thread's glibc arena,
//! which `malloc_trim` keeps. In a process of its own: it measures the process's RSS.

#![cfg(all(target_os = "linux", target_env = "gnu"))]

/// Anonymous resident memory of this process, in bytes: resident minus file-backed
/// pages, from /proc/self/statm, read into a buffer on the stack — a heap allocation
/// freed next to the arena's top would trim the top itself and hide what is measured.
fn resident_anon() -> u64 {
    use std::io::Read;
    let mut buf = [0u8; 256];
    let mut file = std::fs::File::open("/proc/self/statm").expect("open /proc/self/statm");
    let len = file.read(&mut buf).expect("read /proc/self/statm");
    let text = std::str::from_utf8(&buf[..len]).expect("statm is text");
    let mut pages = text
        .split_whitespace()
        .map(|n| n.parse::<u64>().expect("a count"));
    let (_size, resident, shared) = (pages.next(), pages.next(), pages.next());
    let (resident, shared) = (resident.expect("resident"), shared.expect("shared"));
    // SAFETY: sysconf takes a constant and returns a number.
    #[allow(unsafe_code)]
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as u64;
    (resident - shared) * page
}

#[test]
fn a_threads_freed_small_blocks_go_back_once_its_arena_top_is_returned() {
    const MB: u64 = 1 << 20;
    // A thread of its own has an arena of its own (not the main one, whose top
    // `malloc_trim` does trim).
    let (before, kept, returned) = std::thread::spawn(|| {
        let before = resident_anon();
        // 64,000 blocks of 96 bytes (~7 MB with their headers), taken from the top of
        // the arena one after the other and written so their pages are resident ...
        let blocks: Vec<Box<[u8; 96]>> = (0..64_000).map(|_| Box::new([7u8; 96])).collect();
        let blocks = std::hint::black_box(blocks);
        // ... then freed: small blocks go to glibc's per-size free lists, unmerged.
        drop(blocks);
        // `malloc_trim` merges them into the arena's top but trims only the main
        // arena's top: the pages stay resident.
        // SAFETY: malloc_trim takes no pointers.
        #[allow(unsafe_code)]
        unsafe {
            libc::malloc_trim(0);
        }
        let kept = resident_anon();
        granary_core::memory::return_thread_arena_top();
        (before, kept, resident_anon())
    })
    .join()
    .expect("the allocating thread");
    eprintln!(
        "resident: {:.1} MB before, {:.1} MB after malloc_trim, {:.1} MB after the top was returned",
        before as f64 / MB as f64,
        kept as f64 / MB as f64,
        returned as f64 / MB as f64
    );
    if kept < before + 3 * MB {
        eprintln!("skipped: this glibc's malloc_trim returned the thread arena's top itself");
        return;
    }
    assert!(
        returned < before + MB,
        "the arena's top is still resident: {returned} bytes against {before} before"
    );
}
