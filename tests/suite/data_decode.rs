//! Decoding by content: greyscale and CMYK JPEGs, a PNG named .JPEG, and the files a loader must
//! refuse (truncated JPEG, GIF named .jpg, empty file, text), each with a reason naming the file.

use std::path::{Path, PathBuf};

use googlenet::data::DataError;
use googlenet::data::image::load_rgb;
use image::{GrayImage, ImageFormat, Luma, Rgb, RgbImage};

fn gradient(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x * 4) as u8, (y * 4) as u8, ((x + y) * 2) as u8])
    })
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn encode(image: &image::DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image.write_to(&mut bytes, format).unwrap();
    bytes.into_inner()
}

fn reason(result: Result<RgbImage, DataError>, path: &Path) -> String {
    match result {
        Ok(image) => panic!(
            "{} decoded ({:?}) but must be refused",
            path.display(),
            image.dimensions()
        ),
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains(&path.display().to_string()),
                "error must name the file: {message}"
            );
            message
        }
    }
}

#[test]
fn greyscale_jpeg_and_png_become_rgb_with_equal_channels() {
    let dir = tempfile::tempdir().unwrap();
    let grey = GrayImage::from_fn(40, 30, |x, y| Luma([(x * 5 + y) as u8]));
    let dynamic = image::DynamicImage::ImageLuma8(grey.clone());
    for (name, format) in [
        ("grey.JPEG", ImageFormat::Jpeg),
        ("grey.png", ImageFormat::Png),
    ] {
        let path = write(dir.path(), name, &encode(&dynamic, format));
        let rgb = load_rgb(&path).unwrap();
        assert_eq!(rgb.dimensions(), (40, 30));
        for (p, g) in rgb.pixels().zip(grey.pixels()) {
            assert!(
                p.0[0] == p.0[1] && p.0[1] == p.0[2],
                "{name}: {p:?} not grey"
            );
            assert!(p.0[0].abs_diff(g.0[0]) <= 3, "{name}: {p:?} vs {g:?}");
        }
    }
}

#[test]
fn png_named_jpeg_is_decoded_by_content_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let image = gradient(50, 40);
    let bytes = encode(
        &image::DynamicImage::ImageRgb8(image.clone()),
        ImageFormat::Png,
    );
    let path = write(dir.path(), "n02105855_2933.JPEG", &bytes);
    assert_eq!(load_rgb(&path).unwrap(), image);
}

#[test]
fn cmyk_jpeg_becomes_rgb() {
    let dir = tempfile::tempdir().unwrap();
    // Pure red in CMYK: no cyan, full magenta and yellow, no black. Then a black square.
    let (width, height) = (32u16, 32u16);
    let mut cmyk = Vec::new();
    for y in 0..height {
        for _ in 0..width {
            cmyk.extend_from_slice(if y < 16 {
                &[0, 255, 255, 0]
            } else {
                &[0, 0, 0, 255]
            });
        }
    }
    let mut bytes = Vec::new();
    jpeg_encoder::Encoder::new(&mut bytes, 95)
        .encode(&cmyk, width, height, jpeg_encoder::ColorType::Cmyk)
        .unwrap();
    let path = write(dir.path(), "cmyk.JPEG", &bytes);
    let rgb = load_rgb(&path).unwrap();
    assert_eq!(rgb.dimensions(), (32, 32));
    let red = rgb.get_pixel(8, 4).0;
    let black = rgb.get_pixel(8, 28).0;
    assert!(
        red[0] > 230 && red[1] < 25 && red[2] < 25,
        "red came out {red:?}"
    );
    assert!(black.iter().all(|&v| v < 25), "black came out {black:?}");
}

#[test]
fn truncated_jpeg_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = encode(
        &image::DynamicImage::ImageRgb8(gradient(64, 64)),
        ImageFormat::Jpeg,
    );
    let whole = write(dir.path(), "whole.jpg", &bytes);
    assert!(load_rgb(&whole).is_ok());
    let cut = write(dir.path(), "cut.jpg", &bytes[..bytes.len() * 2 / 3]);
    let message = reason(load_rgb(&cut), &cut);
    assert!(message.contains("truncated"), "{message}");
}

#[test]
fn gif_named_jpg_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = encode(
        &image::DynamicImage::ImageRgb8(gradient(16, 16)),
        ImageFormat::Gif,
    );
    let path = write(dir.path(), "placeholder.jpg", &bytes);
    let message = reason(load_rgb(&path), &path);
    assert!(message.contains("GIF"), "{message}");
}

#[test]
fn empty_missing_and_text_files_are_refused_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.jpg", b"");
    assert!(reason(load_rgb(&empty), &empty).contains("empty file"));
    let text = write(dir.path(), "notes.jpg", b"hello, this is not an image");
    assert!(reason(load_rgb(&text), &text).contains("not an image"));
    let missing = dir.path().join("missing.jpg");
    reason(load_rgb(&missing), &missing);
}
