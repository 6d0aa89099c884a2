//! The CA's files on disk: a private directory, and files replaced whole
//! (written to a temporary file created with their final mode, then renamed
//! over the old one), so that a reader never sees half a key and the key is
//! never readable by others, not even for a moment.

use std::fs::Permissions;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::CaError;

/// The CA directory's mode: only its owner may list or enter it.
pub const DIR_MODE: u32 = 0o700;
/// The private key's mode: only its owner may read it.
pub const KEY_MODE: u32 = 0o600;
/// The certificate's mode: it is public (it goes into trust stores).
pub const CERT_MODE: u32 = 0o644;

/// Creates `dir` (and its missing parents) with [`DIR_MODE`].
pub fn create_private_dir(dir: &Path) -> Result<(), CaError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .map_err(|source| CaError::CreateDir {
            path: dir.to_owned(),
            source,
        })
}

/// Reads `path`, or `None` when it does not exist.
pub fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, CaError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CaError::Read {
            path: path.to_owned(),
            source,
        }),
    }
}

/// The permission bits of `path` (the file's own, without the file type).
pub fn mode_of(path: &Path) -> Result<u32, CaError> {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o7777)
        .map_err(|source| CaError::Read {
            path: path.to_owned(),
            source,
        })
}

/// A file written in full next to its destination, not yet in place.
#[derive(Debug)]
pub struct Staged {
    file: tempfile::NamedTempFile,
    dest: PathBuf,
}

/// Writes `contents` to a new temporary file in `dest`'s directory, created
/// with `mode` (the umask can only narrow it) and flushed to disk.
pub fn stage(dest: &Path, contents: &[u8], mode: u32) -> Result<Staged, CaError> {
    let dir = dest.parent().unwrap_or(Path::new("."));
    let write_err = |source| CaError::Write {
        path: dest.to_owned(),
        source,
    };
    let mut file = tempfile::Builder::new()
        .prefix(".sockhost-ca-")
        .permissions(Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(write_err)?;
    file.write_all(contents).map_err(write_err)?;
    file.as_file().sync_all().map_err(write_err)?;
    Ok(Staged {
        file,
        dest: dest.to_owned(),
    })
}

impl Staged {
    /// Renames the file over its destination (atomic on one filesystem).
    pub fn commit(self) -> Result<(), CaError> {
        let dest = self.dest;
        self.file
            .persist(&dest)
            .map(drop)
            .map_err(|e| CaError::Write {
                path: dest,
                source: e.error,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_files_get_their_mode_and_replace_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a").join("ca");
        create_private_dir(&sub).unwrap();
        assert_eq!(mode_of(&sub).unwrap(), DIR_MODE);
        let key = sub.join("key.pem");
        std::fs::write(&key, b"old").unwrap();
        let staged = stage(&key, b"new", KEY_MODE).unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"old", "not in place yet");
        staged.commit().unwrap();
        assert_eq!(std::fs::read(&key).unwrap(), b"new");
        assert_eq!(mode_of(&key).unwrap(), KEY_MODE);
        assert_eq!(read_if_exists(&sub.join("none")).unwrap(), None);
        // Nothing left behind but the file itself.
        assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 1);
    }
}
