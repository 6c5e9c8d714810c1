//! Supervisor strategies: what a parent does when a child fails.
//!
//! Each parent answers a child's failure with a [`Directive`] chosen by its
//! [`SupervisorStrategy`] (from [`crate::Actor::supervisor_strategy`]); top-level
//! actors are supervised by the system's root strategy
//! ([`crate::SystemBuilder::root_strategy`]).

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

pub(crate) use crate::lifecycle::Failure;

/// What a supervisor does with a failed child.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Directive {
    /// Keep the instance and its state; continue with the next message.
    Resume,
    /// Replace the instance (from its factory, or reuse it when spawned without
    /// one), within the strategy's restart budget; stop it when the budget is spent.
    Restart,
    /// Stop the child.
    Stop,
    /// Fail the supervisor itself with [`Failure::Escalated`], so its own parent
    /// decides. At the top level, escalation stops the actor.
    Escalate,
}

/// Which children a decision applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Only the child that failed.
    OneForOne,
    /// Every child of the supervisor (restart or stop them all).
    AllForOne,
}

/// How long to wait before a restart, counted from the restarts already made in
/// the current window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backoff {
    /// Restart at once.
    None,
    /// Always wait this long.
    Fixed(Duration),
    /// Wait `initial * 2^n` (n = restarts already made in the window), at most `max`.
    Exponential {
        /// The first delay.
        initial: Duration,
        /// The ceiling.
        max: Duration,
    },
}

impl Backoff {
    /// The delay before the restart that follows `previous` restarts in the window.
    pub fn delay(&self, previous: u32) -> Duration {
        match *self {
            Backoff::None => Duration::ZERO,
            Backoff::Fixed(d) => d,
            Backoff::Exponential { initial, max } => {
                let factor = 1u32.checked_shl(previous.min(31)).unwrap_or(u32::MAX);
                initial.saturating_mul(factor).min(max)
            }
        }
    }
}

/// A supervisor's policy: scope, directive per failure, restart budget, backoff.
///
/// The default is one-for-one, restart, at most 10 restarts within 10 seconds,
/// no backoff.
///
/// ```
/// use std::time::Duration;
/// use granary_core::{Backoff, Directive, SupervisorStrategy};
/// let s = SupervisorStrategy::all_for_one()
///     .with_max_restarts(3, Duration::from_secs(1))
///     .with_backoff(Backoff::Fixed(Duration::from_millis(10)))
///     .with_decider(|_failure| Directive::Restart);
/// # let _ = s;
/// ```
#[derive(Clone, Debug)]
pub struct SupervisorStrategy {
    scope: Scope,
    decider: fn(&Failure) -> Directive,
    max_restarts: u32,
    within: Duration,
    backoff: Backoff,
}

impl Default for SupervisorStrategy {
    fn default() -> Self {
        Self::one_for_one()
    }
}

fn always_restart(_: &Failure) -> Directive {
    Directive::Restart
}

impl SupervisorStrategy {
    /// A strategy that acts on the failed child only.
    pub fn one_for_one() -> Self {
        Self {
            scope: Scope::OneForOne,
            decider: always_restart,
            max_restarts: 10,
            within: Duration::from_secs(10),
            backoff: Backoff::None,
        }
    }

    /// A strategy that restarts or stops all children when one fails.
    pub fn all_for_one() -> Self {
        Self {
            scope: Scope::AllForOne,
            ..Self::one_for_one()
        }
    }

    /// Use the same directive for every failure.
    pub fn with_directive(self, directive: Directive) -> Self {
        let decider: fn(&Failure) -> Directive = match directive {
            Directive::Resume => |_| Directive::Resume,
            Directive::Restart => always_restart,
            Directive::Stop => |_| Directive::Stop,
            Directive::Escalate => |_| Directive::Escalate,
        };
        Self { decider, ..self }
    }

    /// Choose the directive from the failure.
    pub fn with_decider(self, decider: fn(&Failure) -> Directive) -> Self {
        Self { decider, ..self }
    }

    /// Allow at most `max` restarts of one child within `within`; one more failure
    /// in that window stops the child.
    pub fn with_max_restarts(self, max: u32, within: Duration) -> Self {
        Self {
            max_restarts: max,
            within,
            ..self
        }
    }

    /// Wait before each restart.
    pub fn with_backoff(self, backoff: Backoff) -> Self {
        Self { backoff, ..self }
    }

    /// The scope (one-for-one or all-for-one).
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// The directive this strategy gives for `failure`.
    pub fn directive_for(&self, failure: &Failure) -> Directive {
        (self.decider)(failure)
    }

    /// Applies the strategy to one failure, updating the child's restart record.
    pub(crate) fn decide(&self, failure: &Failure, stats: &mut RestartStats) -> Decision {
        match self.directive_for(failure) {
            Directive::Resume => Decision::Resume,
            Directive::Stop => Decision::Stop,
            Directive::Escalate => Decision::Escalate,
            Directive::Restart => {
                let now = Instant::now();
                let window_start = now.checked_sub(self.within);
                while let Some(&first) = stats.times.front() {
                    if window_start.is_some_and(|start| first <= start) {
                        stats.times.pop_front();
                    } else {
                        break;
                    }
                }
                let previous = stats.times.len() as u32;
                if previous >= self.max_restarts {
                    return Decision::Stop;
                }
                stats.times.push_back(now);
                Decision::Restart(self.backoff.delay(previous))
            }
        }
    }
}

/// The restart times of one child within the current window.
#[derive(Default, Debug)]
pub(crate) struct RestartStats {
    times: VecDeque<Instant>,
}

/// A strategy's answer to one failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Resume,
    Restart(Duration),
    Stop,
    Escalate,
}
