//! Weights by URL and by name, torch.hub's way: downloads from a server on 127.0.0.1 into a
//! temporary file, checked against the sha256 prefix in the file name and renamed into place;
//! every failure leaves nothing behind and names the URL and where the file can be put by hand.

use crate::common::{TORCHVISION_PTH, fresh_dir, shared};
use crate::http_server::{Reply, Server, refused_url};

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use googlenet::weights::WeightsFile;
use googlenet::weights::download::{DownloadError, cached_or_download, file_name, hash_prefix};
use sha2::{Digest, Sha256};

fn reference_bytes() -> Vec<u8> {
    std::fs::read(shared(TORCHVISION_PTH)).unwrap()
}

/// The name torch.hub would give `bytes`: its sha256 prefix after the last '-'.
fn hashed_name(bytes: &[u8]) -> String {
    let hex = format!("{:x}", Sha256::digest(bytes));
    format!("googlenet-{}.pth", &hex[..8])
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn hash_prefix_and_file_name_follow_torch_hub() {
    assert_eq!(hash_prefix("googlenet-1378be20.pth"), Some("1378be20"));
    assert_eq!(
        hash_prefix("inception_v3_google-0cc3c7bd.pth"),
        Some("0cc3c7bd")
    );
    assert_eq!(hash_prefix("my-model-abc123.safetensors"), Some("abc123"));
    assert_eq!(hash_prefix("model.pth"), None);
    assert_eq!(hash_prefix("model-final.pth"), None, "not hex");
    assert_eq!(
        hash_prefix("model-ABCD.pth"),
        None,
        "torch's pattern is lowercase"
    );
    assert_eq!(
        file_name("https://example.org/m/googlenet-1378be20.pth?download=1").unwrap(),
        "googlenet-1378be20.pth"
    );
    assert!(file_name("https://example.org/").is_err());
    assert!(file_name("https://example.org").is_err());
}

#[test]
fn download_checks_the_hash_and_renames_into_place() {
    let bytes = reference_bytes();
    let name = hashed_name(&bytes);
    let server = Server::start(bytes.clone(), Reply::Whole);
    let cache = fresh_dir("download-ok");
    let path = cached_or_download(&server.url(&name), &cache, false).unwrap();
    assert_eq!(path, cache.join(&name));
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "the file as served");
    assert_eq!(
        entries(&cache),
        vec![name.clone()],
        "no temporary file left"
    );
    let file = WeightsFile::open(&path).unwrap();
    assert_eq!(file.num_classes().unwrap(), 1000);
    // A second use reads the cache and asks the server nothing.
    let again = cached_or_download(&server.url(&name), &cache, false).unwrap();
    assert_eq!((again, server.requests()), (path, 1));
}

#[test]
fn truncated_download_is_an_error_and_leaves_nothing() {
    let bytes = reference_bytes();
    let name = hashed_name(&bytes);
    let server = Server::start(bytes, Reply::CutInHalf);
    let cache = fresh_dir("download-truncated");
    let url = server.url(&name);
    let err = cached_or_download(&url, &cache, false).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DownloadError::Network { .. }), "{text}");
    assert!(
        text.contains(&url) && text.contains(&cache.join(&name).display().to_string()),
        "{text}"
    );
    assert_eq!(
        entries(&cache),
        Vec::<String>::new(),
        "nothing half-written"
    );
}

#[test]
fn wrong_hash_deletes_the_download_and_says_so() {
    let bytes = reference_bytes();
    let actual = format!("{:x}", Sha256::digest(&bytes));
    let claimed = if actual.starts_with("00000000") {
        "11111111"
    } else {
        "00000000"
    };
    let name = format!("googlenet-{claimed}.pth");
    let server = Server::start(bytes, Reply::Whole);
    let cache = fresh_dir("download-hash");
    let err = cached_or_download(&server.url(&name), &cache, false).unwrap_err();
    let text = err.to_string();
    match &err {
        DownloadError::Hash {
            expected,
            actual: got,
            ..
        } => assert_eq!((expected.as_str(), got), (claimed, &actual)),
        other => panic!("expected a hash error, got {other}"),
    }
    assert!(text.contains("deleted"), "{text}");
    assert_eq!(
        entries(&cache),
        Vec::<String>::new(),
        "the download was removed"
    );
}

#[test]
fn refused_connection_fails_at_once_naming_the_url_and_the_cache_path() {
    let cache = fresh_dir("download-refused");
    let url = refused_url("googlenet-1378be20.pth");
    let start = Instant::now();
    let err = cached_or_download(&url, &cache, false).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(30));
    let text = err.to_string();
    assert!(matches!(err, DownloadError::Network { .. }), "{text}");
    let by_hand = cache.join("googlenet-1378be20.pth");
    assert!(
        text.contains(&url) && text.contains(&by_hand.display().to_string()),
        "{text}"
    );
    assert!(!cache.exists(), "nothing created");
}

