//! The one place that asks a connect policy for a plan and decides what
//! its fault means: under fail-open the built-in plan stands in (and the
//! connection says so), under fail-closed the dial fails. Policy calls that
//! may block run on the blocking pool.

use crate::current::Current;
use std::sync::Arc;

use super::error::DialError;
use super::happy_eyeballs::{BuiltinPolicy, BUILTIN};
use super::plan::{
    AttemptReport, Candidate, ConnectPolicy, ConnectRequest, FaultMode, Plan, PolicyFault,
    Transport,
};
use super::pool::OriginKey;
use super::race::PlannedAttempt;

/// A plan ready to race.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The attempts, QUIC or TCP by their candidate.
    pub attempts: Vec<PlannedAttempt>,
    /// Who planned it (see [`super::connection::ConnectionInfo::planned_by`]).
    pub planned_by: String,
}

/// The connect policy of a dialer: a configured one, or the built-in.
#[derive(Debug, Clone)]
pub struct Planning {
    // A reload replaces it; a plan in progress keeps the one it took.
    policy: Current<dyn ConnectPolicy>,
}

impl Default for Planning {
    fn default() -> Self {
        Planning::new(None)
    }
}

impl Planning {
    /// Plans with `policy`, or with the built-in policy when `None`.
    pub fn new(policy: Option<Arc<dyn ConnectPolicy>>) -> Self {
        Planning {
            policy: Current::from_arc(policy.unwrap_or_else(|| Arc::new(BuiltinPolicy))),
        }
    }

    /// Plans from now on with `policy`, or with the built-in policy when
    /// `None`; plans in progress finish with the one they started with.
    pub fn replace(&self, policy: Option<Arc<dyn ConnectPolicy>>) {
        self.policy
            .replace_arc(policy.unwrap_or_else(|| Arc::new(BuiltinPolicy)));
    }

    /// Plans `request`. A policy's fault under fail-open yields the
    /// built-in plan; under fail-closed, the error.
    pub async fn plan(&self, request: ConnectRequest) -> Result<Planned, DialError> {
        let policy = self.policy.get();
        let origin = request.origin.clone();
        let name = policy.name().to_owned();
        let (request, result) = if policy.blocks() {
            let task = tokio::task::spawn_blocking(move || {
                let result = policy.plan(&request);
                (request, result)
            });
            match task.await {
                Ok(done) => done,
                Err(e) => return Err(failed(origin, &name, PolicyFault::closed(e))),
            }
        } else {
            let result = policy.plan(&request);
            (request, result)
        };
        match result {
            Ok(plan) => Ok(Planned {
                attempts: race_attempts(&plan, &request.candidates),
                planned_by: name,
            }),
            Err(fault) if fault.mode == FaultMode::FailOpen => {
                let plan = BuiltinPolicy.plan(&request).unwrap_or_default();
                Ok(Planned {
                    attempts: race_attempts(&plan, &request.candidates),
                    planned_by: format!("{BUILTIN} ({name} failed: {fault})"),
                })
            }
            Err(fault) => Err(failed(origin, &name, fault)),
        }
    }

    /// Tells the policy how a race went, off the connection path: nothing
    /// waits for it.
    pub fn report(
        &self,
        origin: OriginKey,
        candidates: Vec<Candidate>,
        reports: Vec<AttemptReport>,
    ) {
        let policy = self.policy.get();
        if policy.blocks() {
            tokio::task::spawn_blocking(move || policy.report(&origin, &candidates, &reports));
        } else {
            policy.report(&origin, &candidates, &reports);
        }
    }
}

/// The error of a plan that failed closed.
fn failed(origin: OriginKey, policy: &str, fault: PolicyFault) -> DialError {
    DialError::PolicyFailedClosed {
        origin,
        policy: policy.to_owned(),
        source: fault,
    }
}

impl PolicyFault {
    /// A fault that fails the connection whatever the policy's mode (the
    /// host could not even run the policy).
    fn closed(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        PolicyFault {
            mode: FaultMode::FailClosed,
            source: Arc::new(e),
        }
    }
}

/// A plan as race attempts (QUIC or TCP by the candidate).
pub fn race_attempts(plan: &Plan, candidates: &[Candidate]) -> Vec<PlannedAttempt> {
    let is_quic = |id: u32| {
        candidates
            .iter()
            .any(|c| c.id == id && c.transport == Transport::Quic)
    };
    plan.attempts
        .iter()
        .map(|a| PlannedAttempt {
            candidate: a.candidate,
            delay: a.delay,
            tcp: !is_quic(a.candidate),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::plan::{Attempt, PlanError};
    use std::time::Duration;

    /// A policy that answers what it is told to.
    #[derive(Debug)]
    struct Fixed(Result<Plan, FaultMode>);

    impl ConnectPolicy for Fixed {
        fn name(&self) -> &str {
            "fixed"
        }
        fn blocks(&self) -> bool {
            false
        }
        fn plan(&self, _: &ConnectRequest) -> Result<Plan, PolicyFault> {
            self.0.clone().map_err(|mode| PolicyFault {
                mode,
                source: Arc::new(PlanError::Empty),
            })
        }
    }

    fn request() -> ConnectRequest {
        ConnectRequest {
            origin: OriginKey {
                scheme: "https".into(),
                host: "www.test".into(),
                port: 443,
            },
            candidates: vec![
                Candidate::plain(0, "127.0.0.1:443".parse().unwrap(), Transport::Tcp),
                Candidate::plain(1, "127.0.0.1:443".parse().unwrap(), Transport::Quic),
            ],
            history: Vec::new(),
            network_changed: false,
            now_us: 0,
        }
    }

    fn planning(answer: Result<Plan, FaultMode>) -> Planning {
        Planning::new(Some(Arc::new(Fixed(answer))))
    }

    #[tokio::test]
    async fn a_policys_plan_is_raced_as_it_is() {
        let plan = Plan {
            attempts: vec![Attempt {
                candidate: 0,
                delay: Duration::from_millis(3),
            }],
        };
        let planned = planning(Ok(plan)).plan(request()).await.unwrap();
        assert_eq!(planned.planned_by, "fixed");
        assert_eq!(
            planned.attempts,
            vec![PlannedAttempt {
                candidate: 0,
                delay: Duration::from_millis(3),
                tcp: true
            }]
        );
    }

    #[tokio::test]
    async fn a_fault_under_fail_open_falls_back_to_the_builtin_plan() {
        let planned = planning(Err(FaultMode::FailOpen))
            .plan(request())
            .await
            .unwrap();
        assert_eq!(
            planned.planned_by,
            "builtin (fixed failed: the plan tries none of the candidates)"
        );
        // The built-in plan: QUIC first, TCP after its head start.
        assert_eq!(planned.attempts.len(), 2);
        assert!(!planned.attempts[0].tcp);
    }

    #[tokio::test]
    async fn a_fault_under_fail_closed_fails_the_dial_naming_the_origin() {
        let e = planning(Err(FaultMode::FailClosed))
            .plan(request())
            .await
            .unwrap_err();
        assert!(matches!(e, DialError::PolicyFailedClosed { .. }), "{e:?}");
        assert_eq!(
            e.to_string(),
            "https://www.test:443: connect policy fixed failed and fails closed: \
             the plan tries none of the candidates"
        );
    }
}
