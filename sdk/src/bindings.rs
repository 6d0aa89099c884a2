//! wit-bindgen output, one module per world. Hidden: plugin authors use the
//! re-exports and traits of the SDK's public modules.
//!
//! The shared host interfaces (`types`, `log`, `storage`) are generated once
//! in `base` and reused by every world through `with`, so a type such as
//! `Header` is one Rust type whatever world a plugin implements.

/// The imports every world has.
pub mod base {
    wit_bindgen::generate!({
        world: "base",
        path: "../wit/0.1.0",
    });
}

/// A world's bindings, sharing `base`'s interfaces, with an export macro
/// `register!` can call from the plugin's crate.
macro_rules! world {
    ($world:literal, $export_macro:literal) => {
        wit_bindgen::generate!({
            world: $world,
            path: "../wit/0.1.0",
            with: {
                "sockhost:plugin/types@0.1.0": crate::__bindings::base::sockhost::plugin::types,
                "sockhost:plugin/log@0.1.0": crate::__bindings::base::sockhost::plugin::log,
                "sockhost:plugin/storage@0.1.0": crate::__bindings::base::sockhost::plugin::storage,
            },
            pub_export_macro: true,
            export_macro_name: $export_macro,
        });
    };
}

/// `congestion-policy`.
pub mod congestion {
    world!("congestion-policy", "export_congestion_policy");
}

/// `connect-policy`.
pub mod connect {
    world!("connect-policy", "export_connect_policy");
}

/// `telemetry-probe`.
pub mod telemetry {
    world!("telemetry-probe", "export_telemetry_probe");
}

/// `extension`.
pub mod extension {
    world!("extension", "export_extension");
}
