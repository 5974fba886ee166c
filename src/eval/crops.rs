//! Where the test crops of an image come from: one center crop, ten crops, or the 144 crops of
//! section 7 of the paper.
//!
//! Each crop is a [`CropBox`]: resize the whole image so that its shorter side has a given length
//! (aspect ratio kept), take a rectangle of that resized image, resize the rectangle to the
//! network's input side (nothing to do when it already has that size) and mirror it if asked.
//! The boxes of one scale come together, so a pipeline resizes each scale once.

use serde::Serialize;

/// How many crops are taken from each test image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, clap::ValueEnum)]
pub enum CropScheme {
    /// Shorter side resized to 256, the center 224x224 crop (torchvision's Resize(256) +
    /// CenterCrop(224)).
    #[value(name = "1")]
    #[serde(rename = "1")]
    Center,
    /// Shorter side resized to 256, the four corner and the center 224x224 crops, and their
    /// mirror images.
    #[value(name = "10")]
    #[serde(rename = "10")]
    Ten,
    /// Section 7 of the paper: shorter side resized to 256, 288, 320 and 352; the left, center
    /// and right squares (top, center, bottom for portrait images); from each square the four
    /// corner and the center 224x224 crops and the square itself resized to 224; each mirrored:
    /// 4 x 3 x 6 x 2 = 144 crops.
    #[value(name = "144")]
    #[serde(rename = "144")]
    Paper144,
}

impl CropScheme {
    /// Crops per image.
    pub fn count(self) -> usize {
        match self {
            CropScheme::Center => 1,
            CropScheme::Ten => 10,
            CropScheme::Paper144 => PAPER_SCALES.len() * 3 * 6 * 2,
        }
    }
}

/// Shorter sides of the paper's four scales (section 7: 256, 288, 320, 352 for 224 crops), as
/// multiples of the crop side in sevenths: 256 = 224 * 8 / 7, ..., 352 = 224 * 11 / 7.
const PAPER_SCALES: [u32; 4] = [8, 9, 10, 11];
/// The single- and ten-crop resize, 256 for 224 crops, also in sevenths of the crop side.
const SINGLE_SCALE: u32 = 8;

/// A width and height in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Size {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A rectangle in pixels: left, top, width, height.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// One crop of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct CropBox {
    /// The whole image is first resized to this size (shorter side to the scale, aspect kept).
    pub resized: Size,
    /// The region of the resized image to take.
    pub rect: Rect,
    /// The region is then resized to `output` x `output` (already that size for all but the
    /// paper's whole-square crops).
    pub output: u32,
    /// Flip left-right after cropping.
    pub mirror: bool,
}

impl CropBox {
    /// The same region in the original image's pixel coordinates, `[left, top, width, height]`,
    /// for resizers that crop and scale in one step (fast_image_resize's `ResizeOptions::crop`).
    /// Always inside the image: scaling back can overshoot the border by a rounding error, which
    /// such resizers reject.
    pub fn source_region(&self, width: u32, height: u32) -> [f64; 4] {
        let (width, height) = (width as f64, height as f64);
        let sx = width / self.resized.width as f64;
        let sy = height / self.resized.height as f64;
        let left = (self.rect.x as f64 * sx).min(width);
        let top = (self.rect.y as f64 * sy).min(height);
        [
            left,
            top,
            (self.rect.width as f64 * sx).min(width - left),
            (self.rect.height as f64 * sy).min(height - top),
        ]
    }
}

/// Why crops cannot be taken from an image.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CropError {
    /// The image has no pixel.
    #[error("image of {width}x{height} pixels has no area to crop from")]
    EmptyImage {
        /// The image's width in pixels.
        width: u32,
        /// The image's height in pixels.
        height: u32,
    },
    /// The crop side is 0.
    #[error("the crop side must be positive")]
    ZeroCrop,
    /// An image so elongated that resizing its shorter side would make the longer one overflow.
    #[error(
        "image of {width}x{height} pixels is too elongated to resize its shorter side to {shorter}"
    )]
    TooElongated {
        /// The image's width in pixels.
        width: u32,
        /// The image's height in pixels.
        height: u32,
        /// The side the shorter edge was to be resized to.
        shorter: u32,
    },
}

