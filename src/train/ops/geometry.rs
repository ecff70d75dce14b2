//! The shape of a convolution, in the terms the kernels need (shared by [`conv`](super::conv)
//! and [`winograd`](super::winograd)).

/// The shape of one 2-D convolution (groups = 1), in the terms the kernels need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    pub batch: usize,
    pub channels_in: usize,
    pub channels_out: usize,
    /// `[height, width]` of the input.
    pub input: [usize; 2],
    /// `[height, width]` of the output.
    pub output: [usize; 2],
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// Padding before the first row and column (the end padding only shows in `output`).
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl ConvGeometry {
    pub(super) fn kernel_len(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }

    pub(super) fn output_pixels(&self) -> usize {
        self.output[0] * self.output[1]
    }

    pub(super) fn input_pixels(&self) -> usize {
        self.input[0] * self.input[1]
    }
}
