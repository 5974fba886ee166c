//! f32 arithmetic on one vector, written once for both instruction sets the engine's own kernels
//! run on: 16 lanes in a zmm register on AVX-512F ([`Zmm`]), 8 in a ymm register on AVX2 with FMA
//! ([`Ymm`]). The packed kernel's register blocks and Winograd's transforms are written over
//! [`Vector`]; [`on_isa_vectors!`] compiles such a function for each and runs the one of the
//! [`Isa`] it is given.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// The vector instructions the engine's own f32 kernels run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    /// AVX-512F: [`Zmm`].
    Avx512,
    /// AVX2 and FMA: [`Ymm`].
    Avx2,
}

impl Isa {
    /// The widest this CPU runs, if any.
    pub fn here() -> Option<Self> {
        [Self::Avx512, Self::Avx2]
            .into_iter()
            .find(|isa| isa.runs_here())
    }

    /// Whether this CPU has the instructions.
    pub fn runs_here(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            match self {
                Self::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
                Self::Avx2 => {
                    std::arch::is_x86_feature_detected!("avx2")
                        && std::arch::is_x86_feature_detected!("fma")
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }
}

/// Defines `unsafe fn $name<consts>(isa: Isa, args)`, which runs `$generic::<V, consts>(args)`
/// compiled for AVX-512F with `V` = [`Zmm`] when `isa` is [`Isa::Avx512`], and for AVX2 and FMA
/// with `V` = [`Ymm`] when it is [`Isa::Avx2`]. Its callers promise that `isa` runs here, beside
/// `$generic`'s own contract. Every lane computes alike on both, so both give the same bits.
macro_rules! on_isa_vectors {
    (
        $(#[$attr:meta])*
        unsafe fn $name:ident<$(const $c:ident: usize),*>($($arg:ident: $ty:ty),* $(,)?)
            => $generic:ident
    ) => {
        $(#[$attr])*
        #[cfg(target_arch = "x86_64")]
        unsafe fn $name<$(const $c: usize),*>(isa: $crate::engine::vector::Isa, $($arg: $ty),*) {
            #[target_feature(enable = "avx512f")]
            unsafe fn avx512<$(const $c: usize),*>($($arg: $ty),*) {
                // SAFETY: AVX-512F runs here; the caller's contract.
                unsafe { $generic::<$crate::engine::vector::Zmm, $($c),*>($($arg),*) }
            }
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2<$(const $c: usize),*>($($arg: $ty),*) {
                // SAFETY: AVX2 and FMA run here; the caller's contract.
                unsafe { $generic::<$crate::engine::vector::Ymm, $($c),*>($($arg),*) }
            }
            // SAFETY: the caller's contract, on the instructions each function needs.
            unsafe {
                match isa {
                    $crate::engine::vector::Isa::Avx512 => avx512::<$($c),*>($($arg),*),
                    $crate::engine::vector::Isa::Avx2 => avx2::<$($c),*>($($arg),*),
                }
            }
        }

        #[cfg(not(target_arch = "x86_64"))]
        unsafe fn $name<$(const $c: usize),*>(_: $crate::engine::vector::Isa, $(_: $ty),*) {
            unreachable!("the engine's own f32 kernels run only where AVX-512F or AVX2 runs")
        }
    };
}
pub(crate) use on_isa_vectors;

/// One vector of channels. A value exists only where its instructions run: its constructors are
/// `unsafe` and promise that, so the arithmetic on values is safe.
pub(crate) trait Vector: Copy {
    /// Channels per vector.
    const LANES: usize;

    /// The first `lanes` (0 to [`Self::LANES`]) floats at `at`, zeros in the other lanes; the
    /// floats past them are not read.
    ///
    /// # Safety
    /// The CPU has the vector's instructions and the `lanes` floats at `at` are readable.
    unsafe fn load(at: *const f32, lanes: usize) -> Self;

    /// Zeros in every lane.
    ///
    /// # Safety
    /// The CPU has the vector's instructions.
    unsafe fn zero() -> Self;

    /// The float at `at` in every lane.
    ///
    /// # Safety
    /// The CPU has the vector's instructions and the float at `at` is readable.
    unsafe fn broadcast(at: *const f32) -> Self;

    /// Its first `lanes` (0 to [`Self::LANES`]) lanes stored at `at`; the floats past them are
    /// not written.
    ///
    /// # Safety
    /// The `lanes` floats at `at` are writable.
    unsafe fn store(self, at: *mut f32, lanes: usize);

    fn add(self, other: Self) -> Self;
    fn sub(self, other: Self) -> Self;
    /// `−self`.
    fn neg(self) -> Self;
    /// `a · self + c`, rounded once.
    fn mul_add(self, a: f32, c: Self) -> Self;
    /// `c − a · self`, rounded once.
    fn neg_mul_add(self, a: f32, c: Self) -> Self;
    /// `self · b + c` lane by lane, rounded once.
    fn mul_add_lanes(self, b: Self, c: Self) -> Self;
    /// `max(self, 0)`.
    fn relu(self) -> Self;
}

/// 16 channels on AVX-512F.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Zmm(pub __m512);

/// The first `n` of 16 lanes (all of them from 16 on).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn mask16(n: usize) -> __mmask16 {
    ((1u32 << n.min(16)) - 1) as u16
}

// SAFETY (every intrinsic below): a `Zmm` exists only where AVX-512F runs (`load`'s contract).
#[cfg(target_arch = "x86_64")]
impl Vector for Zmm {
    const LANES: usize = 16;

    #[inline(always)]
    unsafe fn load(at: *const f32, lanes: usize) -> Self {
        // SAFETY: the caller's contract; the load is masked to the `lanes` floats.
        Self(unsafe { _mm512_maskz_loadu_ps(mask16(lanes), at) })
    }

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller's contract.
        Self(unsafe { _mm512_setzero_ps() })
    }

    #[inline(always)]
    unsafe fn broadcast(at: *const f32) -> Self {
        // SAFETY: the caller's contract.
        Self(unsafe { _mm512_set1_ps(*at) })
    }

    #[inline(always)]
    unsafe fn store(self, at: *mut f32, lanes: usize) {
        // SAFETY: the caller's contract; the store is masked to the `lanes` floats.
        unsafe { _mm512_mask_storeu_ps(at, mask16(lanes), self.0) }
    }

    #[inline(always)]
    fn add(self, other: Self) -> Self {
        Self(unsafe { _mm512_add_ps(self.0, other.0) })
    }

    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        Self(unsafe { _mm512_sub_ps(self.0, other.0) })
    }

    #[inline(always)]
    fn neg(self) -> Self {
        Self(unsafe { _mm512_sub_ps(_mm512_setzero_ps(), self.0) })
    }

    #[inline(always)]
    fn mul_add(self, a: f32, c: Self) -> Self {
        Self(unsafe { _mm512_fmadd_ps(_mm512_set1_ps(a), self.0, c.0) })
    }

    #[inline(always)]
    fn neg_mul_add(self, a: f32, c: Self) -> Self {
        Self(unsafe { _mm512_fnmadd_ps(_mm512_set1_ps(a), self.0, c.0) })
    }

    #[inline(always)]
    fn mul_add_lanes(self, b: Self, c: Self) -> Self {
        Self(unsafe { _mm512_fmadd_ps(self.0, b.0, c.0) })
    }

    #[inline(always)]
    fn relu(self) -> Self {
        Self(unsafe { _mm512_max_ps(self.0, _mm512_setzero_ps()) })
    }
}

/// 8 channels on AVX2 with FMA.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
pub(crate) struct Ymm(__m256);

/// The mask of the first `n` (0 to 8) of 8 lanes, for AVX's masked loads and stores.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
unsafe fn mask8(n: usize) -> __m256i {
    // SAFETY: the caller's CPU has AVX2.
    unsafe {
        let index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), index)
    }
}

