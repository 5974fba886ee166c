//! Crop geometry of 1-, 10- and 144-crop evaluation (section 7 of the paper).

use std::collections::{BTreeMap, BTreeSet, HashSet};

use clap::ValueEnum;
use googlenet::eval::crops::{
    CropBox, CropError, CropScheme, Rect, Size, crop_boxes, resized_size,
};

fn rect(x: u32, y: u32, side: u32) -> Rect {
    Rect {
        x,
        y,
        width: side,
        height: side,
    }
}

/// Every box lies inside its resized image, which has the expected shorter side and aspect.
fn assert_inside(boxes: &[CropBox], width: u32, height: u32) {
    for b in boxes {
        let r = b.rect;
        assert!(
            r.x + r.width <= b.resized.width && r.y + r.height <= b.resized.height,
            "{b:?} leaves the {}x{} image",
            b.resized.width,
            b.resized.height
        );
        let shorter = b.resized.width.min(b.resized.height);
        assert_eq!(
            Some(b.resized),
            resized_size(width, height, shorter),
            "{b:?}"
        );
        assert_eq!(b.output, 224);
    }
}

/// The paper's 144 crops of a landscape (`landscape` = true) or portrait image.
fn check_paper_144(width: u32, height: u32, landscape: bool) {
    let boxes = crop_boxes(width, height, CropScheme::Paper144, 224).unwrap();
    assert_eq!(boxes.len(), 144);
    assert_eq!(CropScheme::Paper144.count(), 144);
    assert_inside(&boxes, width, height);
    let distinct: HashSet<CropBox> = boxes.iter().copied().collect();
    assert_eq!(distinct.len(), 144, "{width}x{height}: crops repeat");

    // 36 crops at each of the four scales (shorter side 256, 288, 320, 352).
    let mut per_scale: BTreeMap<u32, Vec<CropBox>> = BTreeMap::new();
    for b in &boxes {
        per_scale
            .entry(b.resized.width.min(b.resized.height))
            .or_default()
            .push(*b);
    }
    assert_eq!(
        per_scale.keys().copied().collect::<Vec<_>>(),
        [256, 288, 320, 352]
    );
    for (scale, crops) in per_scale {
        assert_eq!(crops.len(), 36);
        // Half are mirror images of the other half.
        let (mirrored, plain): (Vec<CropBox>, Vec<CropBox>) = crops.iter().partition(|b| b.mirror);
        assert_eq!(mirrored.len(), 18);
        let unmirrored: BTreeSet<CropBox> = mirrored
            .iter()
            .map(|b| CropBox {
                mirror: false,
                ..*b
            })
            .collect();
        assert_eq!(unmirrored, plain.iter().copied().collect());
        // Per mirror side: 3 whole squares resized to 224 and 15 crops of 224x224.
        let squares: Vec<Rect> = plain
            .iter()
            .filter(|b| b.rect.width == scale)
            .map(|b| b.rect)
            .collect();
        assert_eq!(squares.len(), 3, "scale {scale}");
        assert!(
            plain
                .iter()
                .all(|b| (b.rect.width == scale && b.rect.height == scale)
                    || (b.rect.width == 224 && b.rect.height == 224))
        );
        let resized = crops[0].resized;
        let long = resized.width.max(resized.height);
        // Left, center and right squares (top, center, bottom for portrait), spanning the image.
        let offsets: Vec<u32> = squares
            .iter()
            .map(|s| if landscape { s.x } else { s.y })
            .collect();
        let across: Vec<u32> = squares
            .iter()
            .map(|s| if landscape { s.y } else { s.x })
            .collect();
        assert_eq!(across, [0, 0, 0]);
        assert_eq!(offsets[0], 0);
        assert_eq!(offsets[2], long - scale);
        assert!(offsets[0] < offsets[1] && offsets[1] < offsets[2]);
        // Each square gives its 4 corners and its center, all inside the square.
        for square in &squares {
            let inside: Vec<Rect> = plain
                .iter()
                .map(|b| b.rect)
                .filter(|r| {
                    r.width == 224
                        && r.x >= square.x
                        && r.y >= square.y
                        && r.x + 224 <= square.x + scale
                        && r.y + 224 <= square.y + scale
                })
                .collect();
            let far = scale - 224;
            for corner in [(0, 0), (far, 0), (0, far), (far, far)] {
                let want = rect(square.x + corner.0, square.y + corner.1, 224);
                assert!(inside.contains(&want), "corner {want:?} of {square:?}");
            }
            let c = far / 2; // scale - 224 is even for all four scales
            assert!(inside.contains(&rect(square.x + c, square.y + c, 224)));
        }
    }
}

