//! From a request's image bytes to the network's crop, refusing what should not be decoded:
//! the header's dimensions are checked against the pixel budget before any pixel is decoded
//! (a small file can declare a huge image), and so is the size it would be resized to.

use std::io::Cursor;

use image::{ImageReader, RgbImage};

use super::error::ApiError;
use crate::data::EvalTransform;
use crate::data::image::{
    PIL_MAX_IMAGE_PIXELS, PixelBudget, decode_rgb_within, format_name, sniff_format,
};
use crate::eval::crops::resized_size;

/// The default pixel budget: the limit of [`PixelBudget::default`], twice Pillow's
/// `MAX_IMAGE_PIXELS`, above which Pillow refuses to open an image as a decompression bomb.
pub const DEFAULT_MAX_IMAGE_PIXELS: u64 = 2 * PIL_MAX_IMAGE_PIXELS;

/// Width and height from the image's header, refused when it is not an image or when
/// `width * height` is over `max_pixels`.
pub fn checked_dimensions(bytes: &[u8], max_pixels: u64) -> Result<(u32, u32), ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::unprocessable(
            "not_an_image",
            "the image is empty",
        ));
    }
    let format = sniff_format(bytes).ok_or_else(|| {
        ApiError::unprocessable("not_an_image", "not an image (unknown file signature)")
    })?;
    let (width, height) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|err| {
            ApiError::unprocessable(
                "invalid_image",
                format!(
                    "cannot read the {0} header (a truncated or corrupt {0} file): {err}",
                    format_name(format)
                ),
            )
        })?;
    check_pixels(width, height, max_pixels, "")?;
    Ok((width, height))
}

fn check_pixels(width: u32, height: u32, max_pixels: u64, what: &str) -> Result<(), ApiError> {
    let pixels = width as u64 * height as u64;
    if pixels > max_pixels {
        return Err(ApiError::unprocessable(
            "too_many_pixels",
            format!(
                "{what}{width}x{height} is {pixels} pixels, over the budget of {max_pixels} (--max-image-pixels)"
            ),
        ));
    }
    Ok(())
}

/// Decodes `bytes` and applies `transform` (as `googlenet classify` does), within the budget.
pub fn prepare(
    bytes: &[u8],
    transform: EvalTransform,
    max_pixels: u64,
) -> Result<RgbImage, ApiError> {
    let (width, height) = checked_dimensions(bytes, max_pixels)?;
    let resized = resized_size(width, height, transform.resize).ok_or_else(|| {
        ApiError::unprocessable(
            "too_many_pixels",
            format!(
                "a {width}x{height} image resized to a shorter side of {} is too large",
                transform.resize
            ),
        )
    })?;
    check_pixels(
        resized.width,
        resized.height,
        max_pixels,
        &format!(
            "resized to a shorter side of {}, the {width}x{height} image becomes ",
            transform.resize
        ),
    )?;
    // The decoder checks the header again, against the service's budget (not the default one,
    // which would refuse what `--max-image-pixels` allows).
    let image = decode_rgb_within(bytes, PixelBudget::with_limit(max_pixels))
        .map_err(|reason| ApiError::unprocessable("invalid_image", reason))?;
    Ok(transform.apply(&image))
}
