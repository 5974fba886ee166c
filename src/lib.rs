//! GoogLeNet (Inception v1, Szegedy et al., "Going Deeper with Convolutions", 2014) on burn.
//!
//! - [`model`]: the network in its `paper`, `torchvision` and `keras-seed` variants, and its summary.
//! - [`weights`]: reading and writing PyTorch `.pth`, safetensors and Keras-layout weights.
//! - [`data`]: image decoding, training and evaluation transforms, ImageNet-layout datasets, the loader.
//! - [`eval`]: the paper's multi-crop evaluation (section 7): crop geometry, softmax averaging, metrics.
//! - [`export`]: the inference network as ONNX.
//! - [`device`]: `cpu`, `cuda:N`, `wgpu[:N]` as the command line names them.
//! - [`train`]: training with the paper's, the seed's or Caffe's recipe, resumable checkpoints;
//!   [`train::data_parallel`] spreads a batch over several devices.
//! - [`serve`]: the HTTP classification service (`googlenet serve`).

pub mod cli;
pub mod data;
pub mod device;
pub mod eval;
pub mod export;
pub mod model;
pub mod serve;
pub mod train;
pub mod weights;
