//! The builtins, each declared once: its name, its parameters, and the IR op
//! or family it stands for. `check` types a call and `lower` builds its IR
//! from this one table, each with a single `match` over [`Builtin`] and no
//! `_` arm, so a new family does not compile until both have a rule.
//!
//! Elementwise builtins are not listed here: every [`UnaryOp`] whose IR row
//! says `builtin` is one, with the row's name, accepted dtypes and scalar
//! fold. Adding one is adding its IR row.

#![warn(clippy::wildcard_enum_match_arm)]

use crate::ir::{DType, UnaryOp};

/// A builtin, by the family of rules that types and lowers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    /// `exp(x)`, `erf(x)`, ...: one IR unary op, elementwise.
    Unary(UnaryOp),
    /// `sum`, `mean`, `max`, `min` over axes; `max(x, other)` and
    /// `min(x, other)` are elementwise instead.
    Reduce(Reduction),
    Argmax,
    Where,
    Reshape,
    Permute,
    Transpose,
    Unsqueeze,
    Squeeze,
    /// `concat` (`stack: false`) and `stack`.
    Join {
        stack: bool,
    },
    Pad,
    Take,
    OneHot,
    Arange,
    /// `rand_like` (uniform) and `randn_like` (normal).
    Random {
        normal: bool,
    },
    Patches,
    /// `conv(x, w, ..)`: the IR's convolution (`ir::ops::conv`).
    Conv,
    /// `window_max` and `window_mean`: a reduction over each spatial
    /// window of an NHWC image (pooling).
    Window {
        max: bool,
    },
    StopGradient,
    /// `f32(x)`, `i32(x)`, `bool(x)`.
    Cast(DType),
    Float,
    ShapeOf,
    Prod,
    /// Parameter initialisers.
    Init(InitKind),
    Training,
    /// Data sources in a dataset's `source`.
    Source(SourceKind),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reduction {
    Sum,
    Mean,
    Max,
    Min,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InitKind {
    Uniform,
    Normal,
    Constant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceKind {
    Idx,
    Csv,
    Text,
}

/// A parameter: its name and whether a call must give it.
pub type Param = (&'static str, bool);

const fn req(name: &'static str) -> Param {
    (name, true)
}

const fn opt(name: &'static str) -> Param {
    (name, false)
}

/// Every builtin that is not an IR unary op: name, builtin, parameters.
const NAMED: &[(&str, Builtin, &[Param])] = {
    use Builtin as B;
    &[
        ("max", B::Reduce(Reduction::Max), &[req("x"), opt("other"), opt("axis"), opt("keepdim")]),
        ("min", B::Reduce(Reduction::Min), &[req("x"), opt("other"), opt("axis"), opt("keepdim")]),
        ("sum", B::Reduce(Reduction::Sum), &[req("x"), opt("axis"), opt("keepdim")]),
        ("mean", B::Reduce(Reduction::Mean), &[req("x"), opt("axis"), opt("keepdim")]),
        ("argmax", B::Argmax, &[req("x"), opt("axis")]),
        ("where", B::Where, &[req("cond"), req("a"), req("b")]),
        ("reshape", B::Reshape, &[req("x"), req("shape")]),
        ("permute", B::Permute, &[req("x"), req("perm")]),
        ("transpose", B::Transpose, &[req("x"), opt("a"), opt("b")]),
        ("unsqueeze", B::Unsqueeze, &[req("x"), req("axis")]),
        ("squeeze", B::Squeeze, &[req("x"), req("axis")]),
        ("concat", B::Join { stack: false }, &[req("xs"), opt("axis")]),
        ("stack", B::Join { stack: true }, &[req("xs"), opt("axis")]),
        ("pad", B::Pad, &[req("x"), req("widths")]),
        ("take", B::Take, &[req("x"), req("ids"), opt("axis")]),
        ("one_hot", B::OneHot, &[req("ids"), req("n")]),
        ("arange", B::Arange, &[req("n")]),
        ("rand_like", B::Random { normal: false }, &[req("x")]),
        ("randn_like", B::Random { normal: true }, &[req("x")]),
        ("patches", B::Patches, &[req("x"), req("size"), opt("stride"), opt("padding")]),
        ("conv", B::Conv, &[req("x"), req("w"), opt("stride"), opt("padding"), opt("dilation"), opt("groups")]),
        ("window_max", B::Window { max: true }, &[req("x"), req("size"), opt("stride")]),
        ("window_mean", B::Window { max: false }, &[req("x"), req("size"), opt("stride")]),
        ("stop_gradient", B::StopGradient, &[req("x")]),
        ("f32", B::Cast(DType::F32), &[req("x")]),
        ("i32", B::Cast(DType::I32), &[req("x")]),
        ("bool", B::Cast(DType::Bool), &[req("x")]),
        ("float", B::Float, &[req("x")]),
        ("shape", B::ShapeOf, &[req("x")]),
        ("prod", B::Prod, &[req("dims")]),
        ("uniform", B::Init(InitKind::Uniform), &[req("lo"), req("hi")]),
        ("normal", B::Init(InitKind::Normal), &[opt("mean"), opt("std")]),
        ("constant", B::Init(InitKind::Constant), &[req("value")]),
        ("training", B::Training, &[]),
        ("idx", B::Source(SourceKind::Idx), &[req("dir")]),
        ("csv", B::Source(SourceKind::Csv), &[req("path"), opt("label"), opt("test_fraction"), opt("label_names")]),
        ("text", B::Source(SourceKind::Text), &[req("path"), req("context"), opt("test_fraction"), opt("stride")]),
    ]
};

const UNARY_PARAMS: &[Param] = &[req("x")];

impl Builtin {
    /// Every builtin: the IR's exposed unary ops, then the named ones.
    pub fn all() -> impl Iterator<Item = Builtin> {
        let unary = UnaryOp::ALL.iter().filter(|u| u.row().builtin).map(|u| Builtin::Unary(*u));
        unary.chain(NAMED.iter().map(|(_, b, _)| *b))
    }

    pub fn from_name(name: &str) -> Option<Builtin> {
        Builtin::all().find(|b| b.name() == name)
    }

    pub fn name(self) -> &'static str {
        if let Builtin::Unary(u) = self {
            return u.row().name;
        }
        // Every other builtin has its row (the round-trip test checks).
        NAMED.iter().find(|(_, n, _)| *n == self).map_or("?", |(name, _, _)| name)
    }

    /// The parameters, in order.
    pub fn params(self) -> &'static [Param] {
        if let Builtin::Unary(_) = self {
            return UNARY_PARAMS;
        }
        NAMED.iter().find(|(_, n, _)| *n == self).map_or(&[], |(_, _, p)| p)
    }
}

/// An axis `i` of a rank-`rank` value, counted from the end when negative.
pub fn normalize(i: i64, rank: usize) -> Option<usize> {
    let r = rank as i64;
    let k = if i < 0 { i + r } else { i };
    (0..r).contains(&k).then_some(k as usize)
}

/// The values a data source's option may take. The checker checks the
/// kind, lowering the range (it alone has the numbers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionDomain {
    Path,
    Str,
    PositiveInt,
    Fraction,
    Flag,
}

