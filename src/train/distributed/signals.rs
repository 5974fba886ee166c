//! Stopping a distributed run cleanly from outside. Open MPI's `mpirun` forwards SIGUSR1 to
//! every rank (`kill -USR1 <mpirun's pid>`), while Ctrl-C at its terminal ends the job at once
//! (it sends the ranks SIGTERM, then SIGKILL); Slurm's `scancel` sends SIGTERM and waits
//! (`KillWait`, 30 s by default) before SIGKILL. In a job both signals set the stop flag, as
//! Ctrl-C does on one process: every rank stops after the same step and rank 0 writes one
//! checkpoint.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use super::collective::Collective;

static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// In a job of several ranks, makes SIGUSR1 and SIGTERM set `flag`; on one process (or off
/// Unix) nothing changes.
pub fn stop_on_signals(world: &Collective, flag: Arc<AtomicBool>) {
    if !world.is_distributed() || STOP.set(flag).is_err() {
        return;
    }
    #[cfg(unix)]
    for signal in [libc::SIGUSR1, libc::SIGTERM] {
        let handler = request_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
        // SAFETY: `request_stop` only loads a set OnceLock and stores to an atomic, which is
        // async-signal-safe.
        unsafe {
            libc::signal(signal, handler);
        }
    }
}

#[cfg(unix)]
extern "C" fn request_stop(_signal: libc::c_int) {
    if let Some(flag) = STOP.get() {
        flag.store(true, Ordering::SeqCst);
    }
}
