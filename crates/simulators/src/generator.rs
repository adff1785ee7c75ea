//! Seeded data generator: realistic Graph incidents with alerts from all four Defender products
//! and every documented evidence type (plus one newer type a parser must keep as raw JSON).

use crate::util::fmt_time;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

struct Product {
    service: &'static str,
    detection: &'static str,
    name: &'static str,
    titles: &'static [(&'static str, &'static str)],
    evidence: &'static [&'static str],
}

const PRODUCTS: &[Product] = &[
    Product {
        service: "microsoftDefenderForEndpoint",
        detection: "microsoftDefenderForEndpoint",
        name: "Microsoft Defender for Endpoint",
        titles: &[
            ("Suspicious execution of hidden file", "DefenseEvasion"),
            ("'Mimikatz' hacktool was detected", "CredentialAccess"),
            ("Ransomware behavior detected in the file system", "Impact"),
        ],
        evidence: &[
            "deviceEvidence",
            "fileEvidence",
            "processEvidence",
            "registryKeyEvidence",
            "registryValueEvidence",
            "ipEvidence",
        ],
    },
    Product {
        service: "microsoftDefenderForOffice365",
        detection: "microsoftDefenderForOffice365",
        name: "Microsoft Defender for Office 365",
        titles: &[
            (
                "Email messages containing malicious URL removed after delivery",
                "InitialAccess",
            ),
            (
                "A potentially malicious URL click was detected",
                "InitialAccess",
            ),
        ],
        evidence: &[
            "mailboxEvidence",
            "analyzedMessageEvidence",
            "mailClusterEvidence",
            "urlEvidence",
            "userEvidence",
        ],
    },
    Product {
        service: "microsoftDefenderForIdentity",
        detection: "microsoftDefenderForIdentity",
        name: "Microsoft Defender for Identity",
        titles: &[
            (
                "Suspected brute-force attack (Kerberos, NTLM)",
                "CredentialAccess",
            ),
            ("Suspicious additions to sensitive groups", "Persistence"),
        ],
        evidence: &[
            "userEvidence",
            "deviceEvidence",
            "securityGroupEvidence",
            "ipEvidence",
        ],
    },
    Product {
        service: "microsoftDefenderForCloudApps",
        detection: "cloudAppSecurity",
        name: "Microsoft Defender for Cloud Apps",
        titles: &[
            ("Impossible travel activity", "InitialAccess"),
            (
                "Suspicious OAuth app file download activities",
                "Collection",
            ),
        ],
        evidence: &[
            "cloudApplicationEvidence",
            "oauthApplicationEvidence",
            "userEvidence",
            "ipEvidence",
            "urlEvidence",
            "azureResourceEvidence",
        ],
    },
];

const USERS: &[&str] = &[
    "kai.carter",
    "dana.smith",
    "lee.wong",
    "jane.doe",
    "omar.ali",
    "mia.chen",
];
const HOSTS: &[&str] = &[
    "ws-fin-014",
    "srv-dc-01",
    "lt-hr-203",
    "srv-sql-07",
    "ws-dev-117",
];

/// Generates `n` incidents for `tenant` with ids from `first_id`, updated within the 20 hours
/// before `base`. Same seed, same data (timestamps relative to `base`).
pub fn incidents(
    n: usize,
    seed: u64,
    tenant: &str,
    first_id: u64,
    base: OffsetDateTime,
) -> Vec<Value> {
    incidents_capped(n, seed, tenant, first_id, base, 200)
}

/// As [`incidents`], with at most `max_alerts` alerts per incident (lighter data for benchmarks).
pub fn incidents_capped(
    n: usize,
    seed: u64,
    tenant: &str,
    first_id: u64,
    base: OffsetDateTime,
    max_alerts: usize,
) -> Vec<Value> {
    incidents_shaped(
        n,
        seed,
        tenant,
        first_id,
        base,
        Shape {
            max_alerts,
            ..Shape::default()
        },
    )
}