impl OptionDomain {
    /// The option named `name`; every source parameter has a row (tested).
    pub fn of(name: &str) -> Option<OptionDomain> {
        Some(match name {
            "dir" | "path" => OptionDomain::Path,
            "label" => OptionDomain::Str,
            "context" | "stride" => OptionDomain::PositiveInt,
            "label_names" => OptionDomain::Flag,
            "test_fraction" => OptionDomain::Fraction,
            _ => return None,
        })
    }

    /// What a value must be, for a type error.
    pub fn kind(self) -> &'static str {
        match self {
            OptionDomain::Path | OptionDomain::Str => "a string",
            OptionDomain::PositiveInt => "a constant int",
            OptionDomain::Fraction => "a float",
            OptionDomain::Flag => "`true` or `false`",
        }
    }

    /// What a value must be, for a range error; `None` when the kind says it all.
    pub fn range(self) -> Option<&'static str> {
        match self {
            OptionDomain::PositiveInt => Some("a positive int"),
            OptionDomain::Fraction => Some("a fraction in [0, 1)"),
            OptionDomain::Path | OptionDomain::Str | OptionDomain::Flag => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_and_round_trip() {
        let all: Vec<Builtin> = Builtin::all().collect();
        for b in &all {
            assert_eq!(Builtin::from_name(b.name()), Some(*b), "{b:?}");
            assert!(all.iter().filter(|c| c.name() == b.name()).count() == 1, "{} twice", b.name());
        }
        assert!(all.contains(&Builtin::Unary(UnaryOp::Erf)));
        assert!(!all.contains(&Builtin::Unary(UnaryOp::Neg)));
    }

    #[test]
    fn every_source_option_has_a_domain() {
        for b in Builtin::all().filter(|b| matches!(b, Builtin::Source(_))) {
            for (name, _) in b.params() {
                assert!(OptionDomain::of(name).is_some(), "`{name}` of `{}`", b.name());
            }
        }
    }
}
