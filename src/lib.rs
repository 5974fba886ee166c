//! GoogLeNet (Inception v1, Szegedy et al., "Going Deeper with Convolutions", 2014) on burn.
//!
//! - [`model`]: the network in its `paper`, `torchvision` and `keras-seed` variants, and its summary.
//! - [`weights`]: reading and writing PyTorch `.pth`, safetensors and Keras-layout weights.

pub mod cli;
pub mod model;
pub mod weights;