#[test]
fn paper_144_crops_of_a_landscape_image() {
    check_paper_144(500, 375, true);
    check_paper_144(640, 427, true);
}

#[test]
fn paper_144_crops_of_a_portrait_image() {
    check_paper_144(375, 500, false);
    check_paper_144(427, 640, false);
}

#[test]
fn some_shapes_make_neighbouring_squares_share_corner_crops() {
    // 366x500 at scale 352 is 352x480: the squares sit at y = 0, 64 and 128, so the bottom
    // corners of the top square (y = 352 - 224 = 128) are the top corners of the bottom square.
    // The paper's procedure is kept as written: 144 crops, 140 of them distinct.
    let boxes = crop_boxes(366, 500, CropScheme::Paper144, 224).unwrap();
    assert_eq!(boxes.len(), 144);
    assert_inside(&boxes, 366, 500);
    assert_eq!(boxes.iter().collect::<HashSet<_>>().len(), 140);
}

#[test]
fn paper_144_crops_at_256_of_a_4_by_3_image() {
    // 500x375 -> 341x256 (torchvision's Resize(256) rounds the longer side down). Squares at
    // x = 0, round(85 / 2) = 42 (Python rounds half to even) and 85.
    let boxes = crop_boxes(500, 375, CropScheme::Paper144, 224).unwrap();
    let at_256: Vec<&CropBox> = boxes.iter().filter(|b| b.resized.height == 256).collect();
    assert!(at_256.iter().all(|b| b.resized
        == Size {
            width: 341,
            height: 256
        }));
    let plain: Vec<Rect> = at_256
        .iter()
        .filter(|b| !b.mirror)
        .map(|b| b.rect)
        .collect();
    assert_eq!(
        plain,
        [
            rect(0, 0, 224),
            rect(32, 0, 224),
            rect(0, 32, 224),
            rect(32, 32, 224),
            rect(16, 16, 224),
            rect(0, 0, 256),
            rect(42, 0, 224),
            rect(74, 0, 224),
            rect(42, 32, 224),
            rect(74, 32, 224),
            rect(58, 16, 224),
            rect(42, 0, 256),
            rect(85, 0, 224),
            rect(117, 0, 224),
            rect(85, 32, 224),
            rect(117, 32, 224),
            rect(101, 16, 224),
            rect(85, 0, 256),
        ]
    );
    // Scale 352: 500x375 -> 469x352.
    assert!(boxes.iter().any(|b| b.resized
        == Size {
            width: 469,
            height: 352
        }));
}

#[test]
fn square_images_repeat_the_paper_s_three_squares() {
    // The paper's left, center and right squares coincide for a square image: 144 crops, 48 distinct.
    let boxes = crop_boxes(300, 300, CropScheme::Paper144, 224).unwrap();
    assert_eq!(boxes.len(), 144);
    assert_eq!(boxes.iter().collect::<HashSet<_>>().len(), 48);
    assert_inside(&boxes, 300, 300);
}

#[test]
fn ten_crops_are_four_corners_and_the_center_and_their_mirrors() {
    // torchvision: Resize(256) + TenCrop(224) on 500x375: 341x256, corners and center (58, 16).
    let boxes = crop_boxes(500, 375, CropScheme::Ten, 224).unwrap();
    assert_eq!(boxes.len(), CropScheme::Ten.count());
    assert_inside(&boxes, 500, 375);
    let rects: Vec<Rect> = boxes.iter().map(|b| b.rect).collect();
    let five = [
        rect(0, 0, 224),
        rect(117, 0, 224),
        rect(0, 32, 224),
        rect(117, 32, 224),
        rect(58, 16, 224),
    ];
    assert_eq!(rects[..5], five);
    assert_eq!(rects[5..], five);
    assert!(boxes[..5].iter().all(|b| !b.mirror));
    assert!(boxes[5..].iter().all(|b| b.mirror));
    assert_eq!(boxes.iter().collect::<HashSet<_>>().len(), 10);

    // Portrait 366x500 -> 256x349.
    let boxes = crop_boxes(366, 500, CropScheme::Ten, 224).unwrap();
    assert_inside(&boxes, 366, 500);
    assert_eq!(boxes[3].rect, rect(32, 125, 224));
    assert_eq!(boxes[4].rect, rect(16, 62, 224));
}

#[test]
fn one_crop_is_torchvision_s_resize_256_center_crop_224() {
    // Offsets checked against torchvision 0.29: Resize(256) then CenterCrop(224).
    for (w, h, resized, x, y) in [
        (500, 375, (341, 256), 58, 16),
        (366, 500, (256, 349), 16, 62),
        (640, 427, (383, 256), 80, 16),
        (256, 256, (256, 256), 16, 16),
    ] {
        let boxes = crop_boxes(w, h, CropScheme::Center, 224).unwrap();
        assert_eq!(
            boxes,
            [CropBox {
                resized: Size {
                    width: resized.0,
                    height: resized.1
                },
                rect: rect(x, y, 224),
                output: 224,
                mirror: false,
            }],
            "{w}x{h}"
        );
    }
}

