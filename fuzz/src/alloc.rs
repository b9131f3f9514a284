//! A counting global allocator: every binary that links `coffre-fuzz` (its
//! tests, the long-mode binary, the end-to-end hostile tests) counts the heap
//! bytes each thread holds, so a target can assert that decoding some input
//! never held more than a bound relative to that input.
//!
//! Counts are per thread (a `const` thread-local `Cell`, no destructor, safe
//! to touch from the allocator). Memory that C code allocates with its own
//! `malloc` (zstd's contexts) is not seen; every Rust `Vec`, `String` and
//! `Box` is.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicIsize, Ordering};

/// The allocator: the system's, plus two counters per thread.
#[derive(Debug)]
pub struct Counting;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

/// Heap bytes held by the whole process (all threads).
static PROCESS: AtomicIsize = AtomicIsize::new(0);

fn add(delta: isize) {
    PROCESS.fetch_add(delta, Ordering::Relaxed);
    let _ = CURRENT.try_with(|c| {
        let now = c.get().wrapping_add(delta);
        c.set(now);
        let _ = PEAK.try_with(|p| {
            if now > p.get() {
                p.set(now);
            }
        });
    });
}

// SAFETY: every call is forwarded unchanged to `System`; the counters only
// observe sizes and never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) };
        add(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            add(new_size as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` and returns its result with the most heap bytes this thread held
/// at once during the call, above what it held before.
pub fn peak_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let start = CURRENT.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let r = f();
    let peak = PEAK.with(Cell::get);
    (r, usize::try_from(peak - start).unwrap_or(0))
}

/// Heap bytes the whole process holds now, as Rust allocated them (an
/// in-process server's buffers included; C libraries' own `malloc` not).
pub fn process_heap_bytes() -> usize {
    usize::try_from(PROCESS.load(Ordering::Relaxed)).unwrap_or(0)
}
