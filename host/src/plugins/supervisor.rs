//! Restart accounting for one plugin: sans-IO, so it is tested without
//! instances or clocks.

/// What happens to a plugin after a fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterFault {
    /// The faulted instance is dropped; the next call gets a fresh one.
    Restart,
    /// The plugin has used up its restarts: calls no longer enter it.
    Disable,
}

/// Counts faults against a plugin's restart limit.
#[derive(Debug, Clone)]
pub struct Supervisor {
    restart_limit: u32,
    // Invariant: restarts <= restart_limit.
    restarts: u32,
    faults: u64,
    disabled: bool,
}

impl Supervisor {
    /// A supervisor allowing `restart_limit` restarts.
    pub fn new(restart_limit: u32) -> Self {
        Self {
            restart_limit,
            restarts: 0,
            faults: 0,
            disabled: false,
        }
    }

    /// Records a fault and says what to do about it.
    pub fn on_fault(&mut self) -> AfterFault {
        self.faults += 1;
        if self.disabled {
            return AfterFault::Disable;
        }
        if self.restarts < self.restart_limit {
            self.restarts += 1;
            AfterFault::Restart
        } else {
            self.disabled = true;
            AfterFault::Disable
        }
    }

    /// Whether calls may still enter the plugin.
    pub fn is_disabled(&self) -> bool {
        self.disabled
    }

    /// Restarts used so far.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Faults recorded so far.
    pub fn faults(&self) -> u64 {
        self.faults
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarts_within_the_limit_then_disables() {
        let cases: &[(u32, &[AfterFault])] = &[
            (0, &[AfterFault::Disable, AfterFault::Disable]),
            (1, &[AfterFault::Restart, AfterFault::Disable]),
            (
                3,
                &[
                    AfterFault::Restart,
                    AfterFault::Restart,
                    AfterFault::Restart,
                    AfterFault::Disable,
                    AfterFault::Disable,
                ],
            ),
        ];
        for (limit, expected) in cases {
            let mut s = Supervisor::new(*limit);
            for (i, want) in expected.iter().enumerate() {
                assert_eq!(s.on_fault(), *want, "limit {limit}, fault {i}");
            }
            assert!(s.is_disabled());
            assert_eq!(s.restarts(), *limit);
            assert_eq!(s.faults(), expected.len() as u64);
        }
    }
}
