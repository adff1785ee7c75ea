//! ARM wire shapes for incidents and comments (private) and their mapping to and from the domain.

use crate::domain::*;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Sentinel's description limit, in characters.
pub(super) const MAX_DESCRIPTION_CHARS: usize = SENTINEL_DESCRIPTION_MAX_CHARS;

/// A list page (`value`, `nextLink`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListDto<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    pub next_link: Option<String>,
}

/// `Microsoft.SecurityInsights/incidents` as read.
#[derive(Debug, Deserialize)]
pub(super) struct IncidentDto {
    pub name: Option<String>,
    pub etag: Option<String>,
    pub properties: Option<PropsDto>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PropsDto {
    pub title: Option<String>,
    pub description: Option<String>,
    pub severity: Option<String>,
    pub status: Option<String>,
    pub classification: Option<String>,
    pub classification_reason: Option<String>,
    pub classification_comment: Option<String>,
    pub owner: Option<OwnerDto>,
    pub labels: Option<Vec<LabelDto>>,
    pub first_activity_time_utc: Option<String>,
    pub last_activity_time_utc: Option<String>,
    pub created_time_utc: Option<String>,
    pub last_modified_time_utc: Option<String>,
    pub incident_number: Option<i64>,
    pub additional_data: Option<AdditionalDataDto>,
}

/// `additionalData` as read (only what the sync uses).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AdditionalDataDto {
    pub comments_count: Option<u32>,
}

/// Incident owner (read and written; Sentinel fills the rest from `objectId`).
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OwnerDto {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_principal_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
    /// `User`, `Group` or `Unknown`: written back as read (a group named without it is looked
    /// up as a user).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner_type: Option<String>,
}

/// A label. `labelType` is read-only: written back only for AutoAssigned labels, as read, so the
/// full-replace PUT keeps them without turning them into User labels.
#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LabelDto {
    pub label_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_type: Option<String>,
}

