//! Microsoft Graph security API v1.0: incidents (list, get, PATCH, comments), alerts_v2, users.
//! The token's `tid` decides which tenant's incidents a call sees.

mod alerts;
pub mod store;
pub mod validate;

use crate::entra::keys::Claims;
use crate::odata;
use crate::state::{Shared, lock, read};
use crate::util::{graph_error, json_response, query_map};
use axum::Router;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Serialize, Serializer, ser::SerializeMap};
use serde_json::{Map, Value, json};
use std::borrow::Cow;
use std::sync::Arc;
use store::GraphIncident;

const INCIDENT_FILTER: &[&str] = &[
    "lastUpdateDateTime",
    "createdDateTime",
    "status",
    "severity",
    "classification",
    "determination",
    "assignedTo",
];
/// The documented filterable properties of `alerts_v2` ("List alerts_v2": assignedTo,
/// classification, determination, createdDateTime, lastUpdateDateTime, severity, serviceSource
/// and status). `incidentId` is not one of them: a filter on it is refused with a 400.
const ALERT_FILTER: &[&str] = &[
    "assignedTo",
    "classification",
    "determination",
    "createdDateTime",
    "lastUpdateDateTime",
    "severity",
    "serviceSource",
    "status",
];
/// Members that only come back with `Prefer: include-unknown-enum-members`.
const EVOLVED: &[&str] = &[
    "awaitingAction",
    "microsoftDefenderForCloud",
    "microsoftSentinel",
    "microsoftDefenderForIoT",
    "microsoftDefenderForServers",
    "microsoftDefenderForStorage",
    "microsoftDefenderForDNS",
    "microsoftDefenderForDatabases",
    "microsoftDefenderForContainers",
    "microsoftDefenderForNetwork",
    "microsoftDefenderForAppService",
    "microsoftDefenderForKeyVault",
    "microsoftDefenderForResourceManager",
    "microsoftDefenderForApiManagement",
    "nrtAlerts",
    "scheduledAlerts",
    "microsoftDefenderThreatIntelligenceAnalytics",
    "builtInMl",
];

/// Routes of the Graph simulator (behind the gate).
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1.0/security/incidents", get(list_incidents))
        .route(
            "/v1.0/security/incidents/{id}",
            get(get_incident).patch(patch_incident),
        )
        .route(
            "/v1.0/security/incidents/{id}/comments",
            axum::routing::post(post_comment),
        )
        .route("/v1.0/security/alerts_v2", get(alerts::list_alerts))
        .route("/v1.0/security/alerts_v2/{id}", get(alerts::get_alert))
        .route("/v1.0/users/{id}", get(alerts::get_user))
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            unified_tick,
        ))
        .with_state(shared)
}

/// Unified-platform mode: what the analytics rule raised since the last request is visible
/// before this one is served.
async fn unified_tick(
    State(s): State<Arc<Shared>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    crate::unified::materialize(&s);
    next.run(req).await
}

/// How to render: which optional pieces a request asked for.
#[derive(Debug, Clone, Copy)]
struct View {
    expand: bool,
    prefer_unknown: bool,
    legacy_det: bool,
}

fn prefer_unknown(h: &HeaderMap) -> bool {
    h.get_all("prefer").iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.to_ascii_lowercase()
                .contains("include-unknown-enum-members")
        })
    })
}

fn hide_evolved(o: &mut Map<String, Value>, fields: &[&str], view: View) {
    for f in fields {
        if let Some(v) = o.get_mut(*f) {
            if !view.prefer_unknown && v.as_str().is_some_and(|s| EVOLVED.contains(&s)) {
                *v = json!("unknownFutureValue");
            }
            if *f == "determination"
                && view.legacy_det
                && let Some(s) = v.as_str()
            {
                *v = json!(validate::legacy_determination(s));
            }
        }
    }
}

fn render_alert(a: &Value, view: View) -> Value {
    let mut a = a.clone();
    if let Some(o) = a.as_object_mut() {
        hide_evolved(o, ALERT_HIDDEN, view);
    }
    a
}

