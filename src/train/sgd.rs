//! SGD with momentum and weight decay (section 6 of the paper: momentum 0.9), PyTorch's update
//! with dampening 0: `g ← g + λ·w`, `v ← μ·v + g` (`v ← g` on the first step), `w ← w − lr·v`.
//!
//! burn's `Sgd` runs this as five or six tensor operations one after another on the calling
//! thread, each a pass over memory and most a fresh allocation. [`FusedSgd`] gives the same
//! bits (tested against burn's `Sgd`) in one pass over each parameter, in place where burn hands
//! it the only reference to a tensor, split over rayon's threads, wherever the parameter is an
//! f32 tensor on the CPU; elsewhere (a GPU) it runs burn's own operations. Its state is recorded
//! under the names burn's `SgdState` uses (`momentum.velocity`), so checkpoints written with
//! either optimiser load into the other.

use burn::optim::{LearningRate, ModuleOptimizer, Optimizer, RecordState, StateSink, StateSource};
use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

/// Parameter values per parallel task of the fused update.
const CHUNK: usize = 64 * 1024;

/// Momentum SGD with weight decay as PyTorch steps it, fused on the CPU.
#[derive(Clone, Debug)]
pub struct FusedSgd {
    /// μ, or `None` for plain SGD (no state).
    momentum: Option<f32>,
    /// λ, added to the gradient as `λ·w`, or `None`.
    weight_decay: Option<f32>,
}

impl FusedSgd {
    /// The optimiser for `momentum` (0 = plain SGD) and `weight_decay` (0 = none), the values
    /// rounded to f32 as burn rounds them.
    pub fn new(momentum: f64, weight_decay: f64) -> Self {
        Self {
            momentum: (momentum > 0.0).then_some(momentum as f32),
            weight_decay: (weight_decay > 0.0).then_some(weight_decay as f32),
        }
    }

    /// Over a whole module, as burn's `SgdConfig::init` builds its `Sgd`.
    pub fn init(self) -> ModuleOptimizer {
        self.into()
    }
}

/// A parameter's velocity `v` (none before the first step, or without momentum).
#[derive(Clone, Debug)]
pub struct SgdState<const D: usize> {
    velocity: Option<Tensor<D>>,
}

/// burn's `SgdState` records its `momentum: Option<MomentumState>` field, whose one leaf is
/// `velocity`.
const MOMENTUM: &str = "momentum";
const VELOCITY: &str = "velocity";

impl<const D: usize> RecordState for SgdState<D> {
    fn state_flatten(&self, prefix: &str, out: &mut StateSink) {
        if let Some(velocity) = &self.velocity {
            let prefix = burn::optim::join_path(prefix, MOMENTUM);
            out.push_tensor(&prefix, VELOCITY, velocity.to_data());
        }
    }

    fn state_unflatten(prefix: &str, src: &mut StateSource, device: &Device) -> Option<Self> {
        let prefix = burn::optim::join_path(prefix, MOMENTUM);
        if !src.has_under(&prefix) {
            return Some(Self { velocity: None });
        }
        let data = src.take_tensor(&prefix, VELOCITY)?;
        Some(Self {
            velocity: Some(Tensor::from_data(data, device)),
        })
    }
}

impl Optimizer for FusedSgd {
    type State<const D: usize> = SgdState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<SgdState<D>>,
    ) -> (Tensor<D>, Option<SgdState<D>>) {
        let velocity = state.and_then(|s| s.velocity);
        let fused = tensor.device() == Device::flex()
            && tensor.dtype() == DType::F32
            && grad.dtype() == DType::F32
            && velocity.as_ref().is_none_or(|v| v.dtype() == DType::F32);
        let (tensor, velocity) = if fused {
            self.fused_step(lr, tensor, grad, velocity)
        } else {
            self.tensor_step(lr, tensor, grad, velocity)
        };
        (tensor, Some(SgdState { velocity }))
    }

    fn to_device<const D: usize>(state: SgdState<D>, device: &Device) -> SgdState<D> {
        SgdState {
            velocity: state.velocity.map(|v| v.to_device(device)),
        }
    }
}

