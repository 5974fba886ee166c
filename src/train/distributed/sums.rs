//! Epoch figures ([`EpochSums`]) summed over the ranks: each rank counts the images of its own
//! share, one small all-reduce makes the whole job's.

use super::collective::Collective;
use crate::train::metrics::{EpochSums, HeadSums};

/// Values per classifier: loss sum, top-1, top-5, images.
const PER_HEAD: usize = 4;
/// Values of one [`EpochSums`]: images, total loss sum and the three classifiers'.
pub const LEN: usize = 2 + 3 * PER_HEAD;

/// `sums` as [`LEN`] numbers (counts are exact in f64 up to 2^53).
pub fn to_values(sums: &EpochSums) -> [f64; LEN] {
    let mut values = [0.0; LEN];
    values[0] = sums.images as f64;
    values[1] = sums.total_loss_sum;
    for (head, chunk) in sums
        .heads
        .iter()
        .zip(values[2..].chunks_exact_mut(PER_HEAD))
    {
        chunk.copy_from_slice(&[
            head.loss_sum,
            head.top1 as f64,
            head.top5 as f64,
            head.images as f64,
        ]);
    }
    values
}

/// The [`EpochSums`] that [`to_values`] gave `values`.
pub fn from_values(values: &[f64]) -> EpochSums {
    let count = |v: f64| v.round() as usize;
    let mut sums = EpochSums {
        images: count(values[0]),
        total_loss_sum: values[1],
        ..EpochSums::default()
    };
    for (head, chunk) in sums
        .heads
        .iter_mut()
        .zip(values[2..].chunks_exact(PER_HEAD))
    {
        *head = HeadSums {
            loss_sum: chunk[0],
            top1: count(chunk[1]),
            top5: count(chunk[2]),
            images: count(chunk[3]),
        };
    }
    sums
}

/// `into` plus `more`.
pub fn merge(into: &mut EpochSums, more: &EpochSums) {
    into.images += more.images;
    into.total_loss_sum += more.total_loss_sum;
    for (a, b) in into.heads.iter_mut().zip(&more.heads) {
        a.loss_sum += b.loss_sum;
        a.top1 += b.top1;
        a.top5 += b.top5;
        a.images += b.images;
    }
}

/// The sums of every rank's `sums`.
pub fn all_reduce(world: &Collective, sums: &EpochSums) -> EpochSums {
    if !world.is_distributed() {
        return sums.clone();
    }
    let mut values = to_values(sums);
    world.all_reduce_sum_f64(&mut values);
    from_values(&values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_survive_the_round_trip_and_merge_adds_every_field() {
        let mut a = EpochSums::default();
        let logits = [0.1f32, 0.9, 0.8, 0.2];
        a.add(
            &[1, 1],
            0.5,
            [
                Some(crate::train::metrics::HeadBatch {
                    loss: 0.25,
                    logits: &logits,
                }),
                None,
                None,
            ],
        );
        assert_eq!(from_values(&to_values(&a)), a);
        let mut b = a.clone();
        merge(&mut b, &a);
        assert_eq!(b.images, 4);
        assert_eq!(b.total_loss_sum, 2.0);
        assert_eq!(b.heads[0].top1, 2);
        assert_eq!(b.heads[0].images, 4);
        assert_eq!(b.heads[0].loss_sum, 1.0);
    }
}
