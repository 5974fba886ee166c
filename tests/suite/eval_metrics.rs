//! Softmax averaging over crops and ensemble members, top-k, and the evaluation's accounting.

use googlenet::eval::average::{
    AverageError, average_groups, average_members, crop_probabilities, softmax_rows,
};
use googlenet::eval::metrics::{ConfusedPair, Metrics, MetricsError, top_k};

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() < 1e-6, "element {i}: {g} vs {w}");
    }
}

#[test]
fn softmax_of_each_row() {
    let ln = |x: f32| x.ln();
    let p = softmax_rows(&[0.0, ln(2.0), ln(3.0), 5.0, 5.0, 5.0], 3).unwrap();
    assert_close(
        &p,
        &[
            1.0 / 6.0,
            2.0 / 6.0,
            3.0 / 6.0,
            1.0 / 3.0,
            1.0 / 3.0,
            1.0 / 3.0,
        ],
    );
    // Large logits do not overflow.
    let p = softmax_rows(&[1000.0, 1000.0, -1000.0], 3).unwrap();
    assert_close(&p, &[0.5, 0.5, 0.0]);
    assert_eq!(
        softmax_rows(&[1.0, 2.0, 3.0], 2),
        Err(AverageError::Rows { len: 3, classes: 2 })
    );
}

#[test]
fn crop_softmaxes_are_averaged_per_image() {
    // 2 images x 3 crops x 2 classes.
    let logits = [
        0.0,
        0.0, // image 0, crop 0: (1/2, 1/2)
        3f32.ln(),
        0.0, // crop 1: (3/4, 1/4)
        0.0,
        3f32.ln(), // crop 2: (1/4, 3/4)
        10.0,
        10.0, // image 1, crop 0: (1/2, 1/2)
        0.0,
        0.0, // crop 1
        0.0,
        1f32.ln(), // crop 2: (1/2, 1/2)
    ];
    let p = crop_probabilities(&logits, 2, 3).unwrap();
    assert_close(&p, &[0.5, 0.5, 0.5, 0.5]);
    // Averaging softmaxes is not the softmax of averaged logits.
    let logits = [0.0, 0.0, 4.0, 0.0];
    let averaged = crop_probabilities(&logits, 2, 2).unwrap();
    let sigmoid4 = 1.0 / (1.0 + (-4f32).exp());
    assert_close(
        &averaged,
        &[(0.5 + sigmoid4) / 2.0, (0.5 + 1.0 - sigmoid4) / 2.0],
    );
    let softmax_of_mean = softmax_rows(&[2.0, 0.0], 2).unwrap();
    assert!((averaged[0] - softmax_of_mean[0]).abs() > 0.01);
    assert_eq!(
        average_groups(&[0.0; 10], 2, 3),
        Err(AverageError::Groups { rows: 5, group: 3 })
    );
    assert!(average_groups(&[0.0; 4], 2, 0).is_err());
}

#[test]
fn ensemble_members_are_averaged_element_wise() {
    let a = vec![0.2, 0.8, 1.0, 0.0];
    let b = vec![0.6, 0.4, 0.0, 1.0];
    let c = vec![0.1, 0.9, 0.5, 0.5];
    assert_close(
        &average_members(&[a.clone(), b.clone(), c]).unwrap(),
        &[0.3, 0.7, 0.5, 0.5],
    );
    assert_eq!(average_members(std::slice::from_ref(&a)).unwrap(), a);
    assert_eq!(
        average_members(&[a, vec![0.5; 2]]),
        Err(AverageError::Members {
            index: 1,
            len: 2,
            expected: 4
        })
    );
    assert_eq!(average_members(&[]), Err(AverageError::NoMembers));
}

#[test]
fn ensemble_with_crops_is_the_mean_over_all_model_crop_softmaxes() {
    // 2 models x 1 image x 4 crops x 3 classes.
    let model_logits = [
        vec![1.0, 2.0, 0.5, 0.0, 0.0, 3.0, -1.0, 2.0, 2.0, 0.3, 0.2, 0.1],
        vec![0.0, 1.0, 4.0, 2.0, 1.0, 0.0, 0.5, 0.5, 0.5, 3.0, -3.0, 0.0],
    ];
    let members: Vec<Vec<f32>> = model_logits
        .iter()
        .map(|l| crop_probabilities(l, 3, 4).unwrap())
        .collect();
    let ensemble = average_members(&members).unwrap();
    let all: Vec<f32> = model_logits.concat();
    let want = crop_probabilities(&all, 3, 8).unwrap();
    assert_close(&ensemble, &want);
    assert!((ensemble.iter().sum::<f32>() - 1.0).abs() < 1e-6);
}

