//! Connection policies (`connect-policy` world): which endpoints to try, in
//! which order, with which head starts.

use crate::__bindings::connect::exports::sockhost::plugin::connect as wit;
use crate::types::Origin;

pub use wit::{
    Attempt, AttemptPlan, AttemptReport, Candidate, CandidateSource, ConnectRequest, HistoryEntry,
    Outcome,
};

/// A connection policy. One value lives as long as the plugin instance, so
/// it may learn from reports.
pub trait ConnectPolicy: 'static {
    /// The policy's initial state.
    fn new() -> Self
    where
        Self: Sized;

    /// The attempts to make for `request`: candidate ids with delays from
    /// the start of the race. Candidates left out are not tried. The host
    /// rejects a plan naming an unknown candidate or a delay over 10 s.
    fn plan(&mut self, request: &ConnectRequest) -> AttemptPlan;

    /// How each attempt of a race went.
    fn report(&mut self, origin: &Origin, candidates: &[Candidate], reports: &[AttemptReport]) {
        let _ = (origin, candidates, reports);
    }
}

#[doc(hidden)]
#[allow(missing_debug_implementations)]
pub struct Adapter<T>(std::marker::PhantomData<T>);

impl<T: ConnectPolicy> wit::Guest for Adapter<T> {
    fn plan(request: ConnectRequest) -> AttemptPlan {
        crate::instance::with(T::new, |p: &mut T| p.plan(&request))
    }

    fn report(origin: Origin, candidates: Vec<Candidate>, reports: Vec<AttemptReport>) {
        crate::instance::with(T::new, |p: &mut T| p.report(&origin, &candidates, &reports))
    }
}
