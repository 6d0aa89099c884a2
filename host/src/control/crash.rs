//! The crash reporter.
