//! A small TTL cache of UPN → directory user, positive and negative: one look-up per owner per
//! TTL instead of one per incident write.

use crate::domain::UserRef;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries above this count trigger a sweep of the expired ones (and a reset if still full).
const MAX_ENTRIES: usize = 10_000;

/// UPN (lower-cased) → user or "no such user", each with its expiry.
#[derive(Debug)]
pub(super) struct UserCache {
    positive_ttl: Duration,
    negative_ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Option<UserRef>)>>,
}

impl UserCache {
    pub(super) fn new(positive_ttl: Duration, negative_ttl: Duration) -> Self {
        Self {
            positive_ttl,
            negative_ttl,
            entries: Mutex::default(),
        }
    }

    /// `Some(answer)` on a fresh hit, `None` on a miss.
    pub(super) fn get(&self, upn: &str, now: Instant) -> Option<Option<UserRef>> {
        let entries = self.entries.lock().ok()?;
        entries
            .get(&upn.to_lowercase())
            .filter(|(exp, _)| *exp > now)
            .map(|(_, u)| u.clone())
    }

    pub(super) fn put(&self, upn: &str, user: Option<UserRef>, now: Instant) {
        let ttl = if user.is_some() {
            self.positive_ttl
        } else {
            self.negative_ttl
        };
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= MAX_ENTRIES {
                entries.retain(|_, (exp, _)| *exp > now);
                if entries.len() >= MAX_ENTRIES {
                    entries.clear();
                }
            }
            entries.insert(upn.to_lowercase(), (now + ttl, user));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positive_and_negative_answers_expire_with_their_own_ttl() {
        let c = UserCache::new(Duration::from_secs(100), Duration::from_secs(10));
        let t0 = Instant::now();
        let u = UserRef {
            object_id: uuid::Uuid::nil(),
            user_principal_name: "a@b".into(),
            mail: None,
            display_name: None,
        };
        c.put("A@b", Some(u.clone()), t0);
        c.put("ghost@b", None, t0);
        assert_eq!(
            c.get("a@B", t0 + Duration::from_secs(50)),
            Some(Some(u)),
            "case-insensitive hit"
        );
        assert_eq!(
            c.get("ghost@b", t0 + Duration::from_secs(5)),
            Some(None),
            "negative hit"
        );
        assert_eq!(
            c.get("ghost@b", t0 + Duration::from_secs(11)),
            None,
            "negative expired"
        );
        assert_eq!(
            c.get("a@b", t0 + Duration::from_secs(101)),
            None,
            "positive expired"
        );
        assert_eq!(c.get("other@b", t0), None);
    }
}
