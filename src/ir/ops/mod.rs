//! Per-op rules, one file per op family. Each op's payload type implements
//! [`OpRule`](super::op::OpRule) next to its siblings: type inference, the
//! reference evaluation, the VJP, insert-time simplification, lowering class.

pub mod contract;
pub mod conv;
pub mod elementwise;
pub mod gather;
pub mod movement;
pub mod reduce;
pub mod source;
