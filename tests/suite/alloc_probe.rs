//! The test program's allocator: the system's, noting the largest single allocation each thread
//! asks for, so that a test can assert that a reader never asks for more than a bound (a length
//! read from a damaged file must not size a buffer).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

pub struct Probe;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|largest| {
        if size > largest.get() {
            largest.set(size);
        }
    });
}

// SAFETY: every call is passed on unchanged to the system allocator.
unsafe impl GlobalAlloc for Probe {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Probe = Probe;

/// Forgets this thread's largest allocation so far.
pub fn reset() {
    LARGEST.with(|largest| largest.set(0));
}

/// The largest single allocation (bytes) this thread asked for since [`reset`].
pub fn largest() -> usize {
    LARGEST.with(Cell::get)
}
