//! Host-side bindings for the interfaces every world shares (`types`,
//! `log`, `storage`). The per-world bridges map these interfaces here with
//! bindgen's `with`, so each host import is implemented once.

#[allow(missing_docs)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "sockhost:plugin/base",
    });
}

pub use generated::sockhost::plugin::{log, storage, types};
