//! The sync engine: pure merge and planning steps, and the shell that executes them through
//! the ports, advancing checkpoints only after delivery.

pub mod mapping;
pub mod merge;
pub mod plan;

#[cfg(test)]
pub(crate) mod testing;