impl FusedSgd {
    /// The update as burn's `Sgd` writes it, operation by operation.
    fn tensor_step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        mut grad: Tensor<D>,
        velocity: Option<Tensor<D>>,
    ) -> (Tensor<D>, Option<Tensor<D>>) {
        if let Some(decay) = self.weight_decay {
            grad = tensor.clone().mul_scalar(decay).add(grad);
        }
        let velocity = self.momentum.map(|momentum| match velocity {
            Some(v) => grad.clone().add(v.mul_scalar(momentum)),
            None => grad.clone(),
        });
        let step = velocity.clone().unwrap_or(grad);
        (tensor - step.mul_scalar(lr), velocity)
    }

    /// The same update in one parallel pass over the host values, each operation rounded to f32
    /// in burn's order.
    fn fused_step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        velocity: Option<Tensor<D>>,
    ) -> (Tensor<D>, Option<Tensor<D>>) {
        let device = tensor.device();
        let mut w = tensor.into_data();
        let g = grad.into_data();
        let mut v = velocity
            .filter(|_| self.momentum.is_some())
            .map(Tensor::into_data);
        // The first step's velocity is the step itself (burn's `v ← g`).
        let first = self.momentum.is_some() && v.is_none();
        if first {
            v = Some(TensorData::new(
                vec![0.0f32; g.num_elements()],
                g.shape().clone(),
            ));
        }
        let (lr, momentum, decay) = (lr as f32, self.momentum, self.weight_decay);
        {
            let w = w.as_mut_slice::<f32>().expect("an f32 parameter");
            let g = g.as_slice::<f32>().expect("an f32 gradient");
            assert_eq!(w.len(), g.len(), "a gradient of the parameter's size");
            let decayed = |w: f32, g: f32| match decay {
                Some(decay) => w * decay + g,
                None => g,
            };
            match (momentum, v.as_mut()) {
                (Some(momentum), Some(v)) => {
                    let v = v.as_mut_slice::<f32>().expect("an f32 velocity");
                    assert_eq!(v.len(), g.len(), "a velocity of the parameter's size");
                    w.par_chunks_mut(CHUNK)
                        .zip(g.par_chunks(CHUNK))
                        .zip(v.par_chunks_mut(CHUNK))
                        .for_each(|((w, g), v)| {
                            for ((w, &g), v) in w.iter_mut().zip(g).zip(v) {
                                let step = decayed(*w, g);
                                *v = if first { step } else { step + *v * momentum };
                                *w -= *v * lr;
                            }
                        });
                }
                _ => w
                    .par_chunks_mut(CHUNK)
                    .zip(g.par_chunks(CHUNK))
                    .for_each(|(w, g)| {
                        for (w, &g) in w.iter_mut().zip(g) {
                            *w -= decayed(*w, g) * lr;
                        }
                    }),
            }
        }
        (
            Tensor::from_data(w, &device),
            v.map(|v| Tensor::from_data(v, &device)),
        )
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::decay::WeightDecayConfig;
    use burn::optim::momentum::MomentumConfig;
    use burn::optim::{GradientsParams, SgdConfig};

    use super::*;

    /// burn's `Sgd` with PyTorch's settings (dampening 0), as the trainer built it before.
    fn burn_sgd(momentum: f64, weight_decay: f64) -> SgdConfig {
        SgdConfig::new()
            .with_momentum((momentum > 0.0).then_some(MomentumConfig {
                momentum,
                dampening: 0.0,
                nesterov: false,
            }))
            .with_weight_decay(
                (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
            )
    }

    fn values(seed: u64, len: usize) -> Vec<f32> {
        let mut x = seed;
        (0..len)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((x >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.0
            })
            .collect()
    }

    fn tensor(values: Vec<f32>) -> Tensor<1> {
        let len = values.len();
        Tensor::from_data(TensorData::new(values, [len]), &Device::flex())
    }

    fn bits(t: &Tensor<1>) -> Vec<u32> {
        let values: Vec<f32> = t.clone().into_data().try_to_vec().unwrap();
        values.iter().map(|v| v.to_bits()).collect()
    }

    /// Three steps (the first without a velocity) on a parameter of several parallel chunks:
    /// the fused pass and the tensor operations both give burn's `Sgd`'s bits, velocity included.
    #[test]
    fn steps_give_the_bits_of_burns_sgd() {
        let len = 2 * CHUNK + 123;
        for (momentum, decay) in [(0.9, 0.0), (0.9, 1e-4), (0.0, 2e-4), (0.0, 0.0)] {
            let burn = burn_sgd(momentum, decay).build();
            let ours = FusedSgd::new(momentum, decay);
            let start = tensor(values(1, len));
            let (mut want, mut want_state) = (start.clone(), None);
            let (mut fused, mut fused_state) = (start.clone(), None);
            let (mut plain, mut plain_velocity) = (start, None);
            for (step, lr) in [0.01, 0.0037, 0.05].into_iter().enumerate() {
                let grad = tensor(values(10 + step as u64, len));
                (want, want_state) = burn.step(lr, want, grad.clone(), want_state);
                (fused, fused_state) = ours.step(lr, fused, grad.clone(), fused_state);
                (plain, plain_velocity) = ours.tensor_step(lr, plain, grad, plain_velocity);
                let case = format!("momentum {momentum}, decay {decay}, step {step}");
                assert_eq!(bits(&fused), bits(&want), "{case}");
                assert_eq!(bits(&plain), bits(&want), "{case}");
                let velocity = fused_state.as_ref().and_then(|s| s.velocity.as_ref());
                assert_eq!(velocity.is_some(), momentum > 0.0, "{case}");
                assert_eq!(plain_velocity.is_some(), momentum > 0.0, "{case}");
                if let (Some(v), Some(p)) = (velocity, &plain_velocity) {
                    assert_eq!(bits(v), bits(p), "{case}");
                }
            }
            assert_ne!(
                bits(&want),
                bits(&tensor(values(1, len))),
                "the steps moved it"
            );
        }
    }

    /// A layer stepped once by one optimiser, saved, loaded into the other and stepped again
    /// ends where two steps of either end: the momentum buffers carry over both ways.
    #[test]
    fn records_carry_over_between_burns_sgd_and_ours() {
        let dir = tempfile::tempdir().unwrap();
        let device = Device::flex();
        let layer: Linear = LinearConfig::new(300, 200).init(&device.clone().autodiff());
        let grads = |layer: &Linear, seed: u64| {
            let mut grads = GradientsParams::new();
            let weight = values(seed, 300 * 200);
            let weight = Tensor::<2>::from_data(TensorData::new(weight, [300, 200]), &device);
            grads.register(layer.weight.id, weight);
            let bias = layer.bias.as_ref().expect("a bias");
            grads.register(bias.id, tensor(values(seed + 1, 200)));
            grads
        };
        let burn = || burn_sgd(0.9, 1e-4).init();
        let ours = || FusedSgd::new(0.9, 1e-4).init();
        let weight_bits = |layer: &Linear| {
            let values: Vec<f32> = layer.weight.val().into_data().try_to_vec().unwrap();
            values.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        };

        let mut twice = burn();
        let once = twice.step(0.01, layer.clone(), grads(&layer, 3));
        let want = twice.step(0.02, once.clone(), grads(&once, 5));
        for (first, second) in [(burn(), ours()), (ours(), burn())] {
            let mut first = first;
            let once = first.step(0.01, layer.clone(), grads(&layer, 3));
            let path = dir.path().join("optimizer.bpk");
            first.save(&path).unwrap();
            let mut second = second.load(&path).unwrap();
            let got = second.step(0.02, once.clone(), grads(&once, 5));
            assert_eq!(weight_bits(&got), weight_bits(&want));
        }
    }
}
