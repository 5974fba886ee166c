//! What the ranks agree on before and during a run: the same configuration and data (refused at
//! start-up otherwise), the same starting weights (rank 0's, or rank 0's latest checkpoint),
//! and, before every validation and checkpoint, the same BatchNorm running statistics (the
//! mean of the ranks': each rank normalises over its own share, as PyTorch's
//! DistributedDataParallel without SyncBatchNorm).

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use burn::store::{BurnpackStore, ModuleSnapshot};
use burn::tensor::Bytes;

use super::collective::Collective;
use super::flat;
use crate::model::GoogLeNet;
use crate::train::checkpoint::Checkpoints;
use crate::train::config::TrainConfig;
use crate::train::polyak::Polyak;
use crate::train::source::{Split, TrainData};

#[derive(Debug, thiserror::Error)]
pub enum DistributedError {
    #[error(
        "the ranks of this job were started with different configurations or data: rank(s) \
         {ranks:?} differ from rank 0 (the recipe, variant, hyperparameters, --data listing and \
         image size must be the same on every rank)"
    )]
    Mismatch { ranks: Vec<usize> },
    #[error(
        "--batch {batch} cannot be split over {world_size} ranks: use a batch of at least \
         {world_size}"
    )]
    BatchTooSmall { batch: usize, world_size: usize },
    #[error(
        "after step {step} the weights of rank(s) {ranks:?} differ from rank 0's; the ranks \
         must apply identical updates (is every rank running the same build?)"
    )]
    Diverged { ranks: Vec<usize>, step: u64 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("rank 0's {what} could not be {action}: {reason}")]
    Transfer {
        what: &'static str,
        action: &'static str,
        reason: String,
    },
}

