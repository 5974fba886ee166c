//! Writes the inference network as ONNX (opset 17, input "input" [batch, 3, 224, 224], output
//! "logits"): `cargo run --release --example export_onnx -- --weights FILE|URL|NAME OUT.onnx`.

use burn::prelude::Device;
use googlenet::export::export_onnx;
use googlenet::model::Variant;
use googlenet::weights::{WeightsSource, load_model};

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
    let variant = source.variant().or(Some(Variant::Torchvision));
    let model = load_model(&source, variant, 224, &Device::flex())?.model;
    let written = export_onnx(&model, 224, out.as_ref())?;
    println!(
        "wrote {out}: {} nodes, {:.2} M parameters, {} classes",
        written.nodes,
        written.parameters as f64 / 1e6,
        model.num_classes()
    );
    Ok(())
}
