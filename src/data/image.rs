//! Decoding any image file to RGB, by its content rather than its extension (ImageNet has a PNG
//! named `.JPEG`, and CMYK and greyscale JPEGs; `image` decodes JPEG with zune-jpeg).

use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, ImageReader, RgbImage};

pub use super::error::DataError;

/// Formats a photo dataset may hold. GIF is refused: in ImageNet-style folders a GIF is a
/// placeholder ("image not found"), not a photo of the class.
const PHOTO_FORMATS: [ImageFormat; 4] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::Bmp,
    ImageFormat::WebP,
];

/// Reads `path` and decodes it to 8-bit RGB (greyscale, CMYK, palette and alpha images are
/// converted; alpha is dropped). Never panics: a decoder panic becomes an error.
pub fn load_rgb(path: &Path) -> Result<RgbImage, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::image(path, e.to_string()))?;
    decode_rgb(&bytes).map_err(|reason| DataError::image(path, reason))
}

/// The format of an encoded image, from its first bytes.
pub fn sniff_format(bytes: &[u8]) -> Option<ImageFormat> {
    image::guess_format(bytes).ok()
}

/// Decodes encoded image bytes to RGB; the error is the reason, for the caller to attach a path to.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, String> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    let format = sniff_format(bytes).ok_or("not an image (unknown file signature)")?;
    if !PHOTO_FORMATS.contains(&format) {
        return Err(format!(
            "{} content is not accepted (only JPEG, PNG, BMP, WebP photos)",
            format_name(format)
        ));
    }
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err("truncated JPEG (no end-of-image marker after the last scan)".into());
    }
    let decoded = std::panic::catch_unwind(|| {
        ImageReader::with_format(Cursor::new(bytes), format)
            .decode()
            .map(|image| image.into_rgb8())
    });
    match decoded {
        Ok(Ok(image)) if image.width() > 0 && image.height() > 0 => Ok(image),
        Ok(Ok(_)) => Err("image has no pixels".into()),
        Ok(Err(e)) => Err(format!("cannot decode {}: {e}", format_name(format))),
        Err(_) => Err(format!("the {} decoder panicked", format_name(format))),
    }
}

/// A short name of a format ("JPEG", "PNG", ...).
pub fn format_name(format: ImageFormat) -> &'static str {
    format
        .extensions_str()
        .first()
        .map_or("unknown", |ext| match *ext {
            "jpg" => "JPEG",
            "png" => "PNG",
            "gif" => "GIF",
            "bmp" => "BMP",
            "webp" => "WebP",
            "tiff" | "tif" => "TIFF",
            other => other,
        })
}

/// Whether a JPEG stream ends: an end-of-image marker (FF D9) must follow the last
/// start-of-scan marker (FF DA). Neither can occur inside entropy-coded data (an FF there is
/// followed by 00 or a restart marker), so an EOI found before the last scan (an EXIF
/// thumbnail's) does not count. zune-jpeg fills a cut-off file with grey instead of failing.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    // The usual case without reading the whole file: it ends with EOI, which then follows
    // every scan (one is near the start).
    if bytes.ends_with(&[0xFF, 0xD9]) {
        return bytes.windows(2).any(|w| w == [0xFF, 0xDA]);
    }
    let last_scan = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    match last_scan {
        Some(start) => bytes[start..].windows(2).any(|w| w == [0xFF, 0xD9]),
        None => false,
    }
}
