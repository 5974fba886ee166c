//! A small labelled image set the program draws itself, so that `googlenet train` runs without
//! any download: a coloured disk, a patch of horizontal or vertical stripes, or a checkerboard
//! patch, at random positions, sizes, colours and stripe widths on noisy backgrounds. The classes
//! differ in shape and texture orientation, cues the first convolutions pick up quickly, so a
//! network learns them visibly within minutes. Every image is a pure function of the set's seed, its split and
//! its index, so the set needs no storage and is the same on every machine.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The classes, in label order.
pub const CLASSES: [&str; 4] = [
    "disk",
    "horizontal-stripes",
    "vertical-stripes",
    "checkerboard",
];

/// Which part of the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The training images.
    Train,
    /// The validation images.
    Val,
}

/// Size and seed of the set.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SyntheticShapes {
    /// Side of the square images in pixels.
    pub side: usize,
    /// Training images per class.
    pub train_per_class: usize,
    /// Validation images per class.
    pub val_per_class: usize,
    /// Seed the images are drawn from.
    pub seed: u64,
}

impl SyntheticShapes {
    /// The default set: 96 px, 80 training and 20 validation images per class.
    pub fn standard() -> SyntheticShapes {
        SyntheticShapes {
            side: 96,
            train_per_class: 80,
            val_per_class: 20,
            seed: 2014,
        }
    }

    /// Number of shape classes.
    pub fn num_classes(&self) -> usize {
        CLASSES.len()
    }

    /// Number of images in `part`.
    pub fn len(&self, part: Part) -> usize {
        CLASSES.len()
            * match part {
                Part::Train => self.train_per_class,
                Part::Val => self.val_per_class,
            }
    }

    /// Whether `part` holds no image.
    pub fn is_empty(&self, part: Part) -> bool {
        self.len(part) == 0
    }

    /// The label of image `index` (classes alternate, so any prefix is balanced).
    pub fn label(&self, index: usize) -> usize {
        index % CLASSES.len()
    }

    /// Image `index` of `part` as RGB bytes, row-major `side x side x 3`, and its label.
    pub fn image(&self, part: Part, index: usize) -> (Vec<u8>, usize) {
        let salt = match part {
            Part::Train => 0x7472_6169_6e00_0000u64,
            Part::Val => 0x7661_6c00_0000_0000u64,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.seed ^ salt ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let label = self.label(index);
        (draw(self.side, label, &mut rng), label)
    }
}

/// One picture of class `label`.
fn draw(side: usize, label: usize, rng: &mut ChaCha8Rng) -> Vec<u8> {
    let s = side as f32;
    let background: [f32; 3] = std::array::from_fn(|_| rng.random_range(0.0..1.0));
    // The shape's colour differs clearly from the background in brightness.
    let foreground: [f32; 3] = std::array::from_fn(|c| {
        let b = background[c];
        if b > 0.5 {
            rng.random_range(0.0..(b - 0.35).max(0.05))
        } else {
            rng.random_range((b + 0.35).min(0.95)..1.0)
        }
    });
    let gradient: [f32; 2] = [rng.random_range(-0.2..0.2), rng.random_range(-0.2..0.2)];
    let radius = rng.random_range(0.18..0.34) * s;
    let cx = rng.random_range(radius..s - radius);
    let cy = rng.random_range(radius..s - radius);
    let period = rng.random_range(0.12..0.3) * s;
    let phase = rng.random_range(0.0..period);
    let noise = rng.random_range(0.02..0.10);
    let mut pixels = Vec::with_capacity(side * side * 3);
    for y in 0..side {
        for x in 0..side {
            let (px, py) = (x as f32 + 0.5, y as f32 + 0.5);
            // Coordinates relative to the shape's centre, in units of its radius.
            let (u, v) = ((px - cx) / radius, (py - cy) / radius);
            let in_patch = u.abs() <= 1.0 && v.abs() <= 1.0;
            let stripe = |t: f32| ((t + phase) / period).floor() as i64 % 2 == 0;
            let inside = match label {
                0 => u * u + v * v <= 1.0,
                1 => in_patch && stripe(py),
                2 => in_patch && stripe(px),
                _ => in_patch && (stripe(px) == stripe(py)),
            };
            let shade = gradient[0] * (px / s - 0.5) + gradient[1] * (py / s - 0.5);
            for c in 0..3 {
                let base = if inside {
                    foreground[c]
                } else {
                    background[c] + shade
                };
                let value = base + noise * (rng.random::<f32>() - 0.5) * 2.0;
                pixels.push((value.clamp(0.0, 1.0) * 255.0).round() as u8);
            }
        }
    }
    pixels
}