/// How many alerts and evidence items generated incidents carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    /// Upper bound of the random alert count (1..=200).
    pub max_alerts: usize,
    /// Exactly this many alerts per incident (benchmarks); `None` = the realistic random mix.
    pub alerts: Option<usize>,
    /// Exactly this many evidence items per alert (benchmarks); `None` = 1 to 3.
    pub evidence: Option<usize>,
}

impl Default for Shape {
    fn default() -> Self {
        Self {
            max_alerts: 200,
            alerts: None,
            evidence: None,
        }
    }
}

/// As [`incidents`], shaped by `shape`. Without fixed counts the data is the same as
/// [`incidents_capped`] with the same seed.
pub fn incidents_shaped(
    n: usize,
    seed: u64,
    tenant: &str,
    first_id: u64,
    base: OffsetDateTime,
    shape: Shape,
) -> Vec<Value> {
    let mut rng = StdRng::seed_from_u64(seed);
    let shape = Shape {
        max_alerts: shape.max_alerts.max(1),
        alerts: shape.alerts.map(|a| a.max(1)),
        evidence: shape.evidence.map(|e| e.max(1)),
    };
    (0..n)
        .map(|i| incident(&mut rng, i, n, tenant, first_id + i as u64, base, shape))
        .collect()
}

fn alert_count(rng: &mut StdRng, i: usize, n: usize) -> usize {
    if n >= 8 && i == n / 2 {
        return 200;
    }
    match rng.random_range(0..100) {
        0..70 => rng.random_range(1..=3),
        70..90 => rng.random_range(4..=15),
        90..98 => rng.random_range(16..=60),
        _ => rng.random_range(61..=200),
    }
}