impl DistributedError {
    /// Whether every rank reached this error at the same point, so that the job can end
    /// normally instead of being aborted.
    pub fn is_agreed(&self) -> bool {
        matches!(
            self,
            DistributedError::Mismatch { .. }
                | DistributedError::BatchTooSmall { .. }
                | DistributedError::Diverged { .. }
        )
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> DistributedError + '_ {
    move |source| DistributedError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A hash of everything that must be the same on every rank: the configuration (recipe,
/// variant, hyperparameters, seed) and the data's listing ([`TrainData::listing`]).
pub fn fingerprint(config: &TrainConfig, data: &dyn TrainData) -> u64 {
    let mut hasher = DefaultHasher::new();
    serde_json::to_string(config)
        .expect("the configuration serialises")
        .hash(&mut hasher);
    data.class_names().hash(&mut hasher);
    data.side().hash(&mut hasher);
    for split in [Split::Train, Split::Val] {
        data.len(split).hash(&mut hasher);
    }
    data.listing().hash(&mut hasher);
    hasher.finish()
}

/// Refuses a job whose ranks were given different configurations or data, and a global batch
/// smaller than the number of ranks. Every rank returns the same error.
pub fn check_same_run(
    world: &Collective,
    config: &TrainConfig,
    data: &dyn TrainData,
) -> Result<(), DistributedError> {
    if !world.is_distributed() {
        return Ok(());
    }
    let own = fingerprint(config, data);
    let mut root = own.to_le_bytes().to_vec();
    world.broadcast_bytes(&mut root);
    let mut differs = vec![0.0f64; world.world_size()];
    differs[world.rank()] = f64::from(u8::from(root != own.to_le_bytes()));
    world.all_reduce_sum_f64(&mut differs);
    let ranks: Vec<usize> = (0..differs.len()).filter(|&r| differs[r] > 0.0).collect();
    if !ranks.is_empty() {
        return Err(DistributedError::Mismatch { ranks });
    }
    if config.batch_size < world.world_size() {
        return Err(DistributedError::BatchTooSmall {
            batch: config.batch_size,
            world_size: world.world_size(),
        });
    }
    Ok(())
}

/// `value` as rank 0 has it, on every rank: rank 0 runs `read` and sends what it gave.
pub fn broadcast_config(
    world: &Collective,
    read: impl FnOnce() -> anyhow::Result<TrainConfig>,
) -> anyhow::Result<TrainConfig> {
    if !world.is_distributed() {
        return read();
    }
    let mut bytes = Vec::new();
    if world.is_root() {
        let config = read()?;
        bytes = serde_json::to_vec(&config)?;
    }
    world.broadcast_bytes(&mut bytes);
    Ok(serde_json::from_slice(&bytes)?)
}

/// `model` with rank 0's weights and running statistics on every rank.
pub fn broadcast_model(
    world: &Collective,
    model: GoogLeNet,
) -> Result<GoogLeNet, DistributedError> {
    if !world.is_distributed() {
        return Ok(model);
    }
    let transfer = |action, reason: String| DistributedError::Transfer {
        what: "initial weights",
        action,
        reason,
    };
    let mut bytes = Vec::new();
    if world.is_root() {
        let mut store = BurnpackStore::from_bytes(None);
        model
            .save_into(&mut store)
            .map_err(|e| transfer("packed", e.to_string()))?;
        bytes = store
            .get_bytes()
            .map_err(|e| transfer("packed", e.to_string()))?
            .to_vec();
    }
    world.broadcast_bytes(&mut bytes);
    if world.is_root() {
        return Ok(model);
    }
    let mut model = model;
    let mut store = BurnpackStore::from_bytes(Some(Bytes::from_bytes_vec(bytes)));
    let result = model
        .load_from(&mut store)
        .map_err(|e| transfer("loaded", e.to_string()))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(transfer(
            "loaded",
            format!(
                "missing tensors {:?}, errors {:?}",
                result.missing, result.errors
            ),
        ));
    }
    Ok(model)
}

/// The checkpoint a resumed run starts from, as this rank can read it: rank 0's own folder, or
/// on the other ranks a private copy of it received from rank 0 (removed when dropped), so that
/// the output folder need not be shared between machines.
pub struct SharedCheckpoint {
    pub path: PathBuf,
    copy: Option<PathBuf>,
}

impl Drop for SharedCheckpoint {
    fn drop(&mut self) {
        if let Some(copy) = &self.copy {
            let _ = fs::remove_dir_all(copy);
        }
    }
}

/// Rank 0's latest checkpoint of `checkpoints` on every rank (`None` everywhere if it has
/// none).
pub fn share_latest(
    world: &Collective,
    checkpoints: &Checkpoints,
) -> Result<Option<SharedCheckpoint>, DistributedError> {
    let latest = || {
        checkpoints
            .latest()
            .map_err(|e| DistributedError::Transfer {
                what: "latest checkpoint",
                action: "found",
                reason: e.to_string(),
            })
    };
    if !world.is_distributed() {
        return Ok(latest()?.map(|path| SharedCheckpoint { path, copy: None }));
    }
    let mut packed = Vec::new();
    let mut own = None;
    if world.is_root() {
        own = latest()?;
        if let Some(dir) = &own {
            packed = pack_folder(dir)?;
        }
    }
    world.broadcast_bytes(&mut packed);
    if world.is_root() {
        return Ok(own.map(|path| SharedCheckpoint { path, copy: None }));
    }
    if packed.is_empty() {
        return Ok(None);
    }
    let copy = std::env::temp_dir().join(format!(
        "googlenet-rank{}-{}",
        world.rank(),
        std::process::id()
    ));
    let path = unpack_folder(&packed, &copy)?;
    Ok(Some(SharedCheckpoint {
        path,
        copy: Some(copy),
    }))
}

/// A folder's name and files as one buffer: lengths as little-endian u64, then bytes.
fn pack_folder(dir: &Path) -> Result<Vec<u8>, DistributedError> {
    let mut out = Vec::new();
    let put = |bytes: &[u8], out: &mut Vec<u8>| {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("checkpoint");
    put(name.as_bytes(), &mut out);
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        put(name.as_bytes(), &mut out);
        put(&fs::read(&file).map_err(io(&file))?, &mut out);
    }
    Ok(out)
}

/// Writes what [`pack_folder`] packed under `parent`; returns the folder.
fn unpack_folder(packed: &[u8], parent: &Path) -> Result<PathBuf, DistributedError> {
    let mut rest = packed;
    let name = String::from_utf8_lossy(take_field(&mut rest)?).into_owned();
    let dir = parent.join(name);
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    while !rest.is_empty() {
        let file = dir.join(String::from_utf8_lossy(take_field(&mut rest)?).as_ref());
        let bytes = take_field(&mut rest)?;
        fs::write(&file, bytes).map_err(io(&file))?;
    }
    Ok(dir)
}

/// The next length-prefixed field of `rest`, which moves past it.
fn take_field<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], DistributedError> {
    let corrupt = || DistributedError::Transfer {
        what: "latest checkpoint",
        action: "received whole",
        reason: "the packed folder ends early".into(),
    };
    let (len, tail) = rest.split_at_checked(8).ok_or_else(corrupt)?;
    let len = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
    let (bytes, tail) = tail.split_at_checked(len).ok_or_else(corrupt)?;
    *rest = tail;
    Ok(bytes)
}

/// `model` (and the Polyak average) with each BatchNorm running mean and variance replaced by
/// its mean over the ranks. A network without BatchNorm (the paper's) is returned as it is.
pub fn average_running_stats(
    world: &Collective,
    model: GoogLeNet,
    polyak: Option<&mut Polyak>,
) -> GoogLeNet {
    if !world.is_distributed() {
        return model;
    }
    let trained = flat::trained_mask(&model);
    if trained.iter().all(|&t| t) {
        return model;
    }
    let scale = 1.0 / world.world_size() as f32;
    let mean = |values: &mut Vec<f32>| {
        world.all_reduce_sum_f32(values);
        values.iter_mut().for_each(|v| *v *= scale);
    };
    let mut stats = flat::running_stats(&model, &trained);
    mean(&mut stats);
    let model = flat::with_running_stats(model, &trained, &stats);
    if let Some(polyak) = polyak {
        let mut stats = flat::running_stats(polyak.model(), &trained);
        mean(&mut stats);
        polyak.map_model(|average| flat::with_running_stats(average, &trained, &stats));
    }
    model
}

/// A hash of the bits of every float tensor of `model` (weights and running statistics).
pub fn weights_hash(model: &GoogLeNet) -> u64 {
    struct Hashing(DefaultHasher);
    impl burn::module::ModuleVisitor for Hashing {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<burn::Tensor<D>>) {
            let values = param.val().into_data().convert::<f32>();
            for v in values.as_slice::<f32>().expect("f32 after conversion") {
                v.to_bits().hash(&mut self.0);
            }
        }
    }
    let mut hashing = Hashing(DefaultHasher::new());
    burn::module::Module::visit(model, &mut hashing);
    hashing.0.finish()
}

