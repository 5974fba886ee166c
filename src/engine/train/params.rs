//! Between a burn [`GoogLeNet`] and the [`TrainNet`]: the network's plan, its weights in the
//! engine's layouts, the gradients out as burn's [`GradientsParams`] (so that burn's optimiser,
//! checkpoints and Polyak averaging stay as they are) and BatchNorm's running statistics back.

use burn::module::Param;
use burn::nn::{Linear, PaddingConfig2d};
use burn::optim::GradientsParams;
use burn::prelude::*;

use super::super::map::input_affine;
use super::super::tensor_values;
use super::TrainNetError;
use super::aux::AuxTrain;
use super::avg_pool::AuxPool;
use super::conv::ConvShape;
use super::dense::Dense;
use super::inception::InceptionTrain;
use super::net::{Stage, TrainNet};
use super::pool::MaxPoolShape;
use super::unit::ConvBn;
use crate::model::conv_unit::ConvUnit;
use crate::model::inception::Inception;
use crate::model::pool::Pool;
use crate::model::{GoogLeNet, Variant};

impl TrainNet {
    /// The engine for `model`, with its current weights: the paper's variant (biased
    /// convolutions, LocalRespNorm, 5x5/3 auxiliary pools) and torchvision's (BatchNorm after
    /// every convolution, adaptive pools). The Keras seed's ('same' padding, stem BatchNorm,
    /// (h, w, c) flatten) trains with burn.
    pub fn from_model(model: &GoogLeNet) -> Result<Self, TrainNetError> {
        if model.variant == Variant::KerasSeed {
            return Err(TrainNetError::Unsupported(format!(
                "the {} variant (the fast training path is the paper's and torchvision's)",
                model.variant
            )));
        }
        let stride2 = max_pool(model.stride2_pool)?;
        let inception = |m: &Inception| -> Result<Stage, TrainNetError> {
            let fused_parts = [&m.branch1, &m.branch2[0], &m.branch3[0]];
            let shapes = fused_parts
                .iter()
                .map(|u| conv_shape(u))
                .collect::<Result<Vec<_>, _>>()?;
            let widths = [0, 1, 2].map(|i| shapes[i].out_channels);
            if shapes.iter().any(|s| s.kernel != 1 || s.stride != 1) {
                return Err(TrainNetError::Unsupported(
                    "an inception 1x1 convolution that is not 1x1/1".into(),
                ));
            }
            let fused = ConvShape {
                out_channels: widths.iter().sum(),
                ..shapes[0]
            };
            Ok(Stage::Inception(Box::new(InceptionTrain::new(
                unit(&m.branch1, fused)?,
                widths,
                unit(&m.branch2[1], conv_shape(&m.branch2[1])?)?,
                unit(&m.branch3[1], conv_shape(&m.branch3[1])?)?,
                max_pool(m.pool)?,
                unit(&m.branch4, conv_shape(&m.branch4)?)?,
            ))))
        };
        let conv =
            |u: &ConvUnit| Ok::<_, TrainNetError>(Stage::Conv(Box::new(unit(u, conv_shape(u)?)?)));
        let pool = |p: MaxPoolShape| Stage::MaxPool(p, Vec::new());
        if model.bn1.is_some() || model.bn2.is_some() {
            return Err(TrainNetError::Unsupported("BatchNorm in the stem".into()));
        }
        // The paper's LocalRespNorm after the first pool and after conv3 (Table 1).
        let lrn = || model.lrn.as_ref().map(|_| Stage::LocalResponse);
        let stages: Vec<Stage> = [
            Some(conv(&model.conv1)?),
            Some(pool(stride2)),
            lrn(),
            Some(conv(&model.conv2)?),
            Some(conv(&model.conv3)?),
            lrn(),
            Some(pool(stride2)),
        ]
        .into_iter()
        .flatten()
        .chain([
            inception(&model.inception3a)?,
            inception(&model.inception3b)?,
            pool(stride2),
            inception(&model.inception4a)?,
            inception(&model.inception4b)?,
            inception(&model.inception4c)?,
            inception(&model.inception4d)?,
            inception(&model.inception4e)?,
            pool(max_pool(model.pool4)?),
            inception(&model.inception5a)?,
            inception(&model.inception5b)?,
        ])
        .collect();
        // The auxiliary heads read the outputs of inception 4a and 4d (section 5), the third
        // and sixth module.
        let modules: Vec<usize> = (0..stages.len())
            .filter(|&i| matches!(stages[i], Stage::Inception(_)))
            .collect();
        let taps = [modules[2], modules[5]];
        let mut aux = Vec::new();
        for (at, head) in taps.into_iter().zip([&model.aux1, &model.aux2]) {
            let Some(head) = head else { continue };
            let pool = match head.pool {
                Pool::AdaptiveAvg { size } => AuxPool::Adaptive(size),
                Pool::Avg { kernel, stride } => AuxPool::Window { kernel, stride },
                other => return Err(unsupported_pool(other)),
            };
            let conv = unit(&head.conv, conv_shape(&head.conv)?)?;
            let fc1 = dense(&head.fc1)?;
            let fc2 = dense(&head.fc2)?;
            aux.push((at, AuxTrain::new(pool, conv, fc1, fc2, head.dropout.prob)));
        }
        if model.main_pool != (Pool::AdaptiveAvg { size: 1 }) || model.fc_bottleneck.is_some() {
            return Err(TrainNetError::Unsupported(
                "a classifier other than global average pool + FC".into(),
            ));
        }
        let mut net = TrainNet::new(
            input_affine(model),
            stages,
            aux,
            model.dropout.prob,
            dense(&model.fc)?,
        );
        net.load_weights(model)?;
        Ok(net)
    }

