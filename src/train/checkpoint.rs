//! Checkpoints that never lose work: each is a folder `OUT/checkpoints/step-NNNNNNNNN` written
//! under a temporary name, synced and renamed into place, so a crash or a full disk leaves either
//! the whole new checkpoint or none of it, and the earlier ones untouched. The last N and the
//! best by validation top-1 are kept.
//!
//! A folder holds `model.bpk` (the raw weights, with burn's parameter ids, which key the
//! optimiser's state), `optimizer.bpk` (the momentum buffers), `polyak.bpk` (the averaged
//! weights, when averaging is on) and `state.json` ([`TrainState`]).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::store::{BurnpackStore, ModuleSnapshot};

use super::optimizer_record_check;
use super::polyak::Polyak;
use super::state::TrainState;
use crate::model::GoogLeNet;

const MODEL: &str = "model.bpk";
const OPTIMIZER: &str = "optimizer.bpk";
const POLYAK: &str = "polyak.bpk";
const STATE: &str = "state.json";
const PREFIX: &str = "step-";
const TEMP_PREFIX: &str = ".tmp-";

/// Why a checkpoint cannot be written, read or pruned, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// A file or folder could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder concerned.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// The checkpoint's tensors could not be stored or loaded.
    #[error("{path}: {reason}")]
    Store {
        /// The checkpoint's tensor file.
        path: PathBuf,
        /// What the store reported.
        reason: String,
    },
    /// The folder is not a checkpoint of this run.
    #[error("{path} is not a checkpoint of this run: {reason}")]
    Invalid {
        /// The checkpoint folder.
        path: PathBuf,
        /// What does not match this run.
        reason: String,
    },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn store(path: &Path, reason: impl std::fmt::Debug) -> CheckpointError {
    CheckpointError::Store {
        path: path.to_path_buf(),
        reason: format!("{reason:?}"),
    }
}

/// Writes `bytes` to `path` through a temporary file in the same folder, synced, then renamed.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = parent(path);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temp = dir.join(format!("{TEMP_PREFIX}{}-{name}", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Makes a rename inside `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// The checkpoints of one run.
#[derive(Clone, Debug)]
pub struct Checkpoints {
    dir: PathBuf,
}

/// What a checkpoint holds, loaded.
pub struct Loaded {
    /// The trained network.
    pub model: GoogLeNet,
    /// The optimiser with its momentum buffers.
    pub optimizer: ModuleOptimizer,
    /// The running average of the weights, when the recipe keeps one.
    pub polyak: Option<Polyak>,
    /// Where the run stands: step, epoch, history and best epoch.
    pub state: TrainState,
}

impl Checkpoints {
    /// The checkpoints under `out/checkpoints`.
    pub fn new(out: &Path) -> Checkpoints {
        Checkpoints {
            dir: out.join("checkpoints"),
        }
    }

    /// The folder the checkpoints live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The folder name of the checkpoint taken after `step` optimiser steps.
    pub fn name(step: u64) -> String {
        format!("{PREFIX}{step:09}")
    }

    /// Writes a checkpoint after `state.step` steps; returns its folder.
    pub fn save(
        &self,
        model: &GoogLeNet,
        optimizer: &ModuleOptimizer,
        polyak: Option<&Polyak>,
        state: &TrainState,
    ) -> Result<PathBuf, CheckpointError> {
        fs::create_dir_all(&self.dir).map_err(io(&self.dir))?;
        let name = Checkpoints::name(state.step);
        let final_dir = self.dir.join(&name);
        let temp = self
            .dir
            .join(format!("{TEMP_PREFIX}{}-{name}", std::process::id()));
        let written = self.write_folder(&temp, model, optimizer, polyak, state);
        if let Err(e) = written {
            let _ = fs::remove_dir_all(&temp);
            return Err(e);
        }
        // A checkpoint of the same step (taken at an interruption, then again at the end of the
        // epoch) is replaced: moved aside first so that a complete one exists at every moment.
        let aside = self
            .dir
            .join(format!("{TEMP_PREFIX}{}-old-{name}", std::process::id()));
        let replacing = final_dir.exists();
        if replacing {
            fs::rename(&final_dir, &aside).map_err(io(&final_dir))?;
        }
        fs::rename(&temp, &final_dir).map_err(io(&final_dir))?;
        sync_dir(&self.dir).map_err(io(&self.dir))?;
        if replacing {
            let _ = fs::remove_dir_all(&aside);
        }
        Ok(final_dir)
    }

