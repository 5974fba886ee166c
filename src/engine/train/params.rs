//! Between a burn [`GoogLeNet`] and its [`TrainNet`] (built in [`super::plan`]): the weights in the
//! engine's layouts, the gradients out as burn's [`GradientsParams`] (so that burn's optimiser,
//! checkpoints and Polyak averaging stay as they are) and BatchNorm's running statistics back.

use burn::module::Param;
use burn::nn::Linear;
use burn::optim::GradientsParams;
use burn::prelude::*;
use rayon::prelude::*;

use super::super::tensor_values;
use super::TrainNetError;
use super::dense::Dense;
use super::net::{Stage, TrainNet};
use super::unit::ConvBn;
use crate::model::GoogLeNet;
use crate::model::conv_unit::ConvUnit;

impl TrainNet {
    /// Copies `model`'s current weights and running statistics in (after every optimiser step).
    pub fn load_weights(&mut self, model: &GoogLeNet) -> Result<(), TrainNetError> {
        let sources = conv_sources(model);
        let units = self.conv_units_mut();
        if sources.len() != units.len() {
            return Err(TrainNetError::Unsupported(
                "a model of another layout than the one planned".into(),
            ));
        }
        units
            .into_par_iter()
            .zip(sources)
            .try_for_each(|(dst, parts)| load_conv(dst, &parts))?;
        let sources = linear_sources(model);
        self.dense_mut()
            .into_par_iter()
            .zip(sources)
            .try_for_each(|((dst, rows_from_chw), src)| {
                dst.weight = values(&src.weight)?;
                if let Some(channels) = rows_from_chw {
                    dst.weight = chw_rows_to_hwc(&dst.weight, channels, dst.outputs);
                }
                dst.bias = match &src.bias {
                    Some(b) => values(b)?,
                    None => vec![0.0; dst.outputs],
                };
                Ok(())
            })
    }

    /// The gradients of the last [`TrainNet::forward_backward`] for burn's optimiser, keyed by
    /// `model`'s parameter ids, on the device that holds `model`'s gradients.
    pub fn gradients(&self, model: &GoogLeNet) -> GradientsParams {
        let device = model.fc.weight.val().device().inner();
        let mut grads = GradientsParams::new();
        // The weights are rearranged in parallel, then registered in order.
        let convs: Vec<_> = (self.conv_units().into_par_iter())
            .zip(conv_sources(model))
            .flat_map_iter(|(src, parts)| {
                let device = &device;
                let mut col = 0;
                parts.into_iter().map(move |part| {
                    let [out, inputs, k, _] = part.conv.weight.dims();
                    let mut w = vec![0.0; out * inputs * k * k];
                    let total = src.conv.out_channels;
                    for_each_weight([out, inputs, k], total, col, |engine, torch| {
                        w[torch] = src.weight_grad[engine];
                    });
                    let span = col..col + out;
                    col += out;
                    (part, tensor(&part.conv.weight, w, device), src, span)
                })
            })
            .collect();
        for (part, w, src, span) in convs {
            grads.register(part.conv.weight.id, w);
            if let Some(bias) = &part.conv.bias {
                register(
                    &mut grads,
                    bias,
                    src.beta_grad[span.clone()].to_vec(),
                    &device,
                );
            }
            if let Some(bn) = &part.bn {
                let gamma = src.gamma_grad[span.clone()].to_vec();
                register(&mut grads, &bn.weight, gamma, &device);
                register(&mut grads, &bn.bias, src.beta_grad[span].to_vec(), &device);
            }
        }
        let dense: Vec<_> = (self.dense().into_par_iter())
            .zip(linear_sources(model))
            .map(|((src, rows_from_chw), dst)| {
                let w = match rows_from_chw {
                    Some(channels) => hwc_rows_to_chw(&src.weight_grad, channels, src.outputs),
                    None => src.weight_grad.clone(),
                };
                (src, tensor(&dst.weight, w, &device), dst)
            })
            .collect();
        for (src, w, dst) in dense {
            grads.register(dst.weight.id, w);
            if let Some(b) = &dst.bias {
                register(&mut grads, b, src.bias_grad.clone(), &device);
            }
        }
        grads
    }

