//! Merging kernels: a loop kernel joins an earlier one over the same space
//! when, element by element, the merged loop computes the same thing.
//!
//! - A value the earlier kernel stores and the later one loads at the same
//!   element is passed in a register (the store stays if others read it).
//! - The later kernel may overwrite what the earlier one reads only at the
//!   element being read (in-place updates), since every element's loads
//!   happen before its stores.
//! - Kernels in between must not depend on the one that moves: the earlier
//!   kernel moves down to the later one, or the later one up.
//! - Loops over two shapes of the same elements (a window view and the
//!   plain image) merge in either one's shape when every view reshapes.
//! - An elementwise loop over a matrix product's `[m, n]` output becomes the
//!   product's epilogue.
//!
//! Afterwards, stores into arena buffers nobody reads are dropped.

use super::{
    Access, BufId, Buffer, ENode, Expr, ExprId, GemmKernel, Kernel, KernelBody, LoopKernel, Place, Store, View,
};

/// How many earlier kernels a kernel looks at for a partner.
const WINDOW: usize = 32;

/// Memory identity: an output updated in place shares its input's slot.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mem {
    Slot(usize),
    Buf(BufId),
}

fn mem(bufs: &[Buffer], b: BufId) -> Mem {
    match bufs[b.index()].place {
        Place::Slot(s) => Mem::Slot(s),
        Place::Arena(_) | Place::Const(_) => Mem::Buf(b),
    }
}

pub(super) fn run(kernels: Vec<Kernel>, bufs: &[Buffer]) -> Vec<Kernel> {
    let mut out: Vec<Kernel> = Vec::with_capacity(kernels.len());
    for k in kernels {
        let lo = out.len().saturating_sub(WINDOW);
        let found = (lo..out.len()).rev().find_map(|a| {
            let merged = fuse(&out[a], &k, bufs)?;
            let between = &out[a + 1..];
            if between.iter().all(|c| independent(&out[a], c, bufs)) {
                Some((a, merged, true))
            } else if between.iter().all(|c| independent(&k, c, bufs)) {
                Some((a, merged, false))
            } else {
                None
            }
        });
        match found {
            Some((a, merged, true)) => {
                out.remove(a);
                out.push(merged);
            }
            Some((a, merged, false)) => out[a] = merged,
            None => out.push(k),
        }
    }
    drop_dead_stores(&mut out, bufs);
    out
}

/// Whether `x` and `c` may swap places: neither writes what the other
/// reads or writes.
fn independent(x: &Kernel, c: &Kernel, bufs: &[Buffer]) -> bool {
    let m = |v: Vec<BufId>| v.into_iter().map(|b| mem(bufs, b)).collect::<Vec<_>>();
    let (xr, xw, cr, cw) = (m(x.reads()), m(x.writes()), m(c.reads()), m(c.writes()));
    !cw.iter().any(|w| xr.contains(w) || xw.contains(w)) && !cr.iter().any(|r| xw.contains(r))
}

/// `a` then `b` as one kernel, if that is legal and keeps vector code.
fn fuse(a: &Kernel, b: &Kernel, bufs: &[Buffer]) -> Option<Kernel> {
    let KernelBody::Loop(lb) = &b.body else { return None };
    let body = match &a.body {
        KernelBody::Loop(la) if la.space == lb.space => KernelBody::Loop(fuse_loops(la, lb, bufs, &[])?),
        KernelBody::Loop(la) => {
            let as_a = || fuse_loops(la, &in_space(lb, &la.space)?, bufs, &[]);
            KernelBody::Loop(as_a().or_else(|| fuse_loops(&in_space(la, &lb.space)?, lb, bufs, &[]))?)
        }
        KernelBody::Gemm(g) => KernelBody::Gemm(with_epilogue(g, lb, bufs)?),
        KernelBody::Conv(_) => return None,
    };
    Some(a.joined(b, body))
}

