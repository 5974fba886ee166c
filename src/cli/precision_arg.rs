//! `--precision f32|bf16`, shared by the commands that infer on the fast CPU engine.

use clap::Args;

use crate::engine::{InferenceError, InferenceNet};
use crate::model::GoogLeNet;
use crate::model::precision::Precision;

#[derive(Args, Debug, Clone, Copy)]
pub struct FastPrecisionArg {
    /// f32, or bf16: the convolutions multiply bf16 values and sum in f32, with BatchNorm folded
    /// in f32 first and the feature maps kept in bf16 (logits within about 0.03-0.04 of f32's, as
    /// PyTorch's bf16 autocast). On CPUs with AMX (Intel Xeon since Sapphire Rapids) about 2.4x
    /// f32's speed, with AVX512-BF16 (AMD Zen 4 and later) about 2x; elsewhere bf16's numbers
    /// at f32's speed.
    #[arg(long, value_name = "f32|bf16", default_value = "f32", value_parser = parse_fast_precision)]
    pub precision: Precision,
}

impl FastPrecisionArg {
    /// `model` on the fast engine in the precision asked for.
    pub fn net(&self, model: &GoogLeNet) -> Result<InferenceNet, InferenceError> {
        InferenceNet::with_precision(model, self.precision)
    }
}

fn parse_fast_precision(value: &str) -> Result<Precision, String> {
    match value {
        "f32" => Ok(Precision::F32),
        "bf16" => Ok(Precision::Bf16),
        "f16" => Err("the fast CPU engine computes in f32 or bf16, not f16".into()),
        _ => Err("expected f32 or bf16".into()),
    }
}