    /// Writes the running statistics that the forward passes moved back into `model`'s
    /// BatchNorm layers (as burn's own BatchNorm does in training).
    pub fn write_running_stats(&self, model: &GoogLeNet) {
        let device = model.fc.weight.val().device();
        for (src, parts) in self.conv_units().into_iter().zip(conv_sources(model)) {
            let mut col = 0;
            for part in parts {
                let out = part.out_channels();
                if let Some(bn) = &part.bn {
                    let tensor = |v: &[f32]| {
                        Tensor::<1>::from_data(TensorData::new(v.to_vec(), [out]), &device)
                    };
                    bn.running_mean
                        .update(tensor(&src.running_mean[col..col + out]));
                    bn.running_var
                        .update(tensor(&src.running_var[col..col + out]));
                }
                col += out;
            }
        }
    }

    fn conv_units(&self) -> Vec<&ConvBn> {
        let mut units = Vec::new();
        for stage in &self.stages {
            match stage {
                Stage::Conv(u) => units.push(&**u),
                Stage::Inception(m) => {
                    units.extend([&m.fused, &m.branch2, &m.branch3, &m.projection])
                }
                Stage::MaxPool(..) | Stage::LocalResponse => {}
            }
        }
        units.extend(self.aux.iter().map(|(_, h)| &h.conv));
        units
    }

    fn conv_units_mut(&mut self) -> Vec<&mut ConvBn> {
        let mut units = Vec::new();
        for stage in &mut self.stages {
            match stage {
                Stage::Conv(u) => units.push(&mut **u),
                Stage::Inception(m) => {
                    let m = &mut **m;
                    units.extend([
                        &mut m.fused,
                        &mut m.branch2,
                        &mut m.branch3,
                        &mut m.projection,
                    ])
                }
                Stage::MaxPool(..) | Stage::LocalResponse => {}
            }
        }
        units.extend(self.aux.iter_mut().map(|(_, h)| &mut h.conv));
        units
    }

    /// The fully connected layers in [`linear_sources`]' order, with the channel count of the
    /// map that the auxiliary heads' FC 1 reads (its rows are permuted).
    fn dense(&self) -> Vec<(&Dense, Option<usize>)> {
        let mut layers = Vec::new();
        for (_, h) in &self.aux {
            layers.push((&h.fc1, Some(h.conv.conv.out_channels)));
            layers.push((&h.fc2, None));
        }
        layers.push((&self.fc, None));
        layers
    }

    fn dense_mut(&mut self) -> Vec<(&mut Dense, Option<usize>)> {
        let mut layers = Vec::new();
        for (_, h) in &mut self.aux {
            let channels = h.conv.conv.out_channels;
            layers.push((&mut h.fc1, Some(channels)));
            layers.push((&mut h.fc2, None));
        }
        layers.push((&mut self.fc, None));
        layers
    }
}

/// The burn units behind each engine unit, in the engine's order: the stem, then per inception
/// module the fused 1x1 units, the 3x3 and "5x5" convolutions and the projection, then the
/// auxiliary heads' convolutions.
fn conv_sources(model: &GoogLeNet) -> Vec<Vec<&ConvUnit>> {
    let mut sources = vec![vec![&model.conv1], vec![&model.conv2], vec![&model.conv3]];
    for (_, m) in model.inceptions() {
        sources.push(vec![&m.branch1, &m.branch2[0], &m.branch3[0]]);
        sources.push(vec![&m.branch2[1]]);
        sources.push(vec![&m.branch3[1]]);
        sources.push(vec![&m.branch4]);
    }
    for head in [&model.aux1, &model.aux2].into_iter().flatten() {
        sources.push(vec![&head.conv]);
    }
    sources
}

/// The fully connected layers: each auxiliary head's FC 1 and classifier, then the main one.
fn linear_sources(model: &GoogLeNet) -> Vec<&Linear> {
    let mut layers = Vec::new();
    for head in [&model.aux1, &model.aux2].into_iter().flatten() {
        layers.extend([&head.fc1, &head.fc2]);
    }
    layers.push(&model.fc);
    layers
}

