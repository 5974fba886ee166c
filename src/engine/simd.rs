//! Passes over maps, weights and gradients compiled for the widest vectors the CPU has.

/// Runs `$body` as a function compiled for AVX-512 or AVX2 when the CPU has them (the crate is
/// built for baseline x86-64, whose SSE2 vectors are a quarter and half as wide), and as plain
/// code otherwise. Every lane holds its own channel, so all three give the same bits.
macro_rules! simd_kernel {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) {
            /// The body, inlined into both versions so that each is compiled for its features.
            #[inline(always)]
            fn portable($($arg: $ty),*) $body
            /// The body compiled for 256-bit vectors.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            unsafe fn avx2($($arg: $ty),*) {
                portable($($arg),*)
            }
            /// The body compiled for 512-bit vectors.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            unsafe fn avx512($($arg: $ty),*) {
                portable($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F, the only requirement of the function.
                unsafe { avx512($($arg),*) };
                return;
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, the only requirement of the function.
                unsafe { avx2($($arg),*) };
                return;
            }
            portable($($arg),*)
        }
    };
}

pub(crate) use simd_kernel;
