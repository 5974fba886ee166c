//! Feature maps in NHWC layout: batch, rows, columns, channels, the channels of one pixel side by side.

/// The shape of an NHWC feature map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Shape {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
}

impl Shape {
    pub fn pixels(&self) -> usize {
        self.n * self.h * self.w
    }

    pub fn len(&self) -> usize {
        self.pixels() * self.c
    }

    pub fn with_channels(self, c: usize) -> Shape {
        Shape { c, ..self }
    }
}

/// Channels `offset..offset + shape.c` of an NHWC buffer whose pixels are `stride` floats apart;
/// a branch of an inception module reads its slice of a wider buffer this way.
#[derive(Clone, Copy)]
pub(crate) struct View<'a> {
    pub data: &'a [f32],
    pub shape: Shape,
    pub stride: usize,
    pub offset: usize,
}

impl<'a> View<'a> {
    /// A whole, densely packed map.
    pub fn dense(data: &'a [f32], shape: Shape) -> Self {
        Self::channels(data, shape, shape.c, 0)
    }

    /// Channels `offset..offset + shape.c` of pixels `stride` floats apart.
    pub fn channels(data: &'a [f32], shape: Shape, stride: usize, offset: usize) -> Self {
        assert!(offset + shape.c <= stride, "channel slice past the pixel");
        assert!(
            data.len() >= shape.pixels() * stride,
            "buffer shorter than the map"
        );
        Self {
            data,
            shape,
            stride,
            offset,
        }
    }

    /// The channels of pixel (`row`, `col`) of image `image`.
    pub fn pixel(&self, image: usize, row: usize, col: usize) -> &'a [f32] {
        let p = (image * self.shape.h + row) * self.shape.w + col;
        &self.data[p * self.stride + self.offset..][..self.shape.c]
    }
}

/// Grows `buffer` to at least `len` floats; a buffer is only ever allocated once per size.
pub(crate) fn grow(buffer: &mut Vec<f32>, len: usize) {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
}
