//! `/security/alerts_v2` and `/users/{id}`.

use super::{ALERT_FILTER, View, bad, next_link, paging, prefer_unknown, render_alert};
use crate::entra::keys::Claims;
use crate::odata;
use crate::state::{Shared, lock, read};
use crate::util::{graph_error, json_response, query_map};
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::sync::Arc;

pub(super) async fn list_alerts(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Claims>,
    h: HeaderMap,
    RawQuery(rq): RawQuery,
) -> Response {
    let q = query_map(rq.as_deref());
    let view = View {
        expand: false,
        prefer_unknown: prefer_unknown(&h),
        legacy_det: read(&s.graph_cfg).legacy_determination_spelling,
    };
    let (top, skip) = match paging(&s, &q) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let filter = match q
        .get("$filter")
        .map(|f| odata::parse(f, ALERT_FILTER))
        .transpose()
    {
        Ok(f) => f.unwrap_or_default(),
        Err(m) => return bad(&m),
    };
    let (page, total) = {
        let g = lock(&s.graph);
        let mut hits: Vec<&Value> = g
            .list(&c.tid)
            .flat_map(|i| i.alerts.iter())
            .filter(|a| a.as_object().is_some_and(|o| odata::matches(&filter, o)))
            .collect();
        hits.sort_by(|a, b| {
            b["createdDateTime"]
                .as_str()
                .cmp(&a["createdDateTime"].as_str())
        });
        let total = hits.len();
        (
            hits.into_iter()
                .skip(skip)
                .take(top)
                .map(|a| render_alert(a, view))
                .collect::<Vec<_>>(),
            total,
        )
    };
    let mut body = Map::new();
    body.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/v1.0/$metadata#security/alerts_v2",
            s.urls().graph
        )),
    );
    if q.get("$count")
        .is_some_and(|c| c.eq_ignore_ascii_case("true"))
    {
        body.insert("@odata.count".into(), json!(total));
    }
    if skip + page.len() < total && top > 0 {
        body.insert(
            "@odata.nextLink".into(),
            json!(next_link(&s, "/v1.0/security/alerts_v2", &q, skip + top)),
        );
    }
    body.insert("value".into(), Value::Array(page));
    json_response(StatusCode::OK, &Value::Object(body))
}

pub(super) async fn get_alert(
    State(s): State<Arc<Shared>>,
    Extension(c): Extension<Claims>,
    Path(id): Path<String>,
    h: HeaderMap,
) -> Response {
    let view = View {
        expand: false,
        prefer_unknown: prefer_unknown(&h),
        legacy_det: false,
    };
    let found = lock(&s.graph)
        .list(&c.tid)
        .flat_map(|i| i.alerts.iter())
        .find(|a| a["id"] == id.as_str())
        .map(|a| render_alert(a, view));
    match found {
        Some(a) => json_response(StatusCode::OK, &a),
        None => graph_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("Alert with id '{id}' was not found."),
        ),
    }
}

pub(super) async fn get_user(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let user = read(&s.directory).find(&id).cloned();
    let Some(u) = user else {
        return graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            &format!(
                "Resource '{id}' does not exist or one of its queried reference-property objects are not present."
            ),
        );
    };
    let body = json!({
        "@odata.context": format!("{}/v1.0/$metadata#users/$entity", s.urls().graph),
        "businessPhones": [], "displayName": u.display_name, "givenName": null, "jobTitle": null,
        "mail": u.mail, "mobilePhone": null, "officeLocation": null, "preferredLanguage": null,
        "surname": null, "userPrincipalName": u.user_principal_name, "id": u.object_id,
    });
    json_response(StatusCode::OK, &body)
}