/// Checks that every rank holds bit-identical weights and running statistics (after
/// [`average_running_stats`]), as the synchronous step guarantees; an error names the ranks
/// that differ.
pub fn check_replicas(
    world: &Collective,
    model: &GoogLeNet,
    step: u64,
) -> Result<(), DistributedError> {
    if !world.is_distributed() {
        return Ok(());
    }
    let own = weights_hash(model).to_le_bytes();
    let mut root = own.to_vec();
    world.broadcast_bytes(&mut root);
    let mut differs = vec![0.0f64; world.world_size()];
    differs[world.rank()] = f64::from(u8::from(root != own));
    world.all_reduce_sum_f64(&mut differs);
    let ranks: Vec<usize> = (0..differs.len()).filter(|&r| differs[r] > 0.0).collect();
    if ranks.is_empty() {
        Ok(())
    } else {
        Err(DistributedError::Diverged { ranks, step })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_folder_unpacks_to_the_same_files_and_a_cut_one_is_refused() {
        let root = std::env::temp_dir().join(format!("googlenet-pack-{}", std::process::id()));
        let source = root.join("step-000000007");
        fs::create_dir_all(&source).unwrap();
        fs::write(source.join("model.bpk"), [1u8, 2, 3, 0, 255]).unwrap();
        fs::write(source.join("state.json"), b"{}").unwrap();
        fs::write(source.join("empty"), b"").unwrap();
        let packed = pack_folder(&source).unwrap();
        let copy = unpack_folder(&packed, &root.join("copy")).unwrap();
        assert_eq!(copy.file_name().unwrap(), "step-000000007");
        for name in ["model.bpk", "state.json", "empty"] {
            assert_eq!(
                fs::read(copy.join(name)).unwrap(),
                fs::read(source.join(name)).unwrap()
            );
        }
        let cut = unpack_folder(&packed[..packed.len() - 1], &root.join("cut"));
        assert!(matches!(cut, Err(DistributedError::Transfer { .. })));
        fs::remove_dir_all(&root).unwrap();
    }
}
