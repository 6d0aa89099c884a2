//! The one error type of manifest loading: it always names the file, the
//! field, and what is wrong.

use std::fmt;
use std::path::{Path, PathBuf};

/// A manifest could not be read or is invalid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestError {
    path: PathBuf,
    field: Option<String>,
    message: String,
}

impl ManifestError {
    pub(crate) fn new(path: &Path, field: Option<&str>, message: impl Into<String>) -> Self {
        Self {
            path: path.to_owned(),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }

    /// The manifest file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The dotted path of the offending field (`limits.call-budget`,
    /// `capabilities.hosts[2]`), when the error is about one field.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.path.display())?;
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ManifestError {}
