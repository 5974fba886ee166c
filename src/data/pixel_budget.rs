//! The pixel budget: how many pixels an image may have before it is decoded. A JPEG or PNG header
//! is a few bytes that may claim 65500 x 65500 pixels (12.9 GB of RGB); every decode reads the
//! header's width and height first and checks them here, before any pixel buffer is allocated.
//! The defaults follow PIL's `Image.MAX_IMAGE_PIXELS`: above 89,478,485 pixels a warning, above
//! twice that a refusal.

/// PIL's `Image.MAX_IMAGE_PIXELS` (`1024 * 1024 * 1024 // 4 // 3`): above it PIL warns of a
/// possible decompression bomb, above twice it PIL refuses.
pub const PIL_MAX_IMAGE_PIXELS: u64 = 1024 * 1024 * 1024 / 4 / 3;

/// Pixel counts that warn and that refuse.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelBudget {
    /// An image with more pixels decodes with a warning.
    pub warn_above: u64,
    /// An image with more pixels is refused before anything is allocated for it.
    pub limit: u64,
}

impl Default for PixelBudget {
    /// PIL's: warn above [`PIL_MAX_IMAGE_PIXELS`], refuse above twice it (178,956,970 pixels,
    /// 537 MB of RGB).
    fn default() -> Self {
        PixelBudget {
            warn_above: PIL_MAX_IMAGE_PIXELS,
            limit: 2 * PIL_MAX_IMAGE_PIXELS,
        }
    }
}

impl PixelBudget {
    /// Refuse above `limit` pixels (`--max-image-pixels`); warn above PIL's level when that is
    /// lower.
    pub fn with_limit(limit: u64) -> Self {
        PixelBudget {
            warn_above: PIL_MAX_IMAGE_PIXELS.min(limit),
            limit,
        }
    }

    /// `--max-image-pixels` when given, else the default.
    pub fn from_option(limit: Option<u64>) -> Self {
        limit.map_or_else(PixelBudget::default, PixelBudget::with_limit)
    }

    /// The largest encoded file that may hold an image within the budget: 4 bytes per pixel
    /// (more than any photo format needs: an 8-bit RGBA image stored uncompressed) plus 16 MiB
    /// of metadata. A larger file is refused before it is read into memory.
    pub fn max_file_bytes(&self) -> u64 {
        self.limit.saturating_mul(4).saturating_add(16 << 20)
    }
}

/// What [`check_pixel_budget`] found about an image within the limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelCheck {
    /// The image is within the limit.
    Within,
    /// Above [`PixelBudget::warn_above`]: decoded, with a warning.
    Large,
}

/// Checks a header's `width` x `height` against `budget`: the reason to refuse the image
/// ("image of WxH pixels exceeds the limit of N pixels") or whether it is large.
pub fn check_pixel_budget(
    width: u64,
    height: u64,
    budget: PixelBudget,
) -> Result<PixelCheck, String> {
    let pixels = width.saturating_mul(height);
    if pixels > budget.limit {
        return Err(format!(
            "image of {width}x{height} pixels exceeds the limit of {} pixels \
             (--max-image-pixels raises it)",
            budget.limit
        ));
    }
    Ok(if pixels > budget.warn_above {
        PixelCheck::Large
    } else {
        PixelCheck::Within
    })
}

/// The warning for a [`PixelCheck::Large`] image.
pub fn large_image_warning(width: u64, height: u64, budget: PixelBudget) -> String {
    format!(
        "image of {width}x{height} pixels is above {} pixels; decoding it takes {} MB",
        budget.warn_above,
        width * height * 3 / 1_000_000
    )
}
