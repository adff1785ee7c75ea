//! Graph wire → domain, in one place. Unknown enum members are kept (`Unrecognized`), both
//! determination spellings are accepted, unknown evidence types are kept with their raw JSON.
//! A missing id or timestamp is a mapping error of that one item (the engine parks it).

use super::wire::{AlertDto, CommentDto, IdDto, IncidentDto, UserDto};
use crate::domain::*;
use serde_json::Value;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Parses a Graph DateTimeOffset (`2021-09-30T09:35:45.1133333Z`).
pub(super) fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s.trim(), &Rfc3339).map_err(|e| format!("'{s}' is not a date-time: {e}"))
}

fn opt_time(s: Option<&str>) -> Option<OffsetDateTime> {
    s.and_then(|s| parse_time(s).ok())
}

fn required_time(s: Option<&str>, field: &str) -> Result<OffsetDateTime, String> {
    parse_time(s.ok_or_else(|| format!("{field} is missing"))?).map_err(|e| format!("{field}: {e}"))
}

/// The id of a raw item for error reports (`?` when absent).
pub(super) fn id_hint(raw: &RawValue) -> String {
    match serde_json::from_str::<IdDto>(raw.get())
        .ok()
        .and_then(|d| d.id)
    {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        _ => "?".to_owned(),
    }
}

/// Maps one raw incident of `tenant` (the tenant we asked, not the payload's `tenantId`).
pub(super) fn incident(tenant: &TenantId, raw: &RawValue) -> Result<DefenderIncident, String> {
    let dto: IncidentDto =
        serde_json::from_str(raw.get()).map_err(|e| format!("incident does not parse: {e}"))?;
    DefenderIncident::try_from(TenantIncident(tenant, dto))
}

/// A Graph incident with the tenant it came from.
struct TenantIncident<'a>(&'a TenantId, IncidentDto);

impl TryFrom<TenantIncident<'_>> for DefenderIncident {
    type Error = String;

    fn try_from(TenantIncident(tenant, dto): TenantIncident<'_>) -> Result<Self, String> {
        let id = DefenderIncidentId::parse(dto.id.as_deref().unwrap_or_default())?;
        let status = dto.status.as_deref().ok_or("status is missing")?;
        let alerts = match dto.alerts {
            Some(list) => Some(list.into_iter().map(alert).collect::<Result<Vec<_>, _>>()?),
            None => None,
        };
        let redirect = dto
            .redirect_incident_id
            .filter(|s| !s.is_empty())
            .map(|s| DefenderIncidentId::parse(&s))
            .transpose()?;
        Ok(DefenderIncident {
            tenant: tenant.clone(),
            created: required_time(dto.created_date_time.as_deref(), "createdDateTime")?,
            last_update: required_time(dto.last_update_date_time.as_deref(), "lastUpdateDateTime")?,
            id,
            display_name: dto.display_name.unwrap_or_default(),
            description: dto.description,
            summary: dto.summary,
            status: DefenderStatus::parse(status),
            severity: DefenderSeverity::parse(dto.severity.as_deref().unwrap_or("unknown")),
            classification: dto
                .classification
                .as_deref()
                .map(DefenderClassification::parse),
            determination: dto.determination.as_deref().map(Determination::parse_alias),
            resolving_comment: dto.resolving_comment,
            assigned_to: dto.assigned_to.filter(|s| !s.trim().is_empty()),
            custom_tags: dto.custom_tags.or(dto.tags).unwrap_or_default(),
            system_tags: dto.system_tags.unwrap_or_default(),
            comments: dto
                .comments
                .unwrap_or_default()
                .into_iter()
                .map(comment)
                .collect(),
            redirect_incident_id: redirect,
            web_url: dto.incident_web_url,
            last_modified_by: dto.last_modified_by,
            alerts,
        })
    }
}

/// Maps one comment (either field spelling).
pub(super) fn comment(dto: CommentDto) -> DefenderComment {
    DefenderComment {
        text: dto.comment.unwrap_or_default(),
        author: dto.created_by_display_name.or(dto.created_by),
        created: opt_time(
            dto.created_date_time
                .as_deref()
                .or(dto.created_time.as_deref()),
        ),
    }
}

/// Maps one raw alert, keeping its JSON whole.
pub(super) fn alert(raw: Box<RawValue>) -> Result<Alert, String> {
    let dto: AlertDto = serde_json::from_str(raw.get())
        .map_err(|e| format!("alert {} does not parse: {e}", id_hint(&raw)))?;
    Alert::try_from(RawAlert(dto, raw))
}

/// A Graph alert with its raw JSON (shipped as is).
struct RawAlert(AlertDto, Box<RawValue>);

impl TryFrom<RawAlert> for Alert {
    type Error = String;

    fn try_from(RawAlert(dto, raw): RawAlert) -> Result<Self, String> {
        let id = dto
            .id
            .filter(|s| !s.is_empty())
            .ok_or("an alert has no id")?;
        Ok(Alert {
            id,
            title: dto.title.unwrap_or_default(),
            severity: DefenderSeverity::parse(dto.severity.as_deref().unwrap_or("unknown")),
            status: dto.status.unwrap_or_default(),
            service_source: dto.service_source.unwrap_or_else(|| "unknown".to_owned()),
            detection_source: dto.detection_source,
            category: dto.category,
            created: opt_time(dto.created_date_time.as_deref()),
            last_update: opt_time(dto.last_update_date_time.as_deref()),
            first_activity: opt_time(dto.first_activity_date_time.as_deref()),
            last_activity: opt_time(dto.last_activity_date_time.as_deref()),
            mitre_techniques: dto.mitre_techniques.unwrap_or_default(),
            evidence: dto
                .evidence
                .unwrap_or_default()
                .into_iter()
                .map(evidence)
                .collect(),
            raw: RawJson::new(raw),
        })
    }
}

