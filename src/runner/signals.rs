//! Ctrl-C and termination requests, counted by a signal handler and polled by the loops.
//!
//! The first SIGINT asks for a graceful stop (finish the epoch, checkpoint, give the run back);
//! a second one asks to stop now. SIGTERM (what SLURM sends before preempting or at the time
//! limit) asks to stop now. The handler only bumps atomics, the one thing a handler may safely do.

use std::sync::atomic::{AtomicUsize, Ordering};

static INTERRUPTS: AtomicUsize = AtomicUsize::new(0);
static TERMINATES: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_signal(signal: libc::c_int) {
    if signal == libc::SIGINT {
        INTERRUPTS.fetch_add(1, Ordering::SeqCst);
    } else {
        TERMINATES.fetch_add(1, Ordering::SeqCst);
    }
}

/// Installs the handler for SIGINT and SIGTERM (idempotent).
pub fn install() {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only touches atomics, which is async-signal-safe; the sigaction
        // struct is zero-initialised and then filled in.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut());
        }
    }
}

/// SIGINTs received so far.
pub fn interrupts() -> usize {
    INTERRUPTS.load(Ordering::SeqCst)
}

/// Whether SIGTERM was received.
pub fn terminated() -> bool {
    TERMINATES.load(Ordering::SeqCst) > 0
}

/// What the signals received so far ask of a training loop.
pub fn stop_request() -> crate::train::StopRequest {
    use crate::train::StopRequest;
    match (interrupts(), terminated()) {
        (_, true) => StopRequest::Now,
        (0, false) => StopRequest::Continue,
        (1, false) => StopRequest::AfterEpoch,
        _ => StopRequest::Now,
    }
}
