//! `summary` reproduces ../shared/reference/paper_table (Table 1 recomputed layer by layer) and the
//! parameter counts PyTorch and Keras report.

use crate::common;

use burn::prelude::Device;
use common::shared;
use googlenet::model::summary::Summary;
use googlenet::model::table1;
use googlenet::model::{GoogLeNetConfig, Variant};
use serde_json::Value;

fn summary(variant: Variant) -> Summary {
    GoogLeNetConfig::new(variant)
        .init(&Device::flex())
        .unwrap()
        .summary(224)
        .unwrap()
}

fn table() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(shared("reference/paper_table/table.json")).unwrap(),
    )
    .unwrap()
}

/// Sum of a field over our rows that make up one row of the reference table.
fn ours(s: &Summary, row: &str, field: fn(&googlenet::model::summary::LayerRow) -> usize) -> usize {
    let names: Vec<&str> = match row {
        "conv2+conv3" => vec!["conv2", "conv3"],
        other => vec![other],
    };
    s.layers
        .iter()
        .filter(|r| names.contains(&r.name.as_str()))
        .map(field)
        .sum()
}

fn check_rows(s: &Summary, reference: &Value) {
    for row in reference["rows"].as_array().unwrap() {
        let name = row["row"].as_str().unwrap();
        let params = ours(s, name, |r| r.params);
        let macs = ours(s, name, |r| r.macs);
        assert_eq!(
            params as u64,
            row["params_total"].as_u64().unwrap(),
            "{} params of {name}",
            s.variant
        );
        assert_eq!(
            macs as u64,
            row["macs"].as_u64().unwrap(),
            "{} MACs of {name}",
            s.variant
        );
        let layer = s
            .layers
            .iter()
            .rfind(|r| name.ends_with(r.name.as_str()))
            .expect(name);
        let [c, h, w] = layer.output_shape;
        assert_eq!(
            format!("{h}x{w}x{c}"),
            row["output"].as_str().unwrap(),
            "output of {name}"
        );
    }
    for head in ["aux1", "aux2"] {
        let rows: Vec<_> = s
            .aux_layers
            .iter()
            .filter(|r| r.name.starts_with(head))
            .collect();
        let want = &reference["aux"][head];
        let total = want["weights"].as_u64().unwrap()
            + want["biases"].as_u64().unwrap()
            + want["bn_params"].as_u64().unwrap();
        assert_eq!(
            rows.iter().map(|r| r.params as u64).sum::<u64>(),
            total,
            "{head} params"
        );
        assert_eq!(
            rows.iter().map(|r| r.macs as u64).sum::<u64>(),
            want["macs"].as_u64().unwrap(),
            "{head} MACs"
        );
    }
}

#[test]
fn paper_variant_reproduces_table_1_recomputed() {
    let s = summary(Variant::Paper);
    check_rows(&s, &table()["paper_5x5_conv+bias_noBN"]);
    assert_eq!(s.inference_params, 6_998_552);
    assert_eq!(s.macs, 1_582_671_872);
    assert_eq!(s.aux_params, 3_188_840 + 3_190_888);
}

#[test]
fn paper_variant_shows_where_the_published_table_differs() {
    let s = summary(Variant::Paper);
    // The reference's "match?" column: these rows disagree with their own filter counts.
    assert_eq!(
        table1::disagreements(&s),
        [
            "conv1",
            "inception4a",
            "inception4c",
            "inception4d",
            "inception4e",
            "inception5a",
            "inception5b"
        ]
    );
    let text = s.table();
    assert!(text.contains("2.7K 34M  differs: ours 9.2K 118M"), "{text}");
}

#[test]
fn torchvision_variant_counts_like_pytorch() {
    let s = summary(Variant::Torchvision);
    check_rows(&s, &table()["torchvision_as_shipped_3x3_BN"]);
    assert_eq!(s.inference_params, 6_624_904);
    assert_eq!(s.total_params, 13_004_888);
    assert_eq!(
        s.non_trainable_params, 0,
        "PyTorch keeps running statistics as buffers"
    );
}

#[test]
fn keras_seed_variant_counts_like_keras() {
    let s = summary(Variant::KerasSeed);
    assert_eq!(
        (s.total_params, s.trainable_params, s.non_trainable_params),
        (8_190_440, 8_189_928, 512)
    );
    assert_eq!(
        s.macs as u64,
        table()["keras_seed_macs"]["trunk"].as_u64().unwrap()
    );
    let by_row = &table()["keras_seed_params_by_row"];
    let keras = |r: &googlenet::model::summary::LayerRow| r.params + r.running_stats;
    assert_eq!(
        ours(&s, "norm1", keras) as u64,
        by_row["stem.bn1 (after maxpool1)"].as_u64().unwrap()
    );
    let stem = ours(&s, "conv2+conv3", keras) + ours(&s, "norm2", keras);
    assert_eq!(stem as u64, by_row["conv2+conv3"].as_u64().unwrap());
    for name in ["conv1", "inception3a", "inception4e", "inception5b"] {
        assert_eq!(
            ours(&s, name, keras) as u64,
            by_row[name].as_u64().unwrap(),
            "{name}"
        );
    }
    let head = ours(&s, "fc_bottleneck", keras) + ours(&s, "fc", keras);
    assert_eq!(
        head as u64,
        by_row["head (fc256 linear + fc1000 softmax)"]
            .as_u64()
            .unwrap()
    );
    for head in ["aux1", "aux2"] {
        let params: usize = s
            .aux_layers
            .iter()
            .filter(|r| r.name.starts_with(head))
            .map(|r| r.params)
            .sum();
        assert_eq!(params as u64, by_row[head].as_u64().unwrap(), "{head}");
        let macs: usize = s
            .aux_layers
            .iter()
            .filter(|r| r.name.starts_with(head))
            .map(|r| r.macs)
            .sum();
        assert_eq!(
            macs as u64,
            table()["keras_seed_macs"][head].as_u64().unwrap(),
            "{head} MACs"
        );
    }
}

#[test]
fn json_has_the_documented_fields() {
    let json: Value = serde_json::to_value(summary(Variant::Paper)).unwrap();
    for key in [
        "variant",
        "total_params",
        "trainable_params",
        "aux_params",
        "macs",
        "layers",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
    assert_eq!(json["variant"], "paper");
    let first = &json["layers"][0];
    assert_eq!(first["name"], "conv1");
    assert_eq!(first["output_shape"], serde_json::json!([64, 112, 112]));
    assert_eq!(first["params"], 9472);
    assert_eq!(first["macs"], 118_013_952);
}