/// `k` over another shape of its space (the same elements in the same
/// order: a pooling gradient over `[.., 2, .., 2, c]` windows and the ReLU
/// gradient over `[pixels, c]` that reads it), if every view reshapes
/// without a copy. Gathers and scatters keep their own shapes.
fn in_space(k: &LoopKernel, space: &[usize]) -> Option<LoopKernel> {
    if k.space.iter().product::<usize>() != space.iter().product::<usize>()
        || k.stores.iter().any(|s| s.scatter.is_some())
    {
        return None;
    }
    let view = |v: &View| v.reshape(space);
    let mut nodes = Vec::with_capacity(k.nodes.len());
    for n in &k.nodes {
        let expr = match &n.expr {
            Expr::Load { buf, view: v } => Expr::Load { buf: *buf, view: view(v)? },
            Expr::Iota(v) => Expr::Iota(view(v)?),
            Expr::Random { key, salt, index } => Expr::Random { key: *key, salt: *salt, index: view(index)? },
            Expr::Gather { .. } => return None,
            Expr::Const(_) | Expr::Unary(..) | Expr::Binary(..) | Expr::Select(..) | Expr::Cast(..) => n.expr.clone(),
        };
        nodes.push(ENode { expr, dtype: n.dtype });
    }
    let stores: Option<Vec<Store>> =
        k.stores.iter().map(|s| Some(Store { view: view(&s.view)?, ..s.clone() })).collect();
    Some(LoopKernel { space: space.to_vec(), nodes, stores: stores? })
}

/// `b` as (part of) the epilogue of `g`: it reads the product only at the
/// element it is at, and writes nothing the product reads (another
/// thread's rows may still be reading it).
///
/// A loop over `[B, T, n]` (a dense layer applied at every position, whose
/// product runs as one `[B T, n]` matrix) is taken over `[m, n]` when its
/// views reshape.
fn with_epilogue(g: &GemmKernel, b: &LoopKernel, bufs: &[Buffer]) -> Option<GemmKernel> {
    let row_major = g.out.offset == 0 && g.out.rs == g.n as i64 && g.out.cs == 1;
    if g.batch != 1 || !row_major || b.space.last() != Some(&g.n) {
        return None;
    }
    let reshaped;
    let b = if b.space == [g.m, g.n] {
        b
    } else {
        reshaped = in_space(b, &[g.m, g.n])?;
        &reshaped
    };
    let operands = [mem(bufs, g.lhs.buf), mem(bufs, g.rhs.buf)];
    if b.stores.iter().any(|s| operands.contains(&mem(bufs, s.buf))) {
        return None;
    }
    let product = (g.out.buf, View::contiguous(&b.space));
    let epilogue = match &g.epilogue {
        Some(e) => fuse_loops(e, b, bufs, &[product])?,
        None => fuse_loops(&LoopKernel { space: b.space.clone(), nodes: vec![], stores: vec![] }, b, bufs, &[product])?,
    };
    Some(GemmKernel { epilogue: Some(epilogue), ..g.clone() })
}

/// A store that writes each element of its space once, with a plain value.
fn plain(s: &Store) -> bool {
    s.mode == super::StoreMode::Assign
        && s.scatter.is_none()
        && !s.init
        && s.view.shape.iter().zip(&s.view.strides).all(|(&n, &st)| n == 1 || st != 0)
}

/// `a`'s nodes and stores followed by `b`'s; `outside` are values written
/// before `a` runs by the same kernel (a product), which `b` may load at
/// exactly that view.
fn fuse_loops(a: &LoopKernel, b: &LoopKernel, bufs: &[Buffer], outside: &[(BufId, View)]) -> Option<LoopKernel> {
    if a.space != b.space {
        return None;
    }
    let written: Vec<(BufId, &View, Option<ExprId>, bool)> = a
        .stores
        .iter()
        .map(|s| (s.buf, &s.view, Some(s.value), plain(s)))
        .chain(outside.iter().map(|(buf, v)| (*buf, v, None, true)))
        .collect();
    // b must not write what a (or the product) writes, and may overwrite
    // what a reads only element by element.
    for s in &b.stores {
        let m = mem(bufs, s.buf);
        if written.iter().any(|w| mem(bufs, w.0) == m) {
            return None;
        }
        let read_elsewhere = a.nodes.iter().any(|n| match n.expr.reads() {
            Access::Element(buf, view) => mem(bufs, buf) == m && !(plain(s) && *view == s.view),
            Access::Indexed(buf) => mem(bufs, buf) == m,
            Access::Nothing => false,
        });
        if read_elsewhere {
            return None;
        }
    }
    let mut nodes = a.nodes.clone();
    let mut map: Vec<ExprId> = Vec::with_capacity(b.nodes.len());
    for n in &b.nodes {
        let hit = |buf: BufId| written.iter().find(|w| mem(bufs, w.0) == mem(bufs, buf));
        let id = match n.expr.reads() {
            Access::Element(buf, view) => match hit(buf) {
                Some(&(wb, wv, value, true)) if wb == buf && wv == view => value,
                Some(_) => return None,
                None => None,
            },
            Access::Indexed(buf) if hit(buf).is_some() => return None,
            Access::Indexed(_) | Access::Nothing => None,
        };
        let id = match id {
            Some(v) => v,
            None => intern(&mut nodes, remap(n, &map)),
        };
        map.push(id);
    }
    let stores = a.stores.iter().cloned().chain(b.stores.iter().map(|s| remap_store(s, &map))).collect();
    let merged = LoopKernel { space: a.space.clone(), nodes, stores };
    let keeps_vectors = merged.vectorizable(bufs) || !(a.vectorizable(bufs) || b.vectorizable(bufs));
    (keeps_vectors || merged.space.iter().product::<usize>() <= 64).then_some(merged)
}

