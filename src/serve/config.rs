//! Everything `googlenet serve` is told at start-up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::device::DeviceSpec;
use crate::model::Variant;
use crate::model::precision::Precision;
use crate::weights::WeightsSource;

/// The service's settings (the command line's `serve` options, see `googlenet serve --help`).
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// A file, an http(s) URL or a pretrained name (see `googlenet weights list`).
    pub weights: WeightsSource,
    /// The variant, when the weights file does not say.
    pub variant: Option<Variant>,
    /// A file of class names, when the weights file holds none.
    pub classes: Option<PathBuf>,
    /// torchvision's `transform_input` (on for torchvision's official pretrained weights).
    pub transform_input: bool,
    /// Where the network computes: the CPU (the fast engine in f32 and bf16), or a GPU of a build with
    /// the `cuda` or `wgpu` feature.
    pub device: DeviceSpec,
    /// The float format of the convolutions and fully connected layers.
    pub precision: Precision,
    /// Address and port the service listens on.
    pub listen: SocketAddr,
    /// Shorter side after resizing, unless a request asks for another (`?resize=`).
    pub resize: u32,
    /// Side of the center crop; the network is built for it, so every request uses it.
    pub crop: u32,
    /// Most images run through the network at once.
    pub max_batch: usize,
    /// How long the first image of a batch waits for others.
    pub max_delay: Duration,
    /// Most images admitted and not yet answered (waiting, decoding or in a batch).
    pub queue: usize,
    /// Inference threads (0: one per core).
    pub threads: usize,
    /// Largest request body in bytes.
    pub max_body: u64,
    /// Largest image, in pixels, read from its header before it is decoded.
    pub max_image_pixels: u64,
    /// Most images in one multipart request.
    pub max_images: usize,
    /// How long a client may take to send a request's headers (and to start the next request on
    /// a kept-alive connection).
    pub header_timeout: Duration,
    /// How long a client may take to send a request's body.
    pub body_timeout: Duration,
    /// Most connections open at once; further clients wait in the kernel's accept queue.
    pub max_connections: usize,
    /// The bearer token inference routes require, if any.
    pub api_key: Option<String>,
    /// The one origin allowed to call the service from a browser page of another origin.
    pub cors_origin: Option<String>,
}
