//! A handler's future in a heap block recycled through a per-thread free list.
//!
//! Every message an actor handles becomes a future of a type the runner does not know
//! (its handler's), so it is erased and kept on the heap while it runs. In a `Box`
//! that is a `malloc` and a `free` per message: about 130 instructions of glibc's
//! allocator, a tenth of everything a local ping-pong round trip costs (callgrind,
//! `docs/BENCHMARKS.md`, session 23). Here a future of at most [`BLOCK_SIZE`] bytes goes
//! into a fixed-size block popped from this thread's free list and pushed back when the
//! future is dropped; a larger one gets memory of its own size, as a `Box` would.
//!
//! Bounds: a thread keeps at most [`MAX_FREE`] free blocks (16 KiB); a block freed on a
//! thread whose list is full goes back to the allocator. A block is only held while
//! a message is being handled, never by an idle actor.
//!
//! Why not a crate: `recycle-box` recycles one box for one owner, so each actor would
//! keep a block while idle (memory per idle actor), and its handle is 40 bytes where
//! this one, like a `Box<dyn Future>`, is 16 (it is part of the actor's task while a
//! message is handled). What is unsafe here is small: a block written once with the
//! future, polled in place (never moved), dropped in place once.
#![allow(unsafe_code)]

use std::alloc::{alloc, dealloc, handle_alloc_error, Layout};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

/// The size of a recycled block: room for the handler futures of ordinary handlers
/// (an `async fn handle` that awaits little is a few dozen bytes).
pub(crate) const BLOCK_SIZE: usize = 256;

/// The alignment of a recycled block.
const BLOCK_ALIGN: usize = 16;

/// The layout every recycled block is allocated and freed with.
const BLOCK_LAYOUT: Layout = match Layout::from_size_align(BLOCK_SIZE, BLOCK_ALIGN) {
    Ok(layout) => layout,
    Err(_) => panic!("the block size is a multiple of its power-of-two alignment"),
};

/// Free blocks a thread keeps at most.
pub(crate) const MAX_FREE: usize = 64;

/// A handler's future, erased: as a `Pin<Box<dyn Future>>`, but its memory comes from
/// and goes back to the thread's free list when it fits a block.
pub(crate) struct HandlerFuture<'a> {
    /// Owned, written once by [`HandlerFuture::new`], never moved until dropped.
    fut: NonNull<dyn Future<Output = ()> + Send + 'a>,
}

// SAFETY: the future is `Send` and owned by this handle alone.
unsafe impl Send for HandlerFuture<'_> {}

impl<'a> HandlerFuture<'a> {
    /// Erases `fut`, in a recycled block when it fits one.
    #[inline]
    pub(crate) fn new<F: Future<Output = ()> + Send + 'a>(fut: F) -> Self {
        let layout = Layout::new::<F>();
        let place: NonNull<F> = if fits_block(layout) {
            take_block().cast()
        } else if layout.size() == 0 {
            NonNull::dangling()
        } else {
            // SAFETY: the layout's size is not zero.
            match NonNull::new(unsafe { alloc(layout) }) {
                Some(place) => place.cast(),
                None => handle_alloc_error(layout),
            }
        };
        // SAFETY: `place` is valid for writes of an `F` (a block of at least its size
        // and alignment, memory of its own layout, or dangling for a zero-sized `F`).
        unsafe { place.as_ptr().write(fut) };
        Self { fut: place }
    }
}

impl Future for HandlerFuture<'_> {
    type Output = ();

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // SAFETY: the future is owned by this handle, initialised, and stays where it
        // is until it is dropped in place: pinning it is sound.
        unsafe { Pin::new_unchecked(this.fut.as_mut()) }.poll(cx)
    }
}

impl Drop for HandlerFuture<'_> {
    fn drop(&mut self) {
        // SAFETY: initialised and owned (see `fut`).
        let layout = Layout::for_value(unsafe { self.fut.as_ref() });
        // Gives the memory back even if the future's drop panics.
        let _release = Release {
            place: self.fut.cast(),
            layout,
        };
        // SAFETY: dropped exactly once, here; the memory is released after it.
        unsafe { self.fut.as_ptr().drop_in_place() };
    }
}

/// Gives a future's memory back when dropped.
struct Release {
    place: NonNull<u8>,
    layout: Layout,
}

impl Drop for Release {
    #[inline]
    fn drop(&mut self) {
        if fits_block(self.layout) {
            give_back(self.place);
        } else if self.layout.size() != 0 {
            // SAFETY: allocated by `HandlerFuture::new` with this layout.
            unsafe { dealloc(self.place.as_ptr(), self.layout) };
        }
    }
}

/// Whether a value of `layout` goes into a recycled block.
#[inline]
fn fits_block(layout: Layout) -> bool {
    layout.size() != 0 && layout.size() <= BLOCK_SIZE && layout.align() <= BLOCK_ALIGN
}

/// A block from this thread's free list, or a new one.
#[inline]
fn take_block() -> NonNull<u8> {
    match FREE.try_with(FreeList::pop) {
        Ok(Some(block)) => block,
        // Empty, or the thread is exiting and its list is gone.
        _ => {
            let layout = BLOCK_LAYOUT;
            // SAFETY: a block's size is not zero.
            match NonNull::new(unsafe { alloc(layout) }) {
                Some(block) => block,
                None => handle_alloc_error(layout),
            }
        }
    }
}

/// Puts a block on this thread's free list, or frees it when the list is full or gone.
#[inline]
fn give_back(block: NonNull<u8>) {
    let kept = FREE.try_with(|free| free.push(block)).unwrap_or(false);
    if !kept {
        // SAFETY: every block is allocated with the block layout.
        unsafe { dealloc(block.as_ptr(), BLOCK_LAYOUT) };
    }
}

