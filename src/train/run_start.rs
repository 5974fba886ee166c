//! How a run starts: fresh (the configured initialisation), from a weights file, or resumed
//! from the latest checkpoint in its output folder.

use std::path::Path;

use burn::prelude::*;

use super::checkpoint::Checkpoints;
use super::config::TrainConfig;
use super::distributed::{self, Collective};
use super::error::TrainError;
use super::polyak::Polyak;
use super::state::TrainState;
use super::trainer::{Run, TrainOptions, build_model, optimizer};
use crate::model::GoogLeNet;
use crate::weights::WeightsFile;

/// A fresh run, or the one the latest checkpoint in `options.out` holds. A run resumed before
/// its first checkpoint (killed during its first steps) starts again from the beginning, which
/// the seed makes the same start.
pub(super) fn start(
    config: &TrainConfig,
    options: &TrainOptions,
    checkpoints: &Checkpoints,
    world: &Collective,
) -> Result<Run, TrainError> {
    let train_device = options.device.clone().autodiff();
    train_device.seed(config.seed);
    let mut model = build_model(config, &train_device)?;
    if options.resume
        && let Some(shared) = distributed::checkpoint_copy::share_latest(world, checkpoints)?
    {
        let template = match config.polyak_decay {
            Some(decay) => Some((build_model(config, &options.device)?, decay)),
            None => None,
        };
        let loaded = Checkpoints::load(&shared.path, model, optimizer(config), template)
            .map_err(TrainError::Resume)?;
        return Ok(Run {
            model: loaded.model,
            optimizer: loaded.optimizer,
            polyak: loaded.polyak,
            state: loaded.state,
            _resumed_from: Some(shared),
        });
    }
    model = match &options.weights {
        Some(path) if world.is_root() => start_from(model, path, config, &train_device)?,
        _ => config.init.apply(model),
    };
    model = distributed::broadcast::broadcast_model(world, model)?;
    let polyak = config.polyak_decay.map(|d| Polyak::new(&model, d));
    Ok(Run {
        model,
        optimizer: optimizer(config),
        polyak,
        state: TrainState::default(),
        _resumed_from: None,
    })
}

/// `model` with the weights of `path`; when the file's classifier has another number of classes
/// (pretrained ImageNet weights for a set of one's own), everything but the classifiers comes
/// from the file and the classifiers start fresh ([`GoogLeNet::with_new_classifiers`]).
fn start_from(
    model: GoogLeNet,
    path: &Path,
    config: &TrainConfig,
    device: &Device,
) -> Result<GoogLeNet, TrainError> {
    let file = WeightsFile::open(path)?;
    let classes = file.num_classes()?;
    if classes == config.num_classes {
        return Ok(file.load_into(model)?);
    }
    let like_file = TrainConfig {
        num_classes: classes,
        ..config.clone()
    };
    let pretrained = file.load_into(build_model(&like_file, device)?)?;
    Ok(pretrained.with_new_classifiers(config.num_classes, device))
}
