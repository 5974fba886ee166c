//! The job this process belongs to: set once by `googlenet train` ([`join`]) and read by the
//! training loop ([`world`]); a process that never joins is rank 0 of 1.

use std::sync::OnceLock;

use super::collective::Collective;

static WORLD: OnceLock<Collective> = OnceLock::new();

/// The job of this process: the one [`join`] found, else a single process.
pub fn world() -> Collective {
    WORLD.get_or_init(Collective::single).clone()
}

/// What keeps the job's communication open; dropping it ends it (`MPI_Finalize`).
pub struct Membership {
    #[cfg(feature = "mpi")]
    _mpi: Option<super::mpi::MpiSession>,
}

/// Joins the job this process was launched into: with the `mpi` feature and an MPI launcher
/// (`mpirun`, `srun --mpi=pmix`), MPI's world; otherwise a single process, exactly as a build
/// without the feature. Call it once, from the thread that trains.
pub fn join() -> (Collective, Membership) {
    #[cfg(feature = "mpi")]
    if super::mpi::launched_by_mpi()
        && let Some((communicator, session)) = super::mpi::initialise()
    {
        let collective = Collective::new(std::sync::Arc::new(communicator));
        let _ = WORLD.set(collective);
        return (
            world(),
            Membership {
                _mpi: Some(session),
            },
        );
    }
    (
        world(),
        Membership {
            #[cfg(feature = "mpi")]
            _mpi: None,
        },
    )
}
