//! GoogLeNet (Inception v1, Szegedy et al., "Going Deeper with Convolutions", 2014) on burn.
//!
//! Quick start: the five most probable ImageNet classes of a photo with torchvision's pretrained
//! weights (downloaded once into torch's cache, `~/.cache/torch/hub/checkpoints`).
//!
//! ```
//! use burn::prelude::Device;
//! use googlenet::data::{ClassTable, EvalTransform, image::load_rgb};
//! use googlenet::engine::InferenceNet;
//! use googlenet::eval::predict::{probabilities, top_predictions};
//! use googlenet::weights::{WeightsSource, load_model};
//!
//! let source: WeightsSource = "torchvision".parse()?; // or a URL, or a .pth/.safetensors file
//! # // The test reads ../shared's torchvision-layout weights instead of downloading.
//! # let source = WeightsSource::File("../shared/reference/torchvision/torchvision_seed1234_calibrated.pth".into());
//! # let photo = "../shared/reference/inputs/2_hymenoptera_val_ant.png";
//! let variant = Some(googlenet::model::Variant::Torchvision); // a .pth does not say its own
//! let loaded = load_model(&source, variant, 224, &Device::flex())?; // the file read once
//! let net = InferenceNet::from_model(&loaded.model)?;
//! let image = EvalTransform::new(256, 224).apply(&load_rgb(photo.as_ref())?);
//! let probs = probabilities(&net, &[image])?;
//! for p in top_predictions(&probs, 5, &ClassTable::imagenet()) {
//!     println!("{:5.1}%  {}", p.prob * 100.0, p.name);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The parts:
//! - [`model`]: the network in its `paper`, `torchvision` and `keras-seed` variants, and its summary.
//! - [`engine`]: the CPU engines of our own for a [`model::GoogLeNet`]'s weights: inference, and
//!   training (forward, backward and gradients for burn's optimiser), NHWC with fused kernels.
//! - [`weights`]: reading and writing PyTorch `.pth`, safetensors and Keras-layout weights;
//!   pretrained weights by name or URL ([`weights::WeightsSource`]), each file read once
//!   ([`weights::WeightsFile`]), a model from any of them in one call ([`weights::load_model`]).
//! - [`data`]: image decoding, training and evaluation transforms, ImageNet-layout datasets, the loader.
//! - [`eval`]: the paper's multi-crop evaluation (section 7): crop geometry, softmax averaging, metrics.
//! - [`export`]: the inference network as ONNX.
//! - [`device`]: `cpu`, `cuda:N`, `wgpu[:N]` as the command line names them; [`cuda_probe`]: what
//!   a CUDA device needs at run time (driver, NVRTC, headers), checked before burn opens it.
//! - [`train`]: training with the paper's, the seed's or Caffe's recipe, resumable checkpoints;
//!   [`train::data_parallel`] spreads a batch over several devices.
//! - [`serve`]: the HTTP classification service (`googlenet serve`).
//! - [`cli`]: the `googlenet` command line.
//!
//! `examples/` holds short programs: classify, fine-tune, export to ONNX.

#![warn(missing_docs)]

pub mod cli;
pub mod cuda_probe;
pub mod data;
pub mod device;
pub mod engine;
pub mod eval;
pub mod export;
pub mod model;
pub mod serve;
pub mod train;
pub mod weights;
