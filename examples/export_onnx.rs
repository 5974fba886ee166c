//! Writes the inference network as ONNX (opset 17, input "input" [batch, 3, 224, 224], output
//! "logits"): `cargo run --release --example export_onnx -- --weights FILE|URL|NAME OUT.onnx`.

use burn::prelude::Device;
use googlenet::export::export_onnx;
use googlenet::model::Variant;
use googlenet::weights::{WeightsFile, WeightsSource};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [flag, weights, out] = args.as_slice() else {
        anyhow::bail!("usage: export_onnx --weights W OUT.onnx")
    };
    anyhow::ensure!(
        flag == "--weights",
        "usage: export_onnx --weights W OUT.onnx"
    );
    let source: WeightsSource = weights.parse()?;
    let file = WeightsFile::open(&source.resolve(true)?)?;
    let mut config = file.model_config(source.variant().or(Some(Variant::Torchvision)), 224)?;
    config.transform_input |= source.transform_input();
    let model = file.load_into(config.init(&Device::flex())?)?;
    let written = export_onnx(&model, 224, out.as_ref())?;
    println!(
        "wrote {out}: {} nodes, {:.2} M parameters, {} classes",
        written.nodes,
        written.parameters as f64 / 1e6,
        model.num_classes()
    );
    Ok(())
}
