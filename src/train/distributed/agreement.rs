//! What the ranks check they agree on: the same configuration and data at start-up (refused
//! otherwise), and bit-identical weights at every checkpoint.

use std::hash::{DefaultHasher, Hash, Hasher};

use super::collective::Collective;
use super::error::DistributedError;
use crate::model::GoogLeNet;
use crate::train::config::TrainConfig;
use crate::train::source::{Split, TrainData};

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
/// [`super::batch_norm::average_running_stats`]), as the synchronous step guarantees; an error names the ranks
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
