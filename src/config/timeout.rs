//! The host's `functionTimeout` and the deadline derived from it. When it expires the host
//! kills the whole handler process (failing every invocation in flight), so work must stop on
//! its own, with a margin, before that.

use std::time::Duration;

/// The standard app-setting override of `host.json`'s `functionTimeout`.
pub const OVERRIDE_SETTING: &str = "AzureFunctionsJobHost__functionTimeout";

/// The Consumption plan's default, used when neither host.json nor the override sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// What `-1` (unbounded, Premium/Dedicated/Flex) becomes: a day is far beyond any sync cycle.
const UNBOUNDED: Duration = Duration::from_secs(24 * 3600);

/// The upper bound of the safety margin.
const MAX_MARGIN: Duration = Duration::from_secs(60);

/// Resolves `functionTimeout`: the override setting wins, then `host.json`, then 5 minutes.
pub fn function_timeout(
    override_value: Option<&str>,
    host_json: Option<&str>,
) -> Result<Duration, String> {
    if let Some(v) = override_value.map(str::trim).filter(|v| !v.is_empty()) {
        return parse_function_timeout(v)
            .ok_or_else(|| format!("'{v}' is not a TimeSpan such as 00:10:00 (or -1)"));
    }
    let Some(text) = host_json else {
        return Ok(DEFAULT_TIMEOUT);
    };
    let json: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("host.json does not parse: {e}"))?;
    let found = json.as_object().and_then(|o| {
        o.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("functionTimeout"))
            .map(|(_, v)| v)
    });
    match found {
        None | Some(serde_json::Value::Null) => Ok(DEFAULT_TIMEOUT),
        Some(serde_json::Value::String(s)) => parse_function_timeout(s).ok_or_else(|| {
            format!("host.json functionTimeout '{s}' is not a TimeSpan such as 00:10:00")
        }),
        Some(other) => Err(format!(
            "host.json functionTimeout {other} is not a TimeSpan string"
        )),
    }
}

fn parse_function_timeout(v: &str) -> Option<Duration> {
    if v == "-1" {
        Some(UNBOUNDED)
    } else {
        parse_timespan(v).filter(|d| !d.is_zero())
    }
}

/// Parses a .NET TimeSpan in the forms host.json uses: `hh:mm:ss`, `hh:mm:ss.fff` and
/// `d.hh:mm:ss`.
pub fn parse_timespan(v: &str) -> Option<Duration> {
    let (days, rest) = match v.split_once('.') {
        Some((d, rest)) if rest.contains(':') && !d.contains(':') => (d.parse::<u64>().ok()?, rest),
        _ => (0, v),
    };
    let mut parts = rest.split(':');
    let (h, m, s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let (h, m): (u64, u64) = (h.parse().ok()?, m.parse().ok()?);
    let s: f64 = s.parse().ok().filter(|s: &f64| (0.0..60.0).contains(s))?;
    if h >= 24 && days > 0 || m >= 60 {
        return None;
    }
    // Checked: a day count near u64::MAX overflowed here (a panic in debug builds, a wrong
    // timeout in release); found while writing the settings fuzz target.
    let secs = days
        .checked_mul(24)?
        .checked_add(h)?
        .checked_mul(3600)?
        .checked_add(m * 60)?;
    Duration::from_secs(secs).checked_add(Duration::from_secs_f64(s))
}

/// How long before the host's timeout work must have stopped: a fifth of it, at most a minute.
pub fn margin(function_timeout: Duration) -> Duration {
    (function_timeout / 5).min(MAX_MARGIN)
}

/// The instant by which an invocation started at `start` must have finished its work.
/// A timeout too long for an `Instant` (a TimeSpan of billions of hours) counts as unbounded.
pub fn deadline(start: tokio::time::Instant, function_timeout: Duration) -> tokio::time::Instant {
    let work = function_timeout - margin(function_timeout);
    start
        .checked_add(work)
        .unwrap_or_else(|| start + UNBOUNDED - margin(UNBOUNDED))
}

/// Azure's load balancer drops an HTTP call after 230 s whatever `functionTimeout` says.
const HTTP_RESPONSE_LIMIT: Duration = Duration::from_secs(230);

/// The deadline of an HTTP-triggered invocation: the earlier of [`deadline`] and the load
/// balancer's limit, with the same margin rule.
pub fn http_deadline(
    start: tokio::time::Instant,
    function_timeout: Duration,
) -> tokio::time::Instant {
    deadline(start, function_timeout.min(HTTP_RESPONSE_LIMIT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespans_in_host_json_forms_parse() {
        assert_eq!(parse_timespan("00:10:00"), Some(Duration::from_secs(600)));
        assert_eq!(
            parse_timespan("00:00:02.5"),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(
            parse_timespan("1.02:00:00"),
            Some(Duration::from_secs(26 * 3600))
        );
        assert_eq!(parse_timespan("10 minutes"), None);
        // Found while writing the settings fuzz target: these overflowed.
        assert_eq!(parse_timespan("999999999999999999.01:00:00"), None);
        assert_eq!(parse_timespan("213503982334601.23:59:59.9999"), None);
        let huge = parse_timespan("5124095576030431:00:00").unwrap();
        let start = tokio::time::Instant::now();
        assert!(deadline(start, huge) > start + Duration::from_secs(3600));
        assert_eq!(parse_timespan("00:61:00"), None);
    }

    #[test]
    fn the_override_wins_over_host_json_and_five_minutes_is_the_default() {
        let host = r#"{"version":"2.0","functionTimeout":"00:10:00"}"#;
        assert_eq!(
            function_timeout(None, Some(host)),
            Ok(Duration::from_secs(600))
        );
        assert_eq!(
            function_timeout(Some("00:00:03"), Some(host)),
            Ok(Duration::from_secs(3))
        );
        assert_eq!(function_timeout(Some(""), None), Ok(DEFAULT_TIMEOUT));
        assert_eq!(
            function_timeout(None, Some(r#"{"version":"2.0"}"#)),
            Ok(DEFAULT_TIMEOUT)
        );
        assert_eq!(function_timeout(Some("-1"), None), Ok(UNBOUNDED));
        assert!(function_timeout(Some("soon"), None).is_err());
        assert!(function_timeout(None, Some(r#"{"functionTimeout":"x"}"#)).is_err());
    }

    #[test]
    fn the_deadline_keeps_a_margin_of_a_fifth_capped_at_a_minute() {
        assert_eq!(margin(Duration::from_secs(600)), Duration::from_secs(60));
        assert_eq!(margin(Duration::from_secs(10)), Duration::from_secs(2));
        let start = tokio::time::Instant::now();
        assert_eq!(
            deadline(start, Duration::from_secs(300)),
            start + Duration::from_secs(240)
        );
        assert_eq!(
            http_deadline(start, Duration::from_secs(600)),
            start + Duration::from_secs(184)
        );
        assert_eq!(
            http_deadline(start, Duration::from_secs(10)),
            start + Duration::from_secs(8)
        );
    }
}