fn render(inc: &GraphIncident, view: View) -> Value {
    let mut b = inc.body.clone();
    hide_evolved(&mut b, INCIDENT_HIDDEN, view);
    if view.expand {
        b.insert(
            "alerts".into(),
            Value::Array(inc.alerts.iter().map(|a| render_alert(a, view)).collect()),
        );
    }
    Value::Object(b)
}

/// Fields [`hide_evolved`] rewrites on an incident and on an alert.
const INCIDENT_HIDDEN: &[&str] = &["status", "determination"];
const ALERT_HIDDEN: &[&str] = &["serviceSource", "detectionSource", "determination"];

/// One member as [`hide_evolved`] would leave it, without touching the stored value.
fn shown<'a>(key: &str, v: &'a Value, fields: &[&str], view: View) -> Cow<'a, Value> {
    let mut out = Cow::Borrowed(v);
    if !fields.contains(&key) {
        return out;
    }
    if !view.prefer_unknown && v.as_str().is_some_and(|s| EVOLVED.contains(&s)) {
        out = Cow::Owned(json!("unknownFutureValue"));
    }
    if key == "determination"
        && view.legacy_det
        && let Some(s) = out.as_str()
    {
        out = Cow::Owned(json!(validate::legacy_determination(s)));
    }
    out
}

/// Serializes exactly as [`render_alert`]'s value would, straight from the stored alert: list
/// pages with `$expand=alerts` carry hundreds of alerts, and cloning each `Value` tree only to
/// serialize and drop it was most of a page's cost.
struct AlertView<'a> {
    alert: &'a Value,
    view: View,
}

impl Serialize for AlertView<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let Some(o) = self.alert.as_object() else {
            return self.alert.serialize(ser);
        };
        let mut m = ser.serialize_map(Some(o.len()))?;
        for (k, v) in o {
            m.serialize_entry(k, &shown(k, v, ALERT_HIDDEN, self.view))?;
        }
        m.end()
    }
}

/// Serializes exactly as [`render`]'s value would (plus `@odata.context` when given), without
/// cloning: a `Map` serializes its members in key order, so the added members are merged in at
/// their sorted places and replace a stored member of the same name, as `Map::insert` did.
struct IncidentView<'a> {
    inc: &'a GraphIncident,
    view: View,
    context: Option<&'a str>,
}

enum Member<'a> {
    Stored(Cow<'a, Value>),
    Alerts(&'a [Value], View),
    Str(&'a str),
}

impl Serialize for Member<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        match self {
            Member::Stored(v) => v.serialize(ser),
            Member::Alerts(alerts, view) => ser.collect_seq(alerts.iter().map(|a| AlertView {
                alert: a,
                view: *view,
            })),
            Member::Str(s) => ser.serialize_str(s),
        }
    }
}

