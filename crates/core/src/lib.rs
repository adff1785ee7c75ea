//! The inner layers of defender-sentinel-sync, in a crate of their own so that test doubles
//! (`dss-test-support`) can implement the ports and be shared by the root crate's unit and
//! integration tests with one copy of every type:
//!
//! - [`domain`]: the incident model of both sides and the sync's records; knows no API.
//! - [`ports`]: what the engine needs from each upstream (traits, their values, their errors).
//! - [`state`]: the state port ([`state::StateStore`]) and its in-memory store.

pub mod domain;
pub mod ports;
pub mod state;
