//! Decoding any image file to RGB, by its content rather than its extension (ImageNet has a PNG
//! named `.JPEG`, and CMYK and greyscale JPEGs). JPEG is decoded with zune-jpeg directly (the
//! decoder `image` uses, straight to RGB without `image`'s copy of the file), the other formats
//! through `image`. [`decode_rgb_region`] decodes a JPEG only as far as a crop needs, into a
//! buffer of the crop's rectangle alone (vendor/zune-jpeg adds region decoding to zune-jpeg;
//! progressive and multi-scan JPEGs still hold their coefficients for the whole image, within
//! the pixel budget). Every decode checks the header's size
//! against a [`PixelBudget`] before allocating pixels; the functions without a budget argument
//! use the default one.

use std::cell::RefCell;
use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, ImageReader, RgbImage};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::JpegDecoder;

pub use super::error::DataError;
pub use super::pixel_budget::{
    PIL_MAX_IMAGE_PIXELS, PixelBudget, PixelCheck, check_pixel_budget, large_image_warning,
};

/// Formats a photo dataset may hold. GIF is refused: in ImageNet-style folders a GIF is a
/// placeholder ("image not found"), not a photo of the class.
const PHOTO_FORMATS: [ImageFormat; 4] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::Bmp,
    ImageFormat::WebP,
];

/// Reads `path` and decodes it to 8-bit RGB (greyscale, CMYK, palette and alpha images are
/// converted; alpha is dropped), within the default [`PixelBudget`]. Never panics: a decoder
/// panic becomes an error.
pub fn load_rgb(path: &Path) -> Result<RgbImage, DataError> {
    load_rgb_within(path, PixelBudget::default())
}

/// [`load_rgb`] within `budget`: a larger image is an error, the file is not read whole when it
/// is larger than such an image could be.
pub fn load_rgb_within(path: &Path, budget: PixelBudget) -> Result<RgbImage, DataError> {
    let bytes = read_bounded(path, budget)?;
    decode_checked(&bytes, budget, Some(path)).map_err(|reason| DataError::image(path, reason))
}

