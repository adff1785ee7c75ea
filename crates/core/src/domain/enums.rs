//! Closed vocabularies of each side, with a passthrough variant: Microsoft adds enum
//! members over time, and an unknown member must never fail a parse.

/// Declares a string-backed enum: known members parse case-insensitively, anything else is
/// kept verbatim in `Unrecognized`, and the value round-trips through serde as its string.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(into = "String", from = "String")]
        pub enum $name {
            $($variant,)+
            /// A member this build does not know, kept as the service sent it.
            Unrecognized(String),
        }

        impl $name {
            /// Parses a member name, case-insensitively; unknown names are kept.
            pub fn parse(s: &str) -> Self {
                $(if s.eq_ignore_ascii_case($text) { return Self::$variant; })+
                Self::Unrecognized(s.to_owned())
            }

            /// The canonical spelling of the member.
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $text,)+
                    Self::Unrecognized(s) => s,
                }
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self { Self::parse(&s) }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String { v.as_str().to_owned() }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str(self.as_str()) }
        }
    };
}

string_enum!(
    /// Defender (Graph) incident status.
    DefenderStatus {
        Active => "active",
        InProgress => "inProgress",
        AwaitingAction => "awaitingAction",
        Resolved => "resolved",
        Redirected => "redirected",
        UnknownFutureValue => "unknownFutureValue",
    }
);

string_enum!(
    /// Defender (Graph) severity.
    DefenderSeverity {
        Unknown => "unknown",
        Informational => "informational",
        Low => "low",
        Medium => "medium",
        High => "high",
        UnknownFutureValue => "unknownFutureValue",
    }
);

string_enum!(
    /// Defender (Graph) classification.
    DefenderClassification {
        Unknown => "unknown",
        FalsePositive => "falsePositive",
        TruePositive => "truePositive",
        InformationalExpectedActivity => "informationalExpectedActivity",
        UnknownFutureValue => "unknownFutureValue",
    }
);

string_enum!(
    /// Defender (Graph) determination. Graph reads and writes use different spellings for four
    /// members; the read spellings are parsed into the write names (see [`Determination::parse_alias`]).
    Determination {
        Unknown => "unknown",
        Apt => "apt",
        Malware => "malware",
        SecurityPersonnel => "securityPersonnel",
        SecurityTesting => "securityTesting",
        UnwantedSoftware => "unwantedSoftware",
        Other => "other",
        MultiStagedAttack => "multiStagedAttack",
        CompromisedAccount => "compromisedAccount",
        Phishing => "phishing",
        MaliciousUserActivity => "maliciousUserActivity",
        NotMalicious => "notMalicious",
        NotEnoughDataToValidate => "notEnoughDataToValidate",
        ConfirmedActivity => "confirmedActivity",
        LineOfBusinessApplication => "lineOfBusinessApplication",
        UnknownFutureValue => "unknownFutureValue",
    }
);

impl Determination {
    /// Parses either vocabulary: `compromisedUser`, `clean`, `insufficientData` and
    /// `confirmedUserActivity` (the property list) are aliases of the PATCH names.
    pub fn parse_alias(s: &str) -> Self {
        let canonical = match s.to_ascii_lowercase().as_str() {
            "compromiseduser" => "compromisedAccount",
            "clean" => "notMalicious",
            "insufficientdata" => "notEnoughDataToValidate",
            "confirmeduseractivity" => "confirmedActivity",
            _ => s,
        };
        Self::parse(canonical)
    }
}

string_enum!(
    /// Sentinel incident status.
    SentinelStatus {
        New => "New",
        Active => "Active",
        Closed => "Closed",
    }
);

string_enum!(
    /// Sentinel severity.
    SentinelSeverity {
        Informational => "Informational",
        Low => "Low",
        Medium => "Medium",
        High => "High",
    }
);

string_enum!(
    /// Sentinel classification.
    SentinelClassification {
        Undetermined => "Undetermined",
        TruePositive => "TruePositive",
        BenignPositive => "BenignPositive",
        FalsePositive => "FalsePositive",
    }
);

string_enum!(
    /// What a Sentinel incident owner's object id names (`owner.ownerType`).
    OwnerType {
        User => "User",
        Group => "Group",
        Unknown => "Unknown",
    }
);

string_enum!(
    /// Sentinel classification reason.
    ClassificationReason {
        SuspiciousActivity => "SuspiciousActivity",
        SuspiciousButExpected => "SuspiciousButExpected",
        IncorrectAlertLogic => "IncorrectAlertLogic",
        InaccurateData => "InaccurateData",
    }
);

string_enum!(
    /// What wins when both sides changed one field since the last sync (`SYNC_CONFLICT_POLICY`).
    ConflictPolicyName {
        LatestWins => "latest-wins",
        DefenderWins => "defender-wins",
        SentinelWins => "sentinel-wins",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_members_parse_case_insensitively_and_unknown_ones_are_kept() {
        assert_eq!(
            DefenderStatus::parse("InProgress"),
            DefenderStatus::InProgress
        );
        assert_eq!(
            DefenderStatus::parse("somethingNew"),
            DefenderStatus::Unrecognized("somethingNew".into())
        );
        assert_eq!(
            DefenderStatus::parse("somethingNew").as_str(),
            "somethingNew"
        );
        assert_eq!(SentinelStatus::parse("closed"), SentinelStatus::Closed);
    }

    #[test]
    fn determination_read_spellings_are_aliases_of_write_names() {
        assert_eq!(
            Determination::parse_alias("clean"),
            Determination::NotMalicious
        );
        assert_eq!(
            Determination::parse_alias("compromisedUser"),
            Determination::CompromisedAccount
        );
        assert_eq!(
            Determination::parse_alias("insufficientData"),
            Determination::NotEnoughDataToValidate
        );
        assert_eq!(
            Determination::parse_alias("confirmedUserActivity"),
            Determination::ConfirmedActivity
        );
        assert_eq!(
            Determination::parse_alias("malware"),
            Determination::Malware
        );
    }

    #[test]
    fn serde_round_trips_through_the_string() {
        let v = serde_json::to_value(SentinelClassification::BenignPositive).unwrap();
        assert_eq!(v, serde_json::json!("BenignPositive"));
        let back: DefenderStatus = serde_json::from_value(serde_json::json!("weird")).unwrap();
        assert_eq!(back, DefenderStatus::Unrecognized("weird".into()));
    }
}
