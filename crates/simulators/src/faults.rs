//! Fault injection per API: exact sequences and seeded error rates, plus added latency.
//! Seeded so a failing run replays the same faults for the same request order.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::Duration;

/// The simulated services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Api {
    Entra,
    Graph,
    Arm,
    Logs,
}

impl Api {
    /// Name used in counters.
    pub fn name(self) -> &'static str {
        match self {
            Api::Entra => "entra",
            Api::Graph => "graph",
            Api::Arm => "arm",
            Api::Logs => "logs",
        }
    }
}

/// One injected outcome.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Fault {
    /// Let the request through (a gap in a sequence).
    Pass,
    /// 429 with this `Retry-After` (seconds; fractional on Graph).
    TooManyRequests { retry_after: f64 },
    /// 500 before the request is applied.
    InternalError,
    /// 503 before the request is applied.
    ServiceUnavailable,
    /// Connection dropped before the request is applied.
    Reset,
    /// The request is applied, then the answer is a 500 (the write happened).
    InternalErrorAfterApply,
    /// The request is applied, then the connection is dropped.
    ResetAfterApply,
    /// 400 before the request is applied: the service refuses this request (e.g. Sentinel
    /// refusing one incident's payload), a failure a retry does not cure.
    BadRequest,
    /// 403 before the request is applied, with the service's body for a caller that lacks the
    /// permission or role (Graph `Authorization_RequestDenied`, ARM `AuthorizationFailed`, Logs
    /// `OperationFailed`): what a missing grant looks like, for `check` and its tests.
    Forbidden,
}

/// Which requests a plan applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultScope {
    #[default]
    All,
    /// GET only.
    Reads,
    /// PUT, PATCH, POST, DELETE.
    Writes,
}

/// Faults of one API.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FaultPlan {
    /// Consumed first, one per matching request.
    #[serde(default)]
    pub sequence: VecDeque<Fault>,
    /// After the sequence: each (fault, probability) rolled in order.
    #[serde(default)]
    pub rates: Vec<(Fault, f64)>,
    /// Added to every matching request, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Added to a request with probability `slow_rate`, in milliseconds, on top of
    /// `latency_ms`: answers slower than a client's timeout, now and then.
    #[serde(default)]
    pub slow_ms: u64,
    #[serde(default)]
    pub slow_rate: f64,
    #[serde(default)]
    pub scope: FaultScope,
    /// Only requests whose path contains this text (e.g. one Sentinel incident's name).
    #[serde(default)]
    pub path_contains: Option<String>,
}

impl FaultPlan {
    /// Exactly these outcomes for the next requests, then normal service.
    pub fn sequence(faults: impl IntoIterator<Item = Fault>) -> Self {
        Self {
            sequence: faults.into_iter().collect(),
            ..Self::default()
        }
    }
    /// Each request fails with `fault` with probability `p`.
    pub fn rate(fault: Fault, p: f64) -> Self {
        Self {
            rates: vec![(fault, p)],
            ..Self::default()
        }
    }
    /// Restricts the plan to reads or writes.
    pub fn scoped(mut self, scope: FaultScope) -> Self {
        self.scope = scope;
        self
    }
    /// Restricts the plan to requests whose path contains `text` (one incident's writes).
    pub fn for_path(mut self, text: impl Into<String>) -> Self {
        self.path_contains = Some(text.into());
        self
    }
    /// Adds latency to every request.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency_ms = latency.as_millis() as u64;
        self
    }
    /// Adds `latency` to each request with probability `p` (seeded, like the rates).
    pub fn with_slow(mut self, latency: Duration, p: f64) -> Self {
        self.slow_ms = latency.as_millis() as u64;
        self.slow_rate = p;
        self
    }
}

/// Per-API plans plus the seeded random source.
#[derive(Debug)]
pub struct Faults {
    plans: std::collections::HashMap<Api, FaultPlan>,
    rng: StdRng,
}