/// `parts`' weights side by side into `dst`'s columns, and their BatchNorm values.
fn load_conv(dst: &mut ConvBn, parts: &[&ConvUnit]) -> Result<(), TrainNetError> {
    let total = dst.conv.out_channels;
    let mut col = 0;
    for part in parts {
        let [out, inputs, k, _] = part.conv.weight.dims();
        if inputs != dst.conv.in_channels || k != dst.conv.kernel || col + out > total {
            return Err(TrainNetError::Unsupported(
                "a model of another layout than the one planned".into(),
            ));
        }
        let w = values(&part.conv.weight)?;
        for_each_weight([out, inputs, k], total, col, |engine, torch| {
            dst.weight[engine] = w[torch];
        });
        let span = col..col + out;
        match (&part.bn, &part.conv.bias) {
            (Some(bn), None) if dst.batch_norm => {
                let (mean, var) = bn.running_stats();
                dst.gamma[span.clone()].copy_from_slice(&values(&bn.weight)?);
                dst.beta[span.clone()].copy_from_slice(&values(&bn.bias)?);
                dst.running_mean[span.clone()].copy_from_slice(&tensor_values(mean)?);
                dst.running_var[span].copy_from_slice(&tensor_values(var)?);
            }
            (None, Some(bias)) if !dst.batch_norm => {
                dst.beta[span].copy_from_slice(&values(bias)?);
            }
            _ => {
                return Err(TrainNetError::Unsupported(
                    "a model of another layout than the one planned".into(),
                ));
            }
        }
        col += out;
    }
    Ok(())
}

/// Calls `f(engine, torch)` for every weight of a torch convolution `[out, inputs, k, k]` that
/// sits at columns `col..col + out` of an engine matrix `[k²·inputs, total]`: its index in the
/// engine matrix (row `(y·k + x)·inputs + i`, column `col + o`) and in the torch tensor. Walks the
/// engine matrix one band of [`BAND`] columns at a time, row by row, so that each of its cache
/// lines is read (or written) once and the band's torch rows stay in cache meanwhile; visiting
/// the matrix column by column took a cache miss per weight.
fn for_each_weight(
    [out, inputs, k]: [usize; 3],
    total: usize,
    col: usize,
    mut f: impl FnMut(usize, usize),
) {
    /// Columns per band: one 64-byte cache line of f32.
    const BAND: usize = 16;
    for o0 in (0..out).step_by(BAND) {
        let band = o0..(o0 + BAND).min(out);
        for y in 0..k {
            for x in 0..k {
                for i in 0..inputs {
                    let row = (y * k + x) * inputs + i;
                    for o in band.clone() {
                        f(row * total + col + o, ((o * inputs + i) * k + y) * k + x);
                    }
                }
            }
        }
    }
}

fn values<const D: usize>(param: &Param<Tensor<D>>) -> Result<Vec<f32>, TrainNetError> {
    tensor_values(param.val()).map_err(|e| TrainNetError::Weights(e.to_string()))
}

fn register<const D: usize>(
    grads: &mut GradientsParams,
    param: &Param<Tensor<D>>,
    values: Vec<f32>,
    device: &Device,
) {
    grads.register(param.id, tensor(param, values, device));
}

/// `values` as a tensor of `param`'s shape on `device`.
fn tensor<const D: usize>(
    param: &Param<Tensor<D>>,
    values: Vec<f32>,
    device: &Device,
) -> Tensor<D> {
    Tensor::<D>::from_data(TensorData::new(values, param.dims()), device)
}

/// FC rows in torchvision's flatten order (channel, then position) to the engine's NHWC order
/// (position, then channel), for a map of `channels` channels.
fn chw_rows_to_hwc(w: &[f32], channels: usize, outputs: usize) -> Vec<f32> {
    let positions = w.len() / outputs / channels;
    let mut out = vec![0.0; w.len()];
    for c in 0..channels {
        for p in 0..positions {
            out[(p * channels + c) * outputs..][..outputs]
                .copy_from_slice(&w[(c * positions + p) * outputs..][..outputs]);
        }
    }
    out
}

/// The reverse of [`chw_rows_to_hwc`].
fn hwc_rows_to_chw(w: &[f32], channels: usize, outputs: usize) -> Vec<f32> {
    let positions = w.len() / outputs / channels;
    let mut out = vec![0.0; w.len()];
    for c in 0..channels {
        for p in 0..positions {
            out[(c * positions + p) * outputs..][..outputs]
                .copy_from_slice(&w[(p * channels + c) * outputs..][..outputs]);
        }
    }
    out
}
