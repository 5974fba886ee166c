//! Image data for training and evaluation.

pub mod synthetic;
