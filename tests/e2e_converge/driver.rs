//! The seeded schedule: rounds of analyst changes on both sides, webhooks, cycles and faults;
//! then the convergence phase and the checks of `check.rs`.

use super::check::{Ledger, assert_logs_rows, assert_two_way_converged};
use super::invariants::{assert_checkpoint, assert_idle, touch};
use super::support::azurite::Options as AzuriteOptions;
use super::support::world::{World, WorldOptions};
use dss_simulators::{
    Api, DefenderAction, Fault, FaultPlan, FaultScope, SentinelAction, wellknown,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;

pub const TENANTS: [&str; 2] = [wellknown::TENANT_ID, wellknown::TENANT_ID_2];
/// Owners both directories know (an unknown owner is left unassigned in Sentinel by design).
pub const OWNERS: [&str; 3] = [
    wellknown::ANALYST_UPN,
    "kai.carter@contoso.com",
    "dana.smith@contoso.com",
];
const TAGS: [&str; 4] = ["phish-wave", "vip", "escalated", "ransomware"];

/// What one seed did and found; summed over seeds for the total line.
#[derive(Debug, Default, Clone)]
pub struct Figures {
    pub seeds: u64,
    pub rounds: u64,
    pub cycles: u64,
    /// Cycles after the faults stopped until one wrote nothing (the idle one not counted);
    /// the largest over the seeds in a total.
    pub cycles_to_converge: u64,
    pub incidents: u64,
    pub comments: u64,
    pub defender_actions: u64,
    pub sentinel_actions: u64,
    pub webhooks: BTreeMap<&'static str, u64>,
    pub faults: BTreeMap<String, u64>,
    pub lost: u64,
    pub duplicated: u64,
    /// Logs rows received, and distinct `RowId`s among them (the rest are redeliveries).
    pub rows: u64,
    pub row_ids: u64,
}

impl Figures {
    pub fn add(&mut self, o: &Figures) {
        self.seeds += o.seeds;
        self.rounds += o.rounds;
        self.cycles += o.cycles;
        self.cycles_to_converge = self.cycles_to_converge.max(o.cycles_to_converge);
        self.incidents += o.incidents;
        self.comments += o.comments;
        self.defender_actions += o.defender_actions;
        self.sentinel_actions += o.sentinel_actions;
        for (k, v) in &o.webhooks {
            *self.webhooks.entry(k).or_default() += v;
        }
        for (k, v) in &o.faults {
            *self.faults.entry(k.clone()).or_default() += v;
        }
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.rows += o.rows;
        self.row_ids += o.row_ids;
    }

    pub fn line(&self) -> String {
        let map = |m: &BTreeMap<_, u64>| {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let faults: BTreeMap<&str, u64> =
            self.faults.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        format!(
            "seeds {}, rounds {}, cycles {}, cycles to converge ≤ {}, incidents {}, analyst \
             comments {}, analyst changes {} in Defender + {} in Sentinel, webhooks [{}], faults \
             [{}], Logs rows {} ({} distinct RowIds), lost {}, duplicated {}",
            self.seeds,
            self.rounds,
            self.cycles,
            self.cycles_to_converge,
            self.incidents,
            self.comments,
            self.defender_actions,
            self.sentinel_actions,
            map(&self.webhooks),
            map(&faults),
            self.rows,
            self.row_ids,
            self.lost,
            self.duplicated
        )
    }
}

/// The incidents of the run, per tenant, with the ones merged away (never acted on again).
#[derive(Default)]
struct Incidents {
    ids: BTreeMap<&'static str, Vec<String>>,
    merged: std::collections::BTreeSet<(String, String)>,
}

impl Incidents {
    fn live(&self, t: &'static str) -> Vec<String> {
        self.ids[t]
            .iter()
            .filter(|id| !self.merged.contains(&(t.to_owned(), (*id).clone())))
            .cloned()
            .collect()
    }
}

/// New incidents as Defender creates them: now (the generator dates them in the past), owners
/// the directory knows or none.
fn new_incidents(w: &World, rng: &mut StdRng, t: &'static str, n: usize, seed: u64) -> Vec<String> {
    let ids = w.sims.seed_capped(t, n, seed, 2);
    for id in &ids {
        let owner = pick_owner(rng);
        w.sims
            .defender_action(t, id, DefenderAction::Assign { assigned_to: owner })
            .unwrap();
        touch(&w.sims, t, id);
    }
    ids
}

fn pick_owner(rng: &mut StdRng) -> Option<String> {
    if rng.random_bool(0.3) {
        None
    } else {
        Some(OWNERS[rng.random_range(0..OWNERS.len())].to_owned())
    }
}

fn pick_tags(rng: &mut StdRng) -> Vec<String> {
    TAGS.iter()
        .filter(|_| rng.random_bool(0.4))
        .map(|t| (*t).to_owned())
        .collect()
}

/// One Defender analyst change; `None` when the action was refused (e.g. the incident is gone).
fn defender_change(
    w: &World,
    rng: &mut StdRng,
    inc: &mut Incidents,
    ledger: &mut Ledger,
    t: &'static str,
    id: &str,
) -> Option<()> {
    let action = match rng.random_range(0..100) {
        0..15 => DefenderAction::SetStatus {
            status: ["active", "inProgress", "awaitingAction"][rng.random_range(0..3)].into(),
        },
        15..27 => {
            let (c, d) = [
                ("truePositive", "malware"),
                ("falsePositive", "notMalicious"),
                ("informationalExpectedActivity", "securityTesting"),
            ][rng.random_range(0..3)];
            DefenderAction::Resolve {
                classification: Some(c.into()),
                determination: Some(d.into()),
                resolving_comment: Some(format!("Resolved in Defender {}.", rng.random::<u16>())),
            }
        }
        27..35 => DefenderAction::Classify {
            classification: "truePositive".into(),
            determination: Some("multiStagedAttack".into()),
        },
        35..50 => DefenderAction::Assign {
            assigned_to: pick_owner(rng),
        },
        50..63 => DefenderAction::Tag {
            custom_tags: pick_tags(rng),
        },
        63..85 => {
            let token = ledger.token();
            let comment = format!("Defender analyst note {token}: checked the host.");
            let r = w
                .sims
                .defender_action(t, id, DefenderAction::Comment { comment });
            if r.is_ok() {
                ledger.event(t, id, format!("Defender comment {token}"));
                ledger.add(t, id, token);
            }
            return r.ok().map(|_| ());
        }
        85..92 => DefenderAction::SetSeverity {
            severity: ["low", "medium", "high"][rng.random_range(0..3)].into(),
        },
        92..95 => DefenderAction::AddAlert { alert: None },
        _ => {
            let live = inc.live(t);
            let others: Vec<&String> = live.iter().filter(|o| *o != id).collect();
            if others.is_empty() {
                return None;
            }
            let into = others[rng.random_range(0..others.len())].clone();
            let merge = DefenderAction::Merge { into: into.clone() };
            let r = w.sims.defender_action(t, id, merge);
            if r.is_ok() {
                ledger.event(t, id, format!("Defender merge into {into}"));
                ledger.event(t, &into, format!("Defender merge of {id} into it"));
                inc.merged.insert((t.to_owned(), id.to_owned()));
            }
            return r.ok().map(|_| ());
        }
    };
    let what = format!("Defender {action:?}");
    let r = w.sims.defender_action(t, id, action).ok().map(|_| ());
    if r.is_some() {
        ledger.event(t, id, what);
    }
    r
}

/// One Sentinel analyst change on the mirror of `id`; returns the playbook body (`None`: the
/// mirror does not exist yet, or the portal refused).
fn sentinel_change(
    w: &World,
    rng: &mut StdRng,
    ledger: &mut Ledger,
    t: &'static str,
    id: &str,
) -> Option<Value> {
    let name = super::invariants::sentinel_name(t, id);
    w.sims.sentinel_incident(&name)?;
    let action = match rng.random_range(0..100) {
        0..20 => {
            let (c, r) = [
                ("TruePositive", Some("SuspiciousActivity")),
                ("BenignPositive", Some("SuspiciousButExpected")),
                ("FalsePositive", Some("IncorrectAlertLogic")),
                ("FalsePositive", Some("InaccurateData")),
                ("Undetermined", None),
            ][rng.random_range(0..5)];
            SentinelAction::SetStatus {
                status: "Closed".into(),
                classification: Some(c.into()),
                classification_reason: r.map(Into::into),
                classification_comment: Some(format!(
                    "Closed in Sentinel {}.",
                    rng.random::<u16>()
                )),
            }
        }
        20..32 => SentinelAction::SetStatus {
            status: ["New", "Active"][rng.random_range(0..2)].into(),
            classification: None,
            classification_reason: None,
            classification_comment: None,
        },
        32..50 => SentinelAction::SetOwner {
            owner: pick_owner(rng),
        },
        50..65 => {
            let mut labels = pick_tags(rng);
            labels.push("Defender".into());
            SentinelAction::SetLabels { labels }
        }
        65..90 => {
            let token = ledger.token();
            let message = format!("Sentinel analyst note {token}: isolated the device.");
            let r = w
                .sims
                .sentinel_action(&name, SentinelAction::Comment { message });
            if r.is_ok() {
                ledger.event(t, id, format!("Sentinel comment {token}"));
                ledger.add(t, id, token);
            }
            return r.ok();
        }
        _ => SentinelAction::SetSeverity {
            severity: ["Low", "Medium", "High"][rng.random_range(0..3)].into(),
        },
    };
    let what = format!("Sentinel {action:?}");
    let r = w.sims.sentinel_action(&name, action).ok();
    if r.is_some() {
        ledger.event(t, id, what);
    }
    r
}

/// The handler's upstream call timeout in the suite (the default, 30 s, is too long for a
/// test), and the delay of an answer slower than it.
const CALL_TIMEOUT_SECONDS: &str = "1.5";
const SLOWER_THAN_TIMEOUT_MS: u64 = 2_000;

/// How long the handler holds a comment claim whose POST ended without an answer: twice the
/// call timeout (`GraphClient`'s `write_settle`), plus the second lost by a claim's time kept
/// in whole seconds.
fn claim_settle() -> Duration {
    let timeout: f64 = CALL_TIMEOUT_SECONDS.parse().unwrap();
    Duration::from_secs_f64(2.0 * timeout + 1.0)
}

/// The faults of one round, chosen by the seed; returns the kinds injected by the plans (the
/// simulators count what actually hit a request).
fn set_round_faults(w: &World, rng: &mut StdRng) -> Vec<&'static str> {
    let mut kinds = Vec::new();
    let mut plans: BTreeMap<Api, FaultPlan> = BTreeMap::new();
    let apis = [Api::Graph, Api::Arm, Api::Logs];
    if rng.random_bool(0.5) {
        // A 429 storm: Retry-After fractional on Graph, whole seconds on ARM and Logs.
        let api = apis[rng.random_range(0..3)];
        let retry_after = if api == Api::Graph { 0.3 } else { 1.0 };
        plans
            .entry(api)
            .or_default()
            .rates
            .push((Fault::TooManyRequests { retry_after }, 0.25));
        kinds.push("429 storm");
    }
    if rng.random_bool(0.5) {
        // A 5xx burst: the next few calls of one API fail before they are applied.
        let api = apis[rng.random_range(0..3)];
        let n = rng.random_range(2..6);
        let plan = plans.entry(api).or_default();
        for i in 0..n {
            plan.sequence.push_back(if i % 2 == 0 {
                Fault::InternalError
            } else {
                Fault::ServiceUnavailable
            });
        }
        kinds.push("5xx burst");
    }
    if rng.random_bool(0.5) {
        // Resets and 500s before and after the write is applied, on writes.
        let api = apis[rng.random_range(0..3)];
        let plan = plans.entry(api).or_default();
        plan.rates.extend([
            (Fault::Reset, 0.05),
            (Fault::ResetAfterApply, 0.08),
            (Fault::InternalErrorAfterApply, 0.08),
        ]);
        if api != Api::Graph {
            plan.scope = FaultScope::Writes;
        }
        kinds.push("resets / after-apply");
    }
    if rng.random_bool(0.3) {
        let api = apis[rng.random_range(0..3)];
        plans.entry(api).or_default().latency_ms = rng.random_range(100..400);
        kinds.push("slow answers");
    }
    if rng.random_bool(0.25) {
        // Answers slower than the handler's call timeout (SYNC_CALL_TIMEOUT_SECONDS, set to
        // CALL_TIMEOUT_SECONDS below): the call is cut off, whether the service then applies
        // it or not. On Graph, which every cycle reads and writes most (a kill replaces the
        // round's ARM plan, and Logs sees one call a cycle).
        let plan = plans.entry(Api::Graph).or_default();
        plan.slow_ms = SLOWER_THAN_TIMEOUT_MS;
        plan.slow_rate = 0.15;
        kinds.push("answers slower than the call timeout");
    }
    if rng.random_bool(0.3) {
        plans
            .entry(Api::Entra)
            .or_default()
            .rates
            .push((Fault::ServiceUnavailable, 0.5));
        kinds.push("token endpoint 503");
    }
    for api in [Api::Graph, Api::Arm, Api::Logs, Api::Entra] {
        w.sims
            .set_faults(api, plans.remove(&api).unwrap_or_default());
    }
    kinds
}

fn clear_faults(w: &World) {
    for api in [Api::Graph, Api::Arm, Api::Logs, Api::Entra] {
        w.sims.set_faults(api, FaultPlan::default());
    }
}

/// Sends the round's playbook calls: each is lost, sent, replayed or held back and sent after
/// the newer ones (reordered).
async fn post_webhooks(
    w: &World,
    rng: &mut StdRng,
    bodies: Vec<Value>,
    f: &mut Figures,
) -> Vec<String> {
    let mut now = Vec::new();
    let mut late = Vec::new();
    let mut log = Vec::new();
    for b in bodies {
        let name = b["object"]["name"].as_str().unwrap_or("?").to_owned();
        let fate = match rng.random_range(0..10) {
            0..2 => "lost",
            2..6 => {
                now.push(b);
                "sent"
            }
            6..8 => {
                now.push(b.clone());
                now.push(b);
                "replayed"
            }
            _ => {
                late.push(b);
                "reordered"
            }
        };
        *f.webhooks.entry(fate).or_default() += 1;
        log.push(format!("{fate} {}", &name[..8]));
    }
    for b in now.into_iter().chain(late) {
        let res = w.webhook(&b.to_string()).await;
        *f.webhooks.entry("posted").or_default() += 1;
        let key = match res.status {
            200..=299 => "answered 2xx",
            429 => "answered 429",
            _ => "answered other",
        };
        *f.webhooks.entry(key).or_default() += 1;
    }
    log
}

/// Writes per operation since the last counter reset (for a failure message).
fn writes_by_op(w: &World) -> Vec<(String, u64)> {
    let c = w.sims.counters();
    c.by_api
        .iter()
        .flat_map(|(api, ops)| {
            ops.iter()
                .filter(|(op, _)| !op.starts_with("GET"))
                .map(move |(op, n)| (format!("{api} {op}"), n.calls))
        })
        .collect()
}

/// Whether a cycle wrote nothing anywhere (counted by the simulators since the last reset).
fn wrote_nothing(w: &World) -> bool {
    let c = w.sims.counters();
    let writes = |api: &str| -> u64 {
        c.by_api
            .get(api)
            .into_iter()
            .flatten()
            .filter(|(op, _)| !op.starts_with("GET"))
            .map(|(_, n)| n.calls)
            .sum()
    };
    writes("graph") == 0 && writes("arm") == 0 && c.total("logs") == 0
}

/// With `DSS_CONVERGE_LOG=<file>`, appends what the running handler wrote (its tracing lines;
/// `RUST_LOG` sets their level) to that file: called before a kill and after the convergence
/// cycles, so a failing seed can be replayed with the handler's log.
fn keep_handler_log(w: &World, when: &str) {
    let out = w.host.output();
    let lines: Vec<&String> = out.stdout.iter().chain(&out.stderr).collect();
    append_to_handler_log(&format!("handler output, {when}"), &lines);
}

/// Marks the start of a round in the `DSS_CONVERGE_LOG` file, with the time, to read the
/// handler's lines (stamped with their time) against the rounds.
fn mark_handler_log(what: &str) {
    let now = time::OffsetDateTime::now_utc();
    append_to_handler_log(&format!("{what} at {now}"), &[]);
}

fn append_to_handler_log(title: &str, lines: &[&String]) {
    use std::io::Write;
    let Ok(path) = std::env::var("DSS_CONVERGE_LOG") else {
        return;
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    writeln!(f, "===== {title}").unwrap();
    for l in lines {
        writeln!(f, "{l}").unwrap();
    }
}

/// One seed: the schedule, the convergence phase, the checks. Panics on a broken invariant.
pub async fn run_seed(seed: u64, rounds: usize) -> Figures {
    let mut rng = StdRng::seed_from_u64(seed);
    let state_dir = tempfile::tempdir().unwrap();
    let mut w = World::start_with(WorldOptions {
        env: vec![
            ("SYNC_RETRY_BACKOFF_SECONDS".into(), "0".into()),
            ("SYNC_SEVERITY_TO_DEFENDER".into(), "true".into()),
            (
                "SYNC_CALL_TIMEOUT_SECONDS".into(),
                CALL_TIMEOUT_SECONDS.into(),
            ),
        ],
        // On disk and the combined bin: a restart keeps the tables (a graceful SIGTERM saves).
        azurite: Some(AzuriteOptions {
            location: Some(state_dir.path().to_owned()),
            all_services: true,
            ..Default::default()
        }),
        ..WorldOptions::default()
    })
    .await;
    w.sims.reseed_faults(seed);
    let mut f = Figures {
        seeds: 1,
        rounds: rounds as u64,
        ..Figures::default()
    };
    let mut ledger = Ledger::new(seed);
    let mut inc = Incidents::default();
    for (i, t) in TENANTS.iter().enumerate() {
        let n = rng.random_range(4..8);
        let ids = new_incidents(&w, &mut rng, t, n, seed * 10 + i as u64);
        inc.ids.insert(t, ids);
    }
    // A first cycle with no faults: the mirrors exist, so Sentinel analysts have work from round 1.
    w.sync().await;
    f.cycles += 1;

    for round in 0..rounds {
        ledger.round = format!("round {round}");
        mark_handler_log(&ledger.round);
        let kill = rng.random_bool(0.35);
        let restart_azurite = !kill && rng.random_bool(0.25);
        let mut kinds = set_round_faults(&w, &mut rng);
        if kill || restart_azurite {
            // Slow Sentinel writes keep the cycle running long enough to be hit mid-way.
            let mut plan = FaultPlan::default().with_latency(Duration::from_millis(150));
            plan.scope = FaultScope::Writes;
            w.sims.set_faults(Api::Arm, plan);
            kinds.retain(|k| *k != "slow answers");
            kinds.push("slow answers");
        }
        // Analyst changes on both sides, often on the same incidents at once.
        let mut bodies = Vec::new();
        for t in TENANTS {
            if rng.random_bool(0.3) {
                let n = rng.random_range(1..3);
                let ids = new_incidents(&w, &mut rng, t, n, seed * 1000 + round as u64 * 10);
                inc.ids.get_mut(t).unwrap().extend(ids);
            }
            let live = inc.live(t);
            for _ in 0..rng.random_range(2..6) {
                let id = live[rng.random_range(0..live.len())].clone();
                if inc.merged.contains(&(t.to_owned(), id.clone())) {
                    continue;
                }
                if rng.random_bool(0.6)
                    && defender_change(&w, &mut rng, &mut inc, &mut ledger, t, &id).is_some()
                {
                    f.defender_actions += 1;
                }
                if inc.merged.contains(&(t.to_owned(), id.clone())) {
                    continue;
                }
                if rng.random_bool(0.6)
                    && let Some(b) = sentinel_change(&w, &mut rng, &mut ledger, t, &id)
                {
                    f.sentinel_actions += 1;
                    bodies.push(b);
                }
            }
        }
        // The timer cycle, with the playbook's calls arriving while it runs.
        let mut cycle = w.spawn_sync();
        f.cycles += 1;
        let hooks = post_webhooks(&w, &mut rng, bodies, &mut f).await;
        if (kill || restart_azurite) && cycle.is_finished() {
            // The webhooks outlasted the cycle: hit the next one instead.
            cycle.await.unwrap().ok();
            cycle = w.spawn_sync();
            f.cycles += 1;
        }
        let mid = |c: &tokio::task::JoinHandle<_>| {
            if c.is_finished() {
                "after the cycle"
            } else {
                "mid-cycle"
            }
        };
        if kill {
            // SIGKILL, then the host restarts the handler.
            tokio::time::sleep(Duration::from_millis(rng.random_range(30..400))).await;
            let when = mid(&cycle);
            keep_handler_log(&w, &format!("round {round}, before the SIGKILL"));
            w.host.kill().await.unwrap();
            w.host.restart().await.unwrap();
            *f.faults
                .entry(format!("handler SIGKILLed {when}"))
                .or_default() += 1;
        } else if restart_azurite {
            tokio::time::sleep(Duration::from_millis(rng.random_range(30..300))).await;
            let when = mid(&cycle);
            tokio::task::block_in_place(|| w.restart_azurite());
            *f.faults
                .entry(format!("Azurite restarted {when}"))
                .or_default() += 1;
        }
        let outcome = cycle.await.unwrap();
        println!(
            "  round {round}: faults {kinds:?}{}{}; webhooks {hooks:?}; cycle {}",
            if kill { ", SIGKILL" } else { "" },
            if restart_azurite {
                ", Azurite restart"
            } else {
                ""
            },
            match outcome {
                Ok(s) => format!("answered {s}"),
                Err(_) => "died with the handler".into(),
            }
        );
        for k in kinds {
            *f.faults.entry(format!("round with {k}")).or_default() += 1;
        }
    }

    clear_faults(&w);
    let c = w.sims.counters();
    for (api, ops) in &c.by_api {
        for o in ops.values() {
            for (k, n) in [
                ("429", o.throttled),
                ("5xx", o.server_errors),
                ("reset", o.resets),
                ("slower than the call timeout", o.slowed),
            ] {
                if n > 0 {
                    *f.faults.entry(format!("{api} {k}")).or_default() += n;
                }
            }
        }
    }

    // The faults have stopped, and so have their effects once the writes cut off by the call
    // timeout have settled: a comment POST cut off in the last round may still be applied by
    // Graph until its claim settles (twice the call timeout, plus the second a claim's time
    // rounds off), and until then the handler holds the comment rather than post it twice.
    tokio::time::sleep(claim_settle()).await;
    // Then cycles until one writes nothing (bounded).
    mark_handler_log("convergence cycles");
    let mut converged = false;
    let mut writers = Vec::new();
    for _ in 0..4 {
        w.sims.reset_counters();
        let r = w.sync().await;
        f.cycles += 1;
        if r.return_value["completed"] == Value::Bool(true) && wrote_nothing(&w) {
            converged = true;
            break;
        }
        f.cycles_to_converge += 1;
        writers.push(format!(
            "writes {:?}; figures {}",
            writes_by_op(&w),
            r.return_value["figures"]
        ));
    }
    keep_handler_log(&w, "after the convergence cycles");
    assert!(
        converged,
        "seed {seed}: no idle cycle within 4 cycles after the faults stopped ({} wrote):\n  {}\n\
         incidents named:\n  {}",
        f.cycles_to_converge,
        writers.join("\n  "),
        ledger.histories_named_in(&writers.join(" ")).join("\n  ")
    );
    assert!(
        f.cycles_to_converge <= 3,
        "seed {seed}: {} cycles to converge",
        f.cycles_to_converge
    );

    let totals = assert_two_way_converged(&w, &TENANTS, &ledger, seed);
    f.incidents = totals.incidents;
    f.comments = totals.comments;
    f.lost = totals.lost;
    f.duplicated = totals.duplicated;
    let (rows, row_ids) = assert_logs_rows(&w, &TENANTS, seed);
    f.rows = rows;
    f.row_ids = row_ids;
    for t in TENANTS {
        assert_checkpoint(&w, t).await;
    }
    assert_idle(&w).await;
    f.cycles += 1;
    f
}