// SAFETY (every intrinsic below): a `Ymm` exists only where AVX2 and FMA run (`load`'s contract).
#[cfg(target_arch = "x86_64")]
impl Vector for Ymm {
    const LANES: usize = 8;

    #[inline(always)]
    unsafe fn load(at: *const f32, lanes: usize) -> Self {
        // SAFETY: the caller's contract; a ragged load is masked to the `lanes` floats.
        Self(unsafe {
            match lanes >= 8 {
                true => _mm256_loadu_ps(at),
                false => _mm256_maskload_ps(at, mask8(lanes)),
            }
        })
    }

    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller's contract.
        Self(unsafe { _mm256_setzero_ps() })
    }

    #[inline(always)]
    unsafe fn broadcast(at: *const f32) -> Self {
        // SAFETY: the caller's contract.
        Self(unsafe { _mm256_broadcast_ss(&*at) })
    }

    #[inline(always)]
    unsafe fn store(self, at: *mut f32, lanes: usize) {
        // SAFETY: the caller's contract; a ragged store is masked to the `lanes` floats.
        unsafe {
            match lanes >= 8 {
                true => _mm256_storeu_ps(at, self.0),
                false => _mm256_maskstore_ps(at, mask8(lanes), self.0),
            }
        }
    }

    #[inline(always)]
    fn add(self, other: Self) -> Self {
        Self(unsafe { _mm256_add_ps(self.0, other.0) })
    }

    #[inline(always)]
    fn sub(self, other: Self) -> Self {
        Self(unsafe { _mm256_sub_ps(self.0, other.0) })
    }

    #[inline(always)]
    fn neg(self) -> Self {
        Self(unsafe { _mm256_sub_ps(_mm256_setzero_ps(), self.0) })
    }

    #[inline(always)]
    fn mul_add(self, a: f32, c: Self) -> Self {
        Self(unsafe { _mm256_fmadd_ps(_mm256_set1_ps(a), self.0, c.0) })
    }

    #[inline(always)]
    fn neg_mul_add(self, a: f32, c: Self) -> Self {
        Self(unsafe { _mm256_fnmadd_ps(_mm256_set1_ps(a), self.0, c.0) })
    }

    #[inline(always)]
    fn mul_add_lanes(self, b: Self, c: Self) -> Self {
        Self(unsafe { _mm256_fmadd_ps(self.0, b.0, c.0) })
    }

    #[inline(always)]
    fn relu(self) -> Self {
        Self(unsafe { _mm256_max_ps(self.0, _mm256_setzero_ps()) })
    }
}

