//! Private key-value storage, when the manifest grants
//! `capabilities.storage-quota`. Without the grant the plugin still loads,
//! and every call returns `StorageError::Io("storage not granted: …")`
//! (`usage` returns `(0, 0)`).
//!
//! Keys are 1 to 128 characters of `[A-Za-z0-9._-]`; values at most 1 MiB;
//! keys and values together count against the quota.

use crate::__bindings::base::sockhost::plugin::storage as host;

pub use host::StorageError;

/// The value of `key`, if set.
pub fn get(key: &str) -> Result<Option<Vec<u8>>, StorageError> {
    host::get(key)
}

/// Sets `key` to `value`, replacing any previous value.
pub fn set(key: &str, value: &[u8]) -> Result<(), StorageError> {
    host::set(key, value)
}

/// Removes `key` (not an error if it was not set).
pub fn delete(key: &str) -> Result<(), StorageError> {
    host::delete(key)
}

/// Every key.
pub fn keys() -> Result<Vec<String>, StorageError> {
    host::keys()
}

/// `(bytes used, quota)`.
pub fn usage() -> (u64, u64) {
    host::usage()
}
