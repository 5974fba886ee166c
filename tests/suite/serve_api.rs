//! `googlenet serve` answers as `googlenet classify --json` does, for the reference images and
//! the reference torchvision weights: exactly for one image at a time, and to float32 rounding
//! in a form and batched with concurrent requests; `/v1/model`, `/healthz`, `/metrics` and the
//! page describe it.

use std::process::Command;

use sha2::{Digest, Sha256};

use crate::common::{TORCHVISION_PTH, shared};
use crate::serve_harness::{Server, read, reference_images};

/// `classify --json --top TOP` on the reference images: one `{path, top}` per image.
fn classify_json(top: usize, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args([
            "classify",
            "--variant",
            "torchvision",
            "--json",
            "--top",
            &top.to_string(),
        ])
        .args(extra)
        .arg("--weights")
        .arg(shared(TORCHVISION_PTH))
        .args(reference_images())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    json.as_array().unwrap().clone()
}

/// The same classes in the same order as `want`, with probabilities within a relative `1e-5`: a
/// batch of several images sums its matrix products in another order than a lone image does, so
/// float32 results can differ in their last digits (as in any batched inference).
fn assert_same_top_within_batch_rounding(
    got: &serde_json::Value,
    want: &serde_json::Value,
    what: &str,
) {
    let (got, want) = (got.as_array().unwrap(), want.as_array().unwrap());
    assert_eq!(got.len(), want.len(), "{what}");
    for (g, w) in got.iter().zip(want) {
        for key in ["index", "wnid", "name"] {
            assert_eq!(g[key], w[key], "{what}: {key}");
        }
        let (g, w) = (g["prob"].as_f64().unwrap(), w["prob"].as_f64().unwrap());
        assert!((g - w).abs() <= 1e-5 * w, "{what}: prob {g} vs {w}");
    }
}

