//! `wasi:sockets` without authority: language runtimes (CPython,
//! SpiderMonkey) import it whether or not a plugin uses it, and the host
//! owns every socket, so each socket creation and each name lookup fails
//! with `access-denied`, never a trap.
//!
//! wasmtime-wasi's implementation is linked, then its three ways in (TCP
//! and UDP socket creation, name lookup) are replaced by ones that refuse
//! first thing, so no socket or lookup can ever exist for the rest of it to
//! act on. Its own would not do: a disallowed lookup answers
//! `permanent-resolver-failure` (the name does not exist, not "you may not
//! ask"), and its UDP creation blocks on a tokio runtime, which panics on a
//! runtime thread (where congestion hooks run). The WASI context is built
//! with every network use disallowed too, in case any path is missed.

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    self, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{
    self, ErrorCode, IpAddress, IpAddressFamily, Network,
};
use wasmtime_wasi::p2::bindings::sockets::tcp_create_socket;
use wasmtime_wasi::p2::bindings::sync::sockets::udp_create_socket;
use wasmtime_wasi::p2::{DynPollable, SocketError, TcpSocket, UdpSocket};
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

/// Replaces socket creation and name lookup in what
/// `wasmtime_wasi::p2::add_to_linker_sync` linked with the refusing forms.
pub(crate) fn add_to_linker<T: WasiView>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    fn view<T: WasiView>(t: &mut T) -> NoSocketsView<'_> {
        NoSocketsView(t.sockets())
    }
    linker.allow_shadowing(true);
    let linked = tcp_create_socket::add_to_linker::<T, NoSockets>(linker, view::<T>)
        .and_then(|()| udp_create_socket::add_to_linker::<T, NoSockets>(linker, view::<T>))
        .and_then(|()| ip_name_lookup::add_to_linker::<T, NoSockets>(linker, view::<T>));
    linker.allow_shadowing(false);
    linked
}

/// Sockets that are all refused.
struct NoSockets;

impl HasData for NoSockets {
    type Data<'a> = NoSocketsView<'a>;
}

/// wasmtime-wasi's view of a store's sockets, with the ways in refused; the
/// rest of `network` (error conversion, the network resource) is its own.
struct NoSocketsView<'a>(WasiSocketsCtxView<'a>);

impl network::Host for NoSocketsView<'_> {
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

impl network::HostNetwork for NoSocketsView<'_> {
    fn drop(&mut self, network: Resource<Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.0, network)
    }
}

impl tcp_create_socket::Host for NoSocketsView<'_> {
    fn create_tcp_socket(
        &mut self,
        _family: IpAddressFamily,
    ) -> Result<Resource<TcpSocket>, SocketError> {
        Err(ErrorCode::AccessDenied.into())
    }
}

impl udp_create_socket::Host for NoSocketsView<'_> {
    fn create_udp_socket(
        &mut self,
        _family: IpAddressFamily,
    ) -> Result<Resource<UdpSocket>, SocketError> {
        Err(ErrorCode::AccessDenied.into())
    }
}

impl ip_name_lookup::Host for NoSocketsView<'_> {
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
impl HostResolveAddressStream for NoSocketsView<'_> {
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

    fn denied<T>(r: Result<T, SocketError>) -> bool {
        matches!(
            r.map_err(|e| e.downcast()),
            Err(Ok(ErrorCode::AccessDenied))
        )
    }

    #[test]
    fn no_socket_can_be_created() {
        let mut s = state();
        for family in [IpAddressFamily::Ipv4, IpAddressFamily::Ipv6] {
            let mut view = NoSocketsView(s.sockets());
            assert!(denied(tcp_create_socket::Host::create_tcp_socket(
                &mut view, family
            )));
            assert!(denied(udp_create_socket::Host::create_udp_socket(
                &mut view, family
            )));
        }
    }

    #[test]
    fn no_name_can_be_looked_up_not_even_an_address_literal() {
        let mut s = state();
        for name in ["localhost", "example.com", "127.0.0.1", "::1", "not a name"] {
            let network = s.sockets().instance_network().unwrap();
            let mut view = NoSocketsView(s.sockets());
            let r = ip_name_lookup::Host::resolve_addresses(&mut view, network, name.into());
            assert!(denied(r), "{name}");
        }
    }

    #[test]
    fn refusing_never_blocks_on_a_runtime_so_works_on_a_runtime_thread() {
        // wasmtime-wasi's own UDP creation panics here ("Cannot start a
        // runtime from within a runtime").
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut s = state();
        rt.block_on(async {
            let mut view = NoSocketsView(s.sockets());
            let udp = udp_create_socket::Host::create_udp_socket(&mut view, IpAddressFamily::Ipv4);
            assert!(denied(udp));
        });
    }

    #[test]
    fn the_wasi_context_itself_allows_no_socket_either() {
        let mut s = state();
        for family in [IpAddressFamily::Ipv4, IpAddressFamily::Ipv6] {
            let mut view = s.sockets();
            assert!(denied(tcp_create_socket::Host::create_tcp_socket(
                &mut view, family
            )));
            assert!(denied(udp_create_socket::Host::create_udp_socket(
                &mut view, family
            )));
        }
    }
}
