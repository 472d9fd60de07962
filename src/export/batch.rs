//! The batch axis made symbolic. nnc's graphs have concrete shapes, while an
//! exported model takes any batch size: the inference graph is lowered and
//! optimized at two batch sizes, the two graphs are matched node by node,
//! and every dim (and every slice bound) is fitted to `a·batch + c`. A
//! graph whose structure depends on the batch size is refused rather than
//! exported for one size only.

use crate::ir::{Graph, Op};
use std::fmt;

/// Two batch sizes that no model dim is likely to equal (a coincidence
/// could let a size-dependent rewrite fire in one graph only; the match
/// below then refuses the export, it never goes wrong silently).
pub const SIZES: [usize; 2] = [17, 19];

/// `per_batch · batch + fixed`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Dim {
    pub per_batch: i64,
    pub fixed: i64,
}

impl Dim {
    pub fn fixed(v: i64) -> Dim {
        Dim { per_batch: 0, fixed: v }
    }

    pub fn is_fixed(self) -> bool {
        self.per_batch == 0
    }

    /// The dim that is `v1` at batch `SIZES[0]` and `v2` at `SIZES[1]`.
    pub fn fit(v1: usize, v2: usize) -> Result<Dim, String> {
        let (b1, b2) = (SIZES[0] as i64, SIZES[1] as i64);
        let (v1, v2) = (v1 as i64, v2 as i64);
        if (v2 - v1) % (b2 - b1) != 0 {
            return Err(format!(
                "a dim is {v1} at batch {b1} and {v2} at batch {b2}: not a whole multiple of the batch"
            ));
        }
        let per_batch = (v2 - v1) / (b2 - b1);
        Ok(Dim { per_batch, fixed: v1 - per_batch * b1 })
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.per_batch, self.fixed) {
            (0, c) => write!(f, "{c}"),
            (1, 0) => f.write_str("batch"),
            (a, 0) => write!(f, "{a}*batch"),
            (a, c) => write!(f, "{a}*batch{c:+}"),
        }
    }
}

/// Every node's shape with the batch symbolic: `shapes[node]`.
pub fn shapes(g1: &Graph, g2: &Graph) -> Result<Vec<Vec<Dim>>, String> {
    if g1.len() != g2.len() || g1.outputs() != g2.outputs() {
        return Err(format!(
            "the inference graph differs with the batch size ({} nodes at batch {}, {} at batch {})",
            g1.len(),
            SIZES[0],
            g2.len(),
            SIZES[1]
        ));
    }
    g1.nodes()
        .iter()
        .zip(g2.nodes())
        .enumerate()
        .map(|(i, (a, b))| {
            let same = a.inputs == b.inputs
                && a.ty.dtype == b.ty.dtype
                && a.ty.shape.len() == b.ty.shape.len()
                && same_but_sizes(&a.op, &b.op);
            if !same {
                return Err(format!(
                    "node %{i} of the inference graph is `{}` at batch {} but `{}` at batch {}",
                    a.op.name(),
                    SIZES[0],
                    b.op.name(),
                    SIZES[1]
                ));
            }
            a.ty.shape.iter().zip(&b.ty.shape).map(|(&x, &y)| Dim::fit(x, y)).collect()
        })
        .collect()
}

/// Whether two ops are the same but for the sizes they carry (a reshape's
/// target, a slice's end): those are checked through the node's shape or
/// fitted where they are used. Any other difference is a different op.
fn same_but_sizes(a: &Op, b: &Op) -> bool {
    match (a, b) {
        (Op::Reshape(_), Op::Reshape(_)) | (Op::Broadcast(_), Op::Broadcast(_)) => true,
        (Op::Iota(x), Op::Iota(y)) => x.axis == y.axis,
        (Op::Const(x), Op::Const(y)) => x.value == y.value,
        (Op::Input(x), Op::Input(y)) => x.name == y.name && x.role == y.role,
        (Op::Slice(x), Op::Slice(y)) => x.start == y.start && x.step == y.step,
        _ => a == b,
    }
}
