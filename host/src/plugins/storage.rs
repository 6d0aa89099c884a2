//! A plugin's key-value storage: one cap-std directory per plugin under the
//! host's data directory, with the manifest's quota enforced on every write.
//!
//! Each key is a file. Keys are restricted to a safe charset, so a key can
//! never name a path outside the directory; cap-std enforces that anyway.

use std::io::{self, Read, Write};

use cap_std::fs::{Dir, OpenOptions};

/// Longest key, in bytes.
pub const MAX_KEY_LEN: usize = 128;
/// Largest single value, in bytes.
pub const MAX_VALUE_LEN: usize = 1 << 20;
/// Most keys one plugin may hold, whatever its quota: bounds `keys()`.
pub const MAX_KEYS: usize = 10_000;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StorageError {
    /// The write would exceed the quota.
    #[error("storage quota of {quota} bytes exceeded")]
    QuotaExceeded {
        /// The plugin's quota.
        quota: u64,
    },
    /// The key is empty, too long or has characters outside `[A-Za-z0-9._-]`
    /// (or starts with `.`).
    #[error("invalid storage key")]
    InvalidKey,
    /// The value is larger than [`MAX_VALUE_LEN`].
    #[error("storage value larger than {MAX_VALUE_LEN} bytes")]
    ValueTooLarge,
    /// The directory could not be read or written.
    #[error("storage i/o: {0}")]
    Io(String),
    /// The manifest grants no storage: the interface is linked without
    /// authority, and every call ends here.
    #[error("storage not granted: plugin.toml sets no capabilities.storage-quota")]
    NotGranted,
}

impl From<io::Error> for StorageError {
    fn from(e: io::Error) -> Self {
        StorageError::Io(e.to_string())
    }
}

/// One plugin's storage.
#[derive(Debug)]
pub struct PluginStorage {
    dir: Dir,
    quota: u64,
    // Invariant: used == sum over stored keys of (key length + value length),
    // and used <= quota after every successful write.
    used: u64,
}

fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_KEY_LEN
        && !key.starts_with('.')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl PluginStorage {
    /// Opens (creating it if needed) the storage directory `dir`, which the
    /// caller has already scoped to this plugin, and measures its usage.
    pub fn open(dir: Dir, quota: u64) -> Result<Self, StorageError> {
        let mut used = 0u64;
        for entry in dir.entries()? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if !valid_key(name) {
                // A temporary file from an interrupted write.
                continue;
            }
            used += name.len() as u64 + entry.metadata()?.len();
        }
        Ok(Self { dir, quota, used })
    }

    /// Bytes used and the quota.
    pub fn usage(&self) -> (u64, u64) {
        (self.used, self.quota)
    }

    /// The value under `key`, if any.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        if !valid_key(key) {
            return Err(StorageError::InvalidKey);
        }
        match self.dir.open(key) {
            Ok(mut f) => {
                let mut v = Vec::new();
                f.read_to_end(&mut v)?;
                Ok(Some(v))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn stored_len(&self, key: &str) -> Result<Option<u64>, StorageError> {
        match self.dir.metadata(key) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores `value` under `key`, atomically replacing any old value.
    pub fn set(&mut self, key: &str, value: &[u8]) -> Result<(), StorageError> {
        if !valid_key(key) {
            return Err(StorageError::InvalidKey);
        }
        if value.len() > MAX_VALUE_LEN {
            return Err(StorageError::ValueTooLarge);
        }
        let old = self.stored_len(key)?;
        let freed = old.map_or(0, |len| key.len() as u64 + len);
        let needed = key.len() as u64 + value.len() as u64;
        let after = self.used - freed + needed;
        if after > self.quota {
            return Err(StorageError::QuotaExceeded { quota: self.quota });
        }
        if old.is_none() && self.count()? >= MAX_KEYS {
            return Err(StorageError::QuotaExceeded { quota: self.quota });
        }
        // Write then rename, so a crash never leaves a torn value. The
        // leading dot keeps temporaries out of the key space.
        let tmp = format!(".{key}.tmp");
        {
            let mut f = self.dir.open_with(
                &tmp,
                OpenOptions::new().write(true).create(true).truncate(true),
            )?;
            f.write_all(value)?;
            f.sync_data()?;
        }
        self.dir.rename(&tmp, &self.dir, key)?;
        self.used = after;
        Ok(())
    }

    /// Removes `key`; removing a missing key succeeds.
    pub fn delete(&mut self, key: &str) -> Result<(), StorageError> {
        if !valid_key(key) {
            return Err(StorageError::InvalidKey);
        }
        if let Some(len) = self.stored_len(key)? {
            self.dir.remove_file(key)?;
            self.used -= key.len() as u64 + len;
        }
        Ok(())
    }

    fn count(&self) -> Result<usize, StorageError> {
        Ok(self.keys()?.len())
    }

    /// The stored keys, sorted.
    pub fn keys(&self) -> Result<Vec<String>, StorageError> {
        let mut keys = Vec::new();
        for entry in self.dir.entries()? {
            if let Some(name) = entry?.file_name().to_str() {
                if valid_key(name) {
                    keys.push(name.to_owned());
                }
            }
        }
        keys.sort();
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cap_std::ambient_authority;

    fn storage(quota: u64) -> (tempfile::TempDir, PluginStorage) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        (tmp, PluginStorage::open(dir, quota).unwrap())
    }

    #[test]
    fn keys_are_checked() {
        let (_t, mut s) = storage(1000);
        for (key, ok) in [
            ("a", true),
            ("list.v2_x-y", true),
            ("", false),
            (".hidden", false),
            ("../escape", false),
            ("a/b", false),
            ("sp ace", false),
            (&"k".repeat(MAX_KEY_LEN), true),
            (&"k".repeat(MAX_KEY_LEN + 1), false),
        ] {
            assert_eq!(s.set(key, b"v").is_ok(), ok, "key {key:?}");
        }
    }

    #[test]
    fn quota_counts_keys_and_values_and_replacements() {
        let (_t, mut s) = storage(10);
        s.set("ab", b"12345678").unwrap(); // 10 bytes: exactly the quota
        assert_eq!(s.usage(), (10, 10));
        assert_eq!(
            s.set("c", b"1"),
            Err(StorageError::QuotaExceeded { quota: 10 })
        );
        s.set("ab", b"1234").unwrap(); // replacing frees the old value
        assert_eq!(s.usage(), (6, 10));
        s.set("c", b"1").unwrap();
        assert_eq!(s.keys().unwrap(), vec!["ab", "c"]);
        s.delete("ab").unwrap();
        s.delete("missing").unwrap();
        assert_eq!(s.usage(), (2, 10));
        assert_eq!(s.get("c").unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get("ab").unwrap(), None);
    }

    #[test]
    fn usage_survives_reopening() {
        let tmp = tempfile::tempdir().unwrap();
        let open = || Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap();
        let mut s = PluginStorage::open(open(), 100).unwrap();
        s.set("key", b"value").unwrap();
        drop(s);
        let s = PluginStorage::open(open(), 100).unwrap();
        assert_eq!(s.usage(), (8, 100));
    }

    #[test]
    fn large_values_are_refused() {
        let (_t, mut s) = storage(u64::MAX / 2);
        assert_eq!(
            s.set("big", &vec![0; MAX_VALUE_LEN + 1]),
            Err(StorageError::ValueTooLarge)
        );
    }
}