/// The crops of a `width` x `height` image for a network that takes `crop` x `crop` inputs
/// (224 in the paper; the resize sides scale with it). Ordered by scale, then square, then crop,
/// with each crop followed by its mirror image (the ten-crop scheme lists the five crops, then the
/// five mirrored ones).
///
/// The 144 boxes are distinct for the usual photo shapes (4:3, 3:2, landscape or portrait). For
/// square images the paper's three squares coincide, and for some shapes corner crops of
/// neighbouring squares do (366x500 at scale 352: squares at y = 0, 64, 128, and 352 - 224 = 128);
/// the scheme is kept as the paper describes it in both cases.
pub fn crop_boxes(
    width: u32,
    height: u32,
    scheme: CropScheme,
    crop: u32,
) -> Result<Vec<CropBox>, CropError> {
    if width == 0 || height == 0 {
        return Err(CropError::EmptyImage { width, height });
    }
    if crop == 0 {
        return Err(CropError::ZeroCrop);
    }
    let resize = |sevenths: u32| {
        let shorter = scale_side(crop, sevenths);
        resized_size(width, height, shorter).ok_or(CropError::TooElongated {
            width,
            height,
            shorter,
        })
    };
    let square = |resized: Size, rect: Rect| CropBox {
        resized,
        rect,
        output: crop,
        mirror: false,
    };
    match scheme {
        CropScheme::Center => {
            let resized = resize(SINGLE_SCALE)?;
            Ok(vec![square(resized, center_crop(resized, crop))])
        }
        CropScheme::Ten => {
            let resized = resize(SINGLE_SCALE)?;
            let five = five_crops(whole(resized), crop).map(|rect| square(resized, rect));
            let mirrored = five.iter().map(|b| CropBox { mirror: true, ..*b });
            Ok(five.iter().copied().chain(mirrored).collect())
        }
        CropScheme::Paper144 => {
            let mut boxes = Vec::with_capacity(scheme.count());
            for sevenths in PAPER_SCALES {
                let resized = resize(sevenths)?;
                for region in three_squares(resized) {
                    let crops = five_crops(region, crop).map(|rect| square(resized, rect));
                    let whole_square = square(resized, region);
                    for b in crops.into_iter().chain([whole_square]) {
                        boxes.extend([b, CropBox { mirror: true, ..b }]);
                    }
                }
            }
            Ok(boxes)
        }
    }
}

/// `crop * sevenths / 7`, rounded to the nearest pixel (exact for 224: 256, 288, 320, 352).
fn scale_side(crop: u32, sevenths: u32) -> u32 {
    ((crop as u64 * sevenths as u64 + 3) / 7) as u32
}

/// The size with shorter side `shorter` and the aspect ratio kept, the longer side rounded down
/// as torchvision's `Resize(int)` does.
pub fn resized_size(width: u32, height: u32, shorter: u32) -> Option<Size> {
    let longer = |long: u32, short: u32| u32::try_from(shorter as u64 * long as u64 / short as u64);
    if width <= height {
        Some(Size {
            width: shorter,
            height: longer(height, width).ok()?,
        })
    } else {
        Some(Size {
            width: longer(width, height).ok()?,
            height: shorter,
        })
    }
}

fn whole(size: Size) -> Rect {
    Rect {
        x: 0,
        y: 0,
        width: size.width,
        height: size.height,
    }
}

/// torchvision's `CenterCrop` offset: `round((len - crop) / 2)` with Python's round (half to even).
fn center_offset(len: u32, crop: u32) -> u32 {
    let d = len - crop;
    let half = d / 2;
    if d % 2 == 1 && half % 2 == 1 {
        half + 1
    } else {
        half
    }
}

/// The center `crop` x `crop` square of an image of `size` (at least `crop` on each side), its
/// offsets rounded as torchvision's `CenterCrop` rounds them.
pub fn center_crop(size: Size, crop: u32) -> Rect {
    Rect {
        x: center_offset(size.width, crop),
        y: center_offset(size.height, crop),
        width: crop,
        height: crop,
    }
}

/// The four corner crops (top left, top right, bottom left, bottom right) and the center crop of
/// `region`, as torchvision's `FiveCrop` orders them.
fn five_crops(region: Rect, crop: u32) -> [Rect; 5] {
    let right = region.x + region.width - crop;
    let bottom = region.y + region.height - crop;
    let at = |x, y| Rect {
        x,
        y,
        width: crop,
        height: crop,
    };
    let center = center_crop(
        Size {
            width: region.width,
            height: region.height,
        },
        crop,
    );
    [
        at(region.x, region.y),
        at(right, region.y),
        at(region.x, bottom),
        at(right, bottom),
        at(region.x + center.x, region.y + center.y),
    ]
}

/// The left, center and right squares of a landscape (or square) image, the top, center and
/// bottom squares of a portrait one.
fn three_squares(size: Size) -> [Rect; 3] {
    let side = size.width.min(size.height);
    let square = |x, y| Rect {
        x,
        y,
        width: side,
        height: side,
    };
    if size.width >= size.height {
        let slack = size.width - side;
        [0, center_offset(size.width, side), slack].map(|x| square(x, 0))
    } else {
        let slack = size.height - side;
        [0, center_offset(size.height, side), slack].map(|y| square(0, y))
    }
}