fn file_name(path: &std::path::Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn serve_answers_each_reference_image_as_classify_json_does() {
    let want = classify_json(5, &[]);
    let server = Server::start(&[]);
    for (path, want) in reference_images().iter().zip(&want) {
        let name = file_name(path);
        let reply = server.post(
            &format!("/v1/classify?top=5&name={name}"),
            "image/png",
            &read(path),
        );
        assert_eq!(reply.status, 200, "{}", reply.text);
        let got = reply.json();
        assert_eq!(got["path"], name.as_str());
        assert_eq!(got["top"], want["top"], "{name}");
        assert_eq!(got["top"].as_array().unwrap().len(), 5);
    }
    // Another resize, the same as classify's option of that name.
    let want = classify_json(5, &["--resize", "224"]);
    let ant = &reference_images()[2];
    let reply = server.post("/v1/classify?resize=224&top=5", "image/png", &read(ant));
    assert_eq!(reply.json()["top"], want[2]["top"]);
    assert_eq!(reply.json()["path"], "image", "a raw body without ?name=");
}

#[test]
fn serve_answers_a_form_and_concurrent_requests_batched_as_classify_json_does() {
    let want = classify_json(5, &[]);
    let server = Server::start(&["--max-batch", "4", "--max-delay-ms", "300"]);
    let images = reference_images();
    let bytes: Vec<Vec<u8>> = images.iter().map(|p| read(p)).collect();
    let names: Vec<String> = images.iter().map(|p| file_name(p)).collect();
    let parts: Vec<(&str, &str, &[u8])> = names
        .iter()
        .zip(&bytes)
        .map(|(name, bytes)| ("image", name.as_str(), bytes.as_slice()))
        .collect();
    let reply = server.post_form("/v1/classify", &parts);
    assert_eq!(reply.status, 200, "{}", reply.text);
    let got = reply.json();
    let got = got.as_array().expect("a form is answered with a list");
    assert_eq!(got.len(), 4);
    for ((got, want), name) in got.iter().zip(&want).zip(&names) {
        assert_eq!(got["path"], name.as_str());
        assert_same_top_within_batch_rounding(
            &got["top"],
            &want["top"],
            &format!("{name} in a form"),
        );
    }

    // Four clients at once: gathered into batches, each answered with its own image's classes.
    std::thread::scope(|scope| {
        let handles: Vec<_> = bytes
            .iter()
            .map(|bytes| scope.spawn(|| server.post("/v1/classify", "image/png", bytes)))
            .collect();
        for ((handle, want), name) in handles.into_iter().zip(&want).zip(&names) {
            let reply = handle.join().unwrap();
            assert_eq!(reply.status, 200, "{}", reply.text);
            assert_same_top_within_batch_rounding(
                &reply.json()["top"],
                &want["top"],
                &format!("{name} from concurrent clients"),
            );
        }
    });
    let batches = server.metric("googlenet_batch_size_count");
    let images = server.metric("googlenet_batch_size_sum");
    assert_eq!(images, 8.0, "4 images in the form and 4 from the clients");
    assert!(
        batches < images,
        "with --max-delay-ms 300 some images share a batch: {batches} batches for {images} images"
    );
}

#[test]
fn serve_describes_the_model_health_metrics_and_page() {
    let server = Server::start(&[]);
    let model = server.get("/v1/model").json();
    assert_eq!(model["name"], "GoogLeNet");
    assert_eq!(model["variant"], "torchvision");
    assert_eq!(model["classes"], 1000);
    assert_eq!(model["input_size"], 224);
    assert_eq!(model["resize"], 256);
    let weights = read(&shared(TORCHVISION_PTH));
    let sha256: String = Sha256::digest(&weights)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(model["weights"]["sha256"], sha256.as_str());
    assert_eq!(model["weights"]["bytes"], weights.len());
    assert_eq!(
        model["weights"]["file"], "torchvision_seed1234_calibrated.pth",
        "the file name only, not the server's folders"
    );

    assert_eq!(server.get("/healthz").json()["status"], "alive");
    assert_eq!(server.get("/readyz").json()["status"], "ready");

    let page = server.get("/");
    assert_eq!(page.status, 200);
    assert!(page.text.contains("<input id=\"files\" type=\"file\""));
    assert!(
        !page.text.contains("http://") && !page.text.contains("https://"),
        "the page loads nothing from elsewhere"
    );

    let ant = read(&reference_images()[2]);
    assert_eq!(server.post("/v1/classify", "image/png", &ant).status, 200);
    assert_eq!(
        server.post("/v1/classify", "text/plain", b"hello").status,
        415
    );
    let metrics = server.get("/metrics").text;
    for line in [
        "googlenet_http_requests_total{route=\"/v1/classify\",status=\"200\"} 1",
        "googlenet_http_requests_total{route=\"/v1/classify\",status=\"415\"} 1",
        "googlenet_images_classified_total 1",
        "googlenet_batch_size_count 1",
        "googlenet_queue_depth 0",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    assert!(metrics.contains("googlenet_http_request_duration_seconds_bucket{"));
    assert!(metrics.contains("googlenet_inference_duration_seconds_sum"));
}

/// The probability of each class, from a `top` list of all of them.
fn probabilities_by_class(top: &serde_json::Value) -> Vec<f64> {
    let mut probs = vec![f64::NAN; 1000];
    for entry in top.as_array().unwrap() {
        probs[entry["index"].as_u64().unwrap() as usize] = entry["prob"].as_f64().unwrap();
    }
    probs
}

/// Relative L2 distance of `got`'s probabilities from `want`'s, over all classes.
fn relative_l2(got: &[f64], want: &[f64]) -> f64 {
    let diff: f64 = got.iter().zip(want).map(|(g, w)| (g - w).powi(2)).sum();
    (diff / want.iter().map(|w| w * w).sum::<f64>()).sqrt()
}

/// The distance of each reference image's probabilities under `precision` from f32's `want`,
/// checking that `/v1/model` names the precision.
fn distances_in(precision: &str, want: &[serde_json::Value]) -> Vec<f64> {
    let server = Server::start(&["--precision", precision]);
    let model = server.get("/v1/model").json();
    assert_eq!(model["device"], "cpu");
    assert_eq!(model["precision"], precision);
    reference_images()
        .iter()
        .zip(want)
        .map(|(path, want)| {
            let reply = server.post("/v1/classify?top=1000", "image/png", &read(path));
            assert_eq!(reply.status, 200, "{}", reply.text);
            let got = probabilities_by_class(&reply.json()["top"]);
            relative_l2(&got, &probabilities_by_class(&want["top"]))
        })
        .collect()
}

#[test]
fn serve_in_bf16_and_f16_answers_within_their_rounding_of_f32_and_says_so() {
    let want = classify_json(1000, &[]);
    let bf16 = distances_in("bf16", &want);
    let f16 = distances_in("f16", &want);
    eprintln!("relative L2 from f32 per image: bf16 {bf16:?}, f16 {f16:?}");
    for (image, (bf16, f16)) in bf16.iter().zip(&f16).enumerate() {
        // bf16 keeps 8 bits of mantissa (2^-9 = 0.2% per rounding) and f16 11 bits (2^-12),
        // and the roundings of 22 layers add up: bf16 lands about 1% from f32, f16 several
        // times closer. Equal values would mean the network did not compute in that format.
        assert!(*bf16 < 3e-2, "image {image}: bf16 {bf16:e} from f32");
        assert!(
            *f16 < bf16 / 4.0,
            "image {image}: f16 {f16:e} vs bf16 {bf16:e}"
        );
        assert!(*f16 > 1e-6, "image {image}: f16 gave f32's probabilities");
    }
}

/// `classify --precision bf16` runs the fast engine in bf16: each image's probabilities lie
/// within bf16's rounding of f32's (as the service's above), and differ from them; f16 is refused
/// by name.
#[test]
fn classify_in_bf16_stays_within_bf16_rounding_of_f32_and_f16_is_refused() {
    let f32 = classify_json(1000, &[]);
    let bf16 = classify_json(1000, &["--precision", "bf16"]);
    assert_eq!((f32.len(), bf16.len()), (4, 4));
    for (image, (want, got)) in f32.iter().zip(&bf16).enumerate() {
        let want = probabilities_by_class(&want["top"]);
        let l2 = relative_l2(&probabilities_by_class(&got["top"]), &want);
        eprintln!("image {image}: bf16 probabilities {l2:.2e} from f32's (relative L2)");
        assert!(l2 < 3e-2 && l2 > 1e-6, "image {image}: {l2:e}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args([
            "classify",
            "--weights",
            "torchvision",
            "--precision",
            "f16",
            "x.png",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("the fast CPU engine computes in f32 or bf16, not f16")
    );
}

/// (Built without the `wgpu` feature, as the test suite is.)
#[cfg(not(feature = "wgpu"))]
#[test]
fn serve_on_a_device_this_build_lacks_says_which_feature_to_build() {
    let out = Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args(["serve", "--weights", "torchvision", "--device", "wgpu"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--device") && stderr.contains("--features wgpu"),
        "{stderr}"
    );
}
