//! Symbolic dimensions: integer polynomials over named symbols.
//!
//! `B`, `B * T`, `2 * d + 1` are all [`Dim`]s; equality is polynomial
//! equality after normalisation, so `[B * T, C]` reshapes to `[T * B, C]`.
//! A quotient that is not exact (`d / heads` with both symbolic) becomes an
//! opaque symbol of its own, the same symbol wherever the same quotient occurs.

use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sym(pub u32);

/// `sum of coefficient * product of symbols`; the empty product is the constant term.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dim {
    terms: BTreeMap<Vec<Sym>, i64>,
}

impl Dim {
    pub fn constant(c: i64) -> Dim {
        let mut terms = BTreeMap::new();
        if c != 0 {
            terms.insert(Vec::new(), c);
        }
        Dim { terms }
    }

    pub fn sym(s: Sym) -> Dim {
        Dim { terms: BTreeMap::from([(vec![s], 1)]) }
    }

    pub fn as_const(&self) -> Option<i64> {
        match self.terms.len() {
            0 => Some(0),
            1 => self.terms.get(&Vec::new()).copied(),
            _ => None,
        }
    }

    pub fn is_one(&self) -> bool {
        self.as_const() == Some(1)
    }

    pub fn add(&self, other: &Dim) -> Dim {
        let mut terms = self.terms.clone();
        for (m, c) in &other.terms {
            let e = terms.entry(m.clone()).or_insert(0);
            *e = e.saturating_add(*c);
            if *e == 0 {
                terms.remove(m);
            }
        }
        Dim { terms }
    }

    pub fn neg(&self) -> Dim {
        Dim { terms: self.terms.iter().map(|(m, c)| (m.clone(), c.saturating_neg())).collect() }
    }

    pub fn sub(&self, other: &Dim) -> Dim {
        self.add(&other.neg())
    }

    pub fn mul(&self, other: &Dim) -> Dim {
        let mut out = Dim::constant(0);
        for (ma, ca) in &self.terms {
            for (mb, cb) in &other.terms {
                let mut m: Vec<Sym> = ma.iter().chain(mb).copied().collect();
                m.sort_unstable();
                out = out.add(&Dim { terms: BTreeMap::from([(m, ca.saturating_mul(*cb))]) });
            }
        }
        out
    }

    /// Exact division by a constant or a single term, if every term divides.
    pub fn div_exact(&self, other: &Dim) -> Option<Dim> {
        if other.terms.len() != 1 {
            return None;
        }
        let (dm, dc) = other.terms.iter().next()?;
        let mut terms = BTreeMap::new();
        for (m, c) in &self.terms {
            if *dc == 0 || c % dc != 0 {
                return None;
            }
            let mut rest = m.clone();
            for s in dm {
                let pos = rest.iter().position(|x| x == s)?;
                rest.remove(pos);
            }
            terms.insert(rest, c / dc);
        }
        Some(Dim { terms })
    }

    pub fn syms(&self) -> impl Iterator<Item = Sym> + '_ {
        self.terms.keys().flatten().copied()
    }

    /// Replace symbols by dims (used to carry a callee's dims to the caller).
    pub fn subst(&self, f: &dyn Fn(Sym) -> Option<Dim>) -> Dim {
        let mut out = Dim::constant(0);
        for (m, c) in &self.terms {
            let mut term = Dim::constant(*c);
            for s in m {
                term = term.mul(&f(*s).unwrap_or_else(|| Dim::sym(*s)));
            }
            out = out.add(&term);
        }
        out
    }

    pub fn display(&self, names: &dyn Fn(Sym) -> String) -> String {
        if self.terms.is_empty() {
            return "0".into();
        }
        let mut out = String::new();
        // Highest-degree terms first reads naturally: `B*T + 1`.
        let mut terms: Vec<_> = self.terms.iter().collect();
        terms.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(b.0)));
        for (i, (m, c)) in terms.into_iter().enumerate() {
            let (sign, mag) = if *c < 0 { ("-", c.unsigned_abs()) } else { ("+", *c as u64) };
            if i > 0 {
                let _ = write!(out, " {sign} ");
            } else if sign == "-" {
                out.push('-');
            }
            let factors: Vec<String> = m.iter().map(|s| names(*s)).collect();
            match (mag, factors.is_empty()) {
                (_, true) => {
                    let _ = write!(out, "{mag}");
                }
                (1, false) => out.push_str(&factors.join("*")),
                _ => {
                    let _ = write!(out, "{mag}*{}", factors.join("*"));
                }
            }
        }
        out
    }
}

/// A rank-polymorphic prefix `...S`: stands for any number of dims.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rest(pub u32);

/// A symbolic shape: an optional leading `...` and then known-rank dims.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Shape {
    pub rest: Option<Rest>,
    pub dims: Vec<Dim>,
}

impl Shape {
    pub fn scalar() -> Shape {
        Shape { rest: None, dims: Vec::new() }
    }

    pub fn of(dims: Vec<Dim>) -> Shape {
        Shape { rest: None, dims }
    }

    pub fn is_scalar(&self) -> bool {
        self.rest.is_none() && self.dims.is_empty()
    }

    /// Rank when it is known.
    pub fn rank(&self) -> Option<usize> {
        self.rest.is_none().then_some(self.dims.len())
    }

    /// Numpy broadcasting, right-aligned. `Err` carries the offending pair.
    pub fn broadcast(&self, other: &Shape) -> Result<Shape, BroadcastError> {
        let (long, short) = if self.dims.len() >= other.dims.len() { (self, other) } else { (other, self) };
        let rest = match (self.rest, other.rest) {
            (Some(a), Some(b)) if a != b => return Err(BroadcastError::Rests),
            (Some(_), Some(_)) if self.dims.len() != other.dims.len() => return Err(BroadcastError::Rests),
            (a, b) => a.or(b),
        };
        // A `...` on the shorter side could stand for dims the longer side has.
        if short.rest.is_some() && short.dims.len() < long.dims.len() {
            return Err(BroadcastError::Rests);
        }
        let dims = crate::ir::dims::broadcast(&long.dims, &short.dims, Dim::is_one)
            .map_err(|(axis, a, b)| BroadcastError::Dims(axis, a, b))?;
        Ok(Shape { rest, dims })
    }
}

#[derive(Debug)]
pub enum BroadcastError {
    /// Axis (in the longer shape) and the two dims that differ.
    Dims(usize, Dim, Dim),
    /// Two different `...` prefixes, or a `...` that would have to stretch.
    Rests,
}
