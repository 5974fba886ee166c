//! Resizing with fast_image_resize (SIMD convolution). Its `Convolution(Bilinear)` is the same
//! antialiasing filter as PIL's `BILINEAR` resize (support scaled by the reduction factor), which
//! is what torchvision's `Resize` uses on PIL images.

use std::cell::RefCell;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

/// How pixels are interpolated when resizing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Interpolation {
    /// The nearest source pixel.
    Nearest,
    /// Antialiased bilinear, as PIL's `BILINEAR` (torchvision's default).
    Bilinear,
    /// Antialiased bicubic (Catmull-Rom, as PIL's `BICUBIC`).
    Bicubic,
    /// Pixel-area averaging (box filter).
    Area,
}

impl Interpolation {
    /// The four methods the paper's training draws from with equal probability (section 6).
    pub const ALL: [Interpolation; 4] = [
        Interpolation::Bilinear,
        Interpolation::Area,
        Interpolation::Nearest,
        Interpolation::Bicubic,
    ];

    fn algorithm(self) -> ResizeAlg {
        match self {
            Interpolation::Nearest => ResizeAlg::Nearest,
            Interpolation::Bilinear => ResizeAlg::Convolution(FilterType::Bilinear),
            Interpolation::Bicubic => ResizeAlg::Convolution(FilterType::CatmullRom),
            Interpolation::Area => ResizeAlg::Convolution(FilterType::Box),
        }
    }
}

thread_local! {
    /// One resizer per thread: it keeps its scratch buffers between calls.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// Resizes the region `[left, top, width, height]` (in pixels of `image`, fractional allowed)
/// to `out_width` x `out_height`.
pub fn resize_region(
    image: &RgbImage,
    region: [f64; 4],
    out_width: u32,
    out_height: u32,
    interpolation: Interpolation,
) -> RgbImage {
    let (width, height) = image.dimensions();
    resize_region_raw(
        image.as_raw(),
        width,
        height,
        region,
        out_width,
        out_height,
        interpolation,
    )
}

/// [`resize_region`] of row-major RGB pixels, `width * height * 3` bytes (panics otherwise).
/// Like PIL's `resize` with a box, pixels within the filter's reach beyond `region` are read
/// too (`TrainTransform::pixels_read` says how far).
pub fn resize_region_raw(
    pixels: &[u8],
    width: u32,
    height: u32,
    region: [f64; 4],
    out_width: u32,
    out_height: u32,
    interpolation: Interpolation,
) -> RgbImage {
    let whole = region == [0.0, 0.0, width as f64, height as f64];
    if whole && (width, height) == (out_width, out_height) {
        return RgbImage::from_raw(width, height, pixels.to_vec())
            .expect("width * height RGB pixels");
    }
    let source = ImageRef::new(width, height, pixels, PixelType::U8x3)
        .expect("the buffer holds width * height RGB pixels");
    let mut target = Image::new(out_width, out_height, PixelType::U8x3);
    let options = ResizeOptions::new()
        .resize_alg(interpolation.algorithm())
        .crop(region[0], region[1], region[2], region[3]);
    RESIZER.with(|resizer| {
        resizer
            .borrow_mut()
            .resize(&source, &mut target, &options)
            .expect("source and target are both U8x3 and non-empty")
    });
    RgbImage::from_raw(out_width, out_height, target.into_vec())
        .expect("the target buffer holds out_width * out_height RGB pixels")
}
