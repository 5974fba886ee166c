//! What `--weights` names: a file, a URL, or pretrained weights by name (torchvision's
//! `GoogLeNet_Weights.IMAGENET1K_V1`), the URL and name ones kept in torch's cache
//! ([`download`]).

use std::path::PathBuf;

use super::download::{self, DownloadError};
use crate::model::Variant;

/// Pretrained weights the program knows by name.
#[derive(Debug)]
pub struct Pretrained {
    /// The name `--weights` takes.
    pub name: &'static str,
    /// Other names for it (torchvision's enum members), matched without regard to case.
    pub aliases: &'static [&'static str],
    /// Where the file is published; its name carries the sha256 prefix checked on download.
    pub url: &'static str,
    /// The variant the weights belong to.
    pub variant: Variant,
    /// Whether the weights expect torchvision's `transform_input` (ImageNet-normalised input
    /// mapped to the [-1, 1] scaling the original weights were trained with).
    pub transform_input: bool,
    /// One line for `googlenet weights list`.
    pub about: &'static str,
}

/// Every name `--weights` knows.
pub const PRETRAINED: &[Pretrained] = &[Pretrained {
    name: "torchvision",
    aliases: &["IMAGENET1K_V1", "DEFAULT"],
    url: "https://download.pytorch.org/models/googlenet-1378be20.pth",
    variant: Variant::Torchvision,
    transform_input: true,
    about: "torchvision's GoogLeNet_Weights.IMAGENET1K_V1 (ImageNet-1k; torchvision reports \
            69.778% top-1, 89.530% top-5 with one 224 crop)",
}];

/// Base URL that replaces the folder of every named file's URL (file name and hash check kept):
/// for a mirror inside a network without access to download.pytorch.org.
pub const MIRROR_ENV: &str = "GOOGLENET_WEIGHTS_MIRROR";

impl Pretrained {
    /// The pretrained weights called `name` (or one of its aliases), if any.
    pub fn find(name: &str) -> Option<&'static Pretrained> {
        PRETRAINED.iter().find(|p| {
            p.name.eq_ignore_ascii_case(name)
                || p.aliases.iter().any(|a| a.eq_ignore_ascii_case(name))
        })
    }

    /// The file name in the cache (the URL's).
    pub fn file_name(&self) -> &'static str {
        self.url.rsplit('/').next().expect("the URL has a path")
    }

    /// The URL to download from: the official one, or the mirror's [`MIRROR_ENV`] names.
    pub fn download_url(&self) -> String {
        match std::env::var(MIRROR_ENV) {
            Ok(base) if !base.is_empty() => {
                format!("{}/{}", base.trim_end_matches('/'), self.file_name())
            }
            _ => self.url.to_string(),
        }
    }
}

/// What `--weights` names; parsed from the argument (a URL by its scheme, then a known name,
/// else a path: write `./torchvision` for a file of that name).
#[derive(Clone, Debug)]
pub enum WeightsSource {
    /// A weight file on disk.
    File(PathBuf),
    /// An `http://` or `https://` URL, cached under its file name.
    Url(String),
    /// Weights known by name ([`PRETRAINED`]).
    Pretrained(&'static Pretrained),
}

impl std::str::FromStr for WeightsSource {
    type Err = std::convert::Infallible;

    fn from_str(arg: &str) -> Result<Self, Self::Err> {
        let lower = arg.to_ascii_lowercase();
        Ok(
            if lower.starts_with("http://") || lower.starts_with("https://") {
                WeightsSource::Url(arg.to_string())
            } else if let Some(p) = Pretrained::find(arg) {
                WeightsSource::Pretrained(p)
            } else {
                WeightsSource::File(PathBuf::from(arg))
            },
        )
    }
}

impl std::fmt::Display for WeightsSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WeightsSource::File(path) => write!(f, "{}", path.display()),
            WeightsSource::Url(url) => f.write_str(url),
            WeightsSource::Pretrained(p) => f.write_str(p.name),
        }
    }
}

impl WeightsSource {
    /// The file on disk: the path itself, or the cached copy of a URL or name, downloaded into
    /// torch's cache first when absent (progress bar on a terminal when `progress`).
    pub fn resolve(&self, progress: bool) -> Result<PathBuf, DownloadError> {
        match self {
            WeightsSource::File(path) => Ok(path.clone()),
            WeightsSource::Url(url) => {
                download::cached_or_download(url, &download::cache_dir()?, progress)
            }
            WeightsSource::Pretrained(p) => {
                download::cached_or_download(&p.download_url(), &download::cache_dir()?, progress)
            }
        }
    }

    /// The variant a named file implies (files and URLs say it in their metadata, or not at all).
    pub fn variant(&self) -> Option<Variant> {
        match self {
            WeightsSource::Pretrained(p) => Some(p.variant),
            _ => None,
        }
    }

    /// Whether the named weights expect torchvision's `transform_input`.
    pub fn transform_input(&self) -> bool {
        matches!(self, WeightsSource::Pretrained(p) if p.transform_input)
    }
}
