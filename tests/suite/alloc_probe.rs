//! The test program's allocator: the system's, noting per thread the largest single allocation
//! asked for and the peak of the bytes held at once, so that a test can assert that a reader
//! never asks for more than a bound (a length read from a damaged file must not size a buffer)
//! and that a decoder's working memory stays within one.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct Probe;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
    /// Bytes this thread has allocated and not yet freed since [`reset`] (memory freed here
    /// that was allocated before counts as negative).
    static HELD: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| {
        if size > largest.get() {
            largest.set(size);
        }
    });
}

fn hold(change: isize) {
    let _ = HELD.try_with(|held| {
        let now = held.get() + change;
        held.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is passed on unchanged to the system allocator.
unsafe impl GlobalAlloc for Probe {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        hold(layout.size() as isize);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        hold(layout.size() as isize);
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        hold(new_size as isize - layout.size() as isize);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        hold(-(layout.size() as isize));
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Probe = Probe;

/// Forgets this thread's largest allocation and peak so far; what it holds now counts as 0.
pub fn reset() {
    LARGEST.with(|largest| largest.set(0));
    HELD.with(|held| held.set(0));
    PEAK.with(|peak| peak.set(0));
}

/// The largest single allocation (bytes) this thread asked for since [`reset`].
pub fn largest() -> usize {
    LARGEST.with(Cell::get)
}

/// The most bytes this thread held at once since [`reset`], beyond what it held then.
pub fn peak() -> usize {
    PEAK.with(Cell::get).max(0) as usize
}
