//! Identifiers, each a newtype built only through `parse`.

use std::fmt;
use uuid::Uuid;

/// An Entra tenant id (a GUID or a verified domain name).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    /// Accepts what azure_identity accepts: ASCII letters, digits, `.` and `-`, not empty.
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err("a tenant id must not be empty".into());
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        {
            return Err(format!(
                "'{s}' is not a tenant id (letters, digits, '.' and '-' only)"
            ));
        }
        Ok(Self(s.to_ascii_lowercase()))
    }

    /// The tenant id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Defender incident id (Graph `incident.id`, a numeric string today; kept as text).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct DefenderIncidentId(String);

impl DefenderIncidentId {
    /// Not empty, no characters that would break a URL path or an OData literal.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > 128 {
            return Err(format!("'{s}' is not a Defender incident id"));
        }
        if !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(format!(
                "'{s}' is not a Defender incident id (letters, digits, '-', '_')"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DefenderIncidentId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<DefenderIncidentId> for String {
    fn from(t: DefenderIncidentId) -> String {
        t.0
    }
}

impl fmt::Display for DefenderIncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The ARM resource name of a Sentinel incident: a UUID. For synced incidents it is derived
/// from (tenant, Defender id) alone, so a repeated create is an update even with no state.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct SentinelIncidentName(Uuid);

/// Namespace of the UUIDv5 names (a random v4 fixed forever: changing it would duplicate every incident).
const NAME_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a4e_93d1_4b7a_9c0e_5d8e_1f2a_3b4c);

impl SentinelIncidentName {
    /// The stable name of the Sentinel incident that mirrors a Defender incident.
    pub fn for_defender(tenant: &TenantId, id: &DefenderIncidentId) -> Self {
        Self(Uuid::new_v5(
            &NAME_NAMESPACE,
            format!("{}/{}", tenant.as_str(), id.as_str()).as_bytes(),
        ))
    }

    /// Parses an ARM incident name.
    pub fn parse(s: &str) -> Result<Self, String> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| format!("'{s}' is not a Sentinel incident name (a UUID)"))
    }

    /// The UUID.
    pub fn uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for SentinelIncidentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Deterministic id for anything we create on behalf of a source object (comment ids, row ids):
/// the same input always gives the same UUID, so a retried create is an update.
pub fn stable_uuid(parts: &[&str]) -> Uuid {
    Uuid::new_v5(&NAME_NAMESPACE, parts.join("\u{1f}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_name_is_stable_and_depends_on_tenant_and_id() {
        let t = TenantId::parse("11111111-1111-1111-1111-111111111111").unwrap();
        let u = TenantId::parse("22222222-2222-2222-2222-222222222222").unwrap();
        let a = DefenderIncidentId::parse("42").unwrap();
        let b = DefenderIncidentId::parse("43").unwrap();
        assert_eq!(
            SentinelIncidentName::for_defender(&t, &a),
            SentinelIncidentName::for_defender(&t, &a)
        );
        assert_ne!(
            SentinelIncidentName::for_defender(&t, &a),
            SentinelIncidentName::for_defender(&t, &b)
        );
        assert_ne!(
            SentinelIncidentName::for_defender(&t, &a),
            SentinelIncidentName::for_defender(&u, &a)
        );
    }

    #[test]
    fn tenant_ids_are_validated_and_normalised() {
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse("a/b").is_err());
        assert_eq!(TenantId::parse("ABC-def").unwrap().as_str(), "abc-def");
    }

    #[test]
    fn incident_ids_reject_path_characters() {
        assert!(DefenderIncidentId::parse("12/34").is_err());
        assert!(DefenderIncidentId::parse("").is_err());
        assert!(DefenderIncidentId::parse("2972395").is_ok());
    }
}
