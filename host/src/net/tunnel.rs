//! A plain TCP connection to an origin for a tunnel (a proxy's `CONNECT`):
//! resolved, planned and raced like any connection (Happy Eyeballs,
//! syn-retry), with the same history and policy, but TCP only and with
//! nothing on top: the client speaks its own TLS through it.

use std::time::Instant;

use tokio::net::TcpStream;

use super::candidates::CandidateSet;
use super::connect::{connect_tcp, AttemptStart};
use super::connection::ConnectionInfo;
use super::dial::{won_race, Dialer};
use super::error::DialError;
use super::pool::OriginKey;

impl Dialer {
    /// A TCP connection to `origin` and how it was made. Answers that come
    /// after the race could start are not waited for: a tunnel takes the
    /// first usable address family, as a plain client would.
    pub async fn tunnel(
        &self,
        origin: &OriginKey,
    ) -> Result<(TcpStream, ConnectionInfo), DialError> {
        let t0 = Instant::now();
        let staged = self.resolve(origin).await?;
        let dns = t0.elapsed();
        let mut set = CandidateSet::new(&origin.host, origin.port, false, true);
        set.absorb(&staged.first);
        let request = self.connect_request(origin, set.all().to_vec(), true);
        let planned = self.planning.plan(request).await?;
        let connector = self.connector.get();
        let timeout = connector.connect_timeout;
        let what = format!("{}:{}", origin.host, origin.port);
        let t1 = Instant::now();
        let result = connector
            .race_with(
                &what,
                &set.endpoints(),
                &planned.attempts,
                None,
                move |a: AttemptStart| connect_tcp(a.addr, timeout),
                // A syn-retry twin that connects late has no use here.
                drop::<TcpStream>,
            )
            .await;
        self.after_race(origin, set.all().to_vec(), &result);
        Ok(won_race(result?, dns, t1, planned.planned_by))
    }
}
