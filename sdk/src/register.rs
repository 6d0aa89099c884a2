//! The one export macro.

/// Exports a plugin type as the component's implementation of its world.
///
/// ```ignore
/// sockhost_sdk::register!(congestion: MyController);
/// sockhost_sdk::register!(connect: MyPolicy);
/// sockhost_sdk::register!(probe: MyProbe);
/// sockhost_sdk::register!(extension: MyExtension);
/// ```
///
/// Use it once per plugin crate.
#[macro_export]
macro_rules! register {
    (congestion: $t:ty) => {
        #[allow(unsafe_code)]
        const _: () = {
            type __SockhostPlugin = $crate::congestion::Adapter<$t>;
            $crate::__bindings::congestion::export_congestion_policy!(
                __SockhostPlugin with_types_in $crate::__bindings::congestion
            );
        };
    };
    (connect: $t:ty) => {
        #[allow(unsafe_code)]
        const _: () = {
            type __SockhostPlugin = $crate::connect::Adapter<$t>;
            $crate::__bindings::connect::export_connect_policy!(
                __SockhostPlugin with_types_in $crate::__bindings::connect
            );
        };
    };
    (probe: $t:ty) => {
        #[allow(unsafe_code)]
        const _: () = {
            type __SockhostPlugin = $crate::telemetry::Adapter<$t>;
            $crate::__bindings::telemetry::export_telemetry_probe!(
                __SockhostPlugin with_types_in $crate::__bindings::telemetry
            );
        };
    };
    (extension: $t:ty) => {
        #[allow(unsafe_code)]
        const _: () = {
            type __SockhostPlugin = $crate::extension::Adapter<$t>;
            $crate::__bindings::extension::export_extension!(
                __SockhostPlugin with_types_in $crate::__bindings::extension
            );
        };
    };
}