/// Maps one evidence item; never fails (an unknown type is `kind` = its short name, or `unknown`).
/// The item is parsed once here to read its key fields (which differ per type); only the text
/// is kept.
pub(super) fn evidence(text: Box<RawValue>) -> Evidence {
    let raw: Value = serde_json::from_str(text.get()).unwrap_or(Value::Null);
    let kind = raw["@odata.type"]
        .as_str()
        .and_then(|t| t.rsplit('.').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_owned();
    let strings = |field: &str| -> Vec<String> {
        raw[field]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    Evidence {
        key: evidence_key(&kind, &raw),
        verdict: raw["verdict"].as_str().map(str::to_owned),
        remediation_status: raw["remediationStatus"].as_str().map(str::to_owned),
        roles: strings("roles"),
        kind,
        raw: RawJson::new(text),
    }
}

/// A scalar at a JSON path as text (numbers too: `cloudApplicationEvidence.appId` is an Int64).
fn text_at(v: &Value, path: &[&str]) -> Option<String> {
    let leaf = path.iter().try_fold(v, |v, k| v.get(k))?;
    match leaf {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn first(v: &Value, paths: &[&[&str]]) -> Option<String> {
    paths.iter().find_map(|p| text_at(v, p))
}

/// The most telling identifier of an evidence item, per type (`docs/api-notes.md` §1.6).
pub(super) fn evidence_key(kind: &str, v: &Value) -> Option<String> {
    let joined = |parts: &[&[&str]]| {
        let parts: Vec<String> = parts.iter().filter_map(|p| text_at(v, p)).collect();
        (!parts.is_empty()).then(|| parts.join("\\"))
    };
    match kind {
        "deviceEvidence" => first(
            v,
            &[&["deviceDnsName"], &["mdeDeviceId"], &["azureAdDeviceId"]],
        ),
        "fileEvidence" => first(
            v,
            &[
                &["fileDetails", "sha256"],
                &["fileDetails", "sha1"],
                &["fileDetails", "fileName"],
            ],
        ),
        "processEvidence" => first(
            v,
            &[
                &["processCommandLine"],
                &["imageFile", "fileName"],
                &["processId"],
            ],
        ),
        "userEvidence" => first(
            v,
            &[
                &["userAccount", "userPrincipalName"],
                &["userAccount", "accountName"],
                &["userAccount", "azureAdUserId"],
            ],
        ),
        "ipEvidence" => first(v, &[&["ipAddress"]]),
        "urlEvidence" => first(v, &[&["url"]]),
        "mailboxEvidence" => first(
            v,
            &[
                &["primaryAddress"],
                &["upn"],
                &["userAccount", "userPrincipalName"],
            ],
        ),
        "analyzedMessageEvidence" => first(v, &[&["internetMessageId"], &["networkMessageId"]]),
        "mailClusterEvidence" => first(v, &[&["query"], &["clusterByValue"]]),
        "cloudApplicationEvidence" => first(v, &[&["displayName"], &["appId"], &["saasAppId"]]),
        "oauthApplicationEvidence" => first(v, &[&["appId"], &["displayName"], &["objectId"]]),
        "registryKeyEvidence" => joined(&[&["registryHive"], &["registryKey"]]),
        "registryValueEvidence" => {
            joined(&[&["registryHive"], &["registryKey"], &["registryValueName"]])
        }
        "securityGroupEvidence" => first(v, &[&["displayName"], &["securityGroupId"]]),
        "azureResourceEvidence" => first(v, &[&["resourceId"], &["resourceName"]]),
        "amazonResourceEvidence" => first(v, &[&["amazonResourceId"], &["resourceName"]]),
        "googleCloudResourceEvidence" => first(v, &[&["fullResourceName"], &["resourceName"]]),
        "blobEvidence" | "blobContainerEvidence" => first(v, &[&["url"], &["name"]]),
        "dnsEvidence" => first(v, &[&["domainName"]]),
        "hostLogonSessionEvidence" => first(v, &[&["sessionId"]]),
        "iotDeviceEvidence" => first(v, &[&["deviceName"], &["deviceId"]]),
        "kubernetesClusterEvidence" | "kubernetesNamespaceEvidence" | "kubernetesPodEvidence" => {
            first(v, &[&["name"]])
        }
        "nicEvidence" => first(v, &[&["macAddress"], &["ipAddress", "ipAddress"]]),
        // Unknown or newer types: a generic identifier if there is one; the raw JSON is kept anyway.
        _ => first(v, &[&["displayName"], &["name"], &["id"]]),
    }
}

/// Maps a directory user; `None` when the answer has no usable object id.
pub(super) fn user(dto: UserDto, asked: &str) -> Option<UserRef> {
    let object_id = uuid::Uuid::parse_str(dto.id.as_deref()?).ok()?;
    Some(UserRef {
        object_id,
        user_principal_name: dto.user_principal_name.unwrap_or_else(|| asked.to_owned()),
        mail: dto.mail,
        display_name: dto.display_name,
    })
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
