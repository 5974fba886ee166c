//! A resumed run starts every rank from rank 0's latest checkpoint, sent over the job, so that
//! the output folder need not be shared between machines.

use std::fs;
use std::path::{Path, PathBuf};

use super::collective::Collective;
use super::error::{DistributedError, io};
use crate::train::checkpoint::Checkpoints;

/// The checkpoint a resumed run starts from, as this rank can read it: rank 0's own folder, or
/// on the other ranks a private copy of it received from rank 0 (removed when dropped), so that
/// the output folder need not be shared between machines.
pub struct SharedCheckpoint {
    /// Where this rank reads the checkpoint.
    pub path: PathBuf,
    copy: Option<PathBuf>,
}

impl Drop for SharedCheckpoint {
    fn drop(&mut self) {
        if let Some(copy) = &self.copy {
            let _ = fs::remove_dir_all(copy);
        }
    }
}

/// Rank 0's latest checkpoint of `checkpoints` on every rank (`None` everywhere if it has
/// none).
pub fn share_latest(
    world: &Collective,
    checkpoints: &Checkpoints,
) -> Result<Option<SharedCheckpoint>, DistributedError> {
    let latest = || {
        checkpoints
            .latest()
            .map_err(|e| DistributedError::Transfer {
                what: "latest checkpoint",
                action: "found",
                reason: e.to_string(),
            })
    };
    if !world.is_distributed() {
        return Ok(latest()?.map(|path| SharedCheckpoint { path, copy: None }));
    }
    let mut packed = Vec::new();
    let mut own = None;
    if world.is_root() {
        own = latest()?;
        if let Some(dir) = &own {
            packed = pack_folder(dir)?;
        }
    }
    world.broadcast_bytes(&mut packed);
    if world.is_root() {
        return Ok(own.map(|path| SharedCheckpoint { path, copy: None }));
    }
    if packed.is_empty() {
        return Ok(None);
    }
    let copy = std::env::temp_dir().join(format!(
        "googlenet-rank{}-{}",
        world.rank(),
        std::process::id()
    ));
    let path = unpack_folder(&packed, &copy)?;
    Ok(Some(SharedCheckpoint {
        path,
        copy: Some(copy),
    }))
}

/// A folder's name and files as one buffer: lengths as little-endian u64, then bytes.
fn pack_folder(dir: &Path) -> Result<Vec<u8>, DistributedError> {
    let mut out = Vec::new();
    let put = |bytes: &[u8], out: &mut Vec<u8>| {
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("checkpoint");
    put(name.as_bytes(), &mut out);
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in files {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        put(name.as_bytes(), &mut out);
        put(&fs::read(&file).map_err(io(&file))?, &mut out);
    }
    Ok(out)
}

/// Writes what [`pack_folder`] packed under `parent`; returns the folder.
fn unpack_folder(packed: &[u8], parent: &Path) -> Result<PathBuf, DistributedError> {
    let mut rest = packed;
    let name = String::from_utf8_lossy(take_field(&mut rest)?).into_owned();
    let dir = parent.join(name);
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    while !rest.is_empty() {
        let file = dir.join(String::from_utf8_lossy(take_field(&mut rest)?).as_ref());
        let bytes = take_field(&mut rest)?;
        fs::write(&file, bytes).map_err(io(&file))?;
    }
    Ok(dir)
}

/// The next length-prefixed field of `rest`, which moves past it.
fn take_field<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], DistributedError> {
    let corrupt = || DistributedError::Transfer {
        what: "latest checkpoint",
        action: "received whole",
        reason: "the packed folder ends early".into(),
    };
    let (len, tail) = rest.split_at_checked(8).ok_or_else(corrupt)?;
    let len = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
    let (bytes, tail) = tail.split_at_checked(len).ok_or_else(corrupt)?;
    *rest = tail;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_folder_unpacks_to_the_same_files_and_a_cut_one_is_refused() {
        let root = std::env::temp_dir().join(format!("googlenet-pack-{}", std::process::id()));
        let source = root.join("step-000000007");
        fs::create_dir_all(&source).unwrap();
        fs::write(source.join("model.bpk"), [1u8, 2, 3, 0, 255]).unwrap();
        fs::write(source.join("state.json"), b"{}").unwrap();
        fs::write(source.join("empty"), b"").unwrap();
        let packed = pack_folder(&source).unwrap();
        let copy = unpack_folder(&packed, &root.join("copy")).unwrap();
        assert_eq!(copy.file_name().unwrap(), "step-000000007");
        for name in ["model.bpk", "state.json", "empty"] {
            assert_eq!(
                fs::read(copy.join(name)).unwrap(),
                fs::read(source.join(name)).unwrap()
            );
        }
        let cut = unpack_folder(&packed[..packed.len() - 1], &root.join("cut"));
        assert!(matches!(cut, Err(DistributedError::Transfer { .. })));
        fs::remove_dir_all(&root).unwrap();
    }
}