/// The existing id of an equal node, or a new one (loads before stores
/// make equal expressions equal values).
fn intern(nodes: &mut Vec<ENode>, n: ENode) -> ExprId {
    match nodes.iter().position(|m| *m == n) {
        Some(i) => i as ExprId,
        None => {
            nodes.push(n);
            (nodes.len() - 1) as ExprId
        }
    }
}

fn remap(n: &ENode, map: &[ExprId]) -> ENode {
    let m = |x: &ExprId| map[*x as usize];
    let expr = match &n.expr {
        Expr::Load { .. } | Expr::Const(_) | Expr::Iota(_) => n.expr.clone(),
        Expr::Random { key, salt, index } => Expr::Random { key: m(key), salt: *salt, index: index.clone() },
        Expr::Unary(op, x) => Expr::Unary(*op, m(x)),
        Expr::Binary(op, x, y) => Expr::Binary(*op, m(x), m(y)),
        Expr::Select(c, x, y) => Expr::Select(m(c), m(x), m(y)),
        Expr::Cast(t, x) => Expr::Cast(*t, m(x)),
        Expr::Gather { buf, view, index, stride, dim } => {
            Expr::Gather { buf: *buf, view: view.clone(), index: m(index), stride: *stride, dim: *dim }
        }
    };
    ENode { expr, dtype: n.dtype }
}

fn remap_store(s: &Store, map: &[ExprId]) -> Store {
    let mut s = s.clone();
    s.value = map[s.value as usize];
    if let Some(sc) = &mut s.scatter {
        sc.index = map[sc.index as usize];
    }
    s
}

/// Drops stores into arena buffers that no kernel reads (values now passed
/// in registers), then the nodes and kernels left without a use.
fn drop_dead_stores(kernels: &mut Vec<Kernel>, bufs: &[Buffer]) {
    let read: Vec<BufId> = kernels.iter().flat_map(|k| k.reads()).collect();
    let dead = |s: &Store| matches!(bufs[s.buf.index()].place, Place::Arena(_)) && !read.contains(&s.buf);
    for k in kernels.iter_mut() {
        let l = match &mut k.body {
            KernelBody::Loop(l) => l,
            KernelBody::Gemm(g) => match &mut g.epilogue {
                Some(e) => e,
                None => continue,
            },
            KernelBody::Conv(_) => continue,
        };
        l.stores.retain(|s| !dead(s));
        prune(l);
    }
    kernels.retain(|k| !matches!(&k.body, KernelBody::Loop(l) if l.stores.is_empty()));
}

/// Removes nodes no store needs, renumbering the rest.
fn prune(l: &mut LoopKernel) {
    let mut live = vec![false; l.nodes.len()];
    for s in &l.stores {
        live[s.value as usize] = true;
        if let Some(sc) = &s.scatter {
            live[sc.index as usize] = true;
        }
    }
    for i in (0..l.nodes.len()).rev() {
        if live[i] {
            l.nodes[i].expr.operands(|x| live[x as usize] = true);
        }
    }
    let mut map = vec![0 as ExprId; l.nodes.len()];
    let mut nodes = Vec::new();
    for (i, n) in l.nodes.iter().enumerate() {
        if live[i] {
            map[i] = nodes.len() as ExprId;
            nodes.push(remap(n, &map));
        }
    }
    l.stores = l.stores.iter().map(|s| remap_store(s, &map)).collect();
    l.nodes = nodes;
}
