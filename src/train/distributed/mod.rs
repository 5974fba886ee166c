//! Data-parallel training over the processes of a job (MPI: `mpirun -np N`, `srun --mpi=pmix`),
//! as the paper trained GoogLeNet on a CPU cluster (section 6, DistBelief), here synchronously.
//!
//! Every rank holds the whole network. Each step, the global batch (`--batch`) drawn from the
//! run's shared seeded order is split into one contiguous share per rank ([`shard`]); each rank
//! runs forward and backward on its share (on any engine, and over its own `--devices`), its
//! gradients are weighted by its share of the images and summed over the ranks with one
//! all-reduce ([`step`]; on the fast CPU engine in buckets while the backward pass goes on,
//! [`fast_step`]), and every rank applies the same optimiser step, so all hold
//! bit-identical weights. Rank 0's initial weights or latest checkpoint start every rank
//! ([`broadcast`], [`checkpoint_copy`]); BatchNorm running statistics are averaged before every
//! validation and checkpoint ([`batch_norm`]); the ranks check that they agree ([`agreement`]);
//! validation is sharded ([`validation`]). Only rank 0 prints and writes files. A failing rank
//! stops the job ([`fault`]); a stop request (Ctrl-C, or [`signals`] under a launcher) stops
//! every rank after the same step ([`Collective::any`]).
//!
//! [`Collective`] is the few operations this needs; [`world::join`] finds the job (MPI with the
//! `mpi` feature under a launcher, else one process, exactly as a build without the feature).

pub mod agreement;
pub mod batch_norm;
pub mod broadcast;
pub mod buckets;
pub mod checkpoint_copy;
pub mod collective;
pub mod error;
pub mod fast_step;
pub mod fault;
pub mod flat;
#[cfg(feature = "mpi")]
pub mod mpi;
#[cfg(feature = "nccl")]
pub mod nccl;
pub mod shard;
pub mod signals;
pub mod step;
pub mod sums;
pub mod validation;
pub mod world;

pub use collective::{Collective, Communicator};
pub use error::DistributedError;
pub use world::{join, world};
