//! Weight files by URL, the way `torch.hub.load_state_dict_from_url` keeps them: in
//! `$TORCH_HOME/hub/checkpoints/` under the URL's file name, so a file PyTorch already downloaded
//! is used as it is; a missing one is downloaded into a temporary file beside it, checked against
//! the sha256 prefix its name carries (torch.hub's `check_hash`), and renamed into place.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// Connecting, name resolution and each read give up after this long, so that a machine without
/// network gets its error within seconds instead of hanging.
const NETWORK_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a weight file could not be had from its URL; every message names the URL and the path
/// where the file can be put by hand.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error(
        "cannot download {url}: {reason}\n  \
         without network, put the file at {} by hand (nothing was written there)",
        cache.display()
    )]
    /// The server could not be reached, refused the file, or the transfer broke off.
    Network {
        /// What was asked for.
        url: String,
        /// Where the file belongs in the cache.
        cache: PathBuf,
        /// What went wrong, as the HTTP client or the transfer says it.
        reason: String,
    },
    #[error(
        "{url}: the sha256 of the download is {actual}, which does not start with {expected} \
         (from the file name); the download was deleted and nothing was written at {}",
        cache.display()
    )]
    /// The download's sha256 does not start with the prefix its file name carries.
    Hash {
        /// What was downloaded.
        url: String,
        /// Where the file would have gone.
        cache: PathBuf,
        /// The prefix from the file name.
        expected: String,
        /// The sha256 of what arrived, in hex.
        actual: String,
    },
    #[error("{url}: the URL names no file to keep in the cache")]
    /// The URL ends in `/` or has no path: no file name to cache it under.
    NoFileName {
        /// The URL given.
        url: String,
    },
    #[error("no cache folder for downloaded weights: set TORCH_HOME (or XDG_CACHE_HOME, or HOME)")]
    /// Neither `TORCH_HOME`, `XDG_CACHE_HOME` nor `HOME` is set.
    NoCacheDir,
    #[error("{}: {source}", path.display())]
    /// The cache folder or the temporary file could not be written.
    Io {
        /// The file or folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// torch's cache of downloaded weights: `$TORCH_HOME/hub/checkpoints`, where `TORCH_HOME`
/// defaults to `$XDG_CACHE_HOME/torch`, then `~/.cache/torch` (as `torch.hub.get_dir`).
pub fn cache_dir() -> Result<PathBuf, DownloadError> {
    let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    let home = || var("HOME").map(PathBuf::from);
    let torch_home = match (var("TORCH_HOME"), var("XDG_CACHE_HOME")) {
        (Some(dir), _) => expand_home(PathBuf::from(dir), home()),
        (None, Some(cache)) => PathBuf::from(cache).join("torch"),
        (None, None) => home()
            .ok_or(DownloadError::NoCacheDir)?
            .join(".cache/torch"),
    };
    Ok(torch_home.join("hub").join("checkpoints"))
}

/// `~/x` to `$HOME/x`, as Python's `os.path.expanduser` does for `TORCH_HOME`.
fn expand_home(path: PathBuf, home: Option<PathBuf>) -> PathBuf {
    match (path.strip_prefix("~"), home) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path,
    }
}

/// The file name a URL's last path segment gives (query and fragment dropped).
pub fn file_name(url: &str) -> Result<String, DownloadError> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or_default();
    let after_scheme = path.split_once("://").map_or(path, |(_, rest)| rest);
    if name.is_empty() || !after_scheme.contains('/') || name == "." || name == ".." {
        return Err(DownloadError::NoFileName { url: url.into() });
    }
    Ok(name.to_string())
}

/// The sha256 prefix a file name carries, as torch.hub's `HASH_REGEX` (`-([a-f0-9]*)\.`) finds
/// it: the lowercase hex between the first `-` so followed and a `.`; `None` when there is none.
pub fn hash_prefix(name: &str) -> Option<&str> {
    name.match_indices('-').find_map(|(i, _)| {
        let rest = &name[i + 1..];
        let hex = rest
            .find(|c: char| !matches!(c, '0'..='9' | 'a'..='f'))
            .filter(|&end| rest[end..].starts_with('.'))?;
        (hex > 0).then(|| &rest[..hex])
    })
}

/// The cached copy of `url` in `cache`, downloaded first when it is not there yet (with a
/// progress bar on a terminal when `progress`).
pub fn cached_or_download(
    url: &str,
    cache: &Path,
    progress: bool,
) -> Result<PathBuf, DownloadError> {
    let target = cache.join(file_name(url)?);
    if target.is_file() {
        return Ok(target);
    }
    download(url, &target, progress)?;
    Ok(target)
}

/// Downloads `url` to `target` through a temporary file in the same folder, which is removed on
/// any failure and renamed into place once complete and checked.
pub fn download(url: &str, target: &Path, progress: bool) -> Result<(), DownloadError> {
    let network = |reason: String| DownloadError::Network {
        url: url.into(),
        cache: target.to_path_buf(),
        reason,
    };
    let dir = target.parent().unwrap_or(Path::new("."));
    let io = |path: &Path, source| DownloadError::Io {
        path: path.to_path_buf(),
        source,
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_resolve(Some(NETWORK_TIMEOUT))
        .timeout_connect(Some(NETWORK_TIMEOUT))
        .timeout_recv_response(Some(NETWORK_TIMEOUT))
        .timeout_per_read(Some(NETWORK_TIMEOUT))
        .build()
        .into();
    let mut response = agent.get(url).call().map_err(|e| network(e.to_string()))?;
    let expected_len = response.body().content_length();
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let mut partial = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".partial")
        .tempfile_in(dir)
        .map_err(|e| io(dir, e))?;
    let bar = progress_bar(expected_len, progress, &name);
    let mut hasher = Sha256::new();
    let mut reader = response.body_mut().as_reader();
    let mut buffer = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        let n = reader
            .read(&mut buffer)
            .map_err(|e| network(format!("the connection failed after {received} bytes: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        partial
            .write_all(&buffer[..n])
            .map_err(|e| io(partial.path(), e))?;
        received += n as u64;
        bar.set_position(received);
    }
    bar.finish_and_clear();
    if let Some(len) = expected_len
        && received != len
    {
        return Err(network(format!(
            "the server announced {len} bytes but sent {received}"
        )));
    }
    let actual = format!("{:x}", hasher.finalize());
    if let Some(expected) = hash_prefix(&name)
        && !actual.starts_with(expected)
    {
        return Err(DownloadError::Hash {
            url: url.into(),
            cache: target.to_path_buf(),
            expected: expected.into(),
            actual,
        });
    }
    partial
        .as_file()
        .sync_all()
        .map_err(|e| io(partial.path(), e))?;
    partial.persist(target).map_err(|e| io(target, e.error))?;
    Ok(())
}

/// Bytes, speed and ETA on stderr; hidden when `progress` is off or stderr is not a terminal.
fn progress_bar(len: Option<u64>, progress: bool, name: &str) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    if !progress {
        return ProgressBar::with_draw_target(len, ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} {bar:30} {bytes}/{total_bytes}  {bytes_per_sec}  ETA {eta}",
        )
        .expect("valid template"),
    );
    bar.set_message(format!("downloading {name}"));
    bar
}
