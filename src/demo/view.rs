//! Both sides as a person wants to see them: the simulators' state read through the adapters'
//! own wire mappings, and a two-line-per-incident table (Defender, then its Sentinel mirror)
//! that fits a 100-column terminal.

use super::check::Pair;
use crate::adapters::{graph, sentinel};
use crate::domain::*;
use dss_simulators::Simulators;
use serde_json::Value;

/// Reads every Defender incident of `tenants` and its Sentinel counterpart from the simulators.
pub fn snapshot(sims: &Simulators, tenants: &[TenantId]) -> Result<Vec<Pair>, String> {
    let mut out = Vec::new();
    for (i, tenant) in tenants.iter().enumerate() {
        for raw in sims.defender_incidents(tenant.as_str()) {
            let defender = graph::incident_from_json(tenant, raw)?;
            let name = SentinelIncidentName::for_defender(tenant, &defender.id).to_string();
            let sentinel = sims
                .sentinel_incident(&name)
                .map(sentinel::incident_from_json)
                .transpose()?;
            let sentinel_comments = sims
                .sentinel_comments(&name)
                .iter()
                .filter_map(|c| c["properties"]["message"].as_str().map(str::to_owned))
                .collect();
            out.push(Pair {
                tenant_no: i + 1,
                defender,
                sentinel,
                sentinel_comments,
            });
        }
    }
    out.sort_by_key(|p| {
        (
            p.tenant_no,
            p.defender.id.as_str().parse::<u64>().unwrap_or(u64::MAX),
        )
    });
    Ok(out)
}

/// Logs rows by `RowKind` (alert / evidence).
pub fn row_kinds(rows: &[Value]) -> (usize, usize) {
    let kind = |k: &str| {
        rows.iter()
            .filter(|r| r["RowKind"].as_str() == Some(k))
            .count()
    };
    (kind("alert"), kind("evidence"))
}

/// Cuts `s` to `w` characters (with `…`) and pads it to `w`.
pub fn cell(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w {
        format!("{s:<w$}")
    } else {
        let cut: String = s.chars().take(w.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

/// The part of a UPN before `@` (owners are all of one domain here).
fn short_owner(upn: Option<&str>) -> String {
    match upn.map(str::trim).filter(|u| !u.is_empty()) {
        Some(u) => u.split('@').next().unwrap_or(u).to_owned(),
        None => "-".to_owned(),
    }
}

fn short_severity(s: &str) -> String {
    match s.to_ascii_lowercase().as_str() {
        "informational" => "info".into(),
        "medium" => "med".into(),
        other => other.into(),
    }
}

/// `truePositive/malware`-like text of a classification and its detail.
fn class_text(c: Option<String>, detail: Option<String>) -> String {
    let abbreviate = |c: String| match c.as_str() {
        "truePositive" | "TruePositive" => "TP".to_owned(),
        "falsePositive" | "FalsePositive" => "FP".to_owned(),
        "BenignPositive" => "BP".to_owned(),
        "informationalExpectedActivity" => "info".to_owned(),
        _ => c,
    };
    match (c, detail) {
        (None, _) => "-".into(),
        (Some(c), Some(d)) if c == "unknown" && d == "unknown" => c,
        (Some(c), None) => abbreviate(c),
        (Some(c), Some(d)) => format!("{}/{d}", abbreviate(c)),
    }
}

const W: [usize; 6] = [10, 18, 10, 4, 21, 10];

fn head() -> String {
    line(
        [
            "incident",
            "name / comments",
            "status",
            "sev",
            "classification",
            "owner",
        ],
        "tags / labels",
    )
}

/// The distinguishing part of a generated name: "Multi-stage incident involving X on multiple
/// endpoints" reads as "multi: X".
fn short_name(name: &str) -> String {
    match name.strip_prefix("Multi-stage incident involving ") {
        Some(rest) => format!(
            "multi: {}",
            rest.strip_suffix(" on multiple endpoints").unwrap_or(rest)
        ),
        None => name.to_owned(),
    }
}

fn line(cols: [&str; 6], tags: &str) -> String {
    let mut s = String::from("  ");
    for (c, w) in cols.iter().zip(W) {
        s.push_str(&cell(c, w));
        s.push(' ');
    }
    let used = s.chars().count();
    s.push_str(&cell(tags, 100usize.saturating_sub(used)));
    s.trim_end().to_owned()
}

/// The Defender line of a pair.
fn defender_line(p: &Pair) -> String {
    let d = &p.defender;
    let key = format!("D{} #{}", p.tenant_no, d.id);
    let class = class_text(
        d.classification.as_ref().map(|c| c.to_string()),
        d.determination.as_ref().map(|x| x.to_string()),
    );
    let owner = short_owner(d.assigned_to.as_deref());
    let sev = short_severity(&d.severity.to_string());
    line(
        [
            &key,
            &short_name(&d.display_name),
            &d.status.to_string(),
            &sev,
            &class,
            &owner,
        ],
        &d.custom_tags.join(","),
    )
}

/// The Sentinel line of a pair (`not in Sentinel` when it has none yet).
fn sentinel_line(p: &Pair) -> String {
    let Some(s) = &p.sentinel else {
        return line(["  └ S -", "(not in Sentinel)", "", "", "", ""], "");
    };
    let key = format!("  └ S #{}", s.incident_number.unwrap_or_default());
    let comments = match p.sentinel_comments.len() {
        1 => "1 comment".to_owned(),
        n => format!("{n} comments"),
    };
    let class = class_text(
        s.classification.as_ref().map(|c| c.to_string()),
        s.classification_reason.as_ref().map(|r| r.to_string()),
    );
    let mut owner = short_owner(s.owner.upn_or_email());
    if s.owner.is_unassigned() && p.defender.assigned_to.is_some() {
        owner.push('*');
    }
    let labels: Vec<&str> = s.labels.iter().map(|l| l.name.as_str()).collect();
    let sev = short_severity(&s.severity.to_string());
    line(
        [&key, &comments, &s.status.to_string(), &sev, &class, &owner],
        &labels.join(","),
    )
}

/// The table of both sides; `-*` marks an owner unknown to the Sentinel directory.
pub fn table(title: &str, pairs: &[Pair]) -> String {
    let rule = "─".repeat(98);
    let mut out = format!(
        "┌{rule}┐\n│ {:<96} │\n└{rule}┘\n{}\n",
        cell(title, 96),
        head()
    );
    for p in pairs {
        out.push_str(&defender_line(p));
        out.push('\n');
        out.push_str(&sentinel_line(p));
        out.push('\n');
    }
    out.push_str("  D1/D2 = Defender XDR tenant 1/2, S = its Sentinel incident; multi = multi-stage incident;\n");
    out.push_str(
        "  -* = owner not in the Sentinel directory: unassigned there, named in the description.\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_cut_with_an_ellipsis_and_lines_fit_100_columns() {
        assert_eq!(cell("abc", 5), "abc  ");
        assert_eq!(cell("abcdefgh", 5), "abcd…");
        let l = line(
            [
                "D1 #1003",
                &"x".repeat(50),
                "resolved",
                "high",
                "TP/malware",
                "kai.carter",
            ],
            &"t,".repeat(60),
        );
        assert_eq!(l.chars().count(), 100);
        assert_eq!(
            class_text(
                Some("TruePositive".into()),
                Some("SuspiciousActivity".into())
            ),
            "TP/SuspiciousActivity"
        );
        assert_eq!(short_owner(Some("kai.carter@contoso.com")), "kai.carter");
    }
}