impl Serialize for IncidentView<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut added: Vec<(&str, Member<'_>)> = Vec::with_capacity(2);
        if let Some(c) = self.context {
            added.push(("@odata.context", Member::Str(c)));
        }
        if self.view.expand {
            added.push(("alerts", Member::Alerts(&self.inc.alerts, self.view)));
        }
        let mut members: Vec<(&str, Member<'_>)> = self
            .inc
            .body
            .iter()
            .filter(|(k, _)| !added.iter().any(|(a, _)| a == k))
            .map(|(k, v)| {
                (
                    k.as_str(),
                    Member::Stored(shown(k, v, INCIDENT_HIDDEN, self.view)),
                )
            })
            .collect();
        members.extend(added);
        // Same order as the BTreeMap behind `Map` (byte-wise key order).
        members.sort_by(|a, b| a.0.cmp(b.0));
        let mut m = ser.serialize_map(Some(members.len()))?;
        for (k, v) in &members {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// A serialized JSON body, as `axum::Json` answers it (same content type), written into a buffer
/// sized up front rather than grown by doubling (list pages run to hundreds of kilobytes).
fn json_bytes(status: StatusCode, v: &impl Serialize, size_hint: usize) -> Response {
    let mut buf = Vec::with_capacity(size_hint);
    match serde_json::to_writer(&mut buf, v) {
        Ok(()) => (
            status,
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("application/json"),
            )],
            buf,
        )
            .into_response(),
        // What `(status, axum::Json(..))` answers when serializing fails (it cannot for these types).
        Err(e) => (
            status,
            [(
                axum::http::header::CONTENT_TYPE,
                axum::http::HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            e.to_string(),
        )
            .into_response(),
    }
}

fn view(
    s: &Shared,
    h: &HeaderMap,
    q: &std::collections::HashMap<String, String>,
) -> Result<View, Response> {
    let expand = match q.get("$expand").map(String::as_str) {
        None => false,
        Some(e) if e.eq_ignore_ascii_case("alerts") => true,
        Some(e) => {
            return Err(graph_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                &format!(
                    "Could not find a property named '{e}' on type 'microsoft.graph.security.incident'."
                ),
            ));
        }
    };
    Ok(View {
        expand,
        prefer_unknown: prefer_unknown(h),
        legacy_det: read(&s.graph_cfg).legacy_determination_spelling,
    })
}

fn bad(msg: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "BadRequest", msg)
}

/// `$top` / `$skip` checked against Graph's limits.
fn paging(
    s: &Shared,
    q: &std::collections::HashMap<String, String>,
) -> Result<(usize, usize), Response> {
    let cfg = read(&s.graph_cfg).clone();
    let top = match q.get("$top") {
        None => cfg.default_top,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| bad(&format!("Invalid value '{t}' for $top query option.")))?,
    };
    if top > cfg.max_top {
        return Err(bad(&format!(
            "The limit of '{}' for Top query has been exceeded. The value from the incoming request is '{top}'.",
            cfg.max_top
        )));
    }
    let skip = match q.get("$skip") {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| bad(&format!("Invalid value '{t}' for $skip query option.")))?,
    };
    if skip > cfg.max_skip {
        return Err(bad(&format!(
            "The limit of '{}' for Skip query has been exceeded. The value from the incoming request is '{skip}'.",
            cfg.max_skip
        )));
    }
    Ok((top, skip))
}

fn next_link(
    s: &Shared,
    path: &str,
    q: &std::collections::HashMap<String, String>,
    skip: usize,
) -> String {
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    let mut keys: Vec<&String> = q.keys().filter(|k| *k != "$skip").collect();
    keys.sort();
    for k in keys {
        ser.append_pair(k, &q[k]);
    }
    ser.append_pair("$skip", &skip.to_string());
    format!("{}{path}?{}", s.urls().graph, ser.finish())
}

fn expand_fault(
    s: &Shared,
    view: View,
    alert_counts: impl Iterator<Item = usize>,
) -> Option<Response> {
    let limit = read(&s.graph_cfg).expand_alerts_fail_above?;
    let too_many = view.expand && alert_counts.into_iter().any(|n| n > limit);
    too_many.then(|| {
        graph_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "An internal server error occurred.",
        )
    })
}

