//! The number format of the feature maps between layers: f32, or bf16 in bf16 inference, where
//! every value a convolution writes is rounded once (to nearest even) and read by the next
//! products as it is. Pooling and normalisation compute in f32 and round their results. In int8
//! inference a convolution quantizes its f32 input once into a u8 map (steps of its scale above
//! its zero point, [`super::int8`]), which its tiles gather and max-pool as they are.

use half::bf16;

/// An element of a feature map.
pub(crate) trait Activation: Copy + Default + Send + Sync + 'static {
    /// `value` in this format (rounded to nearest even for bf16).
    fn from_f32(value: f32) -> Self;
    /// This value as f32 (exact).
    fn to_f32(self) -> f32;
    /// `dst = max(src + bias, 0)` in this format: the epilogue of every convolution.
    fn bias_relu(dst: &mut [Self], src: &[f32], bias: &[f32]);
    /// What max pooling compares: a number ordered as the values are.
    type Key: Copy + PartialOrd;
    /// A key no value is below.
    const LOWEST: Self::Key;
    /// The value's key.
    fn key(self) -> Self::Key;
    /// The value of a key.
    fn from_key(key: Self::Key) -> Self;
    /// `out[i] = max(out[i], taps[t][i] for every t)` (without `out[i]` when `first`): a max
    /// pool's window, each tap a pixel's channels.
    #[inline(always)]
    fn max_taps(taps: &[&[Self]], first: bool, out: &mut [Self]) {
        super::pool::max_taps_by_keys(taps, first, out);
    }
}

impl Activation for f32 {
    type Key = f32;
    const LOWEST: f32 = f32::NEG_INFINITY;

    #[inline(always)]
    fn key(self) -> f32 {
        self
    }

    #[inline(always)]
    fn from_key(key: f32) -> Self {
        key
    }

    #[inline(always)]
    fn from_f32(value: f32) -> Self {
        value
    }

    #[inline(always)]
    fn to_f32(self) -> f32 {
        self
    }

    fn bias_relu(dst: &mut [f32], src: &[f32], bias: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, the only requirement of the function.
            unsafe { bias_relu_avx2(dst, src, bias) };
            return;
        }
        bias_relu_portable(dst, src, bias);
    }
}

impl Activation for u8 {
    type Key = u8;
    const LOWEST: u8 = 0;

    #[inline(always)]
    fn key(self) -> u8 {
        self
    }

    #[inline(always)]
    fn from_key(key: u8) -> Self {
        key
    }

    /// The nearest step, saturated to 0..=255 (ties to even).
    #[inline(always)]
    fn from_f32(value: f32) -> Self {
        value.round_ties_even().clamp(0.0, 255.0) as u8
    }

    #[inline(always)]
    fn to_f32(self) -> f32 {
        self as f32
    }

    fn bias_relu(dst: &mut [u8], src: &[f32], bias: &[f32]) {
        bias_relu_portable(dst, src, bias);
    }
}

/// bf16's bits as a signed integer ordered as the numbers are (the negative numbers' magnitude
/// bits flipped; -0 sorts just below +0): one 16-bit integer maximum per value, 16 or 32 to a
/// vector. The map is its own inverse.
#[inline(always)]
fn ordered_bits(bits: i16) -> i16 {
    bits ^ ((bits >> 15) & 0x7fff)
}

impl Activation for bf16 {
    type Key = i16;
    const LOWEST: i16 = i16::MIN;

    #[inline(always)]
    fn key(self) -> i16 {
        ordered_bits(self.to_bits() as i16)
    }

    #[inline(always)]
    fn from_key(key: i16) -> Self {
        bf16::from_bits(ordered_bits(key) as u16)
    }

    #[inline(always)]
    fn from_f32(value: f32) -> Self {
        bf16::from_f32(value)
    }

    #[inline(always)]
    fn to_f32(self) -> f32 {
        f32::from_bits((self.to_bits() as u32) << 16)
    }

    #[inline(always)]
    fn max_taps(taps: &[&[bf16]], first: bool, out: &mut [bf16]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512bw") {
            // SAFETY: the CPU has AVX-512BW (and so AVX-512F), what the function needs.
            unsafe { max_taps_bf16_avx512(taps, first, out) };
            return;
        }
        super::pool::max_taps_by_keys(taps, first, out);
    }

    fn bias_relu(dst: &mut [bf16], src: &[f32], bias: &[f32]) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx512bf16") {
            // SAFETY: the CPU has AVX512-BF16 (and so AVX512F), what the function needs.
            unsafe { bias_relu_bf16_avx512(dst, src, bias) };
            return;
        }
        bias_relu_portable(dst, src, bias);
    }
}

