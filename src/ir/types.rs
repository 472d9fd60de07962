//! Ids, dtypes, shapes and the bit-exact float wrapper used inside ops.

use std::fmt;
use std::hash::{Hash, Hasher};

/// A node of a [`Graph`](super::Graph): an index into its arena. Prints as `%7`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct NodeId(pub u32);

impl NodeId {
    /// The arena index.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "%{}", self.0)
    }
}

/// Element types. `F32` is the only differentiable one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub enum DType {
    F32,
    I32,
    Bool,
    U8,
}

impl DType {
    pub fn is_float(self) -> bool {
        self == DType::F32
    }

    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::I32 => "i32",
            DType::Bool => "bool",
            DType::U8 => "u8",
        }
    }

    pub fn from_name(name: &str) -> Option<DType> {
        [DType::F32, DType::I32, DType::Bool, DType::U8].into_iter().find(|d| d.name() == name)
    }

    /// Rounds `v` to the nearest value of this dtype, with Rust `as` semantics
    /// (saturating float-to-int, NaN to 0; bool is `v != 0`). Constants are stored
    /// rounded, so folding them gives exactly what an f32 kernel computes.
    pub fn round(self, v: f64) -> f64 {
        match self {
            DType::F32 => v as f32 as f64,
            DType::I32 => v as i32 as f64,
            DType::Bool => f64::from(u8::from(v != 0.0)),
            DType::U8 => v as u8 as f64,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A concrete shape, outermost dimension first. `[]` is a scalar.
pub type Shape = Vec<usize>;

/// The type of a node: dtype and concrete shape.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Type {
    pub dtype: DType,
    pub shape: Shape,
}

impl Type {
    pub fn new(dtype: DType, shape: impl Into<Shape>) -> Type {
        Type { dtype, shape: shape.into() }
    }

    pub fn scalar(dtype: DType) -> Type {
        Type { dtype, shape: Vec::new() }
    }

    pub fn f32(shape: impl Into<Shape>) -> Type {
        Type::new(DType::F32, shape)
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn with_dtype(&self, dtype: DType) -> Type {
        Type { dtype, shape: self.shape.clone() }
    }

    pub fn with_shape(&self, shape: impl Into<Shape>) -> Type {
        Type { dtype: self.dtype, shape: shape.into() }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.dtype, ShapeDisplay(&self.shape))
    }
}

/// Prints a shape as `[3,4]`.
pub struct ShapeDisplay<'a>(pub &'a [usize]);

impl fmt::Display for ShapeDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{d}")?;
        }
        f.write_str("]")
    }
}

/// An `f64` compared and hashed by its bits, so ops holding floats can be
/// hash-consed (`0.0` and `-0.0` stay distinct; a NaN equals itself).
#[derive(Clone, Copy, Debug)]
pub struct Scalar(pub f64);

impl PartialEq for Scalar {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_bits() == other.0.to_bits()
    }
}

impl Eq for Scalar {}

impl Hash for Scalar {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.to_bits().hash(state);
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `{:?}` is the shortest text that round-trips, so snapshots are stable.
        write!(f, "{:?}", self.0)
    }
}
