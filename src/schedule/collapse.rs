//! Collapsing loop dims: adjacent dims that every view of a kernel walks
//! as one (stride of the outer = stride of the inner times its size)
//! become one dim, so `[32, 10]` runs as one vectorised loop of 320
//! instead of 32 loops of two vectors and a scalar tail. Size-1 dims go
//! first. Epilogues keep their `[m, n]` rows (threads split them by rows).

use super::{Expr, Kernel, KernelBody, LoopKernel, View};

pub(super) fn run(k: &mut Kernel) {
    if let KernelBody::Loop(l) = &mut k.body {
        collapse(l);
    }
}

fn views(l: &mut LoopKernel) -> Vec<&mut View> {
    let mut out = Vec::new();
    for n in &mut l.nodes {
        match &mut n.expr {
            Expr::Load { view, .. } | Expr::Iota(view) | Expr::Gather { view, .. } => out.push(view),
            Expr::Random { index, .. } => out.push(index),
            Expr::Const(_) | Expr::Unary(..) | Expr::Binary(..) | Expr::Select(..) | Expr::Cast(..) => {}
        }
    }
    out.extend(l.stores.iter_mut().map(|s| &mut s.view));
    out
}

fn collapse(l: &mut LoopKernel) {
    let mut d = 0;
    while d < l.space.len() {
        if l.space[d] == 1 && l.space.len() > 1 {
            drop_dim(l, d);
            continue;
        }
        d += 1;
    }
    let mut d = 0;
    while d + 1 < l.space.len() {
        let inner = l.space[d + 1] as i64;
        if views(l).iter().all(|v| v.strides[d] == v.strides[d + 1] * inner) {
            join_dims(l, d);
        } else {
            d += 1;
        }
    }
}

/// Removes dim `d` (size 1) from the space and every view.
fn drop_dim(l: &mut LoopKernel, d: usize) {
    for v in views(l) {
        v.strides.remove(d);
        v.shape.remove(d);
    }
    l.space.remove(d);
}

/// Merges dims `d` and `d + 1` into one with the inner stride.
fn join_dims(l: &mut LoopKernel, d: usize) {
    for v in views(l) {
        v.strides[d] = v.strides[d + 1];
        v.shape[d] *= v.shape[d + 1];
        v.strides.remove(d + 1);
        v.shape.remove(d + 1);
    }
    l.space[d] *= l.space[d + 1];
    l.space.remove(d + 1);
}
