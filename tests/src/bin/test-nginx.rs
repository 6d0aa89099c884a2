//! Starts the test nginx (a 1 GiB file and a 1 KiB file) for benchmarks:
//! prints `ADDR CA_FILE HTTP_ADDR` on one line (TLS address, its CA, the
//! cleartext address), serves until stdin closes.

use std::io::Read;

fn main() {
    let n = sockhost_tests::nginx::Nginx::start(&[("1g.bin", 1 << 30), ("small.txt", 1024)]);
    println!("{} {} {}", n.addr, n.ca_file.display(), n.http_addr);
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(n);
}
