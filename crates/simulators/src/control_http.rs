//! The control API over HTTP (no auth, loopback only), for driving the simulators from another
//! process (the bin, benchmarks). Each endpoint calls the same functions as the Rust API.

use crate::config::{GraphConfig, ThrottleConfig};
use crate::control::{self, ActionError, DefenderAction, SentinelAction};
use crate::entra::{self, BadToken, TokenSpec};
use crate::faults::{Api, FaultPlan};
use crate::state::{Shared, lock, write};
use crate::{arm, generator, graph};
use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/control/defender/{tenant}/incidents",
            get(defender_list).post(defender_insert),
        )
        .route(
            "/control/defender/{tenant}/incidents/{id}",
            post(defender_action),
        )
        .route("/control/defender/{tenant}/seed", post(seed))
        .route("/control/sentinel/incidents", get(sentinel_list))
        .route("/control/sentinel/incidents/{name}", post(sentinel_action))
        .route("/control/sentinel/incidents/{name}/trigger", get(trigger))
        .route("/control/logs/{stream}", get(rows))
        .route("/control/counters", get(counters).delete(reset_counters))
        .route("/control/faults/{api}", put(faults))
        .route("/control/throttle", put(throttle))
        .route("/control/graph-config", put(graph_config))
        .route("/control/keys/rotate", post(rotate))
        .route("/control/tokens", post(token))
        .route("/control/bad-tokens", post(bad_tokens))
        .with_state(shared)
}

fn err(e: ActionError) -> Response {
    let status = match e {
        ActionError::NotFound(_) => StatusCode::NOT_FOUND,
        ActionError::Invalid(_) => StatusCode::BAD_REQUEST,
    };
    (status, Json(json!({"error": e.to_string()}))).into_response()
}

fn ok(r: Result<Value, ActionError>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => err(e),
    }
}

async fn defender_list(State(s): State<Arc<Shared>>, Path(tenant): Path<String>) -> Response {
    let v: Vec<Value> = lock(&s.graph)
        .list(&tenant)
        .map(graph::store::GraphIncident::to_json)
        .collect();
    Json(v).into_response()
}

async fn defender_insert(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Json(v): Json<Value>,
) -> Response {
    match graph::store::GraphIncident::from_json(v) {
        Some(i) => {
            Json(json!({"id": lock(&s.graph).upsert(&tenant, i).to_string()})).into_response()
        }
        None => err(ActionError::Invalid(
            "incident needs a numeric string id".into(),
        )),
    }
}

async fn defender_action(
    State(s): State<Arc<Shared>>,
    Path((tenant, id)): Path<(String, String)>,
    Json(a): Json<DefenderAction>,
) -> Response {
    ok(control::defender(&s, &tenant, &id, a))
}

#[derive(Deserialize)]
struct SeedReq {
    n: usize,
    seed: u64,
    #[serde(default = "max_alerts")]
    max_alerts: usize,
    /// Exactly this many alerts per incident.
    #[serde(default)]
    alerts: Option<usize>,
    /// Exactly this many evidence items per alert.
    #[serde(default)]
    evidence: Option<usize>,
}

fn max_alerts() -> usize {
    200
}

async fn seed(
    State(s): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Json(r): Json<SeedReq>,
) -> Response {
    let mut g = lock(&s.graph);
    let first = g.allocate_id();
    let shape = generator::Shape {
        max_alerts: r.max_alerts,
        alerts: r.alerts,
        evidence: r.evidence,
    };
    let ids: Vec<String> =
        generator::incidents_shaped(r.n, r.seed, &tenant, first, crate::util::now(), shape)
            .into_iter()
            .filter_map(graph::store::GraphIncident::from_json)
            .map(|i| g.upsert(&tenant, i).to_string())
            .collect();
    Json(json!({"ids": ids})).into_response()
}

async fn sentinel_list(State(s): State<Arc<Shared>>) -> Response {
    let base = arm::incidents_base(&s);
    let v: Vec<Value> = lock(&s.arm)
        .incidents
        .values()
        .map(|i| i.render(&base))
        .collect();
    Json(v).into_response()
}

async fn sentinel_action(
    State(s): State<Arc<Shared>>,
    Path(name): Path<String>,
    Json(a): Json<SentinelAction>,
) -> Response {
    ok(control::sentinel(&s, &name, a))
}

async fn trigger(State(s): State<Arc<Shared>>, Path(name): Path<String>) -> Response {
    ok(control::trigger_body(&s, &name, &[], "Update"))
}

async fn rows(State(s): State<Arc<Shared>>, Path(stream): Path<String>) -> Response {
    Json(lock(&s.logs).rows(&stream)).into_response()
}

async fn counters(State(s): State<Arc<Shared>>) -> Response {
    Json(lock(&s.counters).clone()).into_response()
}

async fn reset_counters(State(s): State<Arc<Shared>>) -> Response {
    *lock(&s.counters) = Default::default();
    StatusCode::NO_CONTENT.into_response()
}

async fn faults(
    State(s): State<Arc<Shared>>,
    Path(api): Path<Api>,
    Json(plan): Json<FaultPlan>,
) -> Response {
    lock(&s.faults).set(api, plan);
    StatusCode::NO_CONTENT.into_response()
}

async fn throttle(State(s): State<Arc<Shared>>, Json(cfg): Json<ThrottleConfig>) -> Response {
    *write(&s.throttle_cfg) = cfg;
    lock(&s.buckets).clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn graph_config(State(s): State<Arc<Shared>>, Json(cfg): Json<GraphConfig>) -> Response {
    *write(&s.graph_cfg) = cfg;
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
struct RotateReq {
    #[serde(default)]
    retire_old: bool,
}

async fn rotate(State(s): State<Arc<Shared>>, Json(r): Json<RotateReq>) -> Response {
    match entra::rotate(&s, r.retire_old) {
        Ok(kid) => Json(json!({"kid": kid})).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn token(State(s): State<Arc<Shared>>, Json(spec): Json<TokenSpec>) -> Response {
    match entra::mint(&s, &spec) {
        Ok(t) => Json(json!({"access_token": t})).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
struct BadReq {
    kind: BadToken,
    count: usize,
}

async fn bad_tokens(State(s): State<Arc<Shared>>, Json(r): Json<BadReq>) -> Response {
    lock(&s.bad_tokens).extend(std::iter::repeat_n(r.kind, r.count));
    StatusCode::NO_CONTENT.into_response()
}
