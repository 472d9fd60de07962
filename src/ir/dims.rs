//! Shape rules written once for two kinds of dims: concrete sizes here and
//! in lowering, symbolic dims (`B`, `d / heads`) in the checker. A rule is a
//! function generic over [`Extents`], so what `nnc check` proves of a shape
//! is what the graph is built with; there is no second copy to drift.

/// Integer arithmetic on dims.
pub trait Extents {
    type Dim: Clone;
    fn lit(&self, v: i64) -> Self::Dim;
    /// The value, when it is known.
    fn known(&self, d: &Self::Dim) -> Option<i64>;
    fn add(&mut self, a: &Self::Dim, b: &Self::Dim) -> Self::Dim;
    fn mul(&mut self, a: &Self::Dim, b: &Self::Dim) -> Self::Dim;
    /// `floor(a / by)` for a positive constant `by`.
    fn floor_div(&mut self, a: &Self::Dim, by: i64) -> Result<Self::Dim, String>;
    /// `a / b` when it is whole; an error when it is provably not.
    fn div_exact(&mut self, a: &Self::Dim, b: &Self::Dim) -> Result<Self::Dim, String>;
    /// Whether `a` and `b` are provably equal.
    fn same(&self, a: &Self::Dim, b: &Self::Dim) -> bool;
    /// Whether `a` and `b` are provably different (symbolic dims can be
    /// neither provably equal nor provably different).
    fn differ(&self, a: &Self::Dim, b: &Self::Dim) -> bool;
    fn show(&self, d: &Self::Dim) -> String;
}

/// Concrete sizes.
pub struct Sizes;

impl Extents for Sizes {
    type Dim = i64;
    fn lit(&self, v: i64) -> i64 {
        v
    }
    fn known(&self, d: &i64) -> Option<i64> {
        Some(*d)
    }
    fn add(&mut self, a: &i64, b: &i64) -> i64 {
        a.saturating_add(*b)
    }
    fn mul(&mut self, a: &i64, b: &i64) -> i64 {
        a.saturating_mul(*b)
    }
    fn floor_div(&mut self, a: &i64, by: i64) -> Result<i64, String> {
        Ok(a.div_euclid(by))
    }
    fn div_exact(&mut self, a: &i64, b: &i64) -> Result<i64, String> {
        match (a.checked_rem(*b), a.checked_div(*b)) {
            (Some(0), Some(q)) => Ok(q),
            _ if *b == 0 => Err("division by zero in a dim".into()),
            _ => Err(format!("{a} is not divisible by {b}")),
        }
    }
    fn same(&self, a: &i64, b: &i64) -> bool {
        a == b
    }
    fn differ(&self, a: &i64, b: &i64) -> bool {
        a != b
    }
    fn show(&self, d: &i64) -> String {
        d.to_string()
    }
}

/// Numpy broadcasting, aligned from the right: paired dims are equal or one
/// of them is 1. `Err((axis, x, y))` gives the first clash, `axis` counted
/// in the longer shape, `x` from `a` and `y` from `b`.
pub fn broadcast<D: Clone + PartialEq>(a: &[D], b: &[D], is_one: impl Fn(&D) -> bool) -> Result<Vec<D>, (usize, D, D)> {
    let n = a.len().max(b.len());
    let (oa, ob) = (n - a.len(), n - b.len());
    (0..n)
        .map(|i| match (i.checked_sub(oa).map(|j| &a[j]), i.checked_sub(ob).map(|j| &b[j])) {
            (Some(x), None) => Ok(x.clone()),
            (None, Some(y)) => Ok(y.clone()),
            (Some(x), Some(y)) if x == y || is_one(y) => Ok(x.clone()),
            (Some(x), Some(y)) if is_one(x) => Ok(y.clone()),
            (Some(x), Some(y)) => Err((i, x.clone(), y.clone())),
            (None, None) => unreachable!("axis {i} is below the rank of one of the shapes"),
        })
        .collect()
}

/// One entry of a reshape's target: a dim, or `-1` for the one dim inferred
/// from the element count.
#[derive(Clone, Debug)]
pub enum Target<D> {
    Dim(D),
    Infer,
}

