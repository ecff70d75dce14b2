//! Memory the kernels reuse between calls, and the output pointer that units of work share.

use std::cell::RefCell;

/// The output buffer, shared by units that write disjoint parts of it.
#[derive(Clone, Copy)]
pub(super) struct SharedOut(pub(super) *mut f32);

// SAFETY: the units that share it write disjoint elements (see its users, `conv::forward` and
// `winograd::forward`).
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    pub(super) fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: callers pass offsets inside the buffer.
        unsafe { self.0.add(offset) }
    }
}

/// Large buffers (the padded input of `conv::Taps`, Winograd's transformed operands), kept between
/// calls (a fresh one would be zeroed page by page by the kernel on every call): taken by a
/// call, given back after, so calls never share one.
static POOLED: std::sync::Mutex<Vec<Vec<f32>>> = std::sync::Mutex::new(Vec::new());

/// Runs `f` on a pooled buffer of `len` values whose contents are left from earlier calls (`f`
/// writes before it reads). A buffer only grows (zeroing its growth once), so a call that needs
/// less than an earlier one writes no zeros.
pub(super) fn with_pooled<T>(len: usize, f: impl FnOnce(&mut [f32]) -> T) -> T {
    let mut buffer = POOLED.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default();
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    let result = f(&mut buffer[..len]);
    POOLED.lock().unwrap_or_else(|e| e.into_inner()).push(buffer);
    result
}

thread_local! {
    /// Each thread's im2col buffer, kept between calls: every use overwrites what it reads, so it
    /// is neither freed nor zeroed per tile.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's scratch buffer, at least `len` long (its old contents remain: `f`
/// writes before it reads). `f` must not call back into rayon, which could run another unit
/// that wants the buffer on this thread.
pub(super) fn with_scratch<T>(len: usize, f: impl FnOnce(&mut [f32]) -> T) -> T {
    SCRATCH.with_borrow_mut(|scratch| {
        if scratch.len() < len {
            scratch.resize(len, 0.0);
        }
        f(&mut scratch[..len])
    })
}