async fn list_incidents(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Claims>,
    h: HeaderMap,
    RawQuery(rq): RawQuery,
) -> Response {
    let q = query_map(rq.as_deref());
    let view = match view(&s, &h, &q) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (top, skip) = match paging(&s, &q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let filter = match q
        .get("$filter")
        .map(|f| odata::parse(f, INCIDENT_FILTER))
        .transpose()
    {
        Ok(f) => f.unwrap_or_default(),
        Err(m) => return bad(&m),
    };
    let order = match q
        .get("$orderby")
        .map(|o| odata::parse_orderby(o, &["lastUpdateDateTime", "createdDateTime"]))
        .transpose()
    {
        Ok(o) => o,
        Err(m) => return bad(&m),
    };
    let g = lock(&s.graph);
    let mut hits: Vec<&GraphIncident> = g
        .list(&c.tid)
        .filter(|i| odata::matches_with(&filter, &i.body, |p| incident_time(i, p)))
        .collect();
    match &order {
        Some((p, desc)) => hits.sort_by(|a, b| {
            let (x, y) = if p == "createdDateTime" {
                (a.created, b.created)
            } else {
                (a.updated, b.updated)
            };
            let o = x.cmp(&y).then(a.id.cmp(&b.id));
            if *desc { o.reverse() } else { o }
        }),
        None => hits.sort_by(|a, b| b.created.cmp(&a.created).then(b.id.cmp(&a.id))),
    }
    let total = hits.len();
    // The silent end: past it no items and no next link, and the count still says `total`.
    let (served, omit_count) = {
        let cfg = read(&s.graph_cfg);
        let end = cfg.silent_page_end_after.map_or(total, |n| total.min(n));
        (end, cfg.omit_count)
    };
    let page: Vec<&GraphIncident> = hits.into_iter().take(served).skip(skip).take(top).collect();
    if let Some(r) = expand_fault(&s, view, page.iter().map(|i| i.alerts.len())) {
        return r;
    }
    // Serialized under the lock, straight from the stored incidents (no copies of them).
    let page = ListPage {
        context: format!("{}/v1.0/$metadata#security/incidents", s.urls().graph),
        count: q
            .get("$count")
            .is_some_and(|c| c.eq_ignore_ascii_case("true") && !omit_count)
            .then_some(total),
        next_link: (skip + page.len() < served && top > 0)
            .then(|| next_link(&s, "/v1.0/security/incidents", &q, skip + top)),
        value: page
            .into_iter()
            .map(|inc| IncidentView {
                inc,
                view,
                context: None,
            })
            .collect(),
    };
    let hint = 4096 + page.value.len() * if view.expand { 16 * 1024 } else { 2048 };
    let resp = json_bytes(StatusCode::OK, &page, hint);
    drop(g);
    resp
}

/// A list page: the members in the order a `Map` would write them (`@odata.context` <
/// `@odata.count` < `@odata.nextLink` < `value`).
struct ListPage<'a> {
    context: String,
    count: Option<usize>,
    next_link: Option<String>,
    value: Vec<IncidentView<'a>>,
}

impl Serialize for ListPage<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let n = 2 + usize::from(self.count.is_some()) + usize::from(self.next_link.is_some());
        let mut m = ser.serialize_map(Some(n))?;
        m.serialize_entry("@odata.context", &self.context)?;
        if let Some(c) = self.count {
            m.serialize_entry("@odata.count", &c)?;
        }
        if let Some(l) = &self.next_link {
            m.serialize_entry("@odata.nextLink", l)?;
        }
        m.serialize_entry("value", &self.value)?;
        m.end()
    }
}

fn incident_time(i: &GraphIncident, prop: &str) -> Option<time::OffsetDateTime> {
    match prop {
        "lastUpdateDateTime" => Some(i.updated),
        "createdDateTime" => Some(i.created),
        _ => None,
    }
}

fn not_found(id: &str) -> Response {
    graph_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("Incident with id '{id}' was not found."),
    )
}

async fn get_incident(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Claims>,
    Path(id): Path<String>,
    h: HeaderMap,
    RawQuery(rq): RawQuery,
) -> Response {
    let q = query_map(rq.as_deref());
    let view = match view(&s, &h, &q) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let found = id
        .parse::<u64>()
        .ok()
        .and_then(|n| lock(&s.graph).get(&c.tid, n).map(|i| render(i, view)));
    let Some(mut v) = found else {
        return not_found(&id);
    };
    // The `$expand=alerts` fault is a list fault (pages of many incidents); one incident read
    // on its own carries its alerts.
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/v1.0/$metadata#security/incidents/$entity",
                s.urls().graph
            )),
        );
    }
    json_response(StatusCode::OK, &v)
}

/// `lastModifiedBy` as Graph writes it for an app.
fn modified_by(c: &Claims) -> String {
    format!("API-App:{}", c.appid)
}