#[test]
fn a_cached_file_is_used_without_network() {
    let cache = fresh_dir("download-cached");
    std::fs::create_dir_all(&cache).unwrap();
    let name = "googlenet-1378be20.pth";
    std::fs::copy(shared(TORCHVISION_PTH), cache.join(name)).unwrap();
    let path = cached_or_download(&refused_url(name), &cache, false).unwrap();
    assert_eq!(path, cache.join(name));
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_googlenet"))
}

/// `googlenet` with torch's cache in `torch_home` and named files fetched from `mirror`.
fn bin_with_cache(torch_home: &Path, mirror: &str) -> Command {
    let mut cmd = bin();
    cmd.env("TORCH_HOME", torch_home)
        .env("GOOGLENET_WEIGHTS_MIRROR", mirror)
        .env_remove("XDG_CACHE_HOME");
    cmd
}

/// `cmd classify --json ARGS... IMAGE`, parsed.
fn classify_json(mut cmd: Command, args: &[&std::ffi::OsStr]) -> serde_json::Value {
    let out = cmd
        .args(["classify", "--json", "--top", "5"])
        .args(args)
        .arg(shared("reference/inputs/2_hymenoptera_val_ant.png"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_name_torchvision_reads_torchs_cache_with_its_variant_and_transform_input() {
    let home = fresh_dir("named-cached");
    let checkpoints = home.join("hub/checkpoints");
    std::fs::create_dir_all(&checkpoints).unwrap();
    // A stand-in under the official name: a cached file is used as it is, as torch.hub does.
    std::fs::copy(
        shared(TORCHVISION_PTH),
        checkpoints.join("googlenet-1378be20.pth"),
    )
    .unwrap();
    let mirror = refused_url("");
    for name in ["torchvision", "IMAGENET1K_V1", "default"] {
        let named = classify_json(
            bin_with_cache(&home, &mirror),
            &["--weights".as_ref(), name.as_ref()],
        );
        let reference = shared(TORCHVISION_PTH);
        let explicit = classify_json(
            bin(),
            &[
                "--variant".as_ref(),
                "torchvision".as_ref(),
                "--transform-input".as_ref(),
                "--weights".as_ref(),
                reference.as_os_str(),
            ],
        );
        assert_eq!(named[0]["top"], explicit[0]["top"], "{name}");
    }
    let list = bin_with_cache(&home, &mirror)
        .args(["weights", "list", "--json"])
        .output()
        .unwrap();
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(list[0]["name"], "torchvision");
    assert_eq!(list[0]["present"], true);
    let cached_at = checkpoints.join("googlenet-1378be20.pth");
    assert_eq!(list[0]["cached_at"], cached_at.display().to_string());
}

#[test]
fn the_name_torchvision_without_cache_or_network_fails_quickly_and_says_where_to_put_the_file() {
    let home = fresh_dir("named-offline");
    let mirror = refused_url("");
    let start = Instant::now();
    let out = bin_with_cache(&home, &mirror)
        .args(["classify", "--weights", "torchvision"])
        .arg(shared("reference/inputs/2_hymenoptera_val_ant.png"))
        .output()
        .unwrap();
    assert!(start.elapsed() < Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let by_hand = home.join("hub/checkpoints/googlenet-1378be20.pth");
    assert!(
        stderr.contains("googlenet-1378be20.pth") && stderr.contains("127.0.0.1"),
        "{stderr}"
    );
    assert!(stderr.contains(&by_hand.display().to_string()), "{stderr}");
    assert!(!home.join("hub").exists(), "nothing written");
}

#[test]
fn a_named_download_is_checked_against_the_official_hash() {
    // The mirror serves another file under the official name: its sha256 does not start with
    // 1378be20, so it must be refused and deleted.
    let server = Server::start(reference_bytes(), Reply::Whole);
    let home = fresh_dir("named-wrong-hash");
    let mirror = format!("http://127.0.0.1:{}/models", server.port);
    let out = bin_with_cache(&home, &mirror)
        .args(["weights", "download", "torchvision"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("does not start with 1378be20") && stderr.contains("deleted"),
        "{stderr}"
    );
    assert_eq!(entries(&home.join("hub/checkpoints")), Vec::<String>::new());
    assert_eq!(server.requests(), 1);
}

#[test]
fn torchs_cache_folder_follows_torch_home_then_xdg_cache_home_then_home() {
    let cached_at = |envs: &[(&str, &str)]| -> String {
        let mut cmd = bin();
        cmd.env_remove("TORCH_HOME").env_remove("XDG_CACHE_HOME");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let out = cmd.args(["weights", "list", "--json"]).output().unwrap();
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        list[0]["cached_at"].as_str().unwrap().to_string()
    };
    let file = "hub/checkpoints/googlenet-1378be20.pth";
    assert_eq!(
        cached_at(&[("TORCH_HOME", "/t"), ("XDG_CACHE_HOME", "/x")]),
        format!("/t/{file}")
    );
    assert_eq!(
        cached_at(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")]),
        format!("/x/torch/{file}")
    );
    assert_eq!(
        cached_at(&[("HOME", "/h")]),
        format!("/h/.cache/torch/{file}")
    );
    assert_eq!(
        cached_at(&[("TORCH_HOME", "~/th"), ("HOME", "/h")]),
        format!("/h/th/{file}")
    );
}
