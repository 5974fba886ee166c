//! What a run writes as it goes: checkpoints, the pruning of old ones, and the files written
//! after each epoch (curves and weights).

use std::path::{Path, PathBuf};

use super::checkpoint::Checkpoints;
use super::config::TrainConfig;
use super::curves::write_curves;
use super::distributed::{self, Collective};
use super::error::TrainError;
use super::metrics::EpochRecord;
use super::polyak::Polyak;
use super::state::TrainState;
use super::trainer::Run;
use crate::model::GoogLeNet;
use crate::weights::{self, Layout};

/// Writes a checkpoint of `run` (rank 0 only; the other ranks get the folder's name).
pub(super) fn save(
    checkpoints: &Checkpoints,
    run: &Run,
    last: &Option<PathBuf>,
    world: &Collective,
) -> Result<PathBuf, TrainError> {
    distributed::agreement::check_replicas(world, &run.model, run.state.step)?;
    if !world.is_root() {
        return Ok(checkpoints.dir().join(Checkpoints::name(run.state.step)));
    }
    let state = TrainState {
        polyak_updates: run.polyak.as_ref().map_or(0, Polyak::updates),
        ..run.state.clone()
    };
    checkpoints
        .save(&run.model, &run.optimizer, run.polyak.as_ref(), &state)
        .map_err(|source| TrainError::Checkpoint {
            source,
            kept: match last {
                Some(p) => format!("the previous checkpoint {} is intact", p.display()),
                None => "no earlier checkpoint exists".to_string(),
            },
        })
}

/// The files written after an epoch's checkpoint: curves.png, model.safetensors (the evaluated
/// weights) and, when the epoch is the best so far, best.safetensors. Each is written atomically.
pub(super) fn write_epoch_outputs(
    out: &Path,
    history: &[EpochRecord],
    evaluated: &GoogLeNet,
    improved: bool,
    class_names: &[String],
) -> Result<(), TrainError> {
    write_curves(&out.join("curves.png"), history)?;
    // The class names travel in the file, so `classify` and `eval` can name the predictions.
    let names = Some(class_names);
    weights::save_with_classes(
        evaluated,
        &out.join("model.safetensors"),
        Layout::Native,
        names,
    )?;
    if improved {
        weights::save_with_classes(
            evaluated,
            &out.join("best.safetensors"),
            Layout::Native,
            names,
        )?;
    }
    Ok(())
}

/// Removes the checkpoints beyond the last `keep_last` but the best.
pub(super) fn prune(
    checkpoints: &Checkpoints,
    config: &TrainConfig,
    run: &Run,
    last: &Option<PathBuf>,
) -> Result<(), TrainError> {
    let best = run.state.best.as_ref().map(|b| b.checkpoint.as_str());
    checkpoints
        .prune(config.keep_last, best)
        .map_err(|source| TrainError::Checkpoint {
            source,
            kept: match last {
                Some(p) => format!("the last good checkpoint {} is intact", p.display()),
                None => "no checkpoint had been written yet".to_string(),
            },
        })
}
