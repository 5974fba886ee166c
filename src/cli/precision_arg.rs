//! `--precision f32|bf16` and `--int8-calibration DIR`, shared by the commands that infer on the
//! fast CPU engine.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::data::image::PixelBudget;
use crate::engine::{InferenceNet, Int8Kernel};
use crate::eval::calibration::calibrate_on_folder;
use crate::model::GoogLeNet;
use crate::model::precision::Precision;

#[derive(Args, Debug, Clone)]
pub struct FastPrecisionArg {
    /// f32, or bf16: the convolutions multiply bf16 values and sum in f32, with BatchNorm folded
    /// in f32 first and the feature maps kept in bf16 (logits within about 0.03-0.04 of f32's, as
    /// PyTorch's bf16 autocast). On CPUs with AMX (Intel Xeon since Sapphire Rapids) about 2.4x
    /// f32's speed, with AVX512-BF16 on AMD (Zen 4 and later) about 2x; elsewhere bf16's numbers
    /// on the f32 kernels, somewhat slower than f32 (Intel's AVX512-BF16 without AMX is slower
    /// than its f32 FMAs).
    #[arg(long, value_name = "f32|bf16", default_value = "f32", value_parser = parse_fast_precision)]
    pub precision: Precision,
    /// Quantize every convolution to int8 (post-training, as ONNX Runtime's `quantize_static`):
    /// u8 inputs over the range seen on the images under DIR (center crops), i8 weights with one
    /// scale per filter, exact i32 sums, on AVX512-VNNI (Intel since Cascade Lake, AMD Zen 4 and
    /// later; elsewhere a slow portable kernel); u8 feature maps from the first convolution to
    /// the last inception module (after the stem with LocalRespNorm), f32 in the classifier.
    /// Calibrate on images like those to classify, e.g. a few from each class of the training
    /// set. Not with --precision.
    #[arg(long, value_name = "DIR", conflicts_with = "precision")]
    pub int8_calibration: Option<PathBuf>,
    /// How many images of DIR calibrate int8, spread evenly over its sorted files.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 64,
        requires = "int8_calibration"
    )]
    pub calibration_images: usize,
}

impl FastPrecisionArg {
    /// What the products compute in: `f32`, `bf16` or `int8`.
    pub fn name(&self) -> &'static str {
        match self.int8_calibration {
            Some(_) => "int8",
            None => self.precision.name(),
        }
    }

    /// `model` on the fast engine in the precision asked for, its inputs `crop` x `crop`
    /// (calibration images are read within `budget`).
    pub fn net(&self, model: &GoogLeNet, crop: u32, budget: PixelBudget) -> Result<InferenceNet> {
        let net = InferenceNet::with_precision(model, self.precision)?;
        let Some(dir) = &self.int8_calibration else {
            return Ok(net);
        };
        let calibration = calibrate_on_folder(&net, dir, crop, self.calibration_images, budget)?;
        let net = net.into_int8(Int8Kernel::detect())?;
        for reason in &calibration.skipped {
            eprintln!("warning: calibration skipped {reason}");
        }
        eprintln!(
            "int8: calibrated on {} images of {} ({} kernel)",
            calibration.images,
            dir.display(),
            net.int8_kernel().map_or("no", |k| k.name())
        );
        Ok(net)
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
