//! The window a convolution slides over a dense NHWC map, and the two ways patches move between
//! the map and a matrix: gathered into rows (im2col) and added back onto the map (col2im).

use std::ops::Range;

use crate::engine::map::Shape;

/// A square window sliding over a dense NHWC map: what im2col and col2im need to place a patch.
#[derive(Clone, Copy, Debug)]
pub(super) struct Window {
    pub(super) kernel: usize,
    pub(super) stride: usize,
    pub(super) pad: usize,
    pub(super) input: Shape,
    /// Output rows and columns.
    pub(super) out: [usize; 2],
}

impl Window {
    /// Output pixels (rows of the product).
    pub(super) fn pixels(&self) -> usize {
        self.input.n * self.out[0] * self.out[1]
    }

    /// Length of one patch: kernel² · input channels.
    pub(super) fn depth(&self) -> usize {
        self.kernel * self.kernel * self.input.c
    }

    /// Whether the patches are the input pixels themselves (1x1, stride 1, no padding).
    pub(super) fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.pad == 0
    }

    /// Where output pixel `p`'s window lies: its image, its first input row (negative in the
    /// padding), the input columns it covers, and the window column of the first of them.
    pub(super) fn place(&self, p: usize) -> (usize, isize, Range<usize>, usize) {
        let [oh, ow] = self.out;
        let image = p / (oh * ow);
        let y0 = (p / ow % oh * self.stride) as isize - self.pad as isize;
        let x0 = (p % ow * self.stride) as isize - self.pad as isize;
        let end = (x0 + self.kernel as isize).clamp(0, self.input.w as isize) as usize;
        let start = (x0.max(0) as usize).min(end);
        let first = (start as isize - x0) as usize;
        (image, y0, start..end, first)
    }
}

/// Fills one row per output pixel in `rows` with its receptive field in (kernel row, kernel
/// column, channel) order, zeros where the window hangs over the border.
pub(super) fn gather(x: &[f32], window: &Window, rows: Range<usize>, out: &mut [f32]) {
    let copy = |src: &[f32], dst: &mut [f32]| dst.copy_from_slice(src);
    gather_with(x, window, rows, window.depth(), out, copy);
}

/// [`gather`] into rows `row_len` values apart (zeros after the receptive field), each run of
/// input values moved by `copy` (a copy, or a rounding to bf16).
pub(super) fn gather_with<T: Copy + Default>(
    x: &[f32],
    window: &Window,
    rows: Range<usize>,
    row_len: usize,
    out: &mut [T],
    copy: impl Fn(&[f32], &mut [T]),
) {
    let Shape { h, w, c, .. } = window.input;
    let k = window.kernel;
    let depth = window.depth();
    assert!(row_len >= depth, "rows shorter than a patch");
    for (p, row) in rows.zip(out.chunks_exact_mut(row_len)) {
        let (patch, tail) = row.split_at_mut(depth);
        tail.fill(T::default());
        let (image, y0, columns, first) = window.place(p);
        for ky in 0..k {
            let y = y0 + ky as isize;
            let line = &mut patch[ky * k * c..][..k * c];
            if y < 0 || y >= h as isize || columns.is_empty() {
                line.fill(T::default());
                continue;
            }
            // The window's columns inside the input lie side by side in NHWC: one copy.
            let start = ((image * h + y as usize) * w + columns.start) * c;
            let (before, rest) = line.split_at_mut(first * c);
            let (inside, after) = rest.split_at_mut(columns.len() * c);
            before.fill(T::default());
            copy(&x[start..][..columns.len() * c], inside);
            after.fill(T::default());
        }
    }
}

/// The inverse of [`gather`]: adds each patch in `patches` (one per output pixel in `rows`) onto
/// the input pixels under its window, dropping what falls in the padding.
pub(super) fn scatter(dx: &mut [f32], window: &Window, rows: Range<usize>, patches: &[f32]) {
    let Shape { h, w, c, .. } = window.input;
    let k = window.kernel;
    for (p, patch) in rows.zip(patches.chunks_exact(window.depth())) {
        let (image, y0, columns, first) = window.place(p);
        for ky in 0..k {
            let y = y0 + ky as isize;
            if y < 0 || y >= h as isize || columns.is_empty() {
                continue;
            }
            let start = ((image * h + y as usize) * w + columns.start) * c;
            let line = &patch[(ky * k + first) * c..][..columns.len() * c];
            dx[start..][..line.len()]
                .iter_mut()
                .zip(line)
                .for_each(|(d, &v)| *d += v);
        }
    }
}
