//! Receive windows of the multiplexed connections (HTTP/2 and QUIC), and
//! how many requests one of them carries at once.
//!
//! A response body nobody reads keeps what it received in the client's
//! buffers, and that much of the *connection's* receive window, until it
//! is read. If one stream could take the whole connection window (hyper's
//! adaptive window grows the stream and connection windows to the same
//! size), one stalled reader, say a browser tab that stopped reading a
//! download through the daemon, would stall every other response to the
//! same origin, since the pool multiplexes them on one connection.
//!
//! The options weighed:
//! - A connection window a few times the stream window (Chromium: 15 MiB
//!   for the session, 6 MiB per stream). It only moves the stall: three
//!   stalled streams still fill it.
//! - An unbounded connection window with bounded stream windows (curl,
//!   quinn's default). Nothing stalls, but the memory held for a peer
//!   grows with the number of unread streams, up to the peer's stream
//!   limit (nginx: 128 streams).
//! - Chosen: both. The pool puts at most [`STREAMS_PER_CONNECTION`]
//!   requests on one multiplexed connection and opens another to the
//!   origin beyond that, and the connection window is one stream window
//!   more than all its streams' windows together. Unread bodies can then
//!   hold at most `STREAMS_PER_CONNECTION × STREAM_WINDOW` of it, so the
//!   peer can always send at least a stream window's worth for a stream
//!   that is read; and a stalled reader costs at most [`STREAM_WINDOW`].
//!
//! Worst case, per connection: [`CONNECTION_WINDOW`] (66 MiB) of received
//! body bytes held, reached only when every one of its 32 requests has
//! stopped reading 2 MiB in. The price: one stream is held to 2 MiB per
//! round trip (20 MiB/s at 100 ms) where BDP estimation could grow to
//! 16 MiB.

/// What a peer may send on one stream before its body is read: bounds
/// what one unread response holds.
pub const STREAM_WINDOW: u32 = 2 << 20;

/// Requests in flight on one multiplexed connection at most; the pool
/// opens another connection to the origin for more.
pub const STREAMS_PER_CONNECTION: usize = 32;

/// What a peer may send on the whole connection before bodies are read:
/// every stream's window and one more, so unread streams never exhaust it.
pub const CONNECTION_WINDOW: u32 = STREAM_WINDOW * (STREAMS_PER_CONNECTION as u32 + 1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unread_streams_leave_a_stream_window_on_the_connection() {
        let unread = u64::from(STREAM_WINDOW) * STREAMS_PER_CONNECTION as u64;
        assert!(u64::from(CONNECTION_WINDOW) >= unread + u64::from(STREAM_WINDOW));
        // HTTP/2 windows are at most 2^31 - 1.
        assert!(u64::from(CONNECTION_WINDOW) < 1 << 31);
    }
}
