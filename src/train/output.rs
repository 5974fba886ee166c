//! The output folder of a run: checked before training starts, so that an unwritable or full
//! disk stops the run at once instead of after the first epoch.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Why the output folder cannot be written to.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The output folder cannot be written to.
    #[error("cannot write to the output folder {path}: {source}")]
    NotWritable {
        /// The output folder.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: std::io::Error,
    },
    /// The disk holding the output folder has too little free space for a checkpoint.
    #[error(
        "the output folder {path} has {available} MB free; a checkpoint needs about {needed} MB \
         (free some space or choose another --out)"
    )]
    NoSpace {
        /// The output folder.
        path: PathBuf,
        /// Free space on its disk, in MB.
        available: u64,
        /// Space one checkpoint needs, in MB.
        needed: u64,
    },
}

/// Creates `out` if needed and checks that a file can be written, synced, renamed and removed
/// there, and that the disk has room for `needed_bytes` (where the system tells free space).
pub fn check_writable(out: &Path, needed_bytes: u64) -> Result<(), OutputError> {
    let not_writable = |source| OutputError::NotWritable {
        path: out.to_path_buf(),
        source,
    };
    fs::create_dir_all(out).map_err(not_writable)?;
    let probe = out.join(format!(".write-test-{}", std::process::id()));
    let renamed = out.join(format!(".write-test-{}-renamed", std::process::id()));
    let result = (|| {
        let mut file = fs::File::create(&probe)?;
        file.write_all(b"googlenet train: checking that this folder is writable\n")?;
        file.sync_all()?;
        fs::rename(&probe, &renamed)?;
        fs::remove_file(&renamed)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&probe);
        let _ = fs::remove_file(&renamed);
    }
    result.map_err(not_writable)?;
    if let Some(available) = available_bytes(out)
        && available < needed_bytes
    {
        return Err(OutputError::NoSpace {
            path: out.to_path_buf(),
            available: available / 1_000_000,
            needed: needed_bytes.div_ceil(1_000_000),
        });
    }
    Ok(())
}

/// Bytes available to this user on the file system holding `path`.
#[cfg(unix)]
pub fn available_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stats = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `stats` is a properly sized buffer
    // that statvfs fills on success; it is read only then.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), stats.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it initialised the buffer.
    let stats = unsafe { stats.assume_init() };
    // The field types differ between platforms (u32 or u64).
    #[allow(clippy::unnecessary_cast)]
    Some(stats.f_bavail as u64 * stats.f_frsize as u64)
}

/// Free space is not known on this platform.
#[cfg(not(unix))]
pub fn available_bytes(_path: &Path) -> Option<u64> {
    None
}
