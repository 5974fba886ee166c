//! Evaluation as the paper did it (section 7): which crops to take of each test image
//! ([`crops`]), how their softmax outputs and those of several models are averaged
//! ([`average`]), and top-1/top-5 accounting ([`metrics`]).

pub mod average;
pub mod calibration;
pub mod crops;
pub mod metrics;
pub mod predict;

pub use average::{AverageError, average_members, crop_probabilities, softmax_rows};
pub use crops::{CropBox, CropError, CropScheme, Rect, Size, crop_boxes};
pub use metrics::{Metrics, MetricsError, MetricsReport, top_k};