/// What a free block holds: the next free block.
struct FreeBlock {
    next: Option<NonNull<FreeBlock>>,
}

/// A thread's free blocks, linked through the blocks themselves.
struct FreeList {
    head: Cell<Option<NonNull<FreeBlock>>>,
    len: Cell<usize>,
}

thread_local! {
    static FREE: FreeList = const {
        FreeList {
            head: Cell::new(None),
            len: Cell::new(0),
        }
    };
}

impl FreeList {
    #[inline]
    fn pop(&self) -> Option<NonNull<u8>> {
        let block = self.head.get()?;
        // SAFETY: a listed block holds a `FreeBlock` written by `push`.
        self.head.set(unsafe { block.as_ref() }.next);
        self.len.set(self.len.get() - 1);
        Some(block.cast())
    }

    /// Keeps `block` unless the list is full; false if not kept.
    #[inline]
    fn push(&self, block: NonNull<u8>) -> bool {
        if self.len.get() >= MAX_FREE {
            return false;
        }
        let block = block.cast::<FreeBlock>();
        // SAFETY: a block is big and aligned enough for a `FreeBlock`, and no longer
        // holds a future.
        unsafe {
            block.as_ptr().write(FreeBlock {
                next: self.head.get(),
            })
        };
        self.head.set(Some(block));
        self.len.set(self.len.get() + 1);
        true
    }

    /// Free blocks kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.len.get()
    }
}

impl Drop for FreeList {
    fn drop(&mut self) {
        while let Some(block) = self.pop() {
            // SAFETY: every block is allocated with the block layout.
            unsafe { dealloc(block.as_ptr(), BLOCK_LAYOUT) };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// Counts its drops.
    struct Dropped(Arc<AtomicUsize>);

    impl Drop for Dropped {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn free_blocks() -> usize {
        FREE.with(FreeList::len)
    }

    /// A small future runs in a recycled block: the block goes back to the list when
    /// the future is dropped, and the next future takes that same block.
    #[tokio::test(flavor = "current_thread")]
    async fn a_small_future_reuses_the_block_of_the_last() {
        let drops = Arc::new(AtomicUsize::new(0));
        let dropped = Dropped(drops.clone());
        let first = HandlerFuture::new(async move {
            let _held = dropped;
        });
        let place = first.fut.cast::<u8>();
        first.await;
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        let kept = free_blocks();
        assert!(kept >= 1);
        let second = HandlerFuture::new(async {});
        assert_eq!(second.fut.cast::<u8>(), place);
        assert_eq!(free_blocks(), kept - 1);
        drop(second);
        assert_eq!(free_blocks(), kept);
    }

    /// A future larger than a block gets memory of its own and is dropped once, run or
    /// not; the free list does not change.
    #[tokio::test(flavor = "current_thread")]
    async fn a_large_future_is_allocated_on_its_own() {
        let drops = Arc::new(AtomicUsize::new(0));
        let kept = free_blocks();
        let big = [7u8; 2 * BLOCK_SIZE];
        let dropped = Dropped(drops.clone());
        let sum = Arc::new(AtomicUsize::new(0));
        let seen = sum.clone();
        let fut = HandlerFuture::new(async move {
            let _held = &dropped;
            tokio::task::yield_now().await;
            seen.store(big.iter().map(|b| usize::from(*b)).sum(), Ordering::SeqCst);
        });
        assert!(std::mem::size_of_val(unsafe { fut.fut.as_ref() }) > BLOCK_SIZE);
        fut.await;
        assert_eq!(sum.load(Ordering::SeqCst), 7 * 2 * BLOCK_SIZE);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        let unrun = HandlerFuture::new({
            let dropped = Dropped(drops.clone());
            async move {
                let _held = (dropped, big);
            }
        });
        drop(unrun);
        assert_eq!(drops.load(Ordering::SeqCst), 2);
        assert_eq!(free_blocks(), kept);
    }

    /// A future suspended in its block keeps what it borrows and owns until it is
    /// dropped half-run; its block is recycled then.
    #[tokio::test(flavor = "current_thread")]
    async fn a_half_run_future_is_dropped_in_place() {
        let drops = Arc::new(AtomicUsize::new(0));
        let dropped = Dropped(drops.clone());
        let mut fut = HandlerFuture::new(async move {
            let _held = dropped;
            std::future::pending::<()>().await;
        });
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
        assert_eq!(drops.load(Ordering::SeqCst), 0);
        let kept = free_blocks();
        drop(fut);
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        assert_eq!(free_blocks(), (kept + 1).min(MAX_FREE));
    }

    /// A thread keeps at most `MAX_FREE` blocks however many futures end on it.
    #[test]
    fn the_free_list_is_bounded() {
        std::thread::spawn(|| {
            let many: Vec<_> = (0..3 * MAX_FREE)
                .map(|i| {
                    HandlerFuture::new(async move {
                        std::hint::black_box(i);
                    })
                })
                .collect();
            assert_eq!(free_blocks(), 0);
            drop(many);
            assert_eq!(free_blocks(), MAX_FREE);
        })
        .join()
        .expect("the thread ran");
    }

    /// A future whose drop panics still gives its block back.
    #[test]
    fn a_panicking_drop_gives_the_block_back() {
        struct Bomb;
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("boom");
            }
        }
        std::thread::spawn(|| {
            let bomb = Bomb;
            let fut = HandlerFuture::new(async move {
                let _held = bomb;
            });
            assert_eq!(free_blocks(), 0);
            let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(fut)));
            assert!(dropped.is_err());
            assert_eq!(free_blocks(), 1);
        })
        .join()
        .expect("the thread ran");
    }
}
