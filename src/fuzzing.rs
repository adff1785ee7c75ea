//! Entry points of the fuzz targets (`fuzz/`, nightly, `cargo fuzz`) and of their corpus replay
//! (`tests/fuzz_corpus.rs`, stable): one function per family of parsers of outside input. Each
//! takes arbitrary bytes, runs the parsers exactly as the handler runs them, and panics when a
//! property beyond "no panic" fails (round trips, a secret echoed in an error, a foreign link
//! accepted). Not part of the product's API: the wire types stay private to their adapters.

use crate::adapters::{graph, http, logs, sentinel, table};
use crate::config::{Settings, StorageConfig, timeout};
use crate::domain::{DefenderIncidentId, SentinelIncident, SentinelIncidentName, TenantId};
use crate::host::envelope::InvocationRequest;
use crate::host::payload::{HttpRequestData, TimerInfo, trigger_incident};
use crate::ports::AlertRecord;
use std::collections::HashMap;
use url::Url;

/// A fuzz target: arbitrary bytes in, a panic when a property fails.
pub type Target = fn(&[u8]);

/// The fuzz targets, by name (as under `fuzz/fuzz_targets/` and `fuzz/corpus/`).
pub const TARGETS: &[(&str, Target)] = &[
    ("host_envelope", host_envelope),
    ("graph_response", graph_response),
    ("sentinel_response", sentinel_response),
    ("logs_response", logs_response),
    ("table_response", table_response),
    ("connection_string", connection_string),
    ("settings", settings),
    ("webhook_trigger", webhook_trigger),
    ("webhook_token", webhook_token),
];

const TENANT: &str = "b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c";
const GRAPH: &str = "https://graph.microsoft.com";
const ARM: &str = "https://management.azure.com";

fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// A link the client would follow (what `checked_link` accepts) goes to the configured host:
/// the `url` crate's own origin comparison must agree with `http::same_origin`.
fn check_link(base: &str, link: &str) {
    let (Ok(base), Ok(url)) = (Url::parse(base), Url::parse(link)) else {
        return;
    };
    if http::same_origin(&base, &url) {
        assert_eq!(
            url.origin(),
            base.origin(),
            "link {link} accepted for {base} but has another origin"
        );
        assert_eq!(url.host_str(), base.host_str(), "link {link} accepted");
    }
}

/// Host envelopes: the invocation request, each binding as a timer or an HTTP trigger, and
/// an HTTP trigger's body as a playbook body.
pub fn host_envelope(data: &[u8]) {
    let Ok(req) = InvocationRequest::parse(data) else {
        return;
    };
    for name in req.data.keys() {
        let _ = req.binding::<TimerInfo>(name);
        if let Ok(http) = req.binding::<HttpRequestData>(name) {
            for key in http.headers.keys() {
                let has_value = http
                    .headers
                    .iter()
                    .any(|(k, v)| k.eq_ignore_ascii_case(key) && !v.is_empty());
                assert_eq!(
                    http.header(&key.to_ascii_uppercase()).is_some(),
                    has_value,
                    "header {key:?} is not found case-insensitively"
                );
            }
            if let Ok(Some(name)) = trigger_incident(http.body.as_deref()) {
                let body: serde_json::Value =
                    serde_json::from_str(http.body.as_deref().unwrap_or("")).unwrap_or_default();
                assert_eq!(body["object"]["name"].as_str(), Some(name.as_str()));
            }
        }
    }
    let _ = req.binding::<TimerInfo>("timer");
    // The whole input as a bare trigger payload (what a binding holds) and a playbook body.
    let _ = serde_json::from_slice::<TimerInfo>(data);
    let _ = serde_json::from_slice::<HttpRequestData>(data);
    let _ = trigger_incident(Some(&text(data)));
}

/// Graph answers: a page of incidents (each item mapped alone), one incident, one alert, the
/// comments a comment POST answers with, a user. Raw alert and evidence JSON is kept whole;
/// a next link is followed only on the Graph host.
pub fn graph_response(data: &[u8]) {
    let Ok(tenant) = TenantId::parse(TENANT) else {
        return;
    };
    let input = text(data);
    if let Ok(page) = graph::fuzz::page(&tenant, data) {
        for (_, item) in &page.items {
            if let Ok(incident) = item {
                check_incident(&input, incident);
            }
        }
        if let Some(link) = &page.next_link {
            check_link(GRAPH, link);
        }
    }
    if let Ok(incident) = graph::fuzz::incident(&tenant, data) {
        check_incident(&input, &incident);
    }
    if let Ok(alert) = graph::fuzz::alert(data) {
        check_alert(&input, &alert);
    }
    let _ = graph::fuzz::comments(data);
    let _ = graph::fuzz::user(data, "asked@example.com");
}

