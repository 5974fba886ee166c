//! Fuzzing on stable Rust: a seeded mutation loop over a seed corpus per reader (bit flips,
//! truncations, overwritten and inserted bytes, extreme 16- and 32-bit fields, forged sizes and
//! counts, random bytes behind the signature). A case fails when the reader panics (also a panic
//! the reader catches itself and reports as "panicked"), runs past the watchdog, or asks for a
//! single allocation beyond the target's bound. Files under tests/fixtures/fuzz/<target>/ (cases
//! that once failed) run first.
//!
//! CI runs [`CI_CASES`] cases per target; `GOOGLENET_FUZZ_CASES=N` runs N (and
//! `GOOGLENET_FUZZ_SEED` another stream of cases) for a longer local run.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{RecvTimeoutError, channel};
use std::time::Duration;

use googlenet::data::image::{PixelBudget, decode_rgb_region_within, decode_rgb_within};
use image::{ImageFormat, Rgb, RgbImage};
use jpeg_encoder::{ColorType, Encoder, SamplingFactor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::alloc_probe;

/// Cases per target in CI.
const CI_CASES: usize = 30_000;

/// A case taking longer than this is a hang.
const WATCHDOG: Duration = Duration::from_secs(60);

fn cases() -> usize {
    std::env::var("GOOGLENET_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CI_CASES)
}

fn stream() -> u64 {
    std::env::var("GOOGLENET_FUZZ_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// How a reader met one input: whether it accepted it, or `Err` with the reason when that is a
/// failure of the reader.
type Verdict = Result<bool, String>;

/// A reader under test, fed one input.
type Reader = Box<dyn Fn(&[u8]) -> Verdict + Send>;

struct Target {
    name: &'static str,
    seeds: Vec<Vec<u8>>,
    /// Largest single allocation a case may ask for.
    max_alloc: usize,
    /// A target-specific forgery (sizes, counts, lengths).
    forge: fn(&mut Vec<u8>, &mut ChaCha8Rng),
    run: Reader,
}

/// One to four mutations of `seed`.
fn mutate(seed: &[u8], rng: &mut ChaCha8Rng, forge: fn(&mut Vec<u8>, &mut ChaCha8Rng)) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = bytes.len();
        match rng.random_range(0..8) {
            0 if len > 0 => {
                for _ in 0..rng.random_range(1..=8) {
                    let at = rng.random_range(0..len);
                    bytes[at] ^= 1 << rng.random_range(0..8);
                }
            }
            1 => bytes.truncate(rng.random_range(0..=len)),
            2 if len > 0 => {
                let at = rng.random_range(0..len);
                let end = (at + rng.random_range(1..=32)).min(len);
                rng.fill(&mut bytes[at..end]);
            }
            3 => {
                let at = rng.random_range(0..=len);
                let mut extra = vec![0u8; rng.random_range(1..=64)];
                rng.fill(&mut extra[..]);
                bytes.splice(at..at, extra);
            }
            4 if len >= 4 => {
                const EXTREMES: [u32; 7] = [0, 1, 0x7F, 0xFF, 0x7FFF, 0xFFFF, 0xFFFF_FFFF];
                let value = EXTREMES[rng.random_range(0..EXTREMES.len())];
                let at = rng.random_range(0..len - 3);
                if rng.random_bool(0.5) {
                    bytes[at..at + 2].copy_from_slice(&(value as u16).to_be_bytes());
                } else {
                    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
                }
            }
            5 => forge(&mut bytes, rng),
            6 => {
                // The signature kept, random bytes behind it.
                let keep = rng.random_range(2..=16).min(len);
                bytes.truncate(keep);
                let mut tail = vec![0u8; rng.random_range(0..=512)];
                rng.fill(&mut tail[..]);
                bytes.extend(tail);
            }
            _ if len > 8 => {
                // A chunk repeated (markers, chunks, elements seen twice).
                let at = rng.random_range(0..len);
                let end = (at + rng.random_range(1..=64)).min(len);
                let chunk = bytes[at..end].to_vec();
                let to = rng.random_range(0..=len);
                bytes.splice(to..to, chunk);
            }
            _ => {}
        }
    }
    bytes
}

/// Runs `target` over its regression files and `count` mutated cases on a thread of its own,
/// failing on a panic, a hang, or an allocation beyond the bound.
fn fuzz(target: Target, count: usize) {
    let name = target.name;
    let regression_dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/fuzz/{name}"));
    let mut regressions: Vec<PathBuf> = std::fs::read_dir(&regression_dir)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    regressions.sort();
    let (progress, watch) = channel::<Result<bool, String>>();
    let current = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let shown = current.clone();
    let worker = std::thread::spawn(move || {
        let mut rng = ChaCha8Rng::seed_from_u64(0x6675_7a7a ^ stream());
        let inputs = regressions
            .iter()
            .map(|p| (p.display().to_string(), std::fs::read(p).unwrap()))
            .chain((0..count).map(|case| {
                let seed = &target.seeds[rng.random_range(0..target.seeds.len())];
                (format!("case {case}"), mutate(seed, &mut rng, target.forge))
            }));
        for (label, bytes) in inputs {
            *current.lock().unwrap() = bytes.clone();
            alloc_probe::reset();
            let verdict = catch_unwind(AssertUnwindSafe(|| (target.run)(&bytes)))
                .unwrap_or_else(|_| Err("panicked".into()));
            let largest = alloc_probe::largest();
            let failure = match verdict {
                Err(ref reason) => Some(reason.clone()),
                Ok(_) if largest > target.max_alloc => Some(format!(
                    "asked for {largest} bytes at once (bound {})",
                    target.max_alloc
                )),
                Ok(_) => None,
            };
            if let Some(reason) = failure {
                let saved = save_case(name, &label, &bytes);
                let _ = progress.send(Err(format!("{name} {label}: {reason} ({saved})")));
                return;
            }
            if progress.send(Ok(verdict == Ok(true))).is_err() {
                return;
            }
        }
    });
    let (mut done, mut accepted) = (0, 0);
    loop {
        match watch.recv_timeout(WATCHDOG) {
            Ok(Ok(ok)) => {
                done += 1;
                accepted += usize::from(ok);
            }
            Ok(Err(failure)) => panic!("{failure}"),
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {
                let bytes = shown.lock().unwrap().clone();
                let saved = save_case(name, &format!("hang-after-{done}"), &bytes);
                panic!("{name}: a case ran past {WATCHDOG:?} ({saved})");
            }
        }
    }
    worker.join().unwrap();
    println!("{name}: {done} cases ({accepted} read without error), no failure");
}

/// Keeps a failing input where it can be copied into tests/fixtures/fuzz/.
fn save_case(name: &str, label: &str, bytes: &[u8]) -> String {
    let dir = std::env::temp_dir().join("googlenet-fuzz-failures");
    let _ = std::fs::create_dir_all(&dir);
    let file = dir.join(format!("{name}-{}.bin", label.replace(['/', ' '], "_")));
    match std::fs::write(&file, bytes) {
        Ok(()) => format!("input saved to {}", file.display()),
        Err(e) => format!("input not saved: {e}"),
    }
}

/// A reader's error is fine unless it reports a panic it caught.
fn no_panic<T>(result: Result<T, String>) -> Verdict {
    match result {
        Ok(_) => Ok(true),
        Err(reason) if reason.contains("panicked") => Err(reason),
        Err(_) => Ok(false),
    }
}

/// Images of every JPEG kind the decoders meet: each subsampling, greyscale, CMYK, progressive,
/// restart intervals, odd sizes.
fn jpeg_seeds() -> Vec<Vec<u8>> {
    let (w, h) = (37u16, 29u16);
    let rgb: Vec<u8> = (0..w as usize * h as usize)
        .flat_map(|i| [(i * 7) as u8, (i * 13 / 5) as u8, (255 - i % 256) as u8])
        .collect();
    let mut seeds = Vec::new();
    let encode = |sampling: Option<SamplingFactor>,
                  progressive: bool,
                  restart: Option<u16>,
                  color: ColorType,
                  data: &[u8]| {
        let mut out = Vec::new();
        let mut encoder = Encoder::new(&mut out, 80);
        if let Some(s) = sampling {
            encoder.set_sampling_factor(s);
        }
        encoder.set_progressive(progressive);
        if let Some(r) = restart {
            encoder.set_restart_interval(r);
        }
        encoder.encode(data, w, h, color).unwrap();
        out
    };
    for sampling in [
        SamplingFactor::F_1_1,
        SamplingFactor::F_2_1,
        SamplingFactor::F_1_2,
        SamplingFactor::F_2_2,
        SamplingFactor::F_4_1,
        SamplingFactor::F_1_4,
        SamplingFactor::F_4_2,
        SamplingFactor::F_2_4,
    ] {
        for progressive in [false, true] {
            seeds.push(encode(
                Some(sampling),
                progressive,
                None,
                ColorType::Rgb,
                &rgb,
            ));
        }
    }
    seeds.push(encode(None, false, Some(2), ColorType::Rgb, &rgb));
    let luma: Vec<u8> = rgb.iter().step_by(3).copied().collect();
    seeds.push(encode(None, false, None, ColorType::Luma, &luma));
    seeds.push(encode(None, true, None, ColorType::Luma, &luma));
    let cmyk: Vec<u8> = rgb.chunks(3).flat_map(|p| [p[0], p[1], p[2], 40]).collect();
    seeds.push(encode(
        Some(SamplingFactor::F_2_2),
        false,
        None,
        ColorType::Cmyk,
        &cmyk,
    ));
    seeds.push(encode(None, false, None, ColorType::Ycck, &cmyk));
    seeds
}

/// Forged frame header: width, height and component count of the first SOF, and a sampling
/// factor.
fn forge_jpeg(bytes: &mut [u8], rng: &mut ChaCha8Rng) {
    let Some(sof) = bytes
        .windows(2)
        .position(|w| w[0] == 0xFF && matches!(w[1], 0xC0..=0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB))
    else {
        return;
    };
    if sof + 12 > bytes.len() {
        return;
    }
    const SIDES: [u16; 6] = [0, 1, 8, 1000, 40000, 65535];
    match rng.random_range(0..4) {
        0 => bytes[sof + 5..sof + 7]
            .copy_from_slice(&SIDES[rng.random_range(0..SIDES.len())].to_be_bytes()),
        1 => bytes[sof + 7..sof + 9]
            .copy_from_slice(&SIDES[rng.random_range(0..SIDES.len())].to_be_bytes()),
        2 => bytes[sof + 9] = [0, 1, 2, 3, 4, 5, 255][rng.random_range(0..7)],
        _ => bytes[sof + 11] = rng.random(),
    }
}

/// The pixel budget of the decoder targets: 1 million pixels.
fn budget() -> PixelBudget {
    PixelBudget::with_limit(1 << 20)
}

/// Decoders may take 16 bytes per pixel of the budget (coefficients, planes, output) at once.
const IMAGE_ALLOC: usize = 16 << 20;

#[test]
fn fuzz_jpeg_whole_image_decoder() {
    fuzz(
        Target {
            name: "jpeg_whole",
            seeds: jpeg_seeds(),
            max_alloc: IMAGE_ALLOC,
            forge: |bytes, rng| forge_jpeg(bytes, rng),
            run: Box::new(|bytes| no_panic(decode_rgb_within(bytes, budget()))),
        },
        cases(),
    );
}

#[test]
fn fuzz_jpeg_region_decoder() {
    fuzz(
        Target {
            name: "jpeg_region",
            seeds: jpeg_seeds(),
            max_alloc: IMAGE_ALLOC,
            forge: |bytes, rng| forge_jpeg(bytes, rng),
            run: Box::new(|bytes| {
                let pick = bytes.len() as u32;
                let decoded = decode_rgb_region_within(bytes, budget(), |width, height| {
                    let x = pick % width;
                    let y = (pick / 7) % height;
                    [
                        x,
                        y,
                        (width - x).min(1 + pick % 23),
                        (height - y).min(1 + pick % 19),
                    ]
                });
                no_panic(decoded)
            }),
        },
        cases(),
    );
}

/// PNG, BMP, WebP, GIF and TIFF signatures with mutated bodies, through the whole-image decoder.
#[test]
fn fuzz_other_image_formats() {
    let image = RgbImage::from_fn(21, 13, |x, y| Rgb([(x * 12) as u8, (y * 19) as u8, 77]));
    let seeds = [
        ImageFormat::Png,
        ImageFormat::Bmp,
        ImageFormat::WebP,
        ImageFormat::Gif,
        ImageFormat::Tiff,
    ]
    .into_iter()
    .filter_map(|format| {
        let mut out = std::io::Cursor::new(Vec::new());
        image.write_to(&mut out, format).ok()?;
        Some(out.into_inner())
    })
    .collect::<Vec<_>>();
    assert!(seeds.len() >= 3, "PNG, BMP and GIF at least encode");
    fuzz(
        Target {
            name: "image_formats",
            seeds,
            max_alloc: IMAGE_ALLOC,
            forge: |bytes, rng| {
                // PNG IHDR or BMP header sizes.
                if bytes.len() > 26 {
                    let at = if bytes.starts_with(b"\x89PNG") {
                        16
                    } else {
                        18
                    };
                    let value: u32 = [0, 1, 65500, 0x7FFF_FFFF, u32::MAX][rng.random_range(0..5)];
                    bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
                }
            },
            run: Box::new(|bytes| no_panic(decode_rgb_within(bytes, budget()))),
        },
        cases(),
    );
}

/// Readers that take a path: each case is written to one temporary file.
fn through_file(
    name: &'static str,
    file_name: &str,
    read: impl Fn(&Path) -> Verdict + Send + 'static,
) -> Reader {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file_name);
    Box::new(move |bytes| {
        let _keep = &dir;
        std::fs::write(&path, bytes).map_err(|e| format!("{name}: {e}"))?;
        read(&path)
    })
}

/// A small state_dict: one f32, one f16-free i64 tensor, one nested name.
fn small_tensors() -> googlenet::weights::tensor_map::TensorMap {
    use googlenet::weights::tensor_map::{HostData, HostTensor, TensorMap};
    let mut map = TensorMap::new();
    map.insert(
        "conv1.weight".into(),
        HostTensor {
            shape: vec![2, 3],
            data: HostData::F32(vec![0.5, -1.0, 2.0, 3.5, 0.0, 1.0]),
        },
    );
    map.insert(
        "bn.num_batches_tracked".into(),
        HostTensor {
            shape: vec![],
            data: HostData::I64(vec![7]),
        },
    );
    map
}

/// Weight readers allocate what the tensors need: the seeds hold a few bytes, a case may ask
/// for 64 MiB (a forged length is checked against the file first).
const WEIGHTS_ALLOC: usize = 64 << 20;

#[test]
fn fuzz_pth_reader() {
    use googlenet::weights::pth;
    let dir = tempfile::tempdir().unwrap();
    let zip = dir.path().join("seed.pth");
    pth::write(&zip, &small_tensors()).unwrap();
    let mut seeds = vec![std::fs::read(&zip).unwrap()];
    // The zip's pickle alone (data.pkl), as the legacy container's first part.
    seeds.push(legacy_pickle_seed(&seeds[0]));
    fuzz(
        Target {
            name: "pth",
            seeds,
            max_alloc: WEIGHTS_ALLOC,
            forge: |bytes, rng| {
                // A zip's sizes and offsets (central directory and local headers).
                if let Some(at) = bytes.windows(4).rposition(|w| w == b"PK\x01\x02") {
                    let field = at + [20, 24, 42][rng.random_range(0..3)];
                    if field + 4 <= bytes.len() {
                        bytes[field..field + 4].copy_from_slice(&u32::MAX.to_le_bytes());
                    }
                }
            },
            run: through_file("pth", "case.pth", |path| {
                no_panic(pth::read(path).map_err(|e| e.to_string()))
            }),
        },
        cases(),
    );
}

/// The pickle of a zip state_dict, uncompressed, behind the legacy container's magic number.
fn legacy_pickle_seed(zip_bytes: &[u8]) -> Vec<u8> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip_bytes)).unwrap();
    let name = (0..archive.len())
        .map(|i| archive.by_index(i).unwrap().name().to_string())
        .find(|n| n.ends_with("data.pkl"))
        .unwrap();
    let mut pickle = Vec::new();
    std::io::Read::read_to_end(&mut archive.by_name(&name).unwrap(), &mut pickle).unwrap();
    // torch's legacy format: pickled magic number 0x1950a86a20f9469cfc6c, protocol 1001, ...
    let mut legacy = vec![0x80, 0x02, 0x8a, 0x0a];
    legacy.extend(0x1950_a86a_20f9_469c_fc6c_u128.to_le_bytes()[..10].iter());
    legacy.push(b'.');
    legacy.extend(pickle);
    legacy
}

