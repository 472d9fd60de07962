//! Dense tensors as the reference interpreter and the constant folder see them.
//!
//! Floats are always held as `f64` here; the interpreter rounds every `f32`
//! node's result to f32 unless asked for f64 precision (see `interp`).

use ndarray::{ArrayD, IxDyn};

use super::error::IrError;
use super::types::{DType, Type};

/// Runs `$body` with `$a` bound to the array inside `$t`, whatever its type.
macro_rules! with_elem {
    ($t:expr, $a:ident => $body:expr) => {
        match $t {
            $crate::ir::tensor::Tensor::Float($a) => $body,
            $crate::ir::tensor::Tensor::Int($a) => $body,
            $crate::ir::tensor::Tensor::Bool($a) => $body,
            $crate::ir::tensor::Tensor::Byte($a) => $body,
        }
    };
}

/// Runs `$body` with the type alias `$T` set to the element type of `$dtype`.
macro_rules! with_dtype {
    ($dtype:expr, $T:ident => $body:expr) => {
        match $dtype {
            $crate::ir::types::DType::F32 => {
                type $T = f64;
                $body
            }
            $crate::ir::types::DType::I32 => {
                type $T = i32;
                $body
            }
            $crate::ir::types::DType::Bool => {
                type $T = bool;
                $body
            }
            $crate::ir::types::DType::U8 => {
                type $T = u8;
                $body
            }
        }
    };
}

pub(crate) use {with_dtype, with_elem};

/// One value per dtype; `Float` backs `DType::F32`.
#[derive(Clone, PartialEq, Debug)]
pub enum Tensor {
    Float(ArrayD<f64>),
    Int(ArrayD<i32>),
    Bool(ArrayD<bool>),
    Byte(ArrayD<u8>),
}

impl Tensor {
    pub fn dtype(&self) -> DType {
        match self {
            Tensor::Float(_) => DType::F32,
            Tensor::Int(_) => DType::I32,
            Tensor::Bool(_) => DType::Bool,
            Tensor::Byte(_) => DType::U8,
        }
    }

    pub fn shape(&self) -> &[usize] {
        match self {
            Tensor::Float(a) => a.shape(),
            Tensor::Int(a) => a.shape(),
            Tensor::Bool(a) => a.shape(),
            Tensor::Byte(a) => a.shape(),
        }
    }

    /// A tensor of type `ty` with every element `v` (rounded to the dtype).
    pub fn full(ty: &Type, v: f64) -> Tensor {
        with_dtype!(ty.dtype, T => T::wrap(ArrayD::from_elem(IxDyn(&ty.shape), T::from_f64(v))))
    }

    /// A tensor of type `ty` from row-major values; errors when the count is wrong.
    pub fn from_f64s(ty: &Type, values: &[f64]) -> Result<Tensor, IrError> {
        with_dtype!(ty.dtype, T => {
            let data = values.iter().map(|&v| T::from_f64(v)).collect();
            ArrayD::from_shape_vec(IxDyn(&ty.shape), data)
                .map(T::wrap)
                .map_err(|e| IrError::ty("literal", format!("{} values for {ty}: {e}", values.len())))
        })
    }

    /// Every element as `f64`, row-major (exact for all four dtypes).
    pub fn to_f64s(&self) -> Vec<f64> {
        with_elem!(self, a => a.iter().map(|&v| v.to_f64()).collect())
    }

    /// The float array, or an error naming `op` if this is not a float tensor.
    pub fn float(&self, op: &'static str) -> Result<&ArrayD<f64>, IrError> {
        if let Tensor::Float(a) = self {
            return Ok(a);
        }
        Err(IrError::ty(op, format!("expected f32 values, got {}", self.dtype())))
    }

    pub fn int(&self, op: &'static str) -> Result<&ArrayD<i32>, IrError> {
        if let Tensor::Int(a) = self {
            return Ok(a);
        }
        Err(IrError::ty(op, format!("expected i32 values, got {}", self.dtype())))
    }
}

/// Element types of [`Tensor`], so movement ops are written once, generically.
pub trait Elem: Copy + PartialEq + std::fmt::Debug + 'static {
    fn from_f64(v: f64) -> Self;
    fn to_f64(self) -> f64;
    fn wrap(a: ArrayD<Self>) -> Tensor;
    /// The array of this element type, if `t` holds one.
    fn unwrap(t: &Tensor) -> Option<&ArrayD<Self>>;
}

macro_rules! elem_impl {
    ($t:ty, $variant:ident, $from:expr, $to:expr) => {
        impl Elem for $t {
            fn from_f64(v: f64) -> Self {
                $from(v)
            }
            fn to_f64(self) -> f64 {
                $to(self)
            }
            fn wrap(a: ArrayD<Self>) -> Tensor {
                Tensor::$variant(a)
            }
            fn unwrap(t: &Tensor) -> Option<&ArrayD<Self>> {
                match t {
                    Tensor::$variant(a) => Some(a),
                    _ => None,
                }
            }
        }
    };
}

// Conversions follow Rust `as`, matching `DType::round`; floats stay f64 here
// because rounding to f32 is the interpreter's business (it depends on precision).
elem_impl!(f64, Float, |v: f64| v, |v: f64| v);
elem_impl!(i32, Int, |v: f64| v as i32, f64::from);
elem_impl!(bool, Bool, |v: f64| v != 0.0, |v: bool| f64::from(u8::from(v)));
elem_impl!(u8, Byte, |v: f64| v as u8, f64::from);

/// Gets every input as an array of the same element type as the first, or errors.
pub fn same_elems<'a, T: Elem>(op: &'static str, ins: &[&'a Tensor]) -> Result<Vec<&'a ArrayD<T>>, IrError> {
    ins.iter()
        .map(|t| T::unwrap(t).ok_or_else(|| IrError::ty(op, format!("mixed input dtypes ({})", t.dtype()))))
        .collect()
}

/// `a`'s elements, row-major, in a new array of `shape`.
pub fn reshaped<T: Clone>(a: &ArrayD<T>, shape: &[usize]) -> Result<ArrayD<T>, IrError> {
    ArrayD::from_shape_vec(IxDyn(shape), a.iter().cloned().collect())
        .map_err(|e| IrError::ty("reshape", format!("{:?} to {:?}: {e}", a.shape(), shape)))
}
