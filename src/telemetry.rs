//! Logging setup: tracing to stdout (the host records stderr as errors).
