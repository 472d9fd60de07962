//! The runner: data, the step loop, metrics, checkpoints.

pub mod data;
