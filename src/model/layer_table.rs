//! GoogLeNet's layer table for any input size (Table 1's rows): each layer's output shape,
//! parameters and multiply-adds, walked in forward order, auxiliary heads apart.

use super::aux_head::linear_row;
use super::batch_norm::BatchNorm;
use super::googlenet::GoogLeNet;
use super::pool::Pool;
use super::summary::{LayerRow, Summary, SummaryError};

impl GoogLeNet {
    /// The layer table for a square input of side `input_size`.
    pub fn summary(&self, input_size: usize) -> Result<Summary, SummaryError> {
        self.summary_for(input_size, input_size)
    }

    pub(super) fn summary_for(&self, height: usize, width: usize) -> Result<Summary, SummaryError> {
        let mut rows = Vec::new();
        let mut aux_rows = Vec::new();
        let pool =
            |name: &str, p: &Pool, [c, h, w]: [usize; 3]| -> Result<LayerRow, SummaryError> {
                let too_small = || SummaryError::too_small(name, [c, h, w]);
                let out = [
                    c,
                    p.output_size(h).ok_or_else(too_small)?,
                    p.output_size(w).ok_or_else(too_small)?,
                ];
                Ok(LayerRow::no_params(name, p.describe(), out))
            };
        let mut push = |row: LayerRow| -> [usize; 3] {
            let out = row.output_shape;
            rows.push(row);
            out
        };
        let mut s = push(self.conv1.row("conv1", [3, height, width])?);
        s = push(pool("maxpool1", &self.stride2_pool, s)?);
        s = push(self.norm_row("norm1", &self.bn1, s));
        s = push(self.conv2.row("conv2", s)?);
        s = push(self.conv3.row("conv3", s)?);
        s = push(self.norm_row("norm2", &self.bn2, s));
        s = push(pool("maxpool2", &self.stride2_pool, s)?);
        for (name, module) in self.inceptions() {
            if name == "inception4a" {
                s = push(pool("maxpool3", &self.stride2_pool, s)?);
            }
            if name == "inception5a" {
                s = push(pool("maxpool4", &self.pool4, s)?);
            }
            s = push(module.row(name, s)?);
            let head = match name {
                "inception4a" => self.aux1.as_ref().map(|h| ("aux1", h)),
                "inception4d" => self.aux2.as_ref().map(|h| ("aux2", h)),
                _ => None,
            };
            if let Some((aux_name, head)) = head {
                aux_rows.extend(head.rows(aux_name, s)?);
            }
        }
        s = push(pool("avgpool", &self.main_pool, s)?);
        let [c, h, w] = s;
        push(LayerRow::no_params(
            "dropout",
            format!("dropout ({:.0}%)", self.dropout.prob * 100.0),
            [c * h * w, 1, 1],
        ));
        if let Some(fc) = &self.fc_bottleneck {
            push(linear_row("fc_bottleneck", fc));
        }
        push(linear_row("fc", &self.fc));
        rows.retain(|r| !r.kind.is_empty());
        Ok(Summary::new(
            self.variant,
            [3, height, width],
            rows,
            aux_rows,
        ))
    }

    fn norm_row(&self, name: &str, bn: &Option<BatchNorm>, shape: [usize; 3]) -> LayerRow {
        match (bn, &self.lrn) {
            (Some(bn), _) => LayerRow {
                name: name.to_string(),
                kind: "batch norm".to_string(),
                output_shape: shape,
                params: 2 * bn.channels(),
                running_stats: 2 * bn.channels(),
                weights: 0,
                macs: 0,
            },
            (None, Some(_)) => LayerRow::no_params(name, "local response norm".to_string(), shape),
            (None, None) => LayerRow::no_params(name, String::new(), shape),
        }
    }
}