fn check_incident(input: &str, i: &crate::domain::DefenderIncident) {
    assert_eq!(i.tenant.as_str(), TENANT, "the tenant is the one asked");
    for alert in i.alerts.iter().flatten() {
        check_alert(input, alert);
    }
}

/// An alert's and each evidence's JSON is kept whole: exactly the text Graph sent (a slice of
/// the answer, not a re-serialisation) and well-formed JSON. Well-formed, not "parses into a
/// `serde_json::Value`": JSON leaves a number's range to the reader, and a number like `1e999`
/// is valid JSON that `Value` refuses (out of f64 range) while it is shipped to Logs as sent.
fn check_alert(input: &str, a: &crate::domain::Alert) {
    for raw in std::iter::once(&a.raw).chain(a.evidence.iter().map(|e| &e.raw)) {
        assert!(input.contains(raw.get()), "raw JSON is the text received");
        assert!(
            serde_json::from_str::<Box<serde_json::value::RawValue>>(raw.get()).is_ok(),
            "raw JSON well-formed"
        );
    }
}

/// ARM answers: a page of incidents, one incident, a page of comments. Every incident that
/// maps and can be written goes through the PUT body and back unchanged in its synced fields;
/// a next link is followed only on the ARM host.
pub fn sentinel_response(data: &[u8]) {
    if let Ok((items, next)) = sentinel::fuzz::incident_page(data) {
        for incident in items.iter().flatten() {
            check_put_round_trip(incident);
        }
        if let Some(link) = next {
            check_link(ARM, &link);
        }
    }
    if let Ok(incident) = sentinel::fuzz::incident(data) {
        check_put_round_trip(&incident);
    }
    if let Ok((_, Some(link))) = sentinel::fuzz::comment_page(data) {
        check_link(ARM, &link);
    }
}

fn check_put_round_trip(i: &SentinelIncident) {
    let Ok(mut body) = sentinel::fuzz::put_body(i) else {
        return;
    };
    body["name"] = serde_json::Value::String(i.name.to_string());
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let back = match sentinel::fuzz::incident(&bytes) {
        Ok(b) => b,
        Err(e) => panic!("the PUT body of {} does not read back: {e}", i.name),
    };
    assert_eq!(back.name, i.name);
    assert_eq!(back.title, i.title);
    assert_eq!(back.description, i.description);
    assert_eq!(back.severity, i.severity);
    assert_eq!(back.status, i.status);
    assert_eq!(back.classification, i.classification);
    assert_eq!(back.classification_reason, i.classification_reason);
    assert_eq!(back.classification_comment, i.classification_comment);
    assert_eq!(back.labels, i.labels);
    assert_eq!(back.owner.object_id, i.owner.object_id);
    assert_eq!(back.owner.user_principal_name, i.owner.user_principal_name);
    assert_eq!(back.owner.email, i.owner.email);
    assert_eq!(back.first_activity, i.first_activity);
    assert_eq!(back.last_activity, i.last_activity);
}

/// Logs Ingestion answers (an error envelope and the server's retry hint) and the rows built
/// from an alert Graph delivered. The first line is a retry-hint header (its first byte picks
/// which), the rest the body.
pub fn logs_response(data: &[u8]) {
    let (head, body) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    if let Some((pick, value)) = head.split_first() {
        let name = ["retry-after", "retry-after-ms", "x-ms-retry-after-ms"][*pick as usize % 3];
        if let Ok(value) = reqwest::header::HeaderValue::from_bytes(value) {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(name, value);
            if let Some(hint) = http::parse_retry_after(&headers) {
                let _ = hint.remaining(std::time::SystemTime::now());
            }
        }
    }
    let body_text = text(body);
    let (_, message) = http::parse_error_envelope(&body_text);
    let envelope: serde_json::Value = serde_json::from_str(&body_text).unwrap_or_default();
    if envelope["error"]["message"].as_str().is_none() {
        assert!(message.chars().count() <= 300, "fallback message is capped");
    }
    let Ok(alert) = graph::fuzz::alert(body) else {
        return;
    };
    let (Ok(tenant), Ok(incident_id)) = (TenantId::parse(TENANT), DefenderIncidentId::parse("1"))
    else {
        return;
    };
    let sentinel_name = SentinelIncidentName::for_defender(&tenant, &incident_id);
    let record = AlertRecord {
        tenant,
        incident_id,
        sentinel_name,
        alert,
    };
    let max = 2048 + (data.len() % 4) * 4096;
    let rows = match logs::fuzz::rows(&record, max) {
        Ok(r) => r,
        Err(e) => panic!("rows of a mapped alert do not serialize: {e}"),
    };
    assert_eq!(rows.len(), 1 + record.alert.evidence.len());
    for row in rows {
        let v: serde_json::Value = match serde_json::from_slice(&row) {
            Ok(v) => v,
            Err(e) => panic!("a row is not JSON: {e}"),
        };
        assert!(v.is_object(), "a row is an object");
    }
}