#[test]
fn fuzz_safetensors_reader() {
    use googlenet::weights::safetensors_file;
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.safetensors");
    safetensors_file::write(
        &seed,
        &small_tensors(),
        &[("variant", "torchvision".into())],
    )
    .unwrap();
    fuzz(
        Target {
            name: "safetensors",
            seeds: vec![std::fs::read(&seed).unwrap()],
            max_alloc: WEIGHTS_ALLOC,
            forge: |bytes, rng| {
                // The 8-byte header length.
                if bytes.len() >= 8 {
                    let len: u64 =
                        [0, 1, 7, 1 << 20, 99_999_999, 1 << 40, u64::MAX][rng.random_range(0..7)];
                    bytes[..8].copy_from_slice(&len.to_le_bytes());
                }
            },
            run: through_file("safetensors", "case.safetensors", |path| {
                let read = safetensors_file::read(path);
                let file = googlenet::weights::WeightsFile::open(path);
                no_panic(read.and(file).map_err(|e| e.to_string()))
            }),
        },
        cases(),
    );
}

#[test]
fn fuzz_meta_mat_reader() {
    use googlenet::data::devkit::read_meta_mat;
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/devkit");
    let seeds = ["meta.mat", "meta_compressed.mat"]
        .iter()
        .map(|f| std::fs::read(fixtures.join(f)).unwrap())
        .collect();
    fuzz(
        Target {
            name: "meta_mat",
            seeds,
            max_alloc: WEIGHTS_ALLOC,
            forge: |bytes, rng| {
                // An element's size field, just past the 128-byte header.
                if bytes.len() >= 136 {
                    let size: u32 = [0, 7, 0xFFFF, 0x7FFF_FFFF, u32::MAX][rng.random_range(0..5)];
                    bytes[132..136].copy_from_slice(&size.to_le_bytes());
                }
            },
            run: through_file("meta_mat", "meta.mat", |path| {
                no_panic(read_meta_mat(path).map_err(|e| e.to_string()))
            }),
        },
        cases(),
    );
}