#[test]
fn crop_side_scales_the_resize_sides() {
    // For a 299 network the single-crop resize is 299 * 8 / 7 = 341.7 -> 342.
    let boxes = crop_boxes(1000, 800, CropScheme::Center, 299).unwrap();
    assert_eq!(boxes[0].resized.height, 342);
    assert_eq!(boxes[0].rect.width, 299);
    let boxes = crop_boxes(1000, 800, CropScheme::Paper144, 299).unwrap();
    let scales: BTreeSet<u32> = boxes.iter().map(|b| b.resized.height).collect();
    assert_eq!(scales.into_iter().collect::<Vec<_>>(), [342, 384, 427, 470]);
    assert!(boxes.iter().all(|b| b.output == 299));
}

#[test]
fn source_region_maps_a_crop_back_to_the_original_image() {
    let b = crop_boxes(500, 375, CropScheme::Center, 224).unwrap()[0];
    let [x, y, w, h] = b.source_region(500, 375);
    let (sx, sy) = (500.0 / 341.0, 375.0 / 256.0);
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    assert!(close(x, 58.0 * sx) && close(y, 16.0 * sy), "{x} {y}");
    assert!(close(w, 224.0 * sx) && close(h, 224.0 * sy), "{w} {h}");
    assert!(x + w <= 500.0 && y + h <= 375.0);
}

#[test]
fn impossible_images_are_errors() {
    assert_eq!(
        crop_boxes(0, 10, CropScheme::Center, 224),
        Err(CropError::EmptyImage {
            width: 0,
            height: 10
        })
    );
    assert_eq!(
        crop_boxes(10, 10, CropScheme::Ten, 0),
        Err(CropError::ZeroCrop)
    );
    assert!(matches!(
        crop_boxes(u32::MAX, 1, CropScheme::Center, 224),
        Err(CropError::TooElongated { .. })
    ));
    // A 1-pixel-wide strip is still cropped, from a very tall resize.
    let boxes = crop_boxes(1, 3, CropScheme::Paper144, 224).unwrap();
    assert_inside(&boxes, 1, 3);
}

#[test]
fn schemes_parse_from_the_crop_count() {
    for (text, scheme) in [
        ("1", CropScheme::Center),
        ("10", CropScheme::Ten),
        ("144", CropScheme::Paper144),
    ] {
        assert_eq!(CropScheme::from_str(text, false), Ok(scheme));
        assert_eq!(scheme.count().to_string(), text);
    }
    assert!(CropScheme::from_str("5", false).is_err());
}

/// Regression: scaling a box back to the original image overshot its border by a rounding error
/// for some sizes (10 crops at 96 px panicked in the resizer). Over a sweep of sizes, every region
/// stays inside the image, the sweep does contain sizes where the unclamped product overshoots,
/// and cropping such an image works.
#[test]
fn source_regions_never_leave_the_image() {
    let mut overshooting = None;
    for crop in [96, 112, 224] {
        for width in crop..crop * 3 {
            for height in [crop, crop + 1, crop * 4 / 3, width * 3 / 4 + 1] {
                let height = height.max(crop);
                for scheme in [CropScheme::Ten, CropScheme::Paper144] {
                    for b in crop_boxes(width, height, scheme, crop).unwrap() {
                        let [left, top, w, h] = b.source_region(width, height);
                        assert!(
                            left >= 0.0
                                && top >= 0.0
                                && left + w <= width as f64
                                && top + h <= height as f64,
                            "{b:?} of a {width}x{height} image gives region {:?}",
                            [left, top, w, h]
                        );
                        let sx = width as f64 / b.resized.width as f64;
                        let unclamped = (b.rect.x as f64 * sx) + (b.rect.width as f64 * sx);
                        if unclamped > width as f64 && overshooting.is_none() {
                            overshooting = Some((width, height, scheme, crop));
                        }
                    }
                }
            }
        }
    }
    let (width, height, scheme, crop) =
        overshooting.expect("the sweep should contain a size whose unclamped region overshoots");
    let image = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, y as u8, 7]));
    let boxes = crop_boxes(width, height, scheme, crop).unwrap();
    let crops = googlenet::eval::predict::crop_images(&image, &boxes);
    assert_eq!(crops.len(), boxes.len());
    assert!(crops.iter().all(|c| c.dimensions() == (crop, crop)));
}
