//! Streamed request bodies through `Host::fetch`, against the test origin's
//! `/sink`: every byte arrives in order over HTTP/1.1, HTTP/2 and HTTP/3;
//! the request timeout counts from the upload's last progress, so a slow
//! upload that keeps moving finishes and a stalled one is cut.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::StreamBody;
use hyper::body::Frame;
use sockhost::host::{read_all, FetchError, FetchRequest, Host, RequestBody};
use sockhost::net::connection::VersionPref;
use sockhost_tests::origin::{fnv1a, pattern_byte, OriginOptions, TestOrigin, FNV_OFFSET};
use sockhost_tests::{origin_host, rt};

const CHUNK: usize = 64 << 10;

/// `len` pattern bytes in 64 KiB frames, made only as the connection asks.
fn pattern_upload(len: usize) -> RequestBody {
    let frames = (0..len.div_ceil(CHUNK)).map(move |c| {
        let data: Vec<u8> = (c * CHUNK..((c + 1) * CHUNK).min(len))
            .map(pattern_byte)
            .collect();
        Ok::<_, Infallible>(Frame::data(Bytes::from(data)))
    });
    RequestBody::stream(StreamBody::new(futures_util::stream::iter(frames)))
}

fn pattern_hash(len: usize) -> u64 {
    let data: Vec<u8> = (0..len).map(pattern_byte).collect();
    fnv1a(FNV_OFFSET, &data)
}

fn post(origin: &TestOrigin, body: RequestBody) -> FetchRequest {
    let mut request = FetchRequest::get(format!("https://www.test:{}/sink", origin.addr.port()));
    request.method = http::Method::POST;
    request.body = body;
    request
}

fn host(origin: &TestOrigin, version: VersionPref, timeout: Duration) -> Host {
    origin_host(origin)
        .version(version)
        .request_timeout(timeout)
        .build()
        .unwrap()
}

#[test]
fn a_streamed_upload_arrives_whole_over_every_version() {
    let origin = TestOrigin::start(OriginOptions {
        h3: true,
        ..OriginOptions::default()
    });
    let len = 24 << 20;
    let hash = pattern_hash(len);
    rt().block_on(async {
        for version in [VersionPref::Http1, VersionPref::Http2] {
            let h = host(&origin, version, Duration::from_secs(30));
            let r = h.fetch(post(&origin, pattern_upload(len))).await.unwrap();
            let text = String::from_utf8(read_all(r.body).await.unwrap().to_vec()).unwrap();
            assert_eq!(
                text,
                format!("received {len} bytes, fnv1a {hash:016x}\n"),
                "{version:?}"
            );
        }
        // The HTTP/3 sink counts what came.
        let h = host(&origin, VersionPref::Http3, Duration::from_secs(30));
        let r = h.fetch(post(&origin, pattern_upload(len))).await.unwrap();
        let text = read_all(r.body).await.unwrap();
        assert_eq!(&text[..], format!("received {len} bytes\n").as_bytes());
    });
}

/// `chunks` frames of 1 KiB, one every `every`, then (if `stall`) none
/// ever again.
fn paced_upload(chunks: usize, every: Duration, stall: bool) -> RequestBody {
    let frames = futures_util::stream::unfold(0usize, move |i| async move {
        if i == chunks {
            if stall {
                std::future::pending::<()>().await;
            }
            return None;
        }
        tokio::time::sleep(every).await;
        Some((
            Ok::<_, Infallible>(Frame::data(Bytes::from(vec![1u8; 1024]))),
            i + 1,
        ))
    });
    RequestBody::stream(StreamBody::new(frames))
}

#[test]
fn the_request_timeout_counts_from_the_uploads_last_progress() {
    let origin = TestOrigin::start(OriginOptions::default());
    rt().block_on(async {
        for version in [VersionPref::Http1, VersionPref::Http2] {
            let h = host(&origin, version, Duration::from_millis(600));
            // 15 chunks 100 ms apart: 1.5 s in all, never 600 ms idle.
            let body = paced_upload(15, Duration::from_millis(100), false);
            let r = h.fetch(post(&origin, body)).await.unwrap();
            let text = read_all(r.body).await.unwrap();
            assert!(
                text.starts_with(b"received 15360 bytes"),
                "{version:?}: {}",
                String::from_utf8_lossy(&text)
            );
            // Three chunks, then silence: cut 600 ms after the last one.
            let body = paced_upload(3, Duration::from_millis(100), true);
            let e = h.fetch(post(&origin, body)).await.unwrap_err();
            assert!(matches!(e, FetchError::Timeout { .. }), "{version:?}: {e}");
        }
    });
}

#[test]
fn an_upload_whose_source_fails_fails_the_request_naming_it() {
    let origin = TestOrigin::start(OriginOptions::default());
    rt().block_on(async {
        let h = host(&origin, VersionPref::Http2, Duration::from_secs(10));
        let frames: Vec<Result<Frame<Bytes>, std::io::Error>> = vec![
            Ok(Frame::data(Bytes::from_static(b"partial"))),
            Err(std::io::Error::other("the upload's file vanished")),
        ];
        let body = RequestBody::stream(StreamBody::new(futures_util::stream::iter(frames)));
        let e = h.fetch(post(&origin, body)).await.unwrap_err();
        let chain = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(": ");
        assert!(chain.contains("the upload's file vanished"), "{chain}");
    });
}
