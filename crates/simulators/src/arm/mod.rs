//! Sentinel incidents through Azure Resource Manager (`Microsoft.SecurityInsights/incidents`).
//! ARM paths are case-insensitive, so one wildcard route parses them.

pub mod store;
pub mod validate;

use crate::entra::keys::Claims;
use crate::odata;
use crate::state::{Shared, lock, read};
use crate::util::{arm_error, json_response, query_map};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, OriginalUri, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use store::{SentinelComment, SentinelIncident};

/// Maximum comment length and count per incident.
pub const MAX_COMMENT_CHARS: usize = 30_000;
pub const MAX_COMMENTS: usize = 100;
const LIST_FILTER: &[&str] = &[
    "lastModifiedTimeUtc",
    "createdTimeUtc",
    "status",
    "severity",
    "title",
    "classification",
];

/// Routes of the ARM simulator (behind the gate).
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/subscriptions/{*rest}", any(dispatch))
        .with_state(shared)
}

/// `/subscriptions/…/providers/Microsoft.SecurityInsights/incidents` of the configured workspace.
pub fn incidents_base(s: &Shared) -> String {
    let a = &s.cfg.arm;
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/workspaces/{}/providers/Microsoft.SecurityInsights/incidents",
        a.subscription_id, a.resource_group, a.workspace_name
    )
}

enum Target {
    List,
    Incident(String),
    Comments(String),
    Comment(String, String),
}

fn parse_target(s: &Shared, path: &str) -> Result<Target, Response> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let a = &s.cfg.arm;
    let expect = [
        "subscriptions",
        &a.subscription_id,
        "resourceGroups",
        &a.resource_group,
        "providers",
        "Microsoft.OperationalInsights",
        "workspaces",
        &a.workspace_name,
        "providers",
        "Microsoft.SecurityInsights",
        "incidents",
    ];
    let prefix_ok = segs.len() >= expect.len()
        && expect
            .iter()
            .zip(&segs)
            .all(|(e, s)| e.eq_ignore_ascii_case(s));
    if !prefix_ok {
        return Err(arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            &format!(
                "The Resource 'Microsoft.OperationalInsights/workspaces/{}' under resource group '{}' was not found.",
                segs.get(7).unwrap_or(&""),
                segs.get(3).unwrap_or(&"")
            ),
        ));
    }
    match &segs[expect.len()..] {
        [] => Ok(Target::List),
        [id] => Ok(Target::Incident((*id).to_owned())),
        [id, c] if c.eq_ignore_ascii_case("comments") => Ok(Target::Comments((*id).to_owned())),
        [id, c, cid] if c.eq_ignore_ascii_case("comments") => {
            Ok(Target::Comment((*id).to_owned(), (*cid).to_owned()))
        }
        _ => Err(arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            "The requested resource was not found.",
        )),
    }
}

fn api_version_ok(q: &HashMap<String, String>) -> Result<(), Response> {
    match q.get("api-version") {
        None => Err(arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )),
        Some(v) if is_api_version(v) => Ok(()),
        Some(v) => Err(arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            &format!(
                "The api-version '{v}' is invalid. The supported versions are '2023-02-01,2024-03-01,2025-01-01-preview'."
            ),
        )),
    }
}

fn is_api_version(v: &str) -> bool {
    let date = v.strip_suffix("-preview").unwrap_or(v);
    date.len() == 10
        && date.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        })
        && date >= "2019-01-01"
}

async fn dispatch(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Claims>,
    OriginalUri(uri): OriginalUri,
    method: Method,
    body: Bytes,
) -> Response {
    let q = query_map(uri.query());
    if let Err(r) = api_version_ok(&q) {
        return r;
    }
    let target = match parse_target(&s, uri.path()) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match (method, target) {
        (Method::GET, Target::List) => list(&s, &q),
        (Method::GET, Target::Incident(id)) => get_incident(&s, &id),
        (Method::PUT, Target::Incident(id)) => put_incident(&s, &c, &id, &body),
        (Method::DELETE, Target::Incident(id)) => delete_incident(&s, &id),
        (Method::GET, Target::Comments(id)) => list_comments(&s, &id),
        (Method::GET, Target::Comment(id, cid)) => get_comment(&s, &id, &cid),
        (Method::PUT, Target::Comment(id, cid)) => put_comment(&s, &c, &id, &cid, &body),
        (Method::PUT, Target::List) => arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "UnsupportedApiVersion",
            "The HTTP method 'PUT' is not supported at scope 'Microsoft.SecurityInsights/incidents'.",
        ),
        (m, _) => arm_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("The HTTP method '{m}' is not supported."),
        ),
    }
}

