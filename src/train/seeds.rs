//! The run's random streams: the training images' order, the augmentation and dropout, each
//! drawn from the run's seed, so that a run and its resumption see the same numbers.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::source::mix;

/// Salts that keep the generators of the data order, augmentation and dropout apart.
const ORDER: u64 = 0x006f_7264_6572;
pub(super) const AUGMENT: u64 = 0x6175_676d;
pub(super) const DROPOUT: u64 = 0x6472_6f70;

/// The training images' order in `epoch`: a shuffle seeded by the run's seed and the epoch.
pub fn epoch_order(seed: u64, epoch: usize, len: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..len).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(
        seed ^ ORDER,
        epoch as u64,
    )));
    order
}
