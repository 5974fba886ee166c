//! Training (section 6 of the paper).
//!
//! - [`data_parallel`]: one replica per device, gradients summed by burn's multi-device optimizer step.

pub mod data_parallel;
