//! Token buckets keyed by (limit, caller), the model Graph and ARM document for their limits.

use crate::config::BucketSpec;
use std::collections::HashMap;
use std::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Outcome of taking one token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Take {
    /// Allowed; tokens left after this request.
    Ok { remaining: u64 },
    /// Refused; seconds until a token is back.
    Throttled { retry_after: f64 },
}

/// All buckets of one limit, one per caller key.
#[derive(Debug, Default)]
pub struct Buckets {
    buckets: HashMap<String, Bucket>,
}

impl Buckets {
    /// Takes one token for `key` under `spec` at `now`.
    pub fn take(&mut self, key: &str, spec: BucketSpec, now: Instant) -> Take {
        let b = self.buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: spec.capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * spec.refill_per_sec).min(spec.capacity);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Take::Ok {
                remaining: b.tokens.floor() as u64,
            }
        } else if spec.refill_per_sec <= 0.0 {
            Take::Throttled { retry_after: 60.0 }
        } else {
            Take::Throttled {
                retry_after: (1.0 - b.tokens) / spec.refill_per_sec,
            }
        }
    }

    /// Forgets every bucket (full again).
    pub fn reset(&mut self) {
        self.buckets.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn burst_then_refill() {
        let spec = BucketSpec {
            capacity: 2.0,
            refill_per_sec: 1.0,
        };
        let mut b = Buckets::default();
        let t0 = Instant::now();
        assert_eq!(b.take("k", spec, t0), Take::Ok { remaining: 1 });
        assert_eq!(b.take("k", spec, t0), Take::Ok { remaining: 0 });
        let Take::Throttled { retry_after } = b.take("k", spec, t0) else {
            panic!("not throttled")
        };
        assert!((retry_after - 1.0).abs() < 1e-6);
        assert!(matches!(b.take("other", spec, t0), Take::Ok { .. }));
        assert!(matches!(
            b.take("k", spec, t0 + Duration::from_millis(1000)),
            Take::Ok { .. }
        ));
    }
}
