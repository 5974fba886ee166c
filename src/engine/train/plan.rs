//! The [`TrainNet`] of a burn [`GoogLeNet`]: its stages (convolutions, pools, LocalRespNorm,
//! inception modules with their three 1x1 convolutions fused), auxiliary heads and classifier,
//! each checked against what the fast training path implements.

use burn::nn::{Linear, PaddingConfig2d};

use super::super::map::input_affine;
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
