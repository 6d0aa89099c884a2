//! `wasi:sockets` without authority: language runtimes (CPython,
//! SpiderMonkey) import it whether or not a plugin uses it, and the host
//! owns every socket, so each socket creation and each name lookup fails
//! with `access-denied`, never a trap.
//!
//! wasmtime-wasi's own implementation is linked, with TCP, UDP and name
//! lookups disallowed and every address refused: its socket constructors
//! check that first and answer `access-denied` without touching the OS.
//! Its name lookup, disallowed, answers `permanent-resolver-failure`
//! instead, which tells a runtime the name does not exist rather than that
//! it may not ask; so `ip-name-lookup` is replaced here.

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    self, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddress, Network};
use wasmtime_wasi::p2::{DynPollable, SocketError};
use wasmtime_wasi::sockets::{WasiSocketsCtxView, WasiSocketsView};
use wasmtime_wasi::{WasiCtxBuilder, WasiView};

/// Takes every network authority away from a WASI context being built.
pub(crate) fn deny_all(builder: &mut WasiCtxBuilder) {
    builder
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }));
}

/// Links `wasi:sockets/ip-name-lookup` in its no-authority form over the
/// one `wasmtime_wasi::p2::add_to_linker_sync` linked.
pub(crate) fn add_to_linker<T: WasiView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked =
        ip_name_lookup::add_to_linker::<T, NoLookups>(linker, |t| NoLookupsView(t.sockets()));
    linker.allow_shadowing(false);
    linked
}

/// Name lookups that are all refused.
struct NoLookups;

impl HasData for NoLookups {
    type Data<'a> = NoLookupsView<'a>;
}

/// wasmtime-wasi's view of a store's sockets, with lookups refused; the
/// rest of `network` (error conversion, the network resource) is its own.
struct NoLookupsView<'a>(WasiSocketsCtxView<'a>);

impl network::Host for NoLookupsView<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        network::Host::convert_error_code(&mut self.0, error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        network::Host::network_error_code(&mut self.0, err)
    }
}

impl network::HostNetwork for NoLookupsView<'_> {
    fn drop(&mut self, network: Resource<Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.0, network)
    }
}

impl ip_name_lookup::Host for NoLookupsView<'_> {
    fn resolve_addresses(
        &mut self,
        network: Resource<Network>,
        _name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        // A handle that is not a network is the guest's bug (a trap), as in
        // wasmtime-wasi; any real network is refused the lookup.
        self.0.table.get(&network)?;
        Err(ErrorCode::AccessDenied.into())
    }
}

// No stream is ever created here; these only keep the resource complete.
impl HostResolveAddressStream for NoLookupsView<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        self.0.table.get(&stream)?;
        Err(ErrorCode::AccessDenied.into())
    }

    fn subscribe(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        wasmtime_wasi::p2::subscribe(self.0.table, stream)
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        self.0.table.delete(stream)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sockhost_policy::Manifest;
    use wasmtime_wasi::p2::bindings::sockets::instance_network::Host as _;
    use wasmtime_wasi::p2::bindings::sockets::network::IpAddressFamily;
    use wasmtime_wasi::p2::bindings::sockets::tcp_create_socket::Host as _;
    use wasmtime_wasi::p2::bindings::sync::sockets::udp_create_socket::Host as _;

    use super::*;
    use crate::plugins::state::PluginState;

    /// The store of a plugin granted everything a manifest can grant.
    fn state() -> PluginState {
        let text = format!(
            "[plugin]\nname = \"x\"\nversion = \"0.1.0\"\nworld = \"extension\"\n\
             component = \"x.wasm\"\nsha256 = \"{}\"\n\
             [capabilities]\nhosts = [\"*\"]\nwasi = [\"clocks\", \"random\", \"stdio\"]\n",
            "0".repeat(64),
        );
        let manifest = Manifest::parse(&text, std::path::Path::new("plugin.toml")).unwrap();
        PluginState::new(&manifest, None, None)
    }

    fn code(e: SocketError) -> ErrorCode {
        e.downcast().expect("an error code, not a trap")
    }

    #[test]
    fn no_socket_can_be_created() {
        let mut s = state();
        for family in [IpAddressFamily::Ipv4, IpAddressFamily::Ipv6] {
            let tcp = s.sockets().create_tcp_socket(family).map(|_| ());
            assert!(matches!(tcp.map_err(code), Err(ErrorCode::AccessDenied)));
            let udp = s.sockets().create_udp_socket(family).map(|_| ());
            assert!(matches!(udp.map_err(code), Err(ErrorCode::AccessDenied)));
        }
    }

    #[test]
    fn no_name_can_be_looked_up_not_even_an_address_literal() {
        let mut s = state();
        for name in ["localhost", "example.com", "127.0.0.1", "::1", "not a name"] {
            let network = s.sockets().instance_network().unwrap();
            let mut view = NoLookupsView(s.sockets());
            let r = ip_name_lookup::Host::resolve_addresses(&mut view, network, name.into());
            assert!(
                matches!(r.map(|_| ()).map_err(code), Err(ErrorCode::AccessDenied)),
                "{name}"
            );
        }
    }
}