async fn patch_incident(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Claims>,
    Path(id): Path<String>,
    h: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad("Invalid JSON in request body.");
    };
    let changes = match validate::patch(&body) {
        Ok(c) => c,
        Err(m) => return bad(&m),
    };
    let view = View {
        expand: false,
        prefer_unknown: prefer_unknown(&h),
        legacy_det: read(&s.graph_cfg).legacy_determination_spelling,
    };
    let updated = {
        let mut g = lock(&s.graph);
        let Some(inc) = id.parse::<u64>().ok().and_then(|n| g.get_mut(&c.tid, n)) else {
            return not_found(&id);
        };
        if inc.str_field("status") == Some("redirected") {
            drop(g);
            return bad(
                "The incident was merged into another incident (redirected) and cannot be updated.",
            );
        }
        for (k, v) in changes {
            inc.body.insert(k, v);
        }
        inc.touch(&modified_by(&c));
        render(inc, view)
    };
    let mut v = updated;
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "@odata.context".into(),
            json!(format!(
                "{}/v1.0/$metadata#security/incidents/$entity",
                s.urls().graph
            )),
        );
    }
    json_response(StatusCode::OK, &v)
}

async fn post_comment(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Claims>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad("Invalid JSON in request body.");
    };
    let Some(text) = body
        .get("comment")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    else {
        return bad("The 'comment' property is required.");
    };
    let comments = {
        let mut g = lock(&s.graph);
        let Some(inc) = id.parse::<u64>().ok().and_then(|n| g.get_mut(&c.tid, n)) else {
            return not_found(&id);
        };
        inc.add_comment(text, &modified_by(&c));
        inc.touch(&modified_by(&c));
        inc.body
            .get("comments")
            .cloned()
            .unwrap_or_else(|| json!([]))
    };
    let ctx = format!(
        "{}/v1.0/$metadata#security/incidents('{id}')/comments",
        s.urls().graph
    );
    json_response(
        StatusCode::OK,
        &json!({"@odata.context": ctx, "value": comments}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The serialized views write the very bytes the `Value` rendering wrote, for every view.
    #[test]
    fn views_serialize_like_render() {
        let base = time::OffsetDateTime::UNIX_EPOCH + time::Duration::days(20_000);
        let mut incs: Vec<GraphIncident> =
            crate::generator::incidents_capped(12, 7, "t", 1001, base, 4)
                .into_iter()
                .filter_map(GraphIncident::from_json)
                .collect();
        // Evolved members on both levels, a legacy-spelled determination, a non-object alert.
        incs[0]
            .body
            .insert("status".into(), json!("awaitingAction"));
        incs[0]
            .body
            .insert("determination".into(), json!("notMalicious"));
        incs[1]
            .body
            .insert("determination".into(), json!("builtInMl"));
        incs[1]
            .body
            .insert("alerts".into(), json!("stored, replaced on expand"));
        incs[1]
            .body
            .insert("@odata.context".into(), json!("stored"));
        if let Some(o) = incs[2].alerts.first_mut().and_then(Value::as_object_mut) {
            o.insert("serviceSource".into(), json!("microsoftSentinel"));
            o.insert("detectionSource".into(), json!("nrtAlerts"));
            o.insert("determination".into(), json!("compromisedAccount"));
        }
        incs[3].alerts.push(json!(42));
        for bits in 0..8u8 {
            let view = View {
                expand: bits & 1 != 0,
                prefer_unknown: bits & 2 != 0,
                legacy_det: bits & 4 != 0,
            };
            for inc in &incs {
                let want = serde_json::to_string(&render(inc, view)).unwrap();
                let got = serde_json::to_string(&IncidentView {
                    inc,
                    view,
                    context: None,
                })
                .unwrap();
                assert_eq!(got, want, "{view:?}");
                let mut with_ctx = render(inc, view);
                with_ctx["@odata.context"] = json!("ctx");
                let got = serde_json::to_string(&IncidentView {
                    inc,
                    view,
                    context: Some("ctx"),
                })
                .unwrap();
                assert_eq!(got, serde_json::to_string(&with_ctx).unwrap());
            }
            let page = ListPage {
                context: "c".into(),
                count: Some(12),
                next_link: Some("n".into()),
                value: incs
                    .iter()
                    .map(|inc| IncidentView {
                        inc,
                        view,
                        context: None,
                    })
                    .collect(),
            };
            let want = json!({"@odata.context": "c", "@odata.count": 12, "@odata.nextLink": "n",
                "value": incs.iter().map(|i| render(i, view)).collect::<Vec<_>>()});
            assert_eq!(
                serde_json::to_string(&page).unwrap(),
                serde_json::to_string(&want).unwrap()
            );
        }
    }
}
