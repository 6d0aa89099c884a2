//! Host-side bindings for the interfaces every world shares (`types`,
//! `log`, `storage`). The per-world bridges map these interfaces here with
//! bindgen's `with`, so each host import is implemented once.

#[allow(missing_docs)]
mod generated {
    crate::plugins::wit_version::bindgen_latest!("sockhost:plugin/base");
}

pub use generated::sockhost::plugin::{log, storage, types};