/// The bytes of `path`, refused unread when the file is larger than
/// [`PixelBudget::max_file_bytes`].
fn read_bounded(path: &Path, budget: PixelBudget) -> Result<Vec<u8>, DataError> {
    use std::io::Read;
    let fail = |e: std::io::Error| DataError::image(path, e.to_string());
    let file = std::fs::File::open(path).map_err(fail)?;
    let max = budget.max_file_bytes();
    let too_large = |len: u64| {
        DataError::image(
            path,
            format!(
                "file of {len} bytes is larger than an image within the limit of {} pixels \
                 can be (--max-image-pixels raises it)",
                budget.limit
            ),
        )
    };
    let len = file.metadata().map_err(fail)?.len();
    if len > max {
        return Err(too_large(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max + 1).read_to_end(&mut bytes).map_err(fail)?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Checks a header's size against `budget`, printing the warning for a large image.
fn admit(width: u64, height: u64, budget: PixelBudget, path: Option<&Path>) -> Result<(), String> {
    if check_pixel_budget(width, height, budget)? == PixelCheck::Large {
        let warning = large_image_warning(width, height, budget);
        match path {
            Some(path) => eprintln!("warning: {}: {warning}", path.display()),
            None => eprintln!("warning: {warning}"),
        }
    }
    Ok(())
}

/// The format of an encoded image, from its first bytes.
pub fn sniff_format(bytes: &[u8]) -> Option<ImageFormat> {
    image::guess_format(bytes).ok()
}

/// Decodes encoded image bytes to RGB within the default [`PixelBudget`]; the error is the
/// reason, for the caller to attach a path to.
pub fn decode_rgb(bytes: &[u8]) -> Result<RgbImage, String> {
    decode_rgb_within(bytes, PixelBudget::default())
}

/// [`decode_rgb`] within `budget`: the header's width x height is checked before any pixel
/// buffer is allocated.
pub fn decode_rgb_within(bytes: &[u8], budget: PixelBudget) -> Result<RgbImage, String> {
    decode_checked(bytes, budget, None)
}

fn decode_checked(
    bytes: &[u8],
    budget: PixelBudget,
    path: Option<&Path>,
) -> Result<RgbImage, String> {
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
        let whole = |width, height| [0, 0, width, height];
        if let Some([_, _, width, height]) = decode_jpeg(bytes, budget, path, whole, &mut pixels)? {
            return Ok(RgbImage::from_raw(width, height, pixels)
                .expect("the decoder wrote width * height RGB pixels"));
        }
    }
    decode_with_image(bytes, format, budget, path)
}

/// Decoding through the `image` crate (every accepted format; JPEG only where zune-jpeg's
/// colour spaces are not the usual ones). The header's size is read and checked first; the
/// decoder's allocations are capped at 8 bytes per pixel of the budget (16-bit RGBA).
fn decode_with_image(
    bytes: &[u8],
    format: ImageFormat,
    budget: PixelBudget,
    path: Option<&Path>,
) -> Result<RgbImage, String> {
    let dimensions = std::panic::catch_unwind(|| {
        ImageReader::with_format(Cursor::new(bytes), format).into_dimensions()
    });
    let (width, height) = match dimensions {
        Ok(Ok(size)) => size,
        Ok(Err(e)) => return Err(format!("cannot decode {}: {e}", format_name(format))),
        Err(_) => return Err(format!("the {} decoder panicked", format_name(format))),
    };
    admit(width.into(), height.into(), budget, path)?;
    let decoded = std::panic::catch_unwind(|| {
        let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(budget.limit.saturating_mul(8).saturating_add(64 << 20));
        reader.limits(limits);
        reader.decode().map(|image| image.into_rgb8())
    });
    match decoded {
        Ok(Ok(image)) if image.width() > 0 && image.height() > 0 => Ok(image),
        Ok(Ok(_)) => Err("image has no pixels".into()),
        Ok(Err(e)) => Err(format!("cannot decode {}: {e}", format_name(format))),
        Err(_) => Err(format!("the {} decoder panicked", format_name(format))),
    }
}

/// Decodes a complete JPEG (the caller has checked) to RGB into `pixels`: the rectangle
/// `[left, top, width, height]` that `region(width, height)` returns (clipped to the image),
/// row after row, and nothing else, so `pixels` holds only its width * height * 3 bytes
/// (zune-jpeg's working memory beside it is a few MCU rows, in proportion to the image's
/// width; progressive and multi-scan files also hold their coefficients whole). The pixels
/// equal a full decode's. Returns the clipped rectangle, or `None` for a
/// colour space other than YCbCr, greyscale, RGB, CMYK or YCCK (left to `image`, which decodes
/// those whole). `region` is called once, before any pixel is decoded, and only for an image
/// within `budget`.
fn decode_jpeg(
    bytes: &[u8],
    budget: PixelBudget,
    path: Option<&Path>,
    region: impl FnOnce(u32, u32) -> [u32; 4],
    pixels: &mut Vec<u8>,
) -> Result<Option<[u32; 4]>, String> {
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
    admit(width as u64, height as u64, budget, path)?;
    let (width, height) = (width as u32, height as u32);
    let rectangle = clip(region(width, height), width, height);
    let [x, y, w, h] = rectangle;
    pixels.clear();
    if w == 0 || h == 0 {
        return Ok(Some(rectangle));
    }
    decoder.set_options(decoder.options().jpeg_set_out_colorspace(ColorSpace::RGB));
    if rectangle != [0, 0, width, height] {
        decoder.set_region(x as usize, y as usize, w as usize, h as usize);
    }
    pixels.resize(w as usize * h as usize * 3, 0);
    let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        decoder.decode_region_into(pixels)
    }));
    match decoded {
        Ok(Ok(())) => Ok(Some(rectangle)),
        Ok(Err(e)) => Err(fail(e)),
        Err(_) => Err("the JPEG decoder panicked".into()),
    }
}

/// The part of the rectangle `[left, top, width, height]` inside a `width` x `height` image.
fn clip([x, y, w, h]: [u32; 4], width: u32, height: u32) -> [u32; 4] {
    let (x, y) = (x.min(width), y.min(height));
    [x, y, w.min(width - x), h.min(height - y)]
}

/// The largest buffer a thread keeps for the next image (21 million pixels, more than any
/// ImageNet photo); a larger one is freed after its image.
const POOLED_BYTES: usize = 64 << 20;

