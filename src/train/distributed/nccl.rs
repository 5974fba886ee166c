//! The gradients' all-reduce on the GPUs through NCCL (the `nccl` feature, `train --allreduce
//! nccl`), as PyTorch's DDP does on GPUs. Rank 0 makes NCCL's unique id, the job's own
//! communicator (MPI, or this process alone) carries it to every rank, and every rank joins one
//! NCCL communicator on its GPU. Each step's flat gradient vector is copied to the GPU, summed
//! there by `ncclAllReduce` over whatever links NCCL finds (NVLink, InfiniBand, sockets), and
//! copied back for burn's optimiser; the small sums, broadcasts and barriers stay on the job's
//! communicator. One process on one GPU runs every step through NCCL too, so that one GPU
//! exercises the whole path.

use std::ffi::c_char;
use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::driver::{CudaContext, CudaSlice, CudaStream};
use cudarc::nccl::{Comm, Id, ReduceOp};

use super::collective::{Collective, Communicator};
use crate::cuda_probe;

/// Bytes of NCCL's unique id.
const ID_BYTES: usize = 128;

/// Joins every rank of `job` into one NCCL communicator on GPU `cuda:{device}`, and returns the
/// job with its f32 all-reduce on NCCL.
pub fn join(job: &Collective, device: usize) -> Result<Collective, String> {
    let probe = cuda_probe::check_nccl(&cuda_probe::nccl_library_names())
        .map_err(|m| format!("{}: {}.\n  Fix: {}.", m.what, m.detail, m.fix));
    // Rank 0 sends an empty id when it cannot make one, so that no rank waits for it.
    let mut id = Vec::new();
    if job.is_root() {
        match probe
            .clone()
            .and_then(|()| Id::new().map_err(|e| format!("ncclGetUniqueId: {e:?}")))
        {
            Ok(made) => id = made.internal().iter().map(|&c| c as u8).collect(),
            Err(e) => {
                job.broadcast_bytes(&mut id);
                return Err(e);
            }
        }
    }
    job.broadcast_bytes(&mut id);
    probe?;
    let id: [u8; ID_BYTES] = id
        .try_into()
        .map_err(|_| "rank 0 could not start NCCL (its message says why)".to_string())?;
    let id = Id::uninit(id.map(|b| b as c_char));
    let context = CudaContext::new(device).map_err(|e| format!("cuda:{device}: {e:?}"))?;
    let stream = context.default_stream();
    let comm = Comm::from_rank(stream.clone(), job.rank(), job.world_size(), id)
        .map_err(|e| format!("ncclCommInitRank on cuda:{device}: {e:?}"))?;
    Ok(Collective::new(Arc::new(NcclGradients {
        job: job.clone(),
        device,
        gpu: Mutex::new(Gpu {
            comm,
            stream,
            buffer: None,
        }),
    })))
}

/// The job's communicator with its f32 all-reduce on NCCL.
struct NcclGradients {
    job: Collective,
    device: usize,
    gpu: Mutex<Gpu>,
}

/// The NCCL communicator, its stream and the gradients' buffer on the GPU.
struct Gpu {
    comm: Comm,
    stream: Arc<CudaStream>,
    buffer: Option<CudaSlice<f32>>,
}

// SAFETY: NCCL allows a communicator to be used from any thread as long as the calls on it do
// not overlap; every use goes through `NcclGradients::gpu`'s mutex.
unsafe impl Send for Gpu {}

impl NcclGradients {
    fn gpu(&self) -> MutexGuard<'_, Gpu> {
        self.gpu
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Gpu {
    fn all_reduce(&mut self, values: &mut [f32]) -> Result<(), String> {
        let stream = self.stream.clone();
        if self.buffer.as_ref().map(CudaSlice::len) != Some(values.len()) {
            self.buffer = Some(
                stream
                    .alloc_zeros::<f32>(values.len())
                    .map_err(|e| format!("allocating {} floats: {e:?}", values.len()))?,
            );
        }
        let buffer = self.buffer.as_mut().expect("allocated above");
        stream
            .memcpy_htod(values, buffer)
            .map_err(|e| format!("copying to the GPU: {e:?}"))?;
        self.comm
            .all_reduce_in_place(buffer, &ReduceOp::Sum)
            .map_err(|e| format!("ncclAllReduce: {e:?}"))?;
        stream
            .memcpy_dtoh(buffer, values)
            .map_err(|e| format!("copying from the GPU: {e:?}"))?;
        stream
            .synchronize()
            .map_err(|e| format!("waiting for the GPU: {e:?}"))
    }
}

impl Communicator for NcclGradients {
    fn world_size(&self) -> usize {
        self.job.world_size()
    }

    fn rank(&self) -> usize {
        self.job.rank()
    }

    fn all_reduce_sum_f32(&self, values: &mut [f32]) {
        if let Err(e) = self.gpu().all_reduce(values) {
            eprintln!(
                "error: rank {} of {}: the gradients' all-reduce on NCCL (cuda:{}): {e}",
                self.rank(),
                self.world_size(),
                self.device
            );
            self.job.abort(1);
        }
    }

    fn all_reduce_sum_f64(&self, values: &mut [f64]) {
        self.job.all_reduce_sum_f64(values);
    }

    fn broadcast_bytes(&self, bytes: &mut Vec<u8>) {
        self.job.broadcast_bytes(bytes);
    }

    fn barrier(&self) {
        self.job.barrier();
    }

    fn threads_may_call(&self) -> bool {
        false
    }

    fn reduces_alone(&self) -> bool {
        true
    }

    fn abort(&self, code: i32) -> ! {
        self.job.abort(code)
    }

    fn describe(&self) -> String {
        format!(
            "gradients on NCCL (cuda:{}), the rest on {}",
            self.device,
            self.job.describe()
        )
    }
}
