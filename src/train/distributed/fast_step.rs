//! The fast CPU engine's step over the job: its backward pass hands each layer's gradients over
//! as soon as they are final, and they are all-reduced in buckets while the layers below are
//! still being computed ([`super::buckets`]); burn's autodiff hands its gradients over all at
//! once, so its steps take [`super::step::reduce`] after the backward pass.

use super::buckets::{Buckets, all_reduce_in_buckets};
use super::collective::Collective;
use super::step::{JobFigures, JobStep, reduce_figures, share_weight};
use crate::engine::{GradientSink, TrainLosses, TrainNet};
use crate::model::GoogLeNet;
use crate::train::source::HostBatch;
use crate::train::step::{StepError, StepValues, Stepper, Update};

/// One step of the fast engine over the job on this rank's share `host` (possibly empty) of a
/// global batch of `global_images`, its gradients all-reduced in `buckets`; `None` when
/// `stepper` is not the fast engine.
pub fn fast_job_step(
    world: &Collective,
    stepper: &Stepper,
    model: &GoogLeNet,
    host: &HostBatch,
    global_images: usize,
    aux_weight: f64,
    buckets: Buckets,
) -> Result<Option<JobStep>, StepError> {
    let labels: Vec<usize> = host.labels.iter().map(|&l| l as usize).collect();
    let weight = share_weight(host.len(), global_images);
    let step = stepper.with_fast_net(model, |net, seed| {
        let (pass, reduced) = all_reduce_in_buckets(world, buckets, weight, |feed| {
            let mut sink = JobSink {
                world,
                labels: &host.labels,
                figures: None,
                feed,
            };
            if host.is_empty() {
                sink.share_was_empty(net);
                Ok(())
            } else {
                let shape = [host.len(), 3, host.side, host.side];
                net.forward_backward_with(&host.images, shape, &labels, aux_weight, seed, &mut sink)
                    .map(drop)
            }
            .map(|()| sink.figures.expect("told after the forward pass"))
        });
        let figures = pass?;
        if !figures.finite {
            return Ok(JobStep::without_update(figures));
        }
        net.set_gradients(&reduced.values);
        Ok(JobStep {
            total: figures.total,
            heads: figures.heads,
            sums: figures.sums,
            update: Some(Update::Single(net.gradients(model))),
            allreduce_seconds: reduced.waited_seconds,
            allreduce_busy_seconds: reduced.allreduce_seconds,
        })
    })?;
    step.transpose()
}

/// Sums the figures after the forward pass, then feeds the gradients to the buckets.
struct JobSink<'a> {
    world: &'a Collective,
    labels: &'a [i64],
    figures: Option<JobFigures>,
    feed: &'a mut super::buckets::BucketFeed,
}

impl JobSink<'_> {
    /// A rank without images takes part in the same all-reduces with zero gradients.
    fn share_was_empty(&mut self, net: &mut TrainNet) {
        let figures = reduce_figures(self.world, None, self.labels);
        let finite = figures.finite;
        self.figures = Some(figures);
        if finite {
            let lens = net.gradient_block_lens();
            let zeros = vec![0.0; lens.iter().copied().max().unwrap_or(0)];
            for len in lens {
                self.feed.add(&[&zeros[..len]]);
            }
        }
    }
}

impl GradientSink for JobSink<'_> {
    fn forward_done(&mut self, losses: &TrainLosses) -> bool {
        let values = StepValues::from(losses.clone());
        let figures = reduce_figures(self.world, Some(&values), self.labels);
        let finite = figures.finite;
        self.figures = Some(figures);
        finite
    }

    fn ready(&mut self, blocks: &[&[f32]]) {
        self.feed.add(blocks);
    }
}