    fn write_folder(
        &self,
        temp: &Path,
        model: &GoogLeNet,
        optimizer: &ModuleOptimizer,
        polyak: Option<&Polyak>,
        state: &TrainState,
    ) -> Result<(), CheckpointError> {
        if temp.exists() {
            fs::remove_dir_all(temp).map_err(io(temp))?;
        }
        fs::create_dir(temp).map_err(io(temp))?;
        // `valid()` folds the BatchNorm running-statistics updates of the last forward pass in.
        save_module(&model.valid(), &temp.join(MODEL))?;
        let path = temp.join(OPTIMIZER);
        optimizer.save(&path).map_err(|e| store(&path, e))?;
        if let Some(p) = polyak {
            save_module(p.model(), &temp.join(POLYAK))?;
        }
        let path = temp.join(STATE);
        let json = serde_json::to_vec_pretty(state).expect("the state serialises");
        fs::write(&path, json).map_err(io(&path))?;
        for entry in fs::read_dir(temp).map_err(io(temp))? {
            let path = entry.map_err(io(temp))?.path();
            fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(io(&path))?;
        }
        sync_dir(temp).map_err(io(temp))
    }

    /// Every complete checkpoint, oldest first.
    pub fn list(&self) -> Result<Vec<PathBuf>, CheckpointError> {
        if !self.dir.exists() {
            return Ok(Vec::new());
        }
        let mut found: Vec<(u64, PathBuf)> = fs::read_dir(&self.dir)
            .map_err(io(&self.dir))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_str()?.to_string();
                let step = name.strip_prefix(PREFIX)?.parse().ok()?;
                e.path().join(STATE).is_file().then(|| (step, e.path()))
            })
            .collect();
        found.sort();
        Ok(found.into_iter().map(|(_, p)| p).collect())
    }

    /// The newest complete checkpoint, if any.
    pub fn latest(&self) -> Result<Option<PathBuf>, CheckpointError> {
        Ok(self.list()?.pop())
    }

    /// Deletes all but the last `keep_last` checkpoints and the one named `best`, and any
    /// temporary folder an earlier crash left.
    pub fn prune(&self, keep_last: usize, best: Option<&str>) -> Result<(), CheckpointError> {
        let all = self.list()?;
        let cut = all.len().saturating_sub(keep_last);
        for path in &all[..cut] {
            let is_best = path.file_name().and_then(|n| n.to_str()) == best;
            if !is_best {
                fs::remove_dir_all(path).map_err(io(path))?;
            }
        }
        Ok(())
    }

    /// Removes temporary folders left by a run that crashed while writing.
    pub fn remove_leftovers(&self) -> Result<(), CheckpointError> {
        if !self.dir.exists() {
            return Ok(());
        }
        for entry in fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            if entry
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with(TEMP_PREFIX))
            {
                let path = entry.path();
                let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
            }
        }
        Ok(())
    }

    /// Loads the checkpoint in `dir` into fresh `model`, `optimizer` and Polyak `template`
    /// (a model of the same configuration on the inference device).
    pub fn load(
        dir: &Path,
        mut model: GoogLeNet,
        optimizer: ModuleOptimizer,
        polyak: Option<(GoogLeNet, f64)>,
    ) -> Result<Loaded, CheckpointError> {
        let path = dir.join(STATE);
        let bytes = fs::read(&path).map_err(io(&path))?;
        let state: TrainState =
            serde_json::from_slice(&bytes).map_err(|e| CheckpointError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        load_module(&mut model, &dir.join(MODEL))?;
        let path = dir.join(OPTIMIZER);
        optimizer_record_check::check(&path, &model).map_err(|reason| store_err(&path, reason))?;
        let optimizer = optimizer.load(&path).map_err(|e| store(&path, e))?;
        let polyak = match polyak {
            Some((mut average, decay)) => {
                load_module(&mut average, &dir.join(POLYAK))?;
                Some(Polyak::resume(average, decay, state.polyak_updates))
            }
            None => None,
        };
        Ok(Loaded {
            model,
            optimizer,
            polyak,
            state,
        })
    }
}

fn save_module(model: &GoogLeNet, path: &Path) -> Result<(), CheckpointError> {
    let mut store = BurnpackStore::from_file(path)
        .auto_extension(false)
        .overwrite(true);
    model.save_into(&mut store).map_err(|e| store_err(path, e))
}

fn load_module(model: &mut GoogLeNet, path: &Path) -> Result<(), CheckpointError> {
    if !path.is_file() {
        return Err(CheckpointError::Invalid {
            path: path.to_path_buf(),
            reason: "file missing".into(),
        });
    }
    let mut store = BurnpackStore::from_file(path).auto_extension(false);
    let result = model
        .load_from(&mut store)
        .map_err(|e| store_err(path, e))?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(CheckpointError::Invalid {
            path: path.to_path_buf(),
            reason: format!(
                "missing tensors {:?}, errors {:?}",
                result.missing, result.errors
            ),
        });
    }
    Ok(())
}

fn store_err(path: &Path, e: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Store {
        path: path.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The number of bytes of one checkpoint of `model` (weights, momentum, average) and the weight
/// file beside it, for the check that the output folder has room before training starts.
pub fn estimated_bytes(model: &GoogLeNet, polyak: bool) -> u64 {
    let weights = 4 * model.num_params() as u64;
    weights * (3 + u64::from(polyak))
}