#[test]
fn fuzz_label_readers() {
    use googlenet::data::{ClassTable, FlatLabels};
    let dir = tempfile::tempdir().unwrap();
    let val = dir.path().join("val");
    std::fs::create_dir_all(&val).unwrap();
    for i in 1..=3 {
        std::fs::write(val.join(format!("ILSVRC2012_val_0000000{i}.JPEG")), b"").unwrap();
    }
    let meta = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/devkit/meta.mat");
    let seeds = vec![
        b"ImageId,PredictionString\nILSVRC2012_val_00000001,n01440764 1 2 3 4\n\
          ILSVRC2012_val_00000002,n01443537 5 6 7 8 n01440764 1 1 2 2\n"
            .to_vec(),
        b"3\n1\n2\n".to_vec(),
    ];
    let truth = dir.path().join("labels.txt");
    let read = move |bytes: &[u8]| -> Verdict {
        std::fs::write(&truth, bytes).map_err(|e| e.to_string())?;
        let opened = FlatLabels::detect(&truth, Some(&meta))
            .and_then(|labels| labels.open(&val, ClassTable::imagenet()));
        no_panic(opened.map_err(|e| e.to_string()))
    };
    fuzz(
        Target {
            name: "labels",
            seeds,
            max_alloc: WEIGHTS_ALLOC,
            forge: |bytes, rng| {
                // Huge, negative and non-numeric class ids.
                let id: &[u8] = [
                    &b"0"[..],
                    b"-1",
                    b"18446744073709551616",
                    b"1e9",
                    b"\xff\xfe",
                ][rng.random_range(0..5)];
                let at = rng.random_range(0..=bytes.len());
                bytes.splice(at..at, id.iter().copied());
            },
            run: Box::new(read),
        },
        cases(),
    );
}
