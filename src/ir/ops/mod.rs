//! Per-op rules, one file per op family. Each op's payload type implements
//! [`OpRule`](super::op::OpRule) next to its siblings: type inference, the
//! reference evaluation, the VJP, insert-time simplification, lowering class.

/// An op-kind enum and `ALL`, the list of its variants: per-op tests walk
/// `ALL`, so a new variant is tested without anyone listing it again.
macro_rules! closed_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($v:ident),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum $name { $($v),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),*];
        }
    };
}

pub mod contract;
pub mod elementwise;
pub mod gather;
pub mod movement;
pub mod reduce;
pub mod source;