    /// Copies `model`'s current weights and running statistics in (after every optimiser step).
    pub fn load_weights(&mut self, model: &GoogLeNet) -> Result<(), TrainNetError> {
        let sources = conv_sources(model);
        let units = self.conv_units_mut();
        if sources.len() != units.len() {
            return Err(TrainNetError::Unsupported(
                "a model of another layout than the one planned".into(),
            ));
        }
        for (dst, parts) in units.into_iter().zip(sources) {
            load_conv(dst, &parts)?;
        }
        let sources = linear_sources(model);
        for ((dst, rows_from_chw), src) in self.dense_mut().into_iter().zip(sources) {
            dst.weight = values(&src.weight)?;
            if let Some(channels) = rows_from_chw {
                dst.weight = chw_rows_to_hwc(&dst.weight, channels, dst.outputs);
            }
            dst.bias = match &src.bias {
                Some(b) => values(b)?,
                None => vec![0.0; dst.outputs],
            };
        }
        Ok(())
    }

    /// The gradients of the last [`TrainNet::forward_backward`] for burn's optimiser, keyed by
    /// `model`'s parameter ids, on the device that holds `model`'s gradients.
    pub fn gradients(&self, model: &GoogLeNet) -> GradientsParams {
        let device = model.fc.weight.val().device().inner();
        let mut grads = GradientsParams::new();
        for (src, parts) in self.conv_units().into_iter().zip(conv_sources(model)) {
            let mut col = 0;
            for part in parts {
                let [out, inputs, k, _] = part.conv.weight.dims();
                let mut w = vec![0.0; out * inputs * k * k];
                let total = src.conv.out_channels;
                for_each_weight([out, inputs, k], total, col, |engine, torch| {
                    w[torch] = src.weight_grad[engine];
                });
                register(&mut grads, &part.conv.weight, w, &device);
                if let Some(bias) = &part.conv.bias {
                    register(
                        &mut grads,
                        bias,
                        src.beta_grad[col..col + out].to_vec(),
                        &device,
                    );
                }
                if let Some(bn) = &part.bn {
                    register(
                        &mut grads,
                        &bn.weight,
                        src.gamma_grad[col..col + out].to_vec(),
                        &device,
                    );
                    register(
                        &mut grads,
                        &bn.bias,
                        src.beta_grad[col..col + out].to_vec(),
                        &device,
                    );
                }
                col += out;
            }
        }
        for ((src, rows_from_chw), dst) in self.dense().into_iter().zip(linear_sources(model)) {
            let w = match rows_from_chw {
                Some(channels) => hwc_rows_to_chw(&src.weight_grad, channels, src.outputs),
                None => src.weight_grad.clone(),
            };
            register(&mut grads, &dst.weight, w, &device);
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

/// The engine's shape of a unit: a square, ungrouped convolution with symmetric padding,
/// followed by BatchNorm without a bias (torchvision) or with a bias and no BatchNorm (the paper).
fn conv_shape(u: &ConvUnit) -> Result<ConvShape, TrainNetError> {
    let c = &u.conv;
    let [out_channels, in_channels, kh, kw] = c.weight.dims();
    let pad = match c.padding {
        PaddingConfig2d::Explicit(t, l, b, r) if t == l && t == b && t == r => t,
        PaddingConfig2d::Valid => 0,
        _ => {
            return Err(TrainNetError::Unsupported(
                "asymmetric or 'same' padding".into(),
            ));
        }
    };
    if kh != kw || c.stride[0] != c.stride[1] || c.dilation != [1, 1] || c.groups != 1 {
        return Err(TrainNetError::Unsupported(
            "a non-square, dilated or grouped convolution".into(),
        ));
    }
    if c.bias.is_some() == u.bn.is_some() {
        return Err(TrainNetError::Unsupported(
            "a convolution with both a bias and BatchNorm, or neither".into(),
        ));
    }
    Ok(ConvShape {
        kernel: kh,
        stride: c.stride[0],
        pad,
        in_channels,
        out_channels,
    })
}

/// An engine unit of `shape` with `u`'s BatchNorm settings or its bias (weights come with
/// `load_weights`).
fn unit(u: &ConvUnit, shape: ConvShape) -> Result<ConvBn, TrainNetError> {
    Ok(match &u.bn {
        Some(bn) => ConvBn::new(shape, bn.epsilon, bn.momentum),
        None => ConvBn::with_bias(shape),
    })
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

fn dense(layer: &Linear) -> Result<Dense, TrainNetError> {
    let [inputs, outputs] = layer.weight.dims();
    Ok(Dense::new(
        inputs,
        outputs,
        vec![0.0; inputs * outputs],
        vec![0.0; outputs],
    ))
}

fn max_pool(pool: Pool) -> Result<MaxPoolShape, TrainNetError> {
    match pool {
        Pool::MaxCeil {
            kernel,
            stride,
            padding,
        } => Ok(MaxPoolShape {
            kernel,
            stride,
            pad: padding,
        }),
        other => Err(unsupported_pool(other)),
    }
}

fn unsupported_pool(pool: Pool) -> TrainNetError {
    TrainNetError::Unsupported(format!("a {}", pool.describe()))
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
    let shape = param.dims();
    grads.register(
        param.id,
        Tensor::<D>::from_data(TensorData::new(values, shape), device),
    );
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
