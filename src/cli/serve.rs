//! `googlenet serve`: the HTTP classification service (see [`crate::serve`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::device::{self, DeviceSpec};
use crate::model::Variant;
use crate::model::precision::Precision;
use crate::serve::image_input::DEFAULT_MAX_IMAGE_PIXELS;
use crate::serve::{ServeConfig, auth};
use crate::weights::WeightsSource;

/// Serves the model over HTTP: `POST /v1/classify` (an image body, or a form with `image`
/// fields) answers as `classify --json` does; `GET /` is a page to drop photos on; `/healthz`,
/// `/readyz`, `/metrics` (Prometheus) and `/v1/model` describe the service. Concurrent images are
/// batched (--max-batch, --max-delay-ms) on a dedicated inference thread; when --queue images
/// wait, new requests get 503 with Retry-After. Stops on Ctrl-C or SIGTERM after answering the
/// requests in flight. Listens on 127.0.0.1 unless told otherwise.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Weights: a file (.pth, .safetensors in PyTorch, Keras or native layout), an http(s) URL, or
    /// `torchvision` (also IMAGENET1K_V1, DEFAULT) for torchvision's pretrained file with its
    /// variant and transform_input (see `googlenet weights list`).
    #[arg(long)]
    pub weights: WeightsSource,
    /// Variant of the weights (read from a native file's metadata when absent; default paper).
    #[arg(long, value_enum)]
    pub variant: Option<Variant>,
    /// Class names file (`LOC_synset_mapping.txt` style: "wnid name" per line, in class order).
    #[arg(long)]
    pub classes: Option<PathBuf>,
    /// torchvision's transform_input (on for torchvision's official pretrained weights).
    #[arg(long)]
    pub transform_input: bool,
    /// Where the network computes: `cpu` (the fast CPU engine), `cuda:N` or `wgpu` (a binary
    /// built with that feature).
    #[arg(long, default_value = "cpu", value_parser = device::parse_available)]
    pub device: DeviceSpec,
    /// Float format of the convolutions (BatchNorm stays f32): on the CPU, f32 and bf16 run on
    /// the fast engine (bf16 fastest on AMX tiles or AMD's AVX512-BF16), f16 on burn's model; on a GPU,
    /// burn's model in any of the three the device supports.
    #[arg(long, value_enum, default_value_t = Precision::F32)]
    pub precision: Precision,
    /// Address and port to listen on (port 0: any free port; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Default shorter side after resizing (a request may ask for another with ?resize=).
    #[arg(long, default_value_t = 256)]
    pub resize: u32,
    /// Side of the center crop fed to the network.
    #[arg(long, default_value_t = 224)]
    pub crop: u32,
    /// Most images in one network pass.
    #[arg(long, default_value_t = 16)]
    pub max_batch: usize,
    /// How long the first image of a batch waits for more, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub max_delay_ms: u64,
    /// Most images admitted and not yet answered; beyond it requests get 503.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Inference threads; 0 = one per core.
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Largest request body: bytes, or with a unit (KiB, MiB, GiB, KB, MB, GB).
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    pub max_body: u64,
    /// Largest image (width x height) read from its header before decoding; default twice
    /// Pillow's decompression-bomb limit.
    #[arg(long, default_value_t = DEFAULT_MAX_IMAGE_PIXELS)]
    pub max_image_pixels: u64,
    /// Most images in one multipart request.
    #[arg(long, default_value_t = 16)]
    pub max_images: usize,
    /// Seconds a client has to send a request's headers (also how long an idle kept-alive
    /// connection stays open).
    #[arg(long, default_value_t = 10)]
    pub header_timeout: u64,
    /// Seconds a client has to send a request's body.
    #[arg(long, default_value_t = 30)]
    pub body_timeout: u64,
    /// Most connections open at once.
    #[arg(long, default_value_t = 256)]
    pub max_connections: usize,
    /// Require `Authorization: Bearer KEY` on /v1 routes (it shows in the process list: prefer
    /// --api-key-file).
    #[arg(long, conflicts_with = "api_key_file")]
    pub api_key: Option<String>,
    /// Read the API key from the first line of this file.
    #[arg(long)]
    pub api_key_file: Option<PathBuf>,
    /// Allow browser pages from this origin (e.g. https://example.org) to call the service;
    /// without it, no cross-origin access.
    #[arg(long)]
    pub cors: Option<String>,
}

/// Runs `googlenet serve`: the HTTP classification service, until it is stopped.
pub fn run(args: ServeArgs) -> Result<ExitCode> {
    anyhow::ensure!(args.max_batch > 0, "--max-batch must be at least 1");
    anyhow::ensure!(args.queue > 0, "--queue must be at least 1");
    anyhow::ensure!(args.max_images > 0, "--max-images must be at least 1");
    let api_key = match (&args.api_key, &args.api_key_file) {
        (Some(key), _) => {
            anyhow::ensure!(!key.trim().is_empty(), "--api-key is empty");
            Some(key.trim().to_string())
        }
        (None, Some(file)) => Some(auth::read_key_file(file)?),
        (None, None) => None,
    };
    crate::serve::run(ServeConfig {
        weights: args.weights,
        variant: args.variant,
        classes: args.classes,
        transform_input: args.transform_input,
        device: args.device,
        precision: args.precision,
        listen: args.listen,
        resize: args.resize,
        crop: args.crop,
        max_batch: args.max_batch,
        max_delay: Duration::from_millis(args.max_delay_ms),
        queue: args.queue,
        threads: args.threads,
        max_body: args.max_body,
        max_image_pixels: args.max_image_pixels,
        max_images: args.max_images,
        header_timeout: Duration::from_secs(args.header_timeout.max(1)),
        body_timeout: Duration::from_secs(args.body_timeout.max(1)),
        max_connections: args.max_connections,
        api_key,
        cors_origin: args.cors,
    })?;
    Ok(ExitCode::SUCCESS)
}

/// `16MiB`, `500KB`, `1048576`: a size in bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size (e.g. 16MiB, 500KB, 1048576)"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "kib" => 1 << 10,
        "mb" => 1_000_000,
        "mib" => 1 << 20,
        "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} (KiB, MiB, GiB, KB, MB, GB)"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}