#[test]
fn top_k_orders_by_score_and_breaks_ties_by_class_index() {
    assert_eq!(top_k(&[0.1, 0.5, 0.2, 0.9], 2), [3, 1]);
    assert_eq!(top_k(&[0.3, 0.5, 0.5, 0.1, 0.5], 3), [1, 2, 4]);
    assert_eq!(top_k(&[0.3, 0.5], 5), [1, 0]);
    assert_eq!(top_k(&[f32::NAN, 0.1, f32::NEG_INFINITY], 3), [1, 2, 0]);
    assert!(top_k(&[1.0, 2.0], 0).is_empty());
}

#[test]
fn top1_top5_per_class_and_confused_pairs() {
    // 10 classes; scores where class i has score s[i].
    let scores = |order: &[usize]| {
        let mut s = vec![0.0f32; 10];
        for (rank, &class) in order.iter().enumerate() {
            s[class] = 1.0 - rank as f32 * 0.1;
        }
        s
    };
    let mut m = Metrics::new(10);
    assert_eq!(m.k(), 5);
    m.record(0, &scores(&[0, 1, 2, 3, 4])).unwrap(); // top-1 right
    m.record(0, &scores(&[1, 0, 2, 3, 4])).unwrap(); // top-5 right, confused 0 -> 1
    m.record(0, &scores(&[1, 2, 3, 4, 5, 0])).unwrap(); // 6th: wrong, 0 -> 1
    m.record(2, &scores(&[3, 4, 5, 6, 2])).unwrap(); // 5th: top-5 right, 2 -> 3
    m.record(3, &scores(&[3])).unwrap(); // right
    assert_eq!(m.images(), 5);
    assert_eq!(m.top1_accuracy(), Some(2.0 / 5.0));
    assert_eq!(m.top5_accuracy(), Some(4.0 / 5.0));
    let tally = m.per_class();
    assert_eq!(
        (
            tally[0].images,
            tally[0].top1_correct,
            tally[0].top5_correct
        ),
        (3, 1, 2)
    );
    assert_eq!(
        (
            tally[2].images,
            tally[2].top1_correct,
            tally[2].top5_correct
        ),
        (1, 0, 1)
    );
    assert_eq!(tally[5].images, 0);
    assert_eq!(
        m.most_confused(5),
        [
            ConfusedPair {
                actual: 0,
                predicted: 1,
                count: 2
            },
            ConfusedPair {
                actual: 2,
                predicted: 3,
                count: 1
            },
        ]
    );
    assert_eq!(m.most_confused(1).len(), 1);
}

#[test]
fn top_k_shrinks_to_the_number_of_classes() {
    // Two classes (ants and bees): "top-5" is top-2 and always right.
    let mut m = Metrics::new(2);
    assert_eq!(m.k(), 2);
    m.record(1, &[0.9, 0.1]).unwrap();
    assert_eq!(m.top1_accuracy(), Some(0.0));
    assert_eq!(m.top5_accuracy(), Some(1.0));
}

#[test]
fn bad_labels_and_score_lengths_are_errors() {
    let mut m = Metrics::new(3);
    assert_eq!(
        m.record(3, &[0.1, 0.2, 0.7]),
        Err(MetricsError::Label {
            label: 3,
            classes: 3
        })
    );
    assert_eq!(
        m.record(0, &[0.1, 0.9]),
        Err(MetricsError::Scores { got: 2, classes: 3 })
    );
    assert_eq!(m.images(), 0);
    assert_eq!(m.top1_accuracy(), None);
}

#[test]
fn report_serialises_to_the_documented_json() {
    let mut m = Metrics::new(3);
    m.record(0, &[0.7, 0.2, 0.1]).unwrap();
    m.record(1, &[0.7, 0.2, 0.1]).unwrap();
    let json = serde_json::to_value(m.report(10)).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "images": 2,
            "classes": 3,
            "k": 3,
            "top1_accuracy": 0.5,
            "top5_accuracy": 1.0,
            "top1_error": 0.5,
            "top5_error": 0.0,
            "per_class": [
                {"class": 0, "images": 1, "top1_correct": 1, "top1_accuracy": 1.0},
                {"class": 1, "images": 1, "top1_correct": 0, "top1_accuracy": 0.0},
                {"class": 2, "images": 0, "top1_correct": 0, "top1_accuracy": null},
            ],
            "most_confused": [{"actual": 1, "predicted": 0, "count": 1}],
        })
    );
    let empty = serde_json::to_value(Metrics::new(2).report(5)).unwrap();
    assert_eq!(empty["top1_accuracy"], serde_json::Value::Null);
}
