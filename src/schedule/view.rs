//! Strided views: how a kernel reads a tensor without copying it.
//!
//! A [`View`] maps a multi-index in its `shape` to an element offset
//! `offset + Σ i_d * strides_d`. Movement ops become transforms ([`Tf`]) of
//! views: broadcast sets strides to 0, permute reorders them, slice moves the
//! offset and scales strides, and reshape regroups them when the grouped
//! dims are contiguous relative to each other (numpy's no-copy reshape). The
//! same map also describes affine *values* (iota) and the flat index a
//! `random` element hashes, so one mechanism serves all three.

use crate::ir::{NodeId, Shape};

/// A strided map from a multi-index in `shape` to an element offset.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct View {
    pub shape: Shape,
    pub strides: Vec<i64>,
    pub offset: i64,
}

/// One movement step, applied to a view of the op's input to give a view of
/// its output.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Tf {
    /// Reshape to this shape; `input` is the node reshaped (materialising it
    /// always makes the reshape expressible).
    Reshape { shape: Shape, input: NodeId },
    /// Output dim `i` is input dim `perm[i]`.
    Permute(Vec<usize>),
    /// Numpy broadcast to this shape (trailing alignment).
    Broadcast(Shape),
    /// Output index `i` reads input index `start + step * i`.
    Slice { start: Vec<usize>, step: Vec<usize>, shape: Shape },
    /// Input dim `k` becomes output dim `dims[k]` of `shape`; the other
    /// output dims do not move the offset (stride 0).
    Embed { shape: Shape, dims: Vec<usize> },
}

impl View {
    /// The row-major layout of `shape`.
    pub fn contiguous(shape: &[usize]) -> View {
        let mut strides = vec![0i64; shape.len()];
        let mut s = 1i64;
        for d in (0..shape.len()).rev() {
            strides[d] = s;
            s *= shape[d] as i64;
        }
        View { shape: shape.to_vec(), strides, offset: 0 }
    }

    /// The affine map `i -> i[axis]` over `shape` (iota's values).
    pub fn axis_index(shape: &[usize], axis: usize) -> View {
        let mut strides = vec![0i64; shape.len()];
        strides[axis] = 1;
        View { shape: shape.to_vec(), strides, offset: 0 }
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// The innermost stride (0 for a scalar view).
    pub fn inner_stride(&self) -> i64 {
        self.strides.last().copied().unwrap_or(0)
    }

    /// Whether this is exactly the row-major layout of its shape.
    pub fn is_contiguous(&self) -> bool {
        let c = View::contiguous(&self.shape);
        self.offset == 0
            && self.shape.iter().zip(self.strides.iter().zip(&c.strides)).all(|(&n, (a, b))| n == 1 || a == b)
    }

    /// Applies `tfs`, given top (kernel side) first, from the bottom up.
    /// `Err(node)`: the reshape of `node` is not expressible on this view.
    pub fn apply_all(mut self, tfs: &[Tf]) -> Result<View, NodeId> {
        for tf in tfs.iter().rev() {
            self = self.apply(tf)?;
        }
        Ok(self)
    }

    fn apply(self, tf: &Tf) -> Result<View, NodeId> {
        Ok(match tf {
            Tf::Reshape { shape, input } => self.reshape(shape).ok_or(*input)?,
            Tf::Permute(perm) => View {
                shape: perm.iter().map(|&p| self.shape[p]).collect(),
                strides: perm.iter().map(|&p| self.strides[p]).collect(),
                offset: self.offset,
            },
            Tf::Broadcast(shape) => {
                let off = shape.len() - self.shape.len();
                let strides =
                    (0..shape.len())
                        .map(|j| {
                            if j < off || (self.shape[j - off] == 1 && shape[j] != 1) {
                                0
                            } else {
                                self.strides[j - off]
                            }
                        })
                        .collect();
                View { shape: shape.clone(), strides, offset: self.offset }
            }
            Tf::Slice { start, step, shape } => {
                let moved: i64 = start.iter().zip(&self.strides).map(|(&s, &st)| s as i64 * st).sum();
                View {
                    shape: shape.clone(),
                    strides: self.strides.iter().zip(step).map(|(&st, &k)| st * k as i64).collect(),
                    offset: self.offset + moved,
                }
            }
            Tf::Embed { shape, dims } => {
                let mut strides = vec![0i64; shape.len()];
                for (k, &d) in dims.iter().enumerate() {
                    strides[d] = self.strides[k];
                }
                View { shape: shape.clone(), strides, offset: self.offset }
            }
        })
    }

    /// The same elements seen with `shape`, if expressible without a copy:
    /// dims are matched in groups of equal product, and each old group must
    /// be contiguous relative to itself.
    pub fn reshape(&self, shape: &[usize]) -> Option<View> {
        if self.numel() == 0 || shape.iter().product::<usize>() == 0 {
            return Some(View { shape: shape.to_vec(), strides: vec![0; shape.len()], offset: self.offset });
        }
        let old: Vec<(usize, i64)> =
            (0..self.shape.len()).filter(|&d| self.shape[d] != 1).map(|d| (self.shape[d], self.strides[d])).collect();
        let new: Vec<usize> = (0..shape.len()).filter(|&d| shape[d] != 1).collect();
        let mut strides = vec![0i64; shape.len()];
        let (mut oi, mut ni) = (0, 0);
        while oi < old.len() && ni < new.len() {
            let (mut oj, mut nj) = (oi + 1, ni + 1);
            let (mut po, mut pn) = (old[oi].0, shape[new[ni]]);
            while po != pn {
                if po < pn {
                    po *= old.get(oj)?.0;
                    oj += 1;
                } else {
                    pn *= shape[*new.get(nj)?];
                    nj += 1;
                }
            }
            if (oi..oj - 1).any(|k| old[k].1 != old[k + 1].1 * old[k + 1].0 as i64) {
                return None;
            }
            let mut s = old[oj - 1].1;
            for k in (ni..nj).rev() {
                strides[new[k]] = s;
                s *= shape[new[k]] as i64;
            }
            (oi, ni) = (oj, nj);
        }
        Some(View { shape: shape.to_vec(), strides, offset: self.offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_merges_and_splits_contiguous() {
        let v = View::contiguous(&[2, 3, 4]);
        assert_eq!(v.reshape(&[6, 4]).map(|v| v.strides), Some(vec![4, 1]));
        assert_eq!(v.reshape(&[2, 12, 1]).map(|v| v.strides), Some(vec![12, 1, 0]));
        assert_eq!(v.reshape(&[24]).map(|v| v.strides), Some(vec![1]));
    }

    #[test]
    fn reshape_of_a_transpose_needs_a_copy() {
        let t = View::contiguous(&[3, 4]).apply(&Tf::Permute(vec![1, 0])).ok();
        assert_eq!(t.as_ref().map(|v| v.strides.clone()), Some(vec![1, 4]));
        assert!(t.and_then(|v| v.reshape(&[12])).is_none());
    }
}
