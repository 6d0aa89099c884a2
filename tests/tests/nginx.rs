//! sockhost against nginx from Debian: an origin nobody here wrote.

use sockhost::host::{read_all, FetchRequest, Host};
use sockhost::net::connection::VersionPref;
use sockhost::net::dns::ResolveOverride;
use sockhost_tests::nginx::Nginx;
use sockhost_tests::origin::pattern_byte;

fn host(n: &Nginx, version: VersionPref) -> Host {
    Host::builder()
        .resolve(
            format!("nginx.test:{}:127.0.0.1", n.addr.port())
                .parse::<ResolveOverride>()
                .unwrap(),
        )
        .ca_file(n.ca_file.clone())
        .no_platform_roots()
        .version(version)
        .build()
        .unwrap()
}

#[test]
fn h2_and_h1_fetches_from_nginx_return_the_files() {
    let n = Nginx::start(&[("small.txt", 100), ("large.bin", 5 << 20)]);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        for (pref, want) in [
            (VersionPref::Auto, http::Version::HTTP_2),
            (VersionPref::Http1, http::Version::HTTP_11),
        ] {
            let h = host(&n, pref);
            let base = format!("https://nginx.test:{}", n.addr.port());
            let r = h
                .fetch(FetchRequest::get(format!("{base}/small.txt")))
                .await
                .unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.version, want);
            assert_eq!(
                r.headers["server"].to_str().unwrap().split('/').next(),
                Some("nginx")
            );
            let body = read_all(r.body).await.unwrap();
            assert_eq!(body.len(), 100);
            assert!(body.iter().enumerate().all(|(i, b)| *b == pattern_byte(i)));

            let r = h
                .fetch(FetchRequest::get(format!("{base}/large.bin")))
                .await
                .unwrap();
            let mut body = r.body;
            let mut n_read = 0usize;
            while let Some(chunk) = body.chunk().await.unwrap() {
                assert!(chunk
                    .iter()
                    .enumerate()
                    .all(|(i, b)| *b == pattern_byte(n_read + i)));
                n_read += chunk.len();
            }
            assert_eq!(n_read, 5 << 20);

            let r = h
                .fetch(FetchRequest::get(format!("{base}/missing")))
                .await
                .unwrap();
            assert_eq!(r.status, 404);
            assert!(r.reused, "{pref:?}: the connection was not reused");
            read_all(r.body).await.unwrap();
        }
    });
}