/// The PUT body: the whole writable `properties` object plus the etag.
#[derive(Debug, Serialize)]
pub(super) struct PutDto {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    pub properties: PutPropsDto,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PutPropsDto {
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub severity: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification_comment: Option<String>,
    /// Always sent: an omitted owner resets the incident to Unassigned.
    pub owner: OwnerDto,
    pub labels: Vec<LabelDto>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_activity_time_utc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_activity_time_utc: Option<String>,
}

/// `incidents/comments` as read.
#[derive(Debug, Deserialize)]
pub(super) struct CommentDto {
    pub name: Option<String>,
    pub properties: Option<CommentPropsDto>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct CommentPropsDto {
    pub message: Option<String>,
    pub created_time_utc: Option<String>,
    pub author: Option<AuthorDto>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct AuthorDto {
    pub name: Option<String>,
    pub email: Option<String>,
    pub user_principal_name: Option<String>,
}

fn parse_time(s: Option<&str>) -> Option<OffsetDateTime> {
    s.and_then(|s| OffsetDateTime::parse(s.trim(), &Rfc3339).ok())
}

fn format_time(t: Option<OffsetDateTime>) -> Option<String> {
    t.and_then(|t| t.to_offset(time::UtcOffset::UTC).format(&Rfc3339).ok())
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

impl TryFrom<IncidentDto> for SentinelIncident {
    type Error = String;

    fn try_from(dto: IncidentDto) -> Result<Self, String> {
        let name = SentinelIncidentName::parse(dto.name.as_deref().unwrap_or_default())?;
        let p = dto
            .properties
            .ok_or_else(|| format!("incident {name} has no properties"))?;
        let owner = p.owner.unwrap_or_default();
        Ok(SentinelIncident {
            name,
            etag: dto.etag,
            title: p.title.unwrap_or_default(),
            description: p.description,
            severity: SentinelSeverity::parse(
                p.severity
                    .as_deref()
                    .ok_or_else(|| format!("incident {name} has no severity"))?,
            ),
            status: SentinelStatus::parse(
                p.status
                    .as_deref()
                    .ok_or_else(|| format!("incident {name} has no status"))?,
            ),
            classification: non_empty(p.classification)
                .as_deref()
                .map(SentinelClassification::parse),
            classification_reason: non_empty(p.classification_reason)
                .as_deref()
                .map(ClassificationReason::parse),
            classification_comment: p.classification_comment,
            owner: Owner {
                object_id: owner
                    .object_id
                    .as_deref()
                    .and_then(|s| uuid::Uuid::parse_str(s).ok()),
                user_principal_name: non_empty(owner.user_principal_name),
                email: non_empty(owner.email),
                assigned_to: non_empty(owner.assigned_to),
                owner_type: non_empty(owner.owner_type).as_deref().map(OwnerType::parse),
            },
            labels: p
                .labels
                .unwrap_or_default()
                .into_iter()
                .map(label)
                .collect(),
            first_activity: parse_time(p.first_activity_time_utc.as_deref()),
            last_activity: parse_time(p.last_activity_time_utc.as_deref()),
            incident_number: p.incident_number,
            created: parse_time(p.created_time_utc.as_deref()),
            last_modified: parse_time(p.last_modified_time_utc.as_deref()),
            comments_count: p.additional_data.and_then(|a| a.comments_count),
            platform_id: None,
        })
    }
}

fn label(dto: LabelDto) -> Label {
    let auto = dto
        .label_type
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("AutoAssigned"));
    Label {
        name: dto.label_name,
        kind: if auto {
            LabelKind::AutoAssigned
        } else {
            LabelKind::User
        },
    }
}

impl TryFrom<&SentinelIncident> for PutDto {
    type Error = String;

    /// The whole writable object. Refuses what the service would refuse anyway (empty title,
    /// description over 5,000 characters) so the error names the cause.
    fn try_from(i: &SentinelIncident) -> Result<Self, String> {
        if i.title.trim().is_empty() {
            return Err(format!("incident {} has an empty title", i.name));
        }
        if let Some(d) = &i.description {
            let n = d.chars().count();
            if n > MAX_DESCRIPTION_CHARS {
                return Err(format!(
                    "incident {} description has {n} characters (Sentinel takes {MAX_DESCRIPTION_CHARS})",
                    i.name
                ));
            }
        }
        let owner = OwnerDto {
            object_id: i.owner.object_id.map(|u| u.to_string()),
            email: i.owner.email.clone(),
            user_principal_name: i.owner.user_principal_name.clone(),
            assigned_to: None, // display name: read-only in practice, filled from the object id
            owner_type: i
                .owner
                .owner_type
                .as_ref()
                .filter(|_| !i.owner.is_unassigned())
                .map(|t| t.as_str().to_owned()),
        };
        let labels = i
            .labels
            .iter()
            .map(|l| LabelDto {
                label_name: l.name.clone(),
                label_type: (l.kind == LabelKind::AutoAssigned).then(|| "AutoAssigned".to_owned()),
            })
            .collect();
        Ok(PutDto {
            etag: i.etag.clone(),
            properties: PutPropsDto {
                title: i.title.clone(),
                description: i.description.clone(),
                severity: i.severity.as_str().to_owned(),
                status: i.status.as_str().to_owned(),
                classification: i.classification.as_ref().map(|c| c.as_str().to_owned()),
                classification_reason: i
                    .classification_reason
                    .as_ref()
                    .map(|c| c.as_str().to_owned()),
                classification_comment: i.classification_comment.clone(),
                owner,
                labels,
                first_activity_time_utc: format_time(i.first_activity),
                last_activity_time_utc: format_time(i.last_activity),
            },
        })
    }
}

impl From<CommentDto> for SentinelComment {
    fn from(dto: CommentDto) -> Self {
        let p = dto.properties;
        let (message, created, author) = match p {
            Some(p) => {
                let author = p
                    .author
                    .and_then(|a| a.user_principal_name.or(a.email).or(a.name));
                (
                    p.message.unwrap_or_default(),
                    parse_time(p.created_time_utc.as_deref()),
                    author,
                )
            }
            None => (String::new(), None, None),
        };
        SentinelComment {
            id: dto.name.unwrap_or_default(),
            message,
            author,
            created,
        }
    }
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
