//! `sockhost ca export|rotate`: the daemon's local interception CA, in
//! `$XDG_DATA_HOME/sockhost/ca/` ([`sockhost::serve::ca`]).

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use sockhost::serve::ca::{self, LocalCa, Origin};

fn ca_dir() -> anyhow::Result<PathBuf> {
    super::paths::data_dir()
        .map(|d| ca::ca_dir(&d))
        .context("no data directory: set XDG_DATA_HOME or HOME")
}

fn print_pem(ca: &LocalCa) -> anyhow::Result<()> {
    std::io::stdout()
        .write_all(ca.cert_pem().as_bytes())
        .context("cannot write the certificate to stdout")
}

/// `sockhost ca export`: the CA certificate (PEM) on stdout, the CA made
/// first if there is none.
pub fn export() -> anyhow::Result<()> {
    let dir = ca_dir()?;
    let (ca, origin) = LocalCa::load_or_create(&dir)?;
    if origin == Origin::Created {
        eprintln!(
            "sockhost: created a new local CA in {} (valid {} days)",
            dir.display(),
            ca::CA_VALIDITY.as_secs() / 86_400
        );
    }
    print_pem(&ca)
}

/// `sockhost ca rotate`: a new CA in place of the old one; its certificate
/// (PEM) on stdout.
pub fn rotate() -> anyhow::Result<()> {
    let dir = ca_dir()?;
    let ca = LocalCa::create(&dir)?;
    eprintln!(
        "sockhost: replaced the local CA in {}; clients that trusted the old one must be given this one",
        dir.display()
    );
    print_pem(&ca)
}