/// A one-dimensional transform `T` of `I` vectors into `O`: one column of a block.
pub(crate) trait Transform<V: Vector, const I: usize, const O: usize> {
    fn column(v: [V; I]) -> [V; O];
}

/// `T v Tᵀ` of a square block of `I x I` vectors (`II` of them) into `O x O` (`OO`): `T` along
/// the block's columns, then along its rows. Plain loops over arrays rather than closures, so that
/// the whole transform is inlined into the function compiled for the vector's instructions.
#[inline(always)]
pub(crate) fn separable<
    V: Vector,
    T: Transform<V, I, O>,
    const I: usize,
    const O: usize,
    const II: usize,
    const OO: usize,
>(
    v: [V; II],
) -> [V; OO] {
    assert!(I * I == II && O * O == OO, "square blocks");
    let mut columns = [[v[0]; O]; I];
    for (b, column) in columns.iter_mut().enumerate() {
        let mut x = [v[0]; I];
        for (a, x) in x.iter_mut().enumerate() {
            *x = v[a * I + b];
        }
        *column = T::column(x);
    }
    let mut out = [v[0]; OO];
    for a in 0..O {
        let mut x = [v[0]; I];
        for (b, x) in x.iter_mut().enumerate() {
            *x = columns[b][a];
        }
        for (j, y) in T::column(x).into_iter().enumerate() {
            out[a * O + j] = y;
        }
    }
    out
}
