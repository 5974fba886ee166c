//! Where a sliding window (convolution or pool) lies on its input, with each layer's padding rule.

use std::ops::Range;

use crate::model::pool::{Pool, same_padding};

/// A square window of side `kernel` moved by `stride`, starting `pad` pixels before the input
/// (in each direction), giving `out` positions per side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    /// Side of the window.
    pub kernel: usize,
    /// Step between positions.
    pub stride: usize,
    /// Padding before the input, (rows, columns).
    pub pad: [usize; 2],
    /// Positions per side, (rows, columns).
    pub out: [usize; 2],
}

impl Window {
    /// The window of a max pool on an `h` x `w` input, as [`Pool::forward`] places it; `None` for
    /// average pools or an input too small.
    pub fn max_pool(pool: Pool, [h, w]: [usize; 2]) -> Option<Window> {
        let (kernel, stride, pad) = match pool {
            Pool::MaxCeil {
                kernel,
                stride,
                padding,
            } => (kernel, stride, [padding; 2]),
            Pool::MaxSame { kernel, stride } => (
                kernel,
                stride,
                [
                    same_padding(h, kernel, stride).0,
                    same_padding(w, kernel, stride).0,
                ],
            ),
            Pool::Avg { .. } | Pool::AdaptiveAvg { .. } => return None,
        };
        Some(Window {
            kernel,
            stride,
            pad,
            out: [pool.output_size(h)?, pool.output_size(w)?],
        })
    }

    /// Input rows (`axis` 0) or columns (`axis` 1) under output position `o`, clipped to the
    /// input's `size`: padding never contributes to a max pool and is zero in a convolution.
    pub fn span(&self, axis: usize, o: usize, size: usize) -> Range<usize> {
        let start = (o * self.stride) as isize - self.pad[axis] as isize;
        let end = (start + self.kernel as isize).clamp(0, size as isize) as usize;
        (start.max(0) as usize).min(end)..end
    }
}
