//! int8 calibration: a folder of images through the f32 network, recording the range of each
//! convolution's input, which then sets its int8 input scale
//! ([`crate::engine::InferenceNet::into_int8`]). As ONNX Runtime's and OpenVINO's post-training
//! quantization, on a few dozen images like the ones to classify.

use std::path::Path;

use anyhow::{Context, Result, ensure};

use crate::data::dataset::image_files_under;
use crate::data::image::{PixelBudget, load_rgb_within};
use crate::data::normalize_chw;
use crate::data::transform::EvalTransform;
use crate::engine::InferenceNet;

/// Images per forward pass of the calibration.
const BATCH: usize = 16;

/// What calibration read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Calibration {
    /// Images that went through the network.
    pub images: usize,
    /// Images that could not be read, each with its reason.
    pub skipped: Vec<String>,
}

/// `limit` image files under `dir`, spread evenly over its sorted list (so that every class
/// folder takes part), as `crop` x `crop` center crops (the 1-crop evaluation transform) through
/// the f32 `net`'s calibration ([`InferenceNet::calibrate`]). Unreadable images are skipped and
/// counted.
pub fn calibrate_on_folder(
    net: &InferenceNet,
    dir: &Path,
    crop: u32,
    limit: usize,
    budget: PixelBudget,
) -> Result<Calibration> {
    let files = image_files_under(dir)?;
    ensure!(
        !files.is_empty(),
        "{}: no image files to calibrate int8 on",
        dir.display()
    );
    ensure!(limit > 0, "calibration needs at least one image");
    let take = limit.min(files.len());
    let chosen: Vec<_> = (0..take).map(|i| &files[i * files.len() / take]).collect();
    let transform = EvalTransform::imagenet(crop);
    let mut calibration = Calibration {
        images: 0,
        skipped: Vec::new(),
    };
    for batch in chosen.chunks(BATCH) {
        let mut input = Vec::new();
        let mut count = 0;
        for path in batch {
            match load_rgb_within(path, budget) {
                Ok(image) => {
                    normalize_chw(&transform.apply(&image), net.variant(), &mut input);
                    count += 1;
                }
                Err(err) => calibration.skipped.push(err.to_string()),
            }
        }
        if count > 0 {
            let side = crop as usize;
            net.calibrate(&input, [count, 3, side, side])
                .with_context(|| format!("calibrating on {}", dir.display()))?;
            calibration.images += count;
        }
    }
    ensure!(
        calibration.images > 0,
        "{}: none of the {take} images chosen for calibration could be read (first: {})",
        dir.display(),
        calibration.skipped.first().map_or("", String::as_str)
    );
    Ok(calibration)
}