fn pick<'a>(rng: &mut StdRng, v: &'a [&'a str]) -> &'a str {
    v[rng.random_range(0..v.len())]
}

fn incident(
    rng: &mut StdRng,
    i: usize,
    n: usize,
    tenant: &str,
    id: u64,
    base: OffsetDateTime,
    shape: Shape,
) -> Value {
    let created = base - Duration::seconds(rng.random_range(3_600..72_000));
    let updated =
        created + Duration::seconds(rng.random_range(0..(base - created).whole_seconds().max(1)));
    let severity = pick(rng, &["low", "medium", "high", "informational"]);
    let count = match shape.alerts {
        Some(fixed) => fixed,
        None => alert_count(rng, i, n).min(shape.max_alerts),
    };
    let alerts: Vec<Value> = (0..count)
        .map(|j| alert(rng, j, i, tenant, id, created, shape.evidence))
        .collect();
    let products: Vec<&str> = PRODUCTS
        .iter()
        .filter(|p| alerts.iter().any(|a| a["serviceSource"] == p.service))
        .map(|p| p.name)
        .collect();
    let title = alerts[0]["title"]
        .as_str()
        .unwrap_or("Suspicious activity")
        .to_owned();
    let name = if count > 1 {
        format!("Multi-stage incident involving {title} on multiple endpoints")
    } else {
        title
    };
    json!({
        "@odata.type": "#microsoft.graph.security.incident",
        "id": id.to_string(),
        "incidentWebUrl": format!("https://security.microsoft.com/incidents/{id}?tid={tenant}"),
        "redirectIncidentId": null,
        "tenantId": tenant,
        "displayName": name,
        "createdDateTime": fmt_time(created),
        "lastUpdateDateTime": fmt_time(updated),
        "assignedTo": if rng.random_bool(0.3) { Value::from(format!("{}@contoso.com", pick(rng, USERS))) } else { Value::Null },
        "classification": "unknown",
        "determination": "unknown",
        "status": "active",
        "severity": severity,
        "customTags": if rng.random_bool(0.2) { json!(["Demo"]) } else { json!([]) },
        "systemTags": [],
        "comments": [],
        "description": format!("Generated incident with {count} alert(s) from {}.", products.join(", ")),
        "summary": null,
        "lastModifiedBy": null,
        "resolvingComment": null,
        "alerts": alerts,
    })
}

fn alert(
    rng: &mut StdRng,
    j: usize,
    i: usize,
    tenant: &str,
    incident_id: u64,
    created: OffsetDateTime,
    evidence_count: Option<usize>,
) -> Value {
    let p = &PRODUCTS[(i + j) % PRODUCTS.len()];
    let (title, category) = p.titles[rng.random_range(0..p.titles.len())];
    let at = created - Duration::seconds(rng.random_range(0..3_600));
    let aid = format!(
        "da{}_{}",
        637_551_227_677_560_813u64 + incident_id * 1000 + j as u64,
        -(rng.random_range(100_000_000..999_999_999i64))
    );
    let mut ev = vec![evidence(rng, p.evidence[j % p.evidence.len()], at)];
    // Fixed counts draw no random count, so the random mix keeps its sequence.
    let extra = match evidence_count {
        Some(n) => n - 1,
        None => rng.random_range(0..3),
    };
    for _ in 0..extra {
        let ty = pick(rng, p.evidence);
        ev.push(evidence(rng, ty, at));
    }
    json!({
        "@odata.type": "#microsoft.graph.security.alert",
        "id": aid, "providerAlertId": aid, "incidentId": incident_id.to_string(),
        "status": "new", "severity": pick(rng, &["low", "medium", "high"]),
        "classification": "unknown", "determination": "unknown",
        "serviceSource": p.service, "detectionSource": p.detection, "productName": p.name,
        "detectorId": uuid::Uuid::from_u128(rng.random()).to_string(), "tenantId": tenant,
        "title": title, "description": format!("{title}. Generated by dss-simulators."),
        "recommendedActions": "Collect artifacts and determine scope.", "category": category,
        "assignedTo": null,
        "alertWebUrl": format!("https://security.microsoft.com/alerts/{aid}?tid={tenant}"),
        "incidentWebUrl": format!("https://security.microsoft.com/incidents/{incident_id}?tid={tenant}"),
        "actorDisplayName": null, "threatDisplayName": null, "threatFamilyName": null,
        "mitreTechniques": [pick(rng, &["T1564.001", "T1003.001", "T1566.002", "T1110.003", "T1078"])],
        "createdDateTime": fmt_time(at), "lastUpdateDateTime": fmt_time(at + Duration::seconds(30)),
        "resolvedDateTime": null, "firstActivityDateTime": fmt_time(at - Duration::minutes(10)),
        "lastActivityDateTime": fmt_time(at - Duration::minutes(1)),
        "comments": [], "systemTags": [], "additionalData": {}, "alertPolicyId": null,
        "evidence": ev,
    })
}

fn sha(rng: &mut StdRng, len: usize) -> String {
    (0..len)
        .map(|_| char::from(b"0123456789abcdef"[rng.random_range(0..16)]))
        .collect()
}

fn ip(rng: &mut StdRng) -> String {
    format!(
        "{}.{}.{}.{}",
        rng.random_range(11..223),
        rng.random_range(0..255),
        rng.random_range(0..255),
        rng.random_range(1..254)
    )
}

fn user_account(rng: &mut StdRng) -> Value {
    let u = pick(rng, USERS);
    json!({"accountName": u, "azureAdUserId": uuid::Uuid::from_u128(rng.random()).to_string(), "displayName": u.replace('.', " "),
           "domainName": "contoso.com", "userPrincipalName": format!("{u}@contoso.com"), "userSid": format!("S-1-5-21-1721254763-462695806-1538882281-{}", rng.random_range(1000..99999))})
}

fn file_details(rng: &mut StdRng) -> Value {
    let f = pick(
        rng,
        &["invoice.exe", "mimikatz.exe", "update.ps1", "payload.dll"],
    );
    json!({"sha1": sha(rng, 40), "sha256": sha(rng, 64), "fileName": f, "filePath": "C:\\Users\\Public\\Downloads",
           "fileSize": rng.random_range(10_000..9_000_000), "filePublisher": null, "signer": null, "issuer": null})
}

fn evidence(rng: &mut StdRng, ty: &str, at: OffsetDateTime) -> Value {
    let dev = sha(rng, 40);
    let mut e = match ty {
        "deviceEvidence" => {
            json!({"firstSeenDateTime": fmt_time(at - Duration::days(90)), "mdeDeviceId": dev, "azureAdDeviceId": null,
            "deviceDnsName": format!("{}.contoso.com", pick(rng, HOSTS)), "osPlatform": "Windows11", "osBuild": 22631, "version": "23H2",
            "healthStatus": "active", "riskScore": pick(rng, &["low", "medium", "high"]), "rbacGroupId": 75, "rbacGroupName": "UnassignedGroup",
            "onboardingStatus": "onboarded", "defenderAvStatus": "updated", "ipInterfaces": [ip(rng)], "loggedOnUsers": [], "vmMetadata": null})
        }
        "fileEvidence" => {
            json!({"detectionStatus": pick(rng, &["detected", "blocked", "prevented"]), "mdeDeviceId": dev, "fileDetails": file_details(rng)})
        }
        "processEvidence" => {
            json!({"processId": rng.random_range(100..20000), "parentProcessId": rng.random_range(100..2000),
            "processCommandLine": "powershell.exe -nop -w hidden -enc SQBFAFgA", "processCreationDateTime": fmt_time(at),
            "parentProcessCreationDateTime": fmt_time(at - Duration::minutes(5)), "detectionStatus": "detected", "mdeDeviceId": dev,
            "imageFile": file_details(rng), "parentProcessImageFile": file_details(rng), "userAccount": user_account(rng)})
        }
        "userEvidence" => json!({"userAccount": user_account(rng)}),
        "ipEvidence" => {
            json!({"ipAddress": ip(rng), "countryLetterCode": pick(rng, &["US", "NL", "RU", "BR"])})
        }
        "urlEvidence" => json!({"url": format!("https://{}.example/login", sha(rng, 8))}),
        "mailboxEvidence" => {
            let u = pick(rng, USERS);
            json!({"displayName": u, "primaryAddress": format!("{u}@contoso.com"), "upn": format!("{u}@contoso.com"), "userAccount": user_account(rng)})
        }
        "analyzedMessageEvidence" => {
            json!({"networkMessageId": uuid::Uuid::from_u128(rng.random()).to_string(), "internetMessageId": format!("<{}@mail.example>", sha(rng, 12)),
            "subject": "Invoice overdue", "language": "en", "senderIp": ip(rng), "recipientEmailAddress": format!("{}@contoso.com", pick(rng, USERS)),
            "antiSpamDirection": "Inbound", "deliveryAction": "Delivered", "deliveryLocation": "Inbox", "urn": format!("urn:MailEntity:{}", sha(rng, 32)),
            "threats": ["Phish"], "threatDetectionMethods": ["URL detonation"], "urls": [], "urlCount": 1, "attachmentsCount": 0,
            "receivedDateTime": fmt_time(at), "p1Sender": {"emailAddress": "billing@invoices.example"}, "p2Sender": {"emailAddress": "billing@invoices.example"}})
        }
        "mailClusterEvidence" => {
            json!({"clusterBy": "Subject;SenderIp", "clusterByValue": sha(rng, 16), "emailCount": rng.random_range(2..200),
            "networkMessageIds": [uuid::Uuid::from_u128(rng.random()).to_string()], "query": "(Subject:\"Invoice overdue\")", "urn": format!("urn:MailClusterEntity:{}", sha(rng, 32))})
        }
        "cloudApplicationEvidence" => {
            json!({"appId": 11161, "displayName": "Office 365", "instanceId": 0, "instanceName": "Office 365", "saasAppId": 11161})
        }
        "registryKeyEvidence" => {
            json!({"registryKey": "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run", "registryHive": "HKEY_LOCAL_MACHINE"})
        }
        "registryValueEvidence" => {
            json!({"registryKey": "SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Run", "registryHive": "HKEY_LOCAL_MACHINE",
            "registryValue": "C:\\Users\\Public\\update.exe", "registryValueName": "Updater", "registryValueType": "String", "mdeDeviceId": dev})
        }
        "securityGroupEvidence" => {
            json!({"displayName": "Domain Admins", "securityGroupId": uuid::Uuid::from_u128(rng.random()).to_string()})
        }
        "oauthApplicationEvidence" => {
            json!({"appId": uuid::Uuid::from_u128(rng.random()).to_string(), "displayName": "File Sync Helper",
            "objectId": uuid::Uuid::from_u128(rng.random()).to_string(), "publisher": "Unverified"})
        }
        _ => {
            json!({"resourceId": format!("/subscriptions/{}/resourceGroups/rg-app/providers/Microsoft.Storage/storageAccounts/st{}", uuid::Uuid::from_u128(rng.random()), sha(rng, 6)),
            "resourceName": "stcontosodata", "resourceType": "Microsoft.Storage/storageAccounts"})
        }
    };
    if let Some(o) = e.as_object_mut() {
        o.insert(
            "@odata.type".into(),
            json!(format!("#microsoft.graph.security.{ty}")),
        );
        o.insert("createdDateTime".into(), json!(fmt_time(at)));
        o.insert(
            "verdict".into(),
            json!(pick(
                rng,
                &["unknown", "suspicious", "malicious", "noThreatsFound"]
            )),
        );
        o.insert(
            "remediationStatus".into(),
            json!(pick(
                rng,
                &["none", "remediated", "prevented", "blocked", "notFound"]
            )),
        );
        o.insert("remediationStatusDetails".into(), Value::Null);
        o.insert(
            "roles".into(),
            json!([pick(
                rng,
                &[
                    "compromised",
                    "attacker",
                    "source",
                    "destination",
                    "contextual"
                ]
            )]),
        );
        o.insert("detailedRoles".into(), json!([]));
        o.insert("tags".into(), json!([]));
    }
    e
}

/// Every evidence `@odata.type` suffix the generator emits.
pub const EVIDENCE_TYPES: &[&str] = &[
    "deviceEvidence",
    "fileEvidence",
    "processEvidence",
    "userEvidence",
    "ipEvidence",
    "urlEvidence",
    "mailboxEvidence",
    "analyzedMessageEvidence",
    "mailClusterEvidence",
    "cloudApplicationEvidence",
    "registryKeyEvidence",
    "registryValueEvidence",
    "securityGroupEvidence",
    "oauthApplicationEvidence",
    "azureResourceEvidence",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_complete() {
        let base = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let a = incidents(40, 9, "t", 1, base);
        assert_eq!(a, incidents(40, 9, "t", 1, base));
        let all = serde_json::to_string(&a).unwrap();
        for t in EVIDENCE_TYPES {
            assert!(
                all.contains(&format!("#microsoft.graph.security.{t}\"")),
                "missing {t}"
            );
        }
        for p in PRODUCTS {
            assert!(all.contains(p.service));
        }
        let counts: Vec<usize> = a
            .iter()
            .map(|i| i["alerts"].as_array().map_or(0, Vec::len))
            .collect();
        assert!(counts.iter().all(|c| (1..=200).contains(c)));
        assert!(counts.contains(&200) && counts.contains(&1));
        let light = incidents_capped(40, 9, "t", 1, base, 2);
        assert!(
            light
                .iter()
                .all(|i| (1..=2).contains(&i["alerts"].as_array().map_or(0, Vec::len)))
        );
        assert_eq!(
            light,
            incidents_shaped(
                40,
                9,
                "t",
                1,
                base,
                Shape {
                    max_alerts: 2,
                    ..Shape::default()
                }
            )
        );
    }

    #[test]
    fn fixed_shape_gives_exact_alert_and_evidence_counts() {
        let base = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let shape = Shape {
            max_alerts: 200,
            alerts: Some(3),
            evidence: Some(5),
        };
        let a = incidents_shaped(30, 4, "t", 1, base, shape);
        assert_eq!(a, incidents_shaped(30, 4, "t", 1, base, shape));
        for inc in &a {
            let alerts = inc["alerts"].as_array().unwrap();
            assert_eq!(alerts.len(), 3, "incident {}", inc["id"]);
            assert!(
                alerts
                    .iter()
                    .all(|al| al["evidence"].as_array().map_or(0, Vec::len) == 5)
            );
            assert_eq!(inc["comments"], serde_json::json!([]));
        }
    }
}