/// Table Storage answers: a query page or a point read's entity (each read as every state
/// record, which must round-trip), the entity's body written back, a `$batch` answer (its
/// first byte says how many operations were sent) and an error body.
pub fn table_response(data: &[u8]) {
    if let Ok(entities) = table::fuzz::entities(data) {
        for e in entities {
            if let Err(message) = crate::state::table::fuzz::decode_all(&e) {
                panic!("{message}");
            }
            let json = table::fuzz::to_json(&e);
            // Read back as a point read (an entity may well have a property named `value`).
            let again = table::fuzz::entity(&serde_json::to_vec(&json).unwrap_or_default());
            let again = match again {
                Ok(a) => a,
                Err(err) => panic!("an entity read does not read back once written: {err}"),
            };
            assert_eq!(again.partition_key, e.partition_key);
            assert_eq!(again.row_key, e.row_key);
            let (a, b) = (
                serde_json::Value::Object(again.properties),
                serde_json::Value::Object(e.properties),
            );
            assert!(same_json(&a, &b), "{a} != {b}");
        }
    }
    let body = text(data);
    if let Some((n, rest)) = body.split_at_checked(1) {
        let expected = n.bytes().next().map_or(0, |b| (b % 8) as usize);
        if let Ok(etags) = table::fuzz::batch_response(rest, expected) {
            assert_eq!(etags.len(), expected);
        }
    }
    let _ = table::fuzz::error_body(&body);
}

/// JSON equality, numbers within a few ulps: serde_json (without its `float_roundtrip` feature)
/// may read a double one ulp off, so `1.7777777777777778e44` read, written and read again can
/// come back as `1.777777777777778e44` (found by fuzzing table_response; the state's own
/// properties are strings and integers, so no stored value changes).
fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            _ if x == y => true,
            (Some(x), Some(y)) => (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs()),
            _ => false,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// `AzureWebJobsStorage` and the identity-based forms. A connection string that parses is
/// written back as one and parses to the same account, key and endpoint; an error or the
/// `Debug` text never holds the account key.
pub fn connection_string(data: &[u8]) {
    let s = text(data);
    let key = account_key(&s);
    match StorageConfig::parse_connection_string(&s) {
        Ok(config) => {
            if let Some(k) = &key {
                assert!(
                    !format!("{config:?}").contains(k.as_str()),
                    "Debug shows the key"
                );
            }
            round_trip(&config);
        }
        Err(e) => {
            if let Some(k) = key.as_ref().filter(|k| e.contains(k.as_str())) {
                // Maybe part of a fixed text ("has no AccountName"): a leak only if the error
                // loses it when the key is replaced by another text of the same length.
                let masked: String = k
                    .chars()
                    .map(|c| if c == '#' { '%' } else { '#' })
                    .collect();
                let again =
                    match StorageConfig::parse_connection_string(&s.replace(k.as_str(), &masked)) {
                        Ok(_) => String::new(),
                        Err(e) => e,
                    };
                assert!(again.contains(k.as_str()), "the error echoes the key: {e}");
            }
        }
    }
    let mut parts = s.splitn(2, '\n');
    let (a, b) = (parts.next(), parts.next());
    if let Ok(config) = StorageConfig::identity(a, b) {
        assert_eq!(
            config.table_endpoint().scheme(),
            "https",
            "bearer over https only"
        );
    }
}

/// The `AccountKey` value when it is long enough to be recognised and appears nowhere else in
/// the string (else an echo of another part would look like a leak).
fn account_key(s: &str) -> Option<String> {
    let mut key = None;
    let mut others = Vec::new();
    for part in s.split(';') {
        match part.trim().split_once('=') {
            Some((k, v)) if k.trim().eq_ignore_ascii_case("AccountKey") => {
                key = Some(v.trim().to_owned())
            }
            Some((k, v)) => others.push(format!("{k}={v}")),
            None => others.push(part.to_owned()),
        }
    }
    let key = key.filter(|k| k.len() >= 8)?;
    (!others.iter().any(|o| o.contains(&key))).then_some(key)
}

