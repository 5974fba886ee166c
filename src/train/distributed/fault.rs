//! A rank that fails stops the whole job: it prints which rank failed and why, then calls
//! `MPI_Abort`, which ends every process of the job (Open MPI's mpirun kills the others at
//! once), instead of leaving them waiting in the next collective. A checkpoint is written
//! under a temporary name and renamed when complete, so an abort in the middle of one leaves
//! the previous checkpoint as the latest.

use super::collective::Collective;

/// Prints `reason` naming this rank, then ends the job with exit code `code`.
pub fn abort_job(world: &Collective, reason: &str, code: i32) -> ! {
    eprintln!(
        "rank {} of {} failed: {reason}\nstopping every rank of the job (MPI_Abort)",
        world.rank(),
        world.world_size()
    );
    world.abort(code)
}

/// Makes a panic on any thread of a distributed run end the job after the panic's message is
/// printed. A single process keeps Rust's usual behaviour.
pub fn abort_on_panic(world: &Collective) {
    if !world.is_distributed() {
        return;
    }
    let world = world.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        abort_job(&world, "a panic (message above)", 101);
    }));
}