/// [`Activation::max_taps`] for bf16, 32 channels to a register, on the bits as signed 16-bit
/// integers: among the non-negative numbers (sign bit clear) the larger bits are the larger
/// number, among the negative ones the smaller; so the window's maximum is its largest bits where
/// those are non-negative, else its smallest. Two instructions a tap instead of the keys' four.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn max_taps_bf16_avx512(taps: &[&[bf16]], first: bool, out: &mut [bf16]) {
    use std::arch::x86_64::*;
    let c = out.len();
    assert!(taps.iter().all(|tap| tap.len() >= c));
    for ch in (0..c).step_by(32) {
        let mask: __mmask32 = if c - ch >= 32 {
            u32::MAX
        } else {
            (1u32 << (c - ch)) - 1
        };
        // SAFETY: every load and the store are masked to the `c - ch` channels left, inside `out`
        // and each tap (asserted above).
        unsafe {
            let at = out.as_mut_ptr().add(ch) as *mut i16;
            let (mut high, mut low) = if first {
                (_mm512_set1_epi16(i16::MIN), _mm512_set1_epi16(i16::MAX))
            } else {
                let previous = _mm512_maskz_loadu_epi16(mask, at);
                (previous, previous)
            };
            for tap in taps {
                let bits = _mm512_maskz_loadu_epi16(mask, tap.as_ptr().add(ch) as *const i16);
                high = _mm512_max_epi16(high, bits);
                low = _mm512_min_epi16(low, bits);
            }
            let negative = _mm512_movepi16_mask(high);
            _mm512_mask_storeu_epi16(at, mask, _mm512_mask_blend_epi16(negative, high, low));
        }
    }
}

/// [`Activation::bias_relu`] for f32, compiled for 256-bit vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn bias_relu_avx2(dst: &mut [f32], src: &[f32], bias: &[f32]) {
    bias_relu_portable(dst, src, bias);
}

/// [`Activation::bias_relu`] into bf16 with `VCVTNEPS2BF16` (round to nearest even, as
/// `bf16::from_f32` for the normal numbers a network produces).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn bias_relu_bf16_avx512(dst: &mut [bf16], src: &[f32], bias: &[f32]) {
    use std::arch::x86_64::*;
    let n = dst.len().min(src.len()).min(bias.len());
    let whole = n / 16 * 16;
    let zero = _mm512_setzero_ps();
    for i in (0..whole).step_by(16) {
        // SAFETY: i + 16 <= n, inside the three slices.
        unsafe {
            let v = _mm512_add_ps(
                _mm512_loadu_ps(src.as_ptr().add(i)),
                _mm512_loadu_ps(bias.as_ptr().add(i)),
            );
            let v = _mm512_max_ps(v, zero);
            let b: __m256i = std::mem::transmute(_mm512_cvtneps_pbh(v));
            _mm256_storeu_si256(dst.as_mut_ptr().add(i) as *mut __m256i, b);
        }
    }
    bias_relu_portable(&mut dst[whole..n], &src[whole..n], &bias[whole..n]);
}

#[inline(always)]
fn bias_relu_portable<T: Activation>(dst: &mut [T], src: &[f32], bias: &[f32]) {
    for ((d, &s), &b) in dst.iter_mut().zip(src).zip(bias) {
        let v = s + b;
        *d = T::from_f32(if v > 0.0 { v } else { 0.0 });
    }
}

/// `values` rounded into `out` (the first `min(len)` of each).
pub(crate) fn convert<T: Activation>(values: &[f32], out: &mut [T]) {
    out.iter_mut()
        .zip(values)
        .for_each(|(o, &v)| *o = T::from_f32(v));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_keys_order_as_the_numbers() {
        let numbers = [
            -3.5e30f32, -2.0, -1.0, -1e-30, -0.0, 0.0, 1e-30, 0.5, 1.0, 3.0e30,
        ];
        let values: Vec<bf16> = numbers.iter().map(|&x| bf16::from_f32(x)).collect();
        for pair in values.windows(2) {
            assert!(pair[0].key() < pair[1].key(), "{} < {}", pair[0], pair[1]);
        }
        for v in values {
            assert_eq!(bf16::from_key(v.key()).to_bits(), v.to_bits());
        }
    }

    #[test]
    fn bf16_epilogue_rounds_to_nearest_even_and_clamps() {
        let src: Vec<f32> = (0..37)
            .map(|i| (i as f32 - 18.0) * 0.37 + 1.0 / 512.0)
            .collect();
        let bias: Vec<f32> = (0..37).map(|i| (i % 5) as f32 * 0.01).collect();
        let mut got = vec![bf16::ZERO; 37];
        <bf16 as Activation>::bias_relu(&mut got, &src, &bias);
        for i in 0..37 {
            let want = bf16::from_f32((src[i] + bias[i]).max(0.0));
            assert_eq!(got[i].to_bits(), want.to_bits(), "{i}");
            assert_eq!(got[i].to_f32(), f32::from(want));
        }
    }
}