fn round_trip(config: &StorageConfig) {
    let StorageConfig::SharedKey {
        account,
        key,
        table_endpoint,
    } = config
    else {
        return;
    };
    let again = format!(
        "AccountName={account};AccountKey={};TableEndpoint={table_endpoint}",
        key.secret()
    );
    match StorageConfig::parse_connection_string(&again) {
        Ok(StorageConfig::SharedKey {
            account: a,
            key: k,
            table_endpoint: t,
        }) => {
            assert_eq!(&a, account);
            assert_eq!(k.secret(), key.secret());
            assert_eq!(&t, table_endpoint);
        }
        Ok(other) => panic!("round trip changed the kind: {other:?}"),
        Err(e) => panic!("written back, the connection string does not parse: {e}"),
    }
}

/// Settings from `NAME=VALUE` lines (a `host.json=…` line is host.json's text): parsing never
/// shows a secret value (client secret, webhook secret, account key) in its errors or in the
/// settings' `Debug`; `functionTimeout` resolution never panics.
pub fn settings(data: &[u8]) {
    let s = text(data);
    let mut env = HashMap::new();
    for line in s.lines() {
        if let Some((k, v)) = line.split_once('=') {
            env.insert(k.to_owned(), v.to_owned());
        }
    }
    let host_json = env.remove("host.json");
    if let Ok(t) = timeout::function_timeout(
        env.get(timeout::OVERRIDE_SETTING).map(String::as_str),
        host_json.as_deref(),
    ) {
        let start = tokio::time::Instant::now();
        assert!(timeout::deadline(start, t) >= start);
        assert!(timeout::http_deadline(start, t) >= start);
    }
    // (setting, secret text in its value)
    let mut secrets: Vec<(&str, String)> = ["AZURE_CLIENT_SECRET", "WEBHOOK_SECRET"]
        .into_iter()
        .filter_map(|n| env.get(n).map(|v| (n, v.to_owned())))
        .collect();
    if let Some(k) = env.get("AzureWebJobsStorage").and_then(|c| account_key(c)) {
        secrets.push(("AzureWebJobsStorage", k));
    }
    let lower = |s: &str| s.to_ascii_lowercase();
    let shown = |env: &HashMap<String, String>| match Settings::from_env(env, host_json.as_deref())
    {
        Ok(settings) => lower(&format!("{settings:?}")),
        Err(errors) => lower(&format!("{errors}\n{errors:?}")),
    };
    let with_secrets = shown(&env);
    for (setting, secret) in secrets.into_iter().filter(|(_, v)| v.len() >= 8) {
        let secret = lower(&secret);
        if !with_secrets.contains(&secret) {
            continue;
        }
        // Shown, but maybe as part of another value or of a fixed text: a leak only if it goes
        // away when this setting's secret is replaced by another text of the same length.
        let mut other = env.clone();
        if let Some(v) = other.get_mut(setting) {
            let masked: String = secret
                .chars()
                .map(|c| if c == '#' { '%' } else { '#' })
                .collect();
            *v = replace_ignoring_case(v, &secret, &masked);
        }
        assert!(
            shown(&other).contains(&secret),
            "{setting}'s secret is shown: {with_secrets}"
        );
    }
}

/// `text` with every occurrence of `needle` (lowercase ASCII-wise) replaced, the rest untouched.
fn replace_ignoring_case(text: &str, needle: &str, with: &str) -> String {
    let lowered = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(i) = lowered[at..].find(needle) {
        out.push_str(&text[at..at + i]);
        out.push_str(with);
        at += i + needle.len();
    }
    out.push_str(&text[at..]);
    out
}

/// `SentinelWebhook` bodies: the trigger parser refuses what is too large before reading it,
/// and an accepted body's incident id, written back in ARM's canonical form, parses to the same
/// parts.
pub fn webhook_trigger(data: &[u8]) {
    use crate::webhook::trigger::{MAX_BODY_BYTES, TriggerError, parse_incident_id, parse_trigger};
    match parse_trigger(data) {
        Err(TriggerError::TooLarge(n)) => assert!(n > MAX_BODY_BYTES && n == data.len()),
        Err(_) => assert!(data.len() <= MAX_BODY_BYTES),
        Ok(t) => {
            let i = &t.incident;
            let canonical = format!(
                "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/workspaces/{}/providers/Microsoft.SecurityInsights/incidents/{}",
                i.subscription_id, i.resource_group, i.workspace_name, i.name
            );
            assert_eq!(
                parse_incident_id(&canonical).as_ref(),
                Some(i),
                "{canonical}"
            );
        }
    }
}

