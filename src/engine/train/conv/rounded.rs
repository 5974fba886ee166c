//! A bf16 step's products on CPUs whose f32 FMAs outrun their bf16 dot products
//! ([`Bf16Kernel::Portable`](crate::engine::Bf16Kernel::Portable)): each convolution's input,
//! weights and output gradient rounded to bf16 (nearest even) into buffers of f32, which the f32
//! kernels then multiply, Winograd's transforms included. A product of two bf16 numbers is exact
//! in f32, so the sums are those of the rounded operands, summed in f32, as on AVX512-BF16's dot
//! products and AMX's tiles.

use rayon::prelude::*;

use crate::engine::simd::simd_kernel;

/// Values per parallel task of a rounding pass.
const CHUNK: usize = 64 * 1024;

/// Buffers for a convolution's rounded operands, grown on demand, kept between calls.
#[derive(Default)]
pub(crate) struct RoundedOperands {
    x: Vec<f32>,
    w: Vec<f32>,
    dy: Vec<f32>,
}

impl RoundedOperands {
    /// The forward pass's operands, rounded.
    pub(super) fn forward(&mut self, x: &[f32], w: &[f32]) -> (&[f32], &[f32]) {
        (round_into(x, &mut self.x), round_into(w, &mut self.w))
    }

    /// The backward pass's operands, rounded.
    pub(super) fn backward(
        &mut self,
        x: &[f32],
        w: &[f32],
        dy: &[f32],
    ) -> (&[f32], &[f32], &[f32]) {
        (
            round_into(x, &mut self.x),
            round_into(w, &mut self.w),
            round_into(dy, &mut self.dy),
        )
    }
}

/// `values` rounded into the start of `buffer` (grown to hold them), split over the threads.
fn round_into<'a>(values: &[f32], buffer: &'a mut Vec<f32>) -> &'a [f32] {
    if buffer.len() < values.len() {
        buffer.resize(values.len(), 0.0);
    }
    let out = &mut buffer[..values.len()];
    out.par_chunks_mut(CHUNK)
        .zip(values.par_chunks(CHUNK))
        .for_each(|(out, values)| round_to_bf16(values, out));
    out
}

simd_kernel! {
    /// `values` rounded to the nearest bf16 (ties to even), kept as f32, into `out`: the bits of
    /// `half::bf16::from_f32` (a NaN comes out quiet), without a branch.
    fn round_to_bf16(values: &[f32], out: &mut [f32]) {
        for (out, &value) in out.iter_mut().zip(values) {
            let bits = value.to_bits();
            let nearest = bits.wrapping_add(0x7fff + ((bits >> 16) & 1)) & 0xffff_0000;
            let quiet_nan = (bits | 0x0040_0000) & 0xffff_0000;
            *out = f32::from_bits(if value.is_nan() { quiet_nan } else { nearest });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_gives_the_bits_of_half() {
        let mut values: Vec<f32> = [
            0x3f80_8000u32, // a tie, even below: down
            0x3f81_8000,    // a tie, odd below: up
            0x3f80_8001,    // above the tie
            0x3f80_7fff,    // below the tie
            0x7f7f_ffff,    // f32's largest: rounds up to infinity
            0x0000_0001,    // the smallest subnormal
            0x0040_8000,    // a subnormal tie
            0x8000_0000,    // -0
        ]
        .iter()
        .map(|&bits| f32::from_bits(bits))
        .collect();
        values.extend([f32::INFINITY, f32::NEG_INFINITY, 0.0, 1.0, -3.5]);
        values.extend((0..100_000u32).map(|i| f32::from_bits(i.wrapping_mul(0x9E37_79B9))));
        let mut buffer = Vec::new();
        let rounded = round_into(&values, &mut buffer);
        for (&value, &got) in values.iter().zip(rounded) {
            let want = half::bf16::from_f32(value).to_f32();
            assert_eq!(
                got.to_bits(),
                want.to_bits(),
                "{value:e} ({:#x})",
                value.to_bits()
            );
        }
        assert!(
            values.iter().any(|v| v.is_nan()),
            "NaNs are among the values"
        );
        assert_eq!(rounded[4], f32::INFINITY);
    }
}
