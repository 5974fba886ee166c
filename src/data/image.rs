//! Decoding any image file to RGB, by its content rather than its extension (ImageNet has a PNG
//! named `.JPEG`, and CMYK and greyscale JPEGs). JPEG is decoded with zune-jpeg directly (the
//! decoder `image` uses, straight to RGB without `image`'s copy of the file), the other formats
//! through `image`. [`decode_rgb_region`] decodes a JPEG only as far as a crop needs
//! (vendor/zune-jpeg adds region decoding to zune-jpeg).

use std::cell::RefCell;
use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, ImageReader, RgbImage};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

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
    if format == ImageFormat::Jpeg {
        let mut pixels = Vec::new();
        if let Some((width, height, _)) =
            decode_jpeg(bytes, |width, height| [0, 0, width, height], &mut pixels)?
        {
            return Ok(RgbImage::from_raw(width, height, pixels)
                .expect("the decoder wrote width * height RGB pixels"));
        }
    }
    decode_with_image(bytes, format)
}

/// Decoding through the `image` crate (every accepted format; JPEG only where zune-jpeg's
/// colour spaces are not the usual ones).
fn decode_with_image(bytes: &[u8], format: ImageFormat) -> Result<RgbImage, String> {
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

/// Decodes a complete JPEG (the caller has checked) to RGB into `pixels` (resized to
/// width * height * 3; its old contents may remain outside the region), decoding only what the
/// rectangle `[left, top, width, height]` that `region(width, height)` returns needs: inside it
/// the pixels equal a full decode's. Returns the size and the rectangle, or `None` for a colour
/// space other than YCbCr, greyscale, RGB, CMYK or YCCK (left to `image`, which decodes
/// those whole). `region` is called once, before any pixel is decoded.
fn decode_jpeg(
    bytes: &[u8],
    region: impl FnOnce(u32, u32) -> [u32; 4],
    pixels: &mut Vec<u8>,
) -> Result<Option<(u32, u32, [u32; 4])>, String> {
    let fail = |e: zune_jpeg::errors::DecodeErrors| format!("cannot decode JPEG: {e}");
    let options = DecoderOptions::default()
        .set_strict_mode(false)
        .set_max_width(usize::MAX)
        .set_max_height(usize::MAX);
    let mut decoder = JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    let headers = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decoder.decode_headers().map_err(fail)?;
        let (width, height) = decoder.dimensions().ok_or("no JPEG frame header")?;
        Ok::<_, String>((width, height, decoder.input_colorspace()))
    }))
    .map_err(|_| "the JPEG decoder panicked".to_string())??;
    let (width, height, colorspace) = headers;
    if !matches!(
        colorspace,
        Some(
            ColorSpace::YCbCr
                | ColorSpace::Luma
                | ColorSpace::RGB
                | ColorSpace::CMYK
                | ColorSpace::YCCK
        )
    ) {
        return Ok(None);
    }
    if width == 0 || height == 0 {
        return Err("image has no pixels".into());
    }
    let (width, height) = (width as u32, height as u32);
    let [x, y, w, h] = region(width, height);
    decoder.set_options(decoder.options().jpeg_set_out_colorspace(ColorSpace::RGB));
    if [x, y, w, h] != [0, 0, width, height] {
        decoder.set_region(x as usize, y as usize, w as usize, h as usize);
    }
    let len = width as usize * height as usize * 3;
    pixels.resize(len, 0);
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decoder.decode_into(&mut pixels[..len])
    }));
    match decoded {
        Ok(Ok(())) => Ok(Some((width, height, [x, y, w, h]))),
        Ok(Err(e)) => Err(fail(e)),
        Err(_) => Err("the JPEG decoder panicked".into()),
    }
}

thread_local! {
    /// Decoding buffers of this thread, reused from image to image.
    static BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// Decoded RGB pixels whose buffer goes back to its thread's pool when dropped, so decoding
/// image after image allocates (and clears) no new memory.
pub struct RgbPixels {
    pixels: Vec<u8>,
    width: u32,
    height: u32,
}

impl RgbPixels {
    /// Row-major RGB, width * height * 3 bytes.
    pub fn as_raw(&self) -> &[u8] {
        &self.pixels
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }
}

impl Drop for RgbPixels {
    fn drop(&mut self) {
        let pixels = std::mem::take(&mut self.pixels);
        let _ = BUFFERS.try_with(|buffers| {
            if let Ok(mut buffers) = buffers.try_borrow_mut()
                && buffers.len() < 4
            {
                buffers.push(pixels);
            }
        });
    }
}

/// Decodes encoded image bytes to RGB for a crop: `region(width, height)` is called once with
/// the image's size, before any pixel is decoded, and returns the rectangle
/// `[left, top, width, height]` the caller will use. Inside it the pixels equal
/// [`decode_rgb`]'s; outside it they are unspecified (a JPEG is decoded only down to the
/// rectangle's last rows, and only its blocks near the rectangle are transformed). Same errors
/// as [`decode_rgb`].
pub fn decode_rgb_region(
    bytes: &[u8],
    region: impl FnOnce(u32, u32) -> [u32; 4],
) -> Result<(RgbPixels, [u32; 4]), String> {
    let mut region = Some(region);
    let mut drawn = |width, height| (region.take().expect("called once"))(width, height);
    if sniff_format(bytes) == Some(ImageFormat::Jpeg) && jpeg_is_complete(bytes) {
        let mut pixels = BUFFERS
            .try_with(|buffers| buffers.try_borrow_mut().ok()?.pop())
            .ok()
            .flatten()
            .unwrap_or_default();
        if let Some((width, height, rectangle)) = decode_jpeg(bytes, &mut drawn, &mut pixels)? {
            let pixels = RgbPixels {
                pixels,
                width,
                height,
            };
            return Ok((pixels, rectangle));
        }
        // A colour space zune-jpeg leaves to `image`: decoded whole below.
    }
    let image = decode_rgb(bytes)?;
    let (width, height) = image.dimensions();
    let rectangle = drawn(width, height);
    let pixels = RgbPixels {
        pixels: image.into_raw(),
        width,
        height,
    };
    Ok((pixels, rectangle))
}

/// Reads `path` and decodes it for a crop, as [`decode_rgb_region`].
pub fn load_rgb_region(
    path: &Path,
    region: impl FnOnce(u32, u32) -> [u32; 4],
) -> Result<(RgbPixels, [u32; 4]), DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::image(path, e.to_string()))?;
    decode_rgb_region(&bytes, region).map_err(|reason| DataError::image(path, reason))
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
