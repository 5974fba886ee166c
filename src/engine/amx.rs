//! Intel AMX (Advanced Matrix Extensions, Xeon since Sapphire Rapids) for bf16 matrix products.
//!
//! A tile register holds 16 rows of 64 bytes. `TDPBF16PS c, a, b` multiplies a 16x32 bf16 tile
//! `a` by a 32x16 bf16 tile `b`, laid out as 16 rows of (k, k+1) pairs for 16 columns ("VNNI"
//! order), and adds the products to the 16x16 f32 tile `c`: 8192 multiply-adds in one
//! instruction. Rust has no stable AMX intrinsics, so the five instructions used here are inline
//! assembly. Linux gives a process the tiles' register state only when it asks
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`), and every thread loads the tiles'
//! shapes (`LDTILECFG`) before its first product.
//!
//! Tiles 0-3 accumulate a 32x32 block of the result, tiles 4-5 hold two row blocks of the left
//! operand and tiles 6-7 two column blocks of the right one.

use std::arch::asm;
use std::cell::Cell;
use std::sync::OnceLock;

use super::bf16::{B_TILE, TILE_COLS, TILE_K, TILE_ROWS};

/// Whether this CPU has AMX-BF16 (and AVX512-BF16 for the conversions) and Linux lets this
/// process use the tiles. Asked once per process.
pub(crate) fn available() -> bool {
    static AVAILABLE: OnceLock<bool> = OnceLock::new();
    *AVAILABLE.get_or_init(|| cpu_has_amx_bf16() && linux_grants_tile_data())
}

/// CPUID leaf 7: EDX bit 22 is AMX-BF16, bit 24 AMX-TILE.
fn cpu_has_amx_bf16() -> bool {
    let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
    let amx = leaf7.edx & (1 << 22) != 0 && leaf7.edx & (1 << 24) != 0;
    amx && std::arch::is_x86_feature_detected!("avx512bf16")
}

/// Asks Linux for the tile data state (`ARCH_REQ_XCOMP_PERM` for `XFEATURE_XTILEDATA`);
/// without it the first tile instruction kills the process.
fn linux_grants_tile_data() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these arguments only changes which register state the kernel
    // saves for this process; it reads and writes no memory of ours.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

thread_local! {
    static CONFIGURED: Cell<bool> = const { Cell::new(false) };
}

/// The tile configuration (palette 1): eight tiles of 16 rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn all_full() -> Self {
        let mut bytes = [0u8; 64];
        bytes[0] = 1;
        for tile in 0..8 {
            bytes[16 + 2 * tile..18 + 2 * tile].copy_from_slice(&64u16.to_le_bytes());
            bytes[48 + tile] = TILE_ROWS as u8;
        }
        Self(bytes)
    }
}

/// Loads the tile configuration on this thread if it has not yet.
///
/// # Safety
/// [`available`] must have returned true.
unsafe fn configure_thread() {
    if !CONFIGURED.get() {
        let config = TileConfig::all_full();
        // SAFETY: the caller checked that the CPU has AMX and the OS granted its state; the
        // configuration is 64 aligned bytes that live through the instruction.
        unsafe { asm!("ldtilecfg [{}]", in(reg) config.0.as_ptr(), options(nostack, readonly)) };
        CONFIGURED.set(true);
    }
}

/// The left operand: `row_blocks` x 16 rows of `k_blocks` x 32 bf16, `row_bytes` apart, or when
/// `tiled` as whole tiles of 16 rows of 32 (1 KiB each, tile (row block, k block) after tile).
#[derive(Clone, Copy)]
pub(crate) struct Left {
    pub ptr: *const u16,
    pub row_bytes: usize,
    pub row_blocks: usize,
    pub k_blocks: usize,
    pub tiled: bool,
}

/// The result: `Left::row_blocks` x 16 rows of `col_blocks` x 16 f32, `row_bytes` apart,
/// overwritten, or added to when `accumulate`.
#[derive(Clone, Copy)]
pub(crate) struct Product {
    pub ptr: *mut f32,
    pub row_bytes: usize,
    pub col_blocks: usize,
    pub accumulate: bool,
}

/// `product = left · right` (or `product += left · right`), where `right` holds `col_blocks` column blocks of `k_blocks`
/// packed tiles each ([`B_TILE`] bf16 per tile, column block after column block).
///
/// # Safety
/// [`available`] must have returned true, and the three pointers must cover the sizes their
/// descriptions give.
pub(crate) unsafe fn multiply(left: Left, right: *const u16, product: Product) {
    // SAFETY: checked by the caller.
    unsafe { configure_thread() };
    for cb in (0..product.col_blocks).step_by(2) {
        let two_cols = cb + 1 < product.col_blocks;
        for rb in (0..left.row_blocks).step_by(2) {
            let two_rows = rb + 1 < left.row_blocks;
            // SAFETY: blocks rb(+1) and cb(+1) lie inside the operands (caller's contract).
            unsafe {
                match (two_rows, two_cols) {
                    (true, true) => block::<true, true>(left, right, product, rb, cb),
                    (true, false) => block::<true, false>(left, right, product, rb, cb),
                    (false, true) => block::<false, true>(left, right, product, rb, cb),
                    (false, false) => block::<false, false>(left, right, product, rb, cb),
                }
            }
        }
    }
}

/// One 16 or 32 x 16 or 32 block of the product, starting at row block `rb`, column block `cb`.
#[inline(always)]
unsafe fn block<const TWO_ROWS: bool, const TWO_COLS: bool>(
    left: Left,
    right: *const u16,
    product: Product,
    rb: usize,
    cb: usize,
) {
    // Bytes between row blocks, between rows and between k blocks.
    let tile = TILE_ROWS * TILE_K * 2;
    let (block_bytes, row_bytes, k_bytes) = if left.tiled {
        (left.k_blocks * tile, TILE_K * 2, tile)
    } else {
        (TILE_ROWS * left.row_bytes, left.row_bytes, TILE_K * 2)
    };
    // SAFETY (whole function): the caller keeps every address inside the operands; tile
    // instructions touch no memory but the tile rows addressed.
    unsafe {
        let a0 = (left.ptr as *const u8).add(rb * block_bytes);
        let a1 = a0.add(block_bytes);
        let b0 = right.add(cb * left.k_blocks * B_TILE) as *const u8;
        let b1 = b0.add(left.k_blocks * B_TILE * 2);
        let c0 =
            (product.ptr as *mut u8).add(rb * TILE_ROWS * product.row_bytes + cb * TILE_COLS * 4);
        let c1 = c0.add(TILE_ROWS * product.row_bytes);
        let stride = product.row_bytes;
        if product.accumulate {
            load::<0>(c0, stride);
            if TWO_COLS {
                load::<1>(c0.add(TILE_COLS * 4), stride);
            }
            if TWO_ROWS {
                load::<2>(c1, stride);
                if TWO_COLS {
                    load::<3>(c1.add(TILE_COLS * 4), stride);
                }
            }
        } else {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            );
        }
        for kb in 0..left.k_blocks {
            let (a, b) = (kb * k_bytes, kb * B_TILE * 2);
            load::<4>(a0.add(a), row_bytes);
            load::<6>(b0.add(b), 64);
            asm!("tdpbf16ps tmm0, tmm4, tmm6", options(nostack, nomem));
            if TWO_COLS {
                load::<7>(b1.add(b), 64);
                asm!("tdpbf16ps tmm1, tmm4, tmm7", options(nostack, nomem));
            }
            if TWO_ROWS {
                load::<5>(a1.add(a), row_bytes);
                asm!("tdpbf16ps tmm2, tmm5, tmm6", options(nostack, nomem));
                if TWO_COLS {
                    asm!("tdpbf16ps tmm3, tmm5, tmm7", options(nostack, nomem));
                }
            }
        }
        asm!("tilestored [{p} + {s}*1], tmm0", p = in(reg) c0, s = in(reg) stride, options(nostack));
        if TWO_COLS {
            let p = c0.add(TILE_COLS * 4);
            asm!("tilestored [{p} + {s}*1], tmm1", p = in(reg) p, s = in(reg) stride, options(nostack));
        }
        if TWO_ROWS {
            asm!("tilestored [{p} + {s}*1], tmm2", p = in(reg) c1, s = in(reg) stride, options(nostack));
            if TWO_COLS {
                let p = c1.add(TILE_COLS * 4);
                asm!("tilestored [{p} + {s}*1], tmm3", p = in(reg) p, s = in(reg) stride, options(nostack));
            }
        }
    }
}

/// Loads 16 rows of 64 bytes, `stride` bytes apart, into tile `T`.
#[inline(always)]
unsafe fn load<const T: u8>(ptr: *const u8, stride: usize) {
    // SAFETY: the caller keeps the 16 rows inside its operand.
    unsafe {
        asm!(
            "tileloadd tmm{t}, [{p} + {s}*1]",
            t = const T,
            p = in(reg) ptr,
            s = in(reg) stride,
            options(nostack, readonly)
        )
    };
}
