//! `--device`: which burn device a command runs on.

use anyhow::{Result, bail};
use burn::prelude::Device;

/// `cpu` (burn's pure-Rust flex backend) or `cuda:N` (builds with the `cuda` feature).
pub fn parse(name: &str) -> Result<Device> {
    if name == "cpu" {
        return Ok(Device::flex());
    }
    if let Some(index) = name
        .strip_prefix("cuda:")
        .or((name == "cuda").then_some("0"))
    {
        let Ok(index) = index.parse::<usize>() else {
            bail!("--device {name}: expected cuda:N with N a GPU index");
        };
        return cuda(index);
    }
    bail!("--device {name}: expected cpu or cuda:N")
}

#[cfg(feature = "cuda")]
fn cuda(index: usize) -> Result<Device> {
    Ok(Device::cuda(index))
}

#[cfg(not(feature = "cuda"))]
fn cuda(index: usize) -> Result<Device> {
    bail!("--device cuda:{index}: this build has no CUDA support (rebuild with --features cuda)")
}
