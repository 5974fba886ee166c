//! Mean absolute difference between `EvalTransform::new(256, 224)` and PIL's Resize(256) +
//! CenterCrop(224) on the 4 reference photos of ../shared/reference/inputs.
//!
//! usage: cargo run --release --example eval_transform_accuracy -- SKLEARN_IMAGES_DIR
//! (scikit-learn's `sklearn/datasets/images`, holding china.jpg and flower.jpg; the ant and the
//! bee come from ../shared/data/hymenoptera).

use googlenet::data::EvalTransform;
use googlenet::data::image::load_rgb;

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared");

fn main() -> anyhow::Result<()> {
    let sklearn = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: eval_transform_accuracy SKLEARN_IMAGES_DIR"))?;
    let bytes = std::fs::read(format!("{SHARED}/reference/inputs/inputs.safetensors"))?;
    let tensors = safetensors::SafeTensors::deserialize(&bytes)?;
    let reference = tensors.tensor("images_uint8_nhwc")?.data().to_vec();
    let sources = [
        format!("{sklearn}/china.jpg"),
        format!("{sklearn}/flower.jpg"),
        format!("{SHARED}/data/hymenoptera/val/ants/10308379_1b6c72e180.jpg"),
        format!("{SHARED}/data/hymenoptera/val/bees/1032546534_06907fe3b3.jpg"),
    ];
    let plane = 224 * 224 * 3;
    for (i, source) in sources.iter().enumerate() {
        let ours = EvalTransform::new(256, 224).apply(&load_rgb(source.as_ref())?);
        let theirs = &reference[i * plane..(i + 1) * plane];
        let diffs: Vec<u8> = ours
            .as_raw()
            .iter()
            .zip(theirs)
            .map(|(a, b)| a.abs_diff(*b))
            .collect();
        let mean = diffs.iter().map(|&d| d as f64).sum::<f64>() / diffs.len() as f64;
        let max = diffs.iter().max().copied().unwrap_or(0);
        println!("image {i} {source}: mean |ours - PIL| = {mean:.3} of 255, max {max}");
    }
    Ok(())
}