/// A real RSA public key (its private half was thrown away): no input can be signed with it.
const FUZZ_JWKS: &str = r#"{"keys":[{"kty":"RSA","use":"sig","kid":"fuzz-key","alg":"RS256","n":"mv2MFGmn3BOBL0jxhCtFZC7IOYFRNxkeEvu5ShDX0eRo0k5kMCvCA3vXWPnMpj_cQhWLSTxJEU6BtwfazUweXCltuUG6xcz0ZZJ9KQADXoFCC9edEElRiQr664t11Vz1_SExw_IxZotO1STRWwxs6430DEgJ92SkMeEgwYWxtIlCiqLq5uXe1IJijGw6W0Mj7i833-W11HKH1hI63wLhsHb1SAb0iMnrU7OgAWhrzcQzlPeKGa77W3eS1-NSh2GuVt4zQDeoiZyLFAJzNUL8Re5FPl75j2xRi5LtAqWmT_Ah9WNHED6v6RBh6GXVHvSE-olySqsoIFwV3RVrKvljTw","e":"AQAB"}]}"#;

/// `SentinelWebhook` bearer tokens and signing-key documents: the bytes are read as a JWKS
/// document, and as the `Authorization` header's token checked against a key whose private half
/// nobody has. No token validates, a key id is only handed out for an RS256 header, and no
/// refusal quotes the token's signature (refusals are logged).
pub fn webhook_token(data: &[u8]) {
    use crate::webhook::auth::KeySet;
    use crate::webhook::auth::{TokenRules, bearer, token_key_id, validate_token};
    use crate::webhook::keys::parse_jwks;
    static KEYS: std::sync::OnceLock<KeySet> = std::sync::OnceLock::new();
    let _ = parse_jwks(data);
    // Parsed once, not per input: the key is fixed.
    let keys = KEYS.get_or_init(|| {
        parse_jwks(FUZZ_JWKS.as_bytes()).unwrap_or_else(|e| panic!("the fixed JWKS: {e}"))
    });
    assert_eq!(keys.len(), 1);
    let header = text(data);
    let token = bearer(&header).unwrap_or(&header);
    let rules = TokenRules {
        audience: "api://defender-sentinel-sync".into(),
        issuers: vec![format!("https://sts.windows.net/{TENANT}/")],
        allowed_app_ids: Vec::new(),
    };
    let err = match validate_token(token, keys, &rules, 1_700_000_000) {
        Ok(c) => panic!("a token validated against a key nobody can sign with: {c:?}"),
        Err(e) => e.to_string(),
    };
    if let Some(sig) = token
        .rsplit('.')
        .next()
        .filter(|s| s.len() >= 16 && token.contains('.'))
    {
        // Differential, as for the settings' secrets: quoted only if masking the signature (same
        // length) makes it go away from the refusal (it may equal the refusal's own words).
        let masked = format!(
            "{}{}",
            &token[..token.len() - sig.len()],
            "~".repeat(sig.len())
        );
        let masked_err = validate_token(&masked, keys, &rules, 1_700_000_000)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            !err.contains(sig) || masked_err.contains(sig),
            "the refusal quotes the signature: {err}"
        );
    }
    if token_key_id(token).is_ok() {
        let head = token.split('.').next().unwrap_or_default();
        let raw = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            head.trim_end_matches('='),
        )
        .unwrap_or_else(|e| panic!("a key id came from a header that is not base64url: {e}"));
        // Read as the validator reads it: fields it does not know are skipped unchecked (a lone
        // surrogate in one is not an error for a struct, as it is for a `Value`).
        #[derive(serde::Deserialize)]
        struct Alg {
            alg: String,
        }
        let h: Alg = serde_json::from_slice(&raw)
            .unwrap_or_else(|e| panic!("a key id came from a header without alg: {e}"));
        assert_eq!(h.alg, "RS256");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_target_takes_empty_and_garbage_input() {
        for (_, target) in super::TARGETS {
            target(b"");
            target(b"\xff\xfe{\"value\":[");
            target(b"{}");
        }
    }

    #[test]
    fn replacing_ignores_ascii_case_and_keeps_the_rest() {
        assert_eq!(
            super::replace_ignoring_case("Key=AbC;x=abc;ABC", "abc", "###"),
            "Key=###;x=###;###"
        );
    }
}
