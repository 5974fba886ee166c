//! Photometric distortions for training (section 6 of the paper cites Andrew Howard's, "Some
//! improvements on deep convolutional neural network based image classification", 2013:
//! random brightness, contrast and colour, plus AlexNet's PCA lighting noise).

use image::RgbImage;
use rand::Rng;
use rand::seq::SliceRandom;

/// Eigenvalues of the covariance of ImageNet RGB pixels in [0, 1] units (Krizhevsky et al. 2012,
/// section 4.1, as published with fb.resnet.torch and used by torchvision's references).
pub const PCA_EIGENVALUES: [f32; 3] = [0.2175, 0.0188, 0.0045];
/// The matching eigenvectors, one per column.
pub const PCA_EIGENVECTORS: [[f32; 3]; 3] = [
    [-0.5675, 0.7192, 0.4009],
    [-0.5808, -0.0045, -0.8140],
    [-0.5836, -0.6948, 0.4203],
];

/// Strengths of the distortions: each of brightness, contrast and saturation is scaled by a
/// factor drawn from `[1 - s, 1 + s]` (applied in random order), and the lighting noise draws
/// its PCA coefficients from a normal with standard deviation `lighting`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Photometric {
    /// Brightness strength: the factor is drawn from [1 - s, 1 + s].
    pub brightness: f32,
    /// Contrast strength: the factor is drawn from [1 - s, 1 + s].
    pub contrast: f32,
    /// Saturation strength: the factor is drawn from [1 - s, 1 + s].
    pub saturation: f32,
    /// Standard deviation of the PCA lighting coefficients.
    pub lighting: f32,
}

impl Default for Photometric {
    /// 0.4 / 0.4 / 0.4 and lighting 0.1 (AlexNet's standard deviation).
    fn default() -> Self {
        Photometric {
            brightness: 0.4,
            contrast: 0.4,
            saturation: 0.4,
            lighting: 0.1,
        }
    }
}

#[derive(Clone, Copy)]
enum Jitter {
    Brightness,
    Contrast,
    Saturation,
}

fn grey(p: [f32; 3]) -> f32 {
    0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]
}

impl Photometric {
    /// Distorts `image` in place with factors drawn from `rng`.
    pub fn apply(&self, image: &mut RgbImage, rng: &mut impl Rng) {
        let mut order = [Jitter::Brightness, Jitter::Contrast, Jitter::Saturation];
        order.shuffle(rng);
        let mut factor = |s: f32| {
            if s > 0.0 {
                rng.random_range(1.0 - s..=1.0 + s)
            } else {
                1.0
            }
        };
        let factors = order.map(|j| {
            let s = match j {
                Jitter::Brightness => self.brightness,
                Jitter::Contrast => self.contrast,
                Jitter::Saturation => self.saturation,
            };
            (j, factor(s))
        });
        let mut pixels: Vec<[f32; 3]> = image
            .pixels()
            .map(|p| p.0.map(|v| v as f32 / 255.0))
            .collect();
        for (jitter, f) in factors {
            match jitter {
                Jitter::Brightness => pixels.iter_mut().for_each(|p| *p = p.map(|v| v * f)),
                Jitter::Contrast => {
                    let mean = pixels.iter().map(|&p| grey(p)).sum::<f32>() / pixels.len() as f32;
                    pixels
                        .iter_mut()
                        .for_each(|p| *p = p.map(|v| mean + f * (v - mean)));
                }
                Jitter::Saturation => pixels.iter_mut().for_each(|p| {
                    let g = grey(*p);
                    *p = p.map(|v| g + f * (v - g));
                }),
            }
        }
        let shift = self.lighting_shift(rng);
        for (pixel, p) in image.pixels_mut().zip(&pixels) {
            for c in 0..3 {
                pixel.0[c] = ((p[c] + shift[c]) * 255.0).round().clamp(0.0, 255.0) as u8;
            }
        }
    }

    /// AlexNet's PCA lighting: `eigenvectors * (alpha * eigenvalues)` with `alpha ~ N(0, lighting)`,
    /// the same RGB shift for every pixel.
    fn lighting_shift(&self, rng: &mut impl Rng) -> [f32; 3] {
        if self.lighting <= 0.0 {
            return [0.0; 3];
        }
        let alpha: [f32; 3] = std::array::from_fn(|_| standard_normal(rng) * self.lighting);
        std::array::from_fn(|c| {
            (0..3)
                .map(|k| PCA_EIGENVECTORS[c][k] * alpha[k] * PCA_EIGENVALUES[k])
                .sum()
        })
    }
}

/// A standard normal draw (Box-Muller).
fn standard_normal(rng: &mut impl Rng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}
