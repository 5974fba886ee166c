//! The layer table of `googlenet summary`: output shapes, parameters and multiply-adds.
//!
//! Multiply-adds count convolutions and fully connected layers, as Table 1's "ops" column does.
//! Parameter counts follow the reference framework of each variant: Keras counts BatchNorm moving
//! statistics as non-trainable parameters, PyTorch keeps them as buffers outside the count.

use serde::Serialize;

use super::variant::Variant;

/// One row of the layer table: a layer's name, type, output shape, parameters and multiply-adds.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerRow {
    /// Layer name, as the model's field (`conv1`, `inception3a`, ...).
    pub name: String,
    /// Layer type as Table 1 names it ("convolution 7x7/2", "inception", ...).
    #[serde(rename = "type")]
    pub kind: String,
    /// (channels, height, width).
    pub output_shape: [usize; 3],
    /// Trainable parameters: weights, biases and BatchNorm scale and shift.
    pub params: usize,
    /// BatchNorm running mean and variance elements.
    #[serde(skip)]
    pub running_stats: usize,
    /// Convolution and FC weights alone (no biases, no BatchNorm): what Table 1's "params" counts.
    #[serde(skip)]
    pub weights: usize,
    /// Multiply-adds of one forward pass through the layer.
    pub macs: usize,
}

impl LayerRow {
    /// A row for a layer without weights (pooling, normalisation, dropout).
    pub fn no_params(name: &str, kind: String, output_shape: [usize; 3]) -> Self {
        Self {
            name: name.to_string(),
            kind,
            output_shape,
            params: 0,
            running_stats: 0,
            weights: 0,
            macs: 0,
        }
    }
}

/// Why a model or its summary cannot be built for the input asked for.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SummaryError {
    /// The input side is below the smallest the variant's pools and convolutions take.
    #[error(
        "input of side {input} is too small for this variant: the smallest it takes is {min}x{min}"
    )]
    InputTooSmall {
        /// The input side asked for.
        input: usize,
        /// The smallest side the variant takes.
        min: usize,
    },
    /// A layer's input is too small for its kernel.
    #[error("input of shape {shape:?} is too small for layer {layer}")]
    LayerTooSmall {
        /// The layer's name.
        layer: String,
        /// The shape reaching it, `[channels, height, width]`.
        shape: [usize; 3],
    },
    /// The input does not have 3 channels.
    #[error("the network takes 3-channel (RGB) input, got {0} channels")]
    Channels(usize),
}

impl SummaryError {
    /// A [`SummaryError::LayerTooSmall`] for `layer` and its input `shape`.
    pub fn too_small(layer: &str, shape: [usize; 3]) -> Self {
        SummaryError::LayerTooSmall {
            layer: layer.to_string(),
            shape,
        }
    }
}

/// The whole layer table of a model, with its totals.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// The variant summarised.
    pub variant: Variant,
    /// The input (channels, height, width).
    pub input_shape: [usize; 3],
    /// Every parameter the model holds, aux heads included, as the reference framework counts them.
    pub total_params: usize,
    /// Parameters the optimiser updates, aux heads included.
    pub trainable_params: usize,
    /// Parameters the reference framework counts but does not train (Keras' BatchNorm moving
    /// statistics).
    pub non_trainable_params: usize,
    /// Trainable parameters of the inference network (without the aux heads).
    pub inference_params: usize,
    /// Trainable parameters of the auxiliary heads.
    pub aux_params: usize,
    /// Multiply-adds of one inference (without the aux heads).
    pub macs: usize,
    /// Multiply-adds of the auxiliary heads.
    pub aux_macs: usize,
    /// Rows of the inference network, in order.
    pub layers: Vec<LayerRow>,
    /// Rows of the auxiliary heads.
    pub aux_layers: Vec<LayerRow>,
}

impl Summary {
    /// The summary of `layers` and `aux_layers`, counting parameters as the variant's framework
    /// does.
    pub fn new(
        variant: Variant,
        input_shape: [usize; 3],
        layers: Vec<LayerRow>,
        aux_layers: Vec<LayerRow>,
    ) -> Self {
        let sum = |rows: &[LayerRow], f: fn(&LayerRow) -> usize| rows.iter().map(f).sum::<usize>();
        let inference_params = sum(&layers, |r| r.params);
        let aux_params = sum(&aux_layers, |r| r.params);
        let trainable_params = inference_params + aux_params;
        let non_trainable_params = match variant {
            Variant::KerasSeed => {
                sum(&layers, |r| r.running_stats) + sum(&aux_layers, |r| r.running_stats)
            }
            _ => 0,
        };
        Self {
            variant,
            input_shape,
            total_params: trainable_params + non_trainable_params,
            trainable_params,
            non_trainable_params,
            inference_params,
            aux_params,
            macs: sum(&layers, |r| r.macs),
            aux_macs: sum(&aux_layers, |r| r.macs),
            layers,
            aux_layers,
        }
    }

    /// A Keras-style table; for the paper variant with Table 1's published figures beside ours.
    pub fn table(&self) -> String {
        let published = self.variant == Variant::Paper && self.input_shape == [3, 224, 224];
        let mut out = format!(
            "GoogLeNet, variant {}, input {}x{}x{}\n",
            self.variant, self.input_shape[0], self.input_shape[1], self.input_shape[2]
        );
        let header = if published {
            format!(
                "{:<16} {:<26} {:>14} {:>12} {:>15}  {:<24}\n",
                "layer", "type", "output", "params", "multiply-adds", "Table 1 (params, ops)"
            )
        } else {
            format!(
                "{:<16} {:<26} {:>14} {:>12} {:>15}\n",
                "layer", "type", "output", "params", "multiply-adds"
            )
        };
        let rule = "-".repeat(header.trim_end().len());
        out += &format!("{rule}\n{header}{rule}\n");
        let row_line = |r: &LayerRow| {
            let [c, h, w] = r.output_shape;
            let mut line = format!(
                "{:<16} {:<26} {:>14} {:>12} {:>15}",
                r.name,
                r.kind,
                format!("{h}x{w}x{c}"),
                group(r.params),
                group(r.macs)
            );
            if published && let Some(note) = super::table1::published_note(&r.name, self) {
                line += &format!("  {note}");
            }
            line + "\n"
        };
        for r in &self.layers {
            out += &row_line(r);
        }
        out += &format!("{rule}\n");
        for r in &self.aux_layers {
            out += &row_line(r);
        }
        out += &format!("{rule}\n");
        out += &format!(
            "inference network: {} parameters, {} multiply-adds\n",
            group(self.inference_params),
            group(self.macs)
        );
        out += &format!(
            "auxiliary heads:   {} parameters, {} multiply-adds (training only)\n",
            group(self.aux_params),
            group(self.aux_macs)
        );
        out += &format!(
            "total: {} parameters ({} trainable, {} non-trainable)\n",
            group(self.total_params),
            group(self.trainable_params),
            group(self.non_trainable_params)
        );
        out
    }
}

/// 1234567 -> "1,234,567".
pub fn group(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