impl Faults {
    pub fn new(seed: u64) -> Self {
        Self {
            plans: Default::default(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// Replaces the plan of `api` (an empty plan clears it).
    pub fn set(&mut self, api: Api, plan: FaultPlan) {
        self.plans.insert(api, plan);
    }

    /// Reseeds the random source (replay a run).
    pub fn reseed(&mut self, seed: u64) {
        self.rng = StdRng::seed_from_u64(seed);
    }

    /// Decides the outcome and added latency for one request.
    pub fn decide(&mut self, api: Api, is_write: bool) -> (Fault, Duration) {
        self.decide_for(api, is_write, "")
    }

    /// Decides the outcome and added latency for one request to `path`.
    pub fn decide_for(&mut self, api: Api, is_write: bool, path: &str) -> (Fault, Duration) {
        let (fault, latency, _) = self.decide_slow(api, is_write, path);
        (fault, latency)
    }

    /// As [`Faults::decide_for`], and whether the request is one of the plan's slow answers.
    pub fn decide_slow(&mut self, api: Api, is_write: bool, path: &str) -> (Fault, Duration, bool) {
        let Some(plan) = self.plans.get_mut(&api) else {
            return (Fault::Pass, Duration::ZERO, false);
        };
        let applies = match plan.scope {
            FaultScope::All => true,
            FaultScope::Reads => !is_write,
            FaultScope::Writes => is_write,
        } && plan
            .path_contains
            .as_deref()
            .is_none_or(|p| path.contains(p));
        if !applies {
            return (Fault::Pass, Duration::ZERO, false);
        }
        let mut latency = Duration::from_millis(plan.latency_ms);
        let slow = plan.slow_rate > 0.0 && self.rng.random::<f64>() < plan.slow_rate;
        if slow {
            latency += Duration::from_millis(plan.slow_ms);
        }
        if let Some(f) = plan.sequence.pop_front() {
            return (f, latency, slow);
        }
        for (f, p) in &plan.rates {
            if self.rng.random::<f64>() < *p {
                return (*f, latency, slow);
            }
        }
        (Fault::Pass, latency, slow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_then_seeded_rates_replay() {
        let mut f = Faults::new(7);
        f.set(
            Api::Arm,
            FaultPlan::sequence([Fault::InternalError, Fault::Pass]).scoped(FaultScope::Writes),
        );
        assert_eq!(f.decide(Api::Arm, false).0, Fault::Pass);
        assert_eq!(f.decide(Api::Arm, true).0, Fault::InternalError);
        assert_eq!(f.decide(Api::Arm, true).0, Fault::Pass);
        let run = |seed| {
            let mut f = Faults::new(seed);
            f.set(Api::Graph, FaultPlan::rate(Fault::ServiceUnavailable, 0.5));
            (0..32)
                .map(|_| f.decide(Api::Graph, false).0 == Fault::Pass)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert!(run(1).iter().any(|p| *p) && run(1).iter().any(|p| !*p));
    }

    #[test]
    fn a_plan_for_one_path_leaves_the_others_alone() {
        let mut f = Faults::new(7);
        f.set(
            Api::Arm,
            FaultPlan::rate(Fault::BadRequest, 1.0)
                .scoped(FaultScope::Writes)
                .for_path("incidents/abc"),
        );
        assert_eq!(
            f.decide_for(Api::Arm, true, "/x/incidents/abc").0,
            Fault::BadRequest
        );
        assert_eq!(
            f.decide_for(Api::Arm, true, "/x/incidents/abc/comments/1")
                .0,
            Fault::BadRequest
        );
        assert_eq!(
            f.decide_for(Api::Arm, true, "/x/incidents/other").0,
            Fault::Pass
        );
        assert_eq!(
            f.decide_for(Api::Arm, false, "/x/incidents/abc").0,
            Fault::Pass
        );
    }

    #[test]
    fn slow_answers_come_at_their_rate_and_replay_with_the_seed() {
        let run = |seed| {
            let mut f = Faults::new(seed);
            f.set(
                Api::Arm,
                FaultPlan::default().with_slow(Duration::from_millis(2000), 0.25),
            );
            (0..400)
                .map(|_| f.decide(Api::Arm, true))
                .map(|(fault, l)| {
                    assert_eq!(fault, Fault::Pass, "slow, not failed");
                    l
                })
                .collect::<Vec<_>>()
        };
        let a = run(3);
        assert_eq!(a, run(3), "same seed, same slow requests");
        let slow = a
            .iter()
            .filter(|l| **l == Duration::from_millis(2000))
            .count();
        assert!((60..140).contains(&slow), "{slow} of 400 at p = 0.25");
        assert!(
            a.iter()
                .all(|l| l.is_zero() || *l == Duration::from_millis(2000))
        );
    }
}
