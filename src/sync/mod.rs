//! The sync engine: pure merge and planning steps, and the shell that executes them through
//! the ports, advancing checkpoints only after delivery.
//!
//! Public surface: [`ForwardSync`] (one forward cycle per tenant), [`CycleReport`], the pure
//! [`merge::merge`] and [`plan`] functions, and the [`mapping`] tables.

// The pure core: decisions without I/O.
mod fingerprint;
pub mod mapping;
pub mod merge;
pub mod plan;
mod snapshot;

// The engine: the owners of a tenant's cycle, from the leaves up.
mod comments;
mod commit;
mod cycle;
pub mod defender_delta;
mod forward;
mod horizon;
mod incident;
mod pull;
mod report;
mod retry_set;
pub mod reverse;
pub mod reverse_poll;

pub use cycle::{PageProgress, ProgressFn};
pub use fingerprint::{
    COMMENT_CAP, COMMENT_MAX_CHARS, DEFENDER_MARKER, SENTINEL_MARKER, alert_fingerprint,
    comment_fingerprint, comment_messages, is_mirrored,
};
pub use forward::{ForwardOptions, ForwardSync, ThrottleProbe};
pub use merge::{MergeBase, MergeOutcome, MergePolicy};
pub use report::{CycleReport, TenantReport};
pub use reverse::{Applied, ReverseApply, ReverseError, ReverseOutcome, Unmanaged};
pub use reverse_poll::{PollProgress, PollProgressFn, ReverseOptions, ReverseReport};

#[cfg(test)]
mod forward_tests;
