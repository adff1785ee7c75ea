//! State shared by every simulated service. Plain mutexes, never held across an await.

use crate::arm::store::ArmStore;
use crate::config::{DirectoryGroup, DirectoryUser, GraphConfig, SimConfig, ThrottleConfig};
use crate::counters::Counters;
use crate::entra::keys::{BadToken, SigningKey, VerifiedTokens};
use crate::faults::Faults;
use crate::graph::store::GraphStore;
use crate::logs::store::LogsStore;
use crate::throttle::Buckets;
use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, OnceLock, RwLock};

pub use crate::locks::{lock, read, write};

/// Where each service listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Urls {
    /// `http://127.0.0.1:port` of the Graph simulator (set as `GRAPH_ENDPOINT`).
    pub graph: String,
    /// ARM origin (`ARM_ENDPOINT`).
    pub arm: String,
    /// Logs Ingestion origin (`LOGS_INGESTION_ENDPOINT`).
    pub logs: String,
    /// Managed-identity endpoint, full URL (`IDENTITY_ENDPOINT`).
    pub identity_endpoint: String,
    /// `https://127.0.0.1:port` (`AZURE_AUTHORITY_HOST`); its CA is [`crate::Simulators::cert_pem`].
    pub authority_host: String,
    /// Control API origin (analyst actions, state, faults) — no auth.
    pub control: String,
}

/// The simulated directory (one for all tenants: the same analysts everywhere).
#[derive(Debug, Default)]
pub struct Directory {
    users: Vec<DirectoryUser>,
    groups: Vec<DirectoryGroup>,
}

impl Directory {
    pub fn new(users: Vec<DirectoryUser>, groups: Vec<DirectoryGroup>) -> Self {
        Self { users, groups }
    }
    /// A group by object id, case-insensitively.
    pub fn group(&self, object_id: &str) -> Option<&DirectoryGroup> {
        self.groups
            .iter()
            .find(|g| g.object_id.eq_ignore_ascii_case(object_id))
    }
    /// By object id, UPN or mail, case-insensitively.
    pub fn find(&self, key: &str) -> Option<&DirectoryUser> {
        self.users.iter().find(|u| {
            u.object_id.eq_ignore_ascii_case(key)
                || u.user_principal_name.eq_ignore_ascii_case(key)
                || u.mail
                    .as_deref()
                    .is_some_and(|m| m.eq_ignore_ascii_case(key))
        })
    }
    pub fn add(&mut self, u: DirectoryUser) {
        self.users.retain(|x| x.object_id != u.object_id);
        self.users.push(u);
    }
}

/// Everything the services share.
pub struct Shared {
    pub cfg: SimConfig,
    pub graph_cfg: RwLock<GraphConfig>,
    pub throttle_cfg: RwLock<ThrottleConfig>,
    pub keys: RwLock<Vec<SigningKey>>,
    /// Tokens already verified (see [`crate::entra::keys::verify_cached`]).
    pub verified_tokens: Mutex<VerifiedTokens>,
    pub bad_tokens: Mutex<VecDeque<BadToken>>,
    pub graph: Mutex<GraphStore>,
    pub arm: Mutex<ArmStore>,
    pub logs: Mutex<LogsStore>,
    /// Unified-platform mode: alert rows waiting for the analytics rule.
    pub unified: Mutex<crate::unified::UnifiedStore>,
    pub directory: RwLock<Directory>,
    pub counters: Mutex<Counters>,
    pub faults: Mutex<Faults>,
    pub buckets: Mutex<HashMap<&'static str, Buckets>>,
    pub urls: OnceLock<Urls>,
}

impl Shared {
    /// The service URLs (set once the listeners are bound).
    pub fn urls(&self) -> Urls {
        self.urls.get().cloned().unwrap_or_else(|| Urls {
            graph: String::new(),
            arm: String::new(),
            logs: String::new(),
            identity_endpoint: String::new(),
            authority_host: String::new(),
            control: String::new(),
        })
    }
}