/// `[B, -1, 64]`.
pub fn show_target<D>(target: &[Target<D>], show: impl Fn(&D) -> String) -> String {
    let dims: Vec<String> = target
        .iter()
        .map(|t| match t {
            Target::Dim(d) => show(d),
            Target::Infer => "-1".into(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

#[derive(Debug)]
pub enum ReshapeError<D> {
    /// More than one `-1`.
    Holes,
    /// A dim below zero other than `-1`.
    Negative(D),
    /// The inferred dim is not whole (the message says why).
    Quotient(String),
    /// The target holds `product` elements, the input `total`.
    Count { total: D, product: D },
}

/// `x.reshape(target)`: the target's dims with a `-1` replaced by the
/// quotient of the element counts, which must then agree.
pub fn reshape<E: Extents>(
    e: &mut E,
    input: &[E::Dim],
    target: &[Target<E::Dim>],
) -> Result<Vec<E::Dim>, ReshapeError<E::Dim>> {
    let product = |e: &mut E, dims: &mut dyn Iterator<Item = &E::Dim>| dims.fold(e.lit(1), |acc, d| e.mul(&acc, d));
    let total = product(e, &mut input.iter());
    let fixed: Vec<&E::Dim> =
        target.iter().filter_map(|t| if let Target::Dim(d) = t { Some(d) } else { None }).collect();
    let holes = target.len() - fixed.len();
    if holes > 1 {
        return Err(ReshapeError::Holes);
    }
    if let Some(d) = fixed.iter().find(|d| e.known(d).is_some_and(|v| v < 0)) {
        return Err(ReshapeError::Negative((*d).clone()));
    }
    let known = product(e, &mut fixed.into_iter());
    let hole = if holes == 1 { Some(e.div_exact(&total, &known).map_err(ReshapeError::Quotient)?) } else { None };
    let dims: Vec<E::Dim> = target
        .iter()
        .map(|t| match t {
            Target::Dim(d) => d.clone(),
            Target::Infer => hole.clone().unwrap_or_else(|| e.lit(1)),
        })
        .collect();
    let out = product(e, &mut dims.iter());
    if e.differ(&out, &total) {
        return Err(ReshapeError::Count { total, product: out });
    }
    Ok(dims)
}

/// Where `x[start:end:step]` begins along a dim of `size`, and how many
/// elements it takes.
#[derive(Clone, Debug, PartialEq)]
pub struct SliceRange<D> {
    pub start: D,
    pub len: D,
}

/// `start:end:step` along a dim of `size`: a negative bound counts from the
/// end, a missing one is the dim's start or end. The bounds are not clamped
/// (numpy would): a slice that runs off the dim is an error, so that the
/// length the checker proves is the length the graph gets.
pub fn slice<E: Extents>(
    e: &mut E,
    size: &E::Dim,
    start: Option<E::Dim>,
    end: Option<E::Dim>,
    step: i64,
) -> Result<SliceRange<E::Dim>, String> {
    if step < 1 {
        return Err("a slice step must be a positive constant".into());
    }
    let bound = |e: &mut E, b: Option<E::Dim>, default: E::Dim| match b {
        Some(d) if e.known(&d).is_some_and(|k| k < 0) => e.add(size, &d),
        Some(d) => d,
        None => default,
    };
    let zero = e.lit(0);
    let lo = bound(e, start, zero);
    let hi = bound(e, end, size.clone());
    let minus_lo = e.mul(&lo, &e.lit(-1));
    let len = e.add(&hi, &minus_lo);
    let minus_hi = e.mul(&hi, &e.lit(-1));
    let past_end = e.add(size, &minus_hi);
    let bad = e.known(&len).is_some_and(|l| l <= 0)
        || e.known(&lo).is_some_and(|l| l < 0)
        || e.known(&past_end).is_some_and(|p| p < 0);
    if bad {
        return Err(format!("this slice is empty or out of range for a dim of size {}", e.show(size)));
    }
    let len = match step {
        1 => len,
        k => {
            let up = e.add(&len, &e.lit(k - 1));
            e.floor_div(&up, k)?
        }
    };
    Ok(SliceRange { start: lo, len })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(dims: &[i64]) -> Vec<Target<i64>> {
        dims.iter().map(|&d| if d == -1 { Target::Infer } else { Target::Dim(d) }).collect()
    }

    #[test]
    fn reshape_infers_one_dim() {
        assert_eq!(reshape(&mut Sizes, &[2, 3, 4], &target(&[-1, 4])).unwrap(), vec![6, 4]);
        assert_eq!(reshape(&mut Sizes, &[2, 3, 4], &target(&[24])).unwrap(), vec![24]);
        assert_eq!(reshape(&mut Sizes, &[0, 3], &target(&[-1, 3])).unwrap(), vec![0, 3]);
    }

    #[test]
    fn reshape_rejects_what_does_not_fit() {
        let r = |input: &[i64], t: &[i64]| reshape(&mut Sizes, input, &target(t));
        assert!(matches!(r(&[2, 3], &[-1, -1]), Err(ReshapeError::Holes)));
        assert!(matches!(r(&[2, 3], &[-2, -3]), Err(ReshapeError::Negative(-2))));
        assert!(matches!(r(&[2, 3], &[-1, 4]), Err(ReshapeError::Quotient(m)) if m == "6 is not divisible by 4"));
        assert!(matches!(r(&[2, 3], &[-1, 0]), Err(ReshapeError::Quotient(_))));
        assert!(matches!(r(&[2, 3], &[5]), Err(ReshapeError::Count { total: 6, product: 5 })));
        assert!(matches!(r(&[2, 3], &[i64::MAX, 2]), Err(ReshapeError::Count { .. })));
    }

    #[test]
    fn slices_count_from_the_end_and_never_clamp() {
        let s = |n: i64, a: Option<i64>, b: Option<i64>, k: i64| slice(&mut Sizes, &n, a, b, k);
        assert_eq!(s(10, None, None, 1), Ok(SliceRange { start: 0, len: 10 }));
        assert_eq!(s(10, Some(-3), None, 1), Ok(SliceRange { start: 7, len: 3 }));
        assert_eq!(s(10, Some(1), Some(-1), 3), Ok(SliceRange { start: 1, len: 3 }));
        assert_eq!(s(10, None, None, 4), Ok(SliceRange { start: 0, len: 3 }));
        for (a, b, k) in [(None, Some(11), 1), (Some(-11), None, 1), (Some(5), Some(5), 1), (Some(6), Some(2), 1)] {
            assert!(s(10, a, b, k).is_err(), "{a:?}:{b:?}:{k}");
        }
        assert!(s(10, None, None, 0).is_err());
    }

    #[test]
    fn broadcast_aligns_from_the_right() {
        let b = |x: &[i64], y: &[i64]| broadcast(x, y, |d| *d == 1);
        assert_eq!(b(&[4, 1, 3], &[5, 1]).unwrap(), vec![4, 5, 3]);
        assert_eq!(b(&[], &[2, 3]).unwrap(), vec![2, 3]);
        assert_eq!(b(&[2, 3], &[4, 3]), Err((0, 2, 4)));
        assert_eq!(b(&[7, 2, 3], &[4, 3]), Err((1, 2, 4)));
    }
}
