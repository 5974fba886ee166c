//! The job on MPI (the `mpi` feature): the world communicator of `mpirun -np N` or
//! `srun --mpi=pmix`, through rsmpi.

use mpi::collective::SystemOperation;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::{Communicator as _, CommunicatorCollectives, Root};

use super::collective::Communicator;

/// Environment variables that a launcher sets in every process it starts: Open MPI's mpirun,
/// PMIx (Open MPI, `srun --mpi=pmix`), and PMI (MPICH's hydra, `srun --mpi=pmi2`).
const LAUNCHER_VARIABLES: [&str; 4] = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"];

/// Whether an MPI launcher started this process.
pub fn launched_by_mpi() -> bool {
    LAUNCHER_VARIABLES
        .iter()
        .any(|name| std::env::var_os(name).is_some())
}

/// Keeps MPI initialised; finalises it when dropped (at the end of `googlenet train`).
pub struct MpiSession {
    _universe: Universe,
}

/// Initialises MPI and returns the world communicator with the session that keeps it open, or
/// `None` when MPI was initialised already. It asks for `MPI_THREAD_SERIALIZED`, so that the
/// gradients' buckets can be all-reduced from a thread of their own
/// ([`super::buckets`]); an MPI that gives less gets every call from this thread.
pub fn initialise() -> Option<(WorldCommunicator, MpiSession)> {
    let (universe, threading) = mpi::initialize_with_threading(mpi::Threading::Serialized)?;
    let world = universe.world();
    let communicator = WorldCommunicator {
        rank: world.rank() as usize,
        size: world.size() as usize,
        threads_may_call: threading >= mpi::Threading::Serialized,
        library: mpi::environment::library_version()
            .map(|v| {
                v.split([',', '\n'])
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            })
            .unwrap_or_else(|_| "unknown MPI library".into()),
    };
    Some((
        communicator,
        MpiSession {
            _universe: universe,
        },
    ))
}

/// MPI's world communicator.
pub struct WorldCommunicator {
    rank: usize,
    size: usize,
    threads_may_call: bool,
    library: String,
}

fn world() -> SimpleCommunicator {
    SimpleCommunicator::world()
}

impl Communicator for WorldCommunicator {
    fn world_size(&self) -> usize {
        self.size
    }

    fn rank(&self) -> usize {
        self.rank
    }

    fn all_reduce_sum_f32(&self, values: &mut [f32]) {
        let send = values.to_vec();
        world().all_reduce_into(&send[..], values, SystemOperation::sum());
    }

    fn all_reduce_sum_f64(&self, values: &mut [f64]) {
        let send = values.to_vec();
        world().all_reduce_into(&send[..], values, SystemOperation::sum());
    }

    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) {
        let world = world();
        let root = world.process_at_rank(0);
        let mut len = bytes.len() as u64;
        root.broadcast_into(&mut len);
        bytes.resize(len as usize, 0);
        root.broadcast_into(&mut bytes[..]);
    }

    fn barrier(&self) {
        world().barrier();
    }

    fn threads_may_call(&self) -> bool {
        self.threads_may_call
    }

    fn abort(&self, code: i32) -> ! {
        world().abort(code)
    }

    fn describe(&self) -> String {
        format!("MPI, {}", self.library)
    }
}