fn not_found(id: &str) -> Response {
    arm_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("Incident '{id}' was not found."),
    )
}

fn bad(msg: &str) -> Response {
    arm_error(StatusCode::BAD_REQUEST, "BadRequest", msg)
}

fn get_incident(s: &Shared, id: &str) -> Response {
    let base = incidents_base(s);
    match lock(&s.arm).get(id).map(|i| i.render(&base)) {
        Some(v) => json_response(StatusCode::OK, &v),
        None => not_found(id),
    }
}

fn put_incident(s: &Shared, c: &Claims, id: &str, body: &[u8]) -> Response {
    if uuid::Uuid::parse_str(id).is_err() {
        return bad(&format!("The incident id '{id}' is not a valid GUID."));
    }
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return bad("The request content was invalid and could not be deserialized.");
    };
    let base = incidents_base(s);
    let dir = read(&s.directory);
    let mut arm = lock(&s.arm);
    let existing = arm.get(id);
    let writable = match validate::incident_put(&body, existing, &dir) {
        Ok(w) => w,
        Err(m) => return bad(&m),
    };
    drop(dir);
    if let (Some(e), Some(tag)) = (existing, body.get("etag").and_then(Value::as_str))
        && e.etag != tag
    {
        return arm_error(
            StatusCode::CONFLICT,
            "Conflict",
            &format!("New version of resource '{id}' exists. Data was not saved."),
        );
    }
    let before = if arm.events.is_some() {
        existing.map(|e| e.props.clone())
    } else {
        None
    };
    let created = arm.write(id, writable, &base);
    let v = arm.get(id).map(|i| i.render(&base)).unwrap_or(Value::Null);
    if arm.events.is_some() {
        let fields = v["properties"]
            .as_object()
            .map(|p| store::changed_fields(before.as_ref(), p))
            .unwrap_or_default();
        let e = store::UpdateEvent {
            name: id.to_owned(),
            created,
            fields,
            by_source: "Application",
            by_name: c.appid.clone(),
            comments: Vec::new(),
        };
        arm.record(e);
    }
    drop(arm);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    json_response(status, &v)
}

