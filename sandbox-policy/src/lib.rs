//! The capability model of sockhost's plugins.
//!
//! Every plugin has a manifest, `plugin.toml`, next to it: who it is
//! (name, version, world, component and its sha256), what it may reach
//! (hosts, redirect targets, headers, storage, WASI interfaces, fetch
//! origins) and its limits
//! (memory, per-call time budget, what happens on a fault, restarts,
//! instances running at once). This crate parses and validates manifests
//! and answers the host's one question at load: may this component have
//! this import?
//!
//! Everything is denied unless the manifest grants it.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod error;
mod headers;
mod imports;
mod manifest;
mod origin;
mod redirect;
mod units;
mod world;

pub use error::ManifestError;
pub use headers::SENSITIVE_HEADERS;
pub use imports::{ImportDecision, InterfaceName, InterfaceNameError, KNOWN_WIT_VERSIONS};
pub use manifest::{
    Capabilities, Identity, Limits, Manifest, OnDisable, OnFault, WasiGrant, MAX_INSTANCES,
};
pub use origin::{HostPattern, HostPatternError, OriginPattern, OriginPatternError, OriginProblem};
pub use redirect::{AddressClass, RedirectGrant, RedirectGrantError, RedirectRefused, TargetHost};
pub use units::{parse_duration, parse_size, DurationError, SizeError};
pub use world::World;