thread_local! {
    /// Decoding buffers of this thread, reused from image to image: at most 4, each at most
    /// [`POOLED_BYTES`].
    static BUFFERS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// The decoded RGB pixels of a rectangle of an image, whose buffer goes back to its thread's
/// pool when dropped, so decoding image after image allocates (and clears) no new memory.
pub struct RgbPixels {
    pixels: Vec<u8>,
    width: u32,
    height: u32,
}

impl RgbPixels {
    /// Row-major RGB of the rectangle, width * height * 3 bytes.
    pub fn as_raw(&self) -> &[u8] {
        &self.pixels
    }

    /// The rectangle's width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// The rectangle's height in pixels.
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
                && pixels.capacity() <= POOLED_BYTES
            {
                buffers.push(pixels);
            }
        });
    }
}

/// Decodes encoded image bytes to RGB for a crop: `region(width, height)` is called once with
/// the image's size, before any pixel is decoded, and returns the rectangle
/// `[left, top, width, height]` the caller will use. Returns the pixels of that rectangle
/// alone (clipped to the image; its top-left pixel first) and the rectangle; they equal
/// [`decode_rgb`]'s there. A JPEG is decoded only down to the rectangle's last rows, only its
/// blocks near the rectangle are transformed, and no buffer of the whole image's pixels is
/// allocated (progressive and multi-scan JPEGs excepted: zune-jpeg holds their coefficients
/// for the whole image); other formats are decoded whole and the rectangle copied out. Same
/// errors as [`decode_rgb`]; the default [`PixelBudget`].
pub fn decode_rgb_region(
    bytes: &[u8],
    region: impl FnOnce(u32, u32) -> [u32; 4],
) -> Result<(RgbPixels, [u32; 4]), String> {
    decode_region_checked(bytes, PixelBudget::default(), None, region)
}

/// [`decode_rgb_region`] within `budget` (checked before `region` is called).
pub fn decode_rgb_region_within(
    bytes: &[u8],
    budget: PixelBudget,
    region: impl FnOnce(u32, u32) -> [u32; 4],
) -> Result<(RgbPixels, [u32; 4]), String> {
    decode_region_checked(bytes, budget, None, region)
}

fn decode_region_checked(
    bytes: &[u8],
    budget: PixelBudget,
    path: Option<&Path>,
    region: impl FnOnce(u32, u32) -> [u32; 4],
) -> Result<(RgbPixels, [u32; 4]), String> {
    let mut region = Some(region);
    let mut drawn = |width, height| (region.take().expect("called once"))(width, height);
    let mut pixels = BUFFERS
        .try_with(|buffers| buffers.try_borrow_mut().ok()?.pop())
        .ok()
        .flatten()
        .unwrap_or_default();
    // A JPEG of a colour space zune-jpeg leaves to `image` (`None`) is decoded whole below.
    if sniff_format(bytes) == Some(ImageFormat::Jpeg)
        && jpeg_is_complete(bytes)
        && let Some(rectangle) = decode_jpeg(bytes, budget, path, &mut drawn, &mut pixels)?
    {
        let [_, _, width, height] = rectangle;
        let pixels = RgbPixels {
            pixels,
            width,
            height,
        };
        return Ok((pixels, rectangle));
    }
    let image = decode_checked(bytes, budget, path)?;
    let (width, height) = image.dimensions();
    let rectangle = clip(drawn(width, height), width, height);
    let [x, y, w, h] = rectangle;
    pixels.clear();
    for row in image
        .as_raw()
        .chunks_exact(width as usize * 3)
        .skip(y as usize)
        .take(h as usize)
    {
        pixels.extend_from_slice(&row[x as usize * 3..(x + w) as usize * 3]);
    }
    let pixels = RgbPixels {
        pixels,
        width: w,
        height: h,
    };
    Ok((pixels, rectangle))
}

/// Reads `path` and decodes it for a crop, as [`decode_rgb_region`].
pub fn load_rgb_region(
    path: &Path,
    region: impl FnOnce(u32, u32) -> [u32; 4],
) -> Result<(RgbPixels, [u32; 4]), DataError> {
    load_rgb_region_within(path, PixelBudget::default(), region)
}

/// [`load_rgb_region`] within `budget`.
pub fn load_rgb_region_within(
    path: &Path,
    budget: PixelBudget,
    region: impl FnOnce(u32, u32) -> [u32; 4],
) -> Result<(RgbPixels, [u32; 4]), DataError> {
    let bytes = read_bounded(path, budget)?;
    decode_region_checked(&bytes, budget, Some(path), region)
        .map_err(|reason| DataError::image(path, reason))
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