fn delete_incident(s: &Shared, id: &str) -> Response {
    let removed = lock(&s.arm)
        .incidents
        .remove(&id.to_ascii_lowercase())
        .is_some();
    if removed {
        StatusCode::OK.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

fn list(s: &Shared, q: &HashMap<String, String>) -> Response {
    let cfg = &s.cfg.arm;
    let top = match q.get("$top").map(|t| t.parse::<usize>()) {
        None => cfg.default_top,
        Some(Ok(t)) if (1..=cfg.max_top).contains(&t) => t,
        Some(_) => {
            return bad(&format!(
                "The value of $top must be between 1 and {}.",
                cfg.max_top
            ));
        }
    };
    let skip: usize = q
        .get("$skipToken")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let filter = match q
        .get("$filter")
        .map(|f| odata::parse(f, LIST_FILTER))
        .transpose()
    {
        Ok(f) => f.unwrap_or_default(),
        Err(m) => return bad(&m),
    };
    let order = match q
        .get("$orderby")
        .map(|o| odata::parse_orderby(o, &["createdTimeUtc", "lastModifiedTimeUtc"]))
        .transpose()
    {
        Ok(o) => o.unwrap_or(("createdTimeUtc".into(), true)),
        Err(m) => return bad(&m),
    };
    let base = incidents_base(s);
    let (page, total) = {
        let arm = lock(&s.arm);
        let mut hits: Vec<&SentinelIncident> = arm
            .incidents
            .values()
            .filter(|i| {
                odata::matches_with(&filter, &i.props, |p| match p {
                    "lastModifiedTimeUtc" => Some(i.modified),
                    "createdTimeUtc" => Some(i.created),
                    _ => None,
                })
            })
            .collect();
        hits.sort_by(|a, b| {
            let o = if order.0 == "createdTimeUtc" {
                a.created.cmp(&b.created)
            } else {
                a.modified.cmp(&b.modified)
            };
            let o = o.then(a.name.cmp(&b.name));
            if order.1 { o.reverse() } else { o }
        });
        let total = hits.len();
        (
            hits.into_iter()
                .skip(skip)
                .take(top)
                .map(|i| i.render(&base))
                .collect::<Vec<_>>(),
            total,
        )
    };
    let mut body = json!({ "value": page });
    if skip + top < total {
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        let mut keys: Vec<&String> = q.keys().filter(|k| *k != "$skipToken").collect();
        keys.sort();
        for k in keys {
            ser.append_pair(k, &q[k]);
        }
        ser.append_pair("$skipToken", &(skip + top).to_string());
        body["nextLink"] = json!(format!("{}{base}?{}", s.urls().arm, ser.finish()));
    }
    json_response(StatusCode::OK, &body)
}

fn list_comments(s: &Shared, id: &str) -> Response {
    let url = format!("{}/{id}", incidents_base(s));
    let arm = lock(&s.arm);
    let Some(inc) = arm.get(id) else {
        return not_found(id);
    };
    let mut v: Vec<&SentinelComment> = inc.comments.values().collect();
    v.sort_by_key(|c| c.created);
    let value: Vec<Value> = v.into_iter().map(|c| c.render(&url)).collect();
    json_response(StatusCode::OK, &json!({ "value": value }))
}

fn get_comment(s: &Shared, id: &str, cid: &str) -> Response {
    let url = format!("{}/{id}", incidents_base(s));
    let arm = lock(&s.arm);
    let Some(inc) = arm.get(id) else {
        return not_found(id);
    };
    match inc.comments.get(&cid.to_ascii_lowercase()) {
        Some(c) => json_response(StatusCode::OK, &c.render(&url)),
        None => arm_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("Comment '{cid}' was not found."),
        ),
    }
}

/// The comment author of an app caller.
pub fn app_author(c: &Claims) -> Value {
    json!({"objectId": c.oid, "email": null, "userPrincipalName": null, "name": c.appid})
}

fn put_comment(s: &Shared, c: &Claims, id: &str, cid: &str, body: &[u8]) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return bad("The request content was invalid and could not be deserialized.");
    };
    let Some(message) = body.pointer("/properties/message").and_then(Value::as_str) else {
        return bad("Required property 'message' not found in JSON. Path 'properties'.");
    };
    match add_comment(s, id, cid, message, app_author(c)) {
        Ok((created, v)) => {
            if created {
                let comments = vec![message.to_owned()];
                let e = store::UpdateEvent {
                    name: id.to_owned(),
                    created: false,
                    fields: vec!["Comments"],
                    by_source: "Application",
                    by_name: c.appid.clone(),
                    comments,
                };
                lock(&s.arm).record(e);
            }
            json_response(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                &v,
            )
        }
        Err(r) => r,
    }
}

/// Creates or edits a comment (limits checked), marking the incident changed.
pub fn add_comment(
    s: &Shared,
    id: &str,
    cid: &str,
    message: &str,
    author: Value,
) -> Result<(bool, Value), Response> {
    if message.chars().count() > MAX_COMMENT_CHARS {
        return Err(bad(&format!(
            "The comment message exceeds the maximum length of {MAX_COMMENT_CHARS} characters."
        )));
    }
    let url = format!("{}/{id}", incidents_base(s));
    let mut arm = lock(&s.arm);
    let etag = arm.new_etag();
    let Some(inc) = arm.get_mut(id) else {
        return Err(not_found(id));
    };
    let key = cid.to_ascii_lowercase();
    let t = crate::util::now();
    let created = !inc.comments.contains_key(&key);
    if created && inc.comments.len() >= MAX_COMMENTS {
        return Err(bad(&format!(
            "The incident has reached the maximum of {MAX_COMMENTS} comments."
        )));
    }
    let entry = inc
        .comments
        .entry(key.clone())
        .or_insert_with(|| SentinelComment {
            name: cid.to_owned(),
            etag: String::new(),
            message: String::new(),
            created: t,
            modified: t,
            author: author.clone(),
        });
    entry.message = message.to_owned();
    entry.modified = t;
    entry.etag = etag;
    let v = entry.render(&url);
    arm.touch(id);
    Ok((created, v))
}
