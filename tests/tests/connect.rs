//! The connection race over real loopback sockets: a refused address fails
//! over at once, and syn-retry turns a dropped first SYN (a listener whose
//! accept queue is full) into a connection after about 250 ms instead of
//! the kernel's 1 s retransmission.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sockhost::net::connect::Connector;
use sockhost::net::race::{Outcome, PlannedAttempt, RacePrefs};

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn tcp(candidate: u32, delay_ms: u64) -> PlannedAttempt {
    PlannedAttempt {
        candidate,
        delay: Duration::from_millis(delay_ms),
        tcp: true,
    }
}

/// A closed port on loopback.
fn refused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

#[test]
fn a_refused_address_fails_over_without_waiting_for_the_attempt_delay() {
    rt().block_on(async {
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoints = HashMap::from([(1, refused_addr()), (2, open.local_addr().unwrap())]);
        let started = Instant::now();
        let c = Connector::default()
            .race("test:1", &endpoints, &[tcp(1, 0), tcp(2, 250)])
            .await
            .unwrap();
        assert_eq!(c.candidate, 2);
        assert!(
            started.elapsed() < Duration::from_millis(200),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(c.attempts[0].outcome, Outcome::Failed);
        assert_eq!(c.attempts[1].outcome, Outcome::Won);

        // All refused: one error naming every address.
        let (a, b) = (refused_addr(), refused_addr());
        let e = Connector::default()
            .race(
                "nowhere:1",
                &HashMap::from([(1, a), (2, b)]),
                &[tcp(1, 0), tcp(2, 250)],
            )
            .await
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("could not connect to nowhere:1: "), "{msg}");
        assert!(
            msg.contains(&a.to_string()) && msg.contains(&b.to_string()),
            "{msg}"
        );
    });
}

/// A listener whose accept queue holds one connection, already filled, so
/// the next SYN is dropped; after `free_after` one queued connection is
/// accepted, making room.
async fn full_listener(free_after: Duration) -> SocketAddr {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let filler = tokio::net::TcpStream::connect(addr).await.unwrap();
    tokio::spawn(async move {
        let _filler = filler;
        tokio::time::sleep(free_after).await;
        let mut accepted = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            accepted.push(s);
        }
    });
    addr
}

#[test]
fn syn_retry_beats_the_kernels_retransmission() {
    rt().block_on(async {
        // With syn-retry: the twin at 250 ms finds room.
        let addr = full_listener(Duration::from_millis(100)).await;
        let (late_tx, mut late_rx) = tokio::sync::mpsc::unbounded_channel();
        let connector = Connector {
            late: Some(late_tx),
            ..Connector::default()
        };
        let started = Instant::now();
        let c = connector
            .race("full:1", &HashMap::from([(1, addr)]), &[tcp(1, 0)])
            .await
            .unwrap();
        let with = started.elapsed();
        assert!(
            c.attempts
                .iter()
                .any(|a| a.twin && a.outcome == Outcome::Won),
            "{:?}",
            c.attempts
        );
        assert!(
            with >= Duration::from_millis(240) && with < Duration::from_millis(700),
            "with syn-retry: {with:?}"
        );
        // The original attempt's SYN is retransmitted at about 1 s; it
        // connects anyway and goes to the pool instead of being dropped.
        let late = tokio::time::timeout(Duration::from_secs(4), late_rx.recv())
            .await
            .expect("the late original arrives")
            .expect("a late connection");
        assert_eq!(late.addr, addr);

        // Without syn-retry the same situation waits for the kernel.
        let addr = full_listener(Duration::from_millis(100)).await;
        let connector = Connector {
            prefs: RacePrefs {
                syn_retry_enabled: false,
                ..RacePrefs::default()
            },
            ..Connector::default()
        };
        let started = Instant::now();
        connector
            .race("full:2", &HashMap::from([(1, addr)]), &[tcp(1, 0)])
            .await
            .unwrap();
        let without = started.elapsed();
        assert!(
            without >= Duration::from_millis(900),
            "without syn-retry: {without:?}"
        );
        eprintln!(
            "dropped first SYN: connected after {with:?} with syn-retry, {without:?} without"
        );
    });
}
