//! Incremental decoding: a causal sequence model's graph at one position.
//!
//! `nnc sample` writes one token at a time. Over the whole window each token
//! would cost a forward pass over every position; this pass derives, from the
//! inference graph itself, a step that computes position `p` only, keeping
//! the values that later positions read across positions (attention's keys
//! and values) in caches: inputs that the step updates at row `p` and hands
//! back as outputs.
//!
//! Each node of the source graph is either *static*, not depending on the
//! tokens (weights, masks, position tables), and copied as it is, or
//! *positional*: it depends on the tokens, one of its axes is the sequence
//! axis, and the step computes its row `p` alone. One rule per op (in
//! [`step`]) says where the sequence axis goes and which operands must be
//! whole:
//! - a static operand meeting a positional one is cut to its row `p` (a
//!   gather at `position`);
//! - an operand that a product reads across positions (the key side of
//!   `q @ kᵀ`, the value side of `weights @ v`) is read whole, from its cache;
//! - an op that folds the sequence axis into others (a sum over positions, a
//!   slice, pad or reshape across it, a convolution) is refused with the op
//!   named: its row `p` would need rows this step does not have.
//!
//! A cache's rows after `p` hold zeros until their step runs. A causal model
//! masks them (its mask is static, cut to row `p` like any static operand);
//! whether the model really is causal is not decided here: the caller checks
//! the step against the full forward pass on the same tokens.

use crate::ir::ops::contract::free_dims;
use crate::ir::{Contract, DType, Graph, InputRole, IrError, Node, NodeId, Op, Type};
use std::collections::HashMap;

/// The input holding `p`, the position the step computes (i32 `[1]`).
pub const POSITION: &str = "@position";

/// The one-position step of a sequence model.
pub struct Decoder {
    /// Reads the token at `p` (the source's token input, shape `[1, 1]`),
    /// `position`, the parameters and every cache; writes the source's
    /// outputs at row `p` and each cache's update.
    pub graph: Graph,
    /// Names of the caches (`@cache0`, ...; `@` keeps them apart from any
    /// name a program can write): input `name` is read, output `name.next`
    /// is the same cache with row `p` written; copy it back before the next step.
    pub caches: Vec<String>,
}

/// The name of the output that updates cache `name`.
pub fn next(name: &str) -> String {
    format!("{name}.next")
}

/// A source node in the step: copied whole, or its row `p` along `axis`.
#[derive(Clone, Copy, Debug)]
enum Val {
    Static(NodeId),
    Row { id: NodeId, axis: usize },
}

struct Cx<'a> {
    src: &'a Graph,
    g: Graph,
    position: NodeId,
    /// The row form of each positional source node, for its cache.
    rows: HashMap<NodeId, (NodeId, usize)>,
    caches: HashMap<NodeId, NodeId>,
    names: Vec<String>,
}

/// The step of `src` at one position of its batch-1 token input `token`,
/// whose axis 1 is the sequence.
pub fn decoder(src: &Graph, token: &str) -> Result<Decoder, IrError> {
    let input = src.find_input(token).ok_or_else(|| refuse("input", format!("no input `{token}`")))?;
    let ty = src.ty(input)?;
    if ty.shape.len() != 2 || ty.shape[0] != 1 {
        return Err(refuse("input", format!("`{token}` is {ty}; incremental decoding needs one sequence, [1, T]")));
    }
    let mut g = Graph::new();
    let position = g.input(POSITION, InputRole::Scalar, Type::new(DType::I32, vec![1]))?;
    let mut cx = Cx { src, g, position, rows: HashMap::new(), caches: HashMap::new(), names: Vec::new() };
    let mut vals: Vec<Val> = Vec::with_capacity(src.len());
    for id in src.ids() {
        let node = src.node(id);
        let ins: Vec<Val> = node.inputs.iter().map(|x| vals[x.index()]).collect();
        cx.g.set_origin(src.origin(id));
        let v = if id == input {
            let row = cx.g.input(token, InputRole::Data, Type::new(ty.dtype, vec![1, 1]))?;
            Val::Row { id: row, axis: 1 }
        } else if let Some(ids) = ins.iter().map(|v| static_id(*v)).collect::<Option<Vec<_>>>() {
            Val::Static(cx.g.insert(node.op.clone(), &ids)?)
        } else {
            step(&mut cx, node, &ins)?
        };
        if let Val::Row { id: row, axis } = v {
            cx.rows.insert(id, (row, axis));
        }
        vals.push(v);
    }
    for (name, id) in src.outputs() {
        cx.g.set_output(name.clone(), node_of(vals[id.index()]))?;
    }
    let graph = crate::opt::dce::pruned(&cx.g)?;
    Ok(Decoder { graph, caches: cx.names })
}

fn refuse(op: &'static str, why: String) -> IrError {
    IrError::ty(op, format!("{why}: the model cannot be decoded one position at a time"))
}

/// The sequence axis shared by the positional operands.
fn common_axis(node: &Node, ins: &[Val]) -> Result<usize, IrError> {
    let mut axes = ins.iter().filter_map(|v| if let Val::Row { axis, .. } = v { Some(*axis) } else { None });
    let a = axes.next().ok_or_else(|| refuse(node.op.name(), "no positional operand".into()))?;
    if axes.any(|b| b != a) {
        return Err(refuse(node.op.name(), format!("combines positions along axes {a} and another")));
    }
    Ok(a)
}

impl Cx<'_> {
    /// Row `p` along `axis` of an operand of a positional op.
    fn at(&mut self, v: Val, axis: usize) -> Result<NodeId, IrError> {
        match v {
            Val::Row { id, axis: a } if a == axis => Ok(id),
            Val::Row { .. } => Err(refuse("decode", "an operand's positions lie along another axis".into())),
            Val::Static(id) => self.static_at(id, axis),
        }
    }

    /// Row `p` along `axis` of static step node `id`: a gather at
    /// `position`, moved inside broadcasts (a bias broadcast over positions
    /// needs no gather at all, a broadcast mask only its own row).
    fn static_at(&mut self, id: NodeId, axis: usize) -> Result<NodeId, IrError> {
        let node = self.g.node(id);
        let mut row = node.ty.shape.clone();
        row[axis] = 1;
        if let Some(c) = self.g.splat(id) {
            let dtype = node.ty.dtype;
            return Ok(self.g.constant(c, Type::new(dtype, row)));
        }
        if let Op::Broadcast(_) = node.op {
            let x = node.inputs[0];
            let shape = &self.g.node(x).ty.shape;
            let off = row.len() - shape.len();
            let x = if axis < off || shape[axis - off] == 1 { x } else { self.static_at(x, axis - off)? };
            return self.g.broadcast_to(x, &row);
        }
        self.g.gather(id, self.position, axis)
    }

    /// Source node `id` whole: static as it is, positional from its cache,
    /// with this step's row written in.
    fn whole(&mut self, id: NodeId, v: Val) -> Result<NodeId, IrError> {
        if let Val::Static(s) = v {
            return Ok(s);
        }
        if let Some(&c) = self.caches.get(&id) {
            return Ok(c);
        }
        let (row, axis) = self.rows[&id];
        let ty = self.src.ty(id)?;
        let name = format!("@cache{}", self.names.len());
        let cache = self.g.input(&name, InputRole::State, ty.clone())?;
        let rows = self.g.iota(&ty.shape, axis)?;
        let here = self.g.eq(rows, self.position)?;
        let row = self.g.broadcast_to(row, &ty.shape)?;
        let updated = self.g.select(here, row, cache)?;
        self.g.set_output(next(&name), updated)?;
        self.names.push(name);
        self.caches.insert(id, updated);
        Ok(updated)
    }
}

/// The row form of `node`, some of whose operands are positional.
fn step(cx: &mut Cx, node: &Node, ins: &[Val]) -> Result<Val, IrError> {
    let name = node.op.name();
    let in_ty = |i: usize| cx.src.ty(node.inputs[i]);
    let row_of = |shape: &[usize], axis: usize| -> Vec<usize> {
        let mut s = shape.to_vec();
        s[axis] = 1;
        s
    };
    let rebuilt = |cx: &mut Cx, op: Op, axis: usize| -> Result<NodeId, IrError> {
        let ids = ins.iter().map(|&v| cx.at(v, axis)).collect::<Result<Vec<_>, _>>()?;
        cx.g.insert(op, &ids)
    };
    let common = || common_axis(node, ins);
    let row = |id, axis| Ok(Val::Row { id, axis });
    match &node.op {
        Op::Contract(c) => contract(cx, node, c, ins),
        Op::Gather(gather) => gather_rows(cx, gather.axis, ins, in_ty(1)?.rank()),
        Op::Unary(_) | Op::Binary(_) | Op::Select | Op::Cast(_) | Op::StopGradient => {
            let axis = common()?;
            row(rebuilt(cx, node.op.clone(), axis)?, axis)
        }
        Op::Reduce(r) => {
            let axis = common()?;
            if r.axes.contains(&axis) {
                return Err(refuse(name, "reduces over positions".into()));
            }
            row(rebuilt(cx, node.op.clone(), axis)?, axis - r.axes.iter().filter(|&&x| x < axis).count())
        }
        Op::Reshape(r) => {
            let (axis, s) = (common()?, in_ty(0)?.shape);
            let before: usize = s[..axis].iter().product();
            // Several dims fit only when T = 1: take the nearest.
            let out = (0..r.shape.len())
                .filter(|&b| r.shape[b] == s[axis] && r.shape[..b].iter().product::<usize>() == before)
                .min_by_key(|&b| b.abs_diff(axis))
                .ok_or_else(|| refuse(name, "merges the sequence axis with another".into()))?;
            let x = cx.at(ins[0], axis)?;
            row(cx.g.reshape(x, &row_of(&r.shape, out))?, out)
        }
        Op::Permute(p) => {
            let axis = common()?;
            let out = p.perm.iter().position(|&d| d == axis).ok_or_else(|| refuse(name, "bad permutation".into()))?;
            row(rebuilt(cx, node.op.clone(), axis)?, out)
        }
        Op::Broadcast(b) => {
            let axis = common()?;
            let out = axis + b.shape.len() - in_ty(0)?.rank();
            let x = cx.at(ins[0], axis)?;
            row(cx.g.broadcast_to(x, &row_of(&b.shape, out))?, out)
        }
        Op::Slice(s) => {
            let axis = common()?;
            if s.start[axis] != 0 || s.end[axis] != in_ty(0)?.shape[axis] || s.step[axis] != 1 {
                return Err(refuse(name, "takes part of the sequence axis".into()));
            }
            let mut cut = s.clone();
            cut.end[axis] = 1;
            row(rebuilt(cx, Op::Slice(cut), axis)?, axis)
        }
        Op::Pad(p) => {
            let axis = common()?;
            if p.lo[axis] != 0 || p.hi[axis] != 0 {
                return Err(refuse(name, "extends the sequence axis".into()));
            }
            row(rebuilt(cx, node.op.clone(), axis)?, axis)
        }
        Op::Concat(c) => {
            let axis = common()?;
            if c.axis == axis {
                return Err(refuse(name, "extends the sequence axis".into()));
            }
            row(rebuilt(cx, node.op.clone(), axis)?, axis)
        }
        Op::Conv(_) | Op::ScatterAdd(_) | Op::Random(_) => Err(refuse(name, "is not supported on positions".into())),
        Op::Input(_) | Op::Const(_) | Op::Literal(_) | Op::Iota(_) => {
            Err(refuse(name, "has no operands to take positions from".into()))
        }
    }
}

fn static_id(v: Val) -> Option<NodeId> {
    if let Val::Static(id) = v { Some(id) } else { None }
}

/// The node in the step that stands for an operand.
fn node_of(v: Val) -> NodeId {
    match v {
        Val::Static(id) | Val::Row { id, .. } => id,
    }
}

/// `take(data, indices, axis)` with positional indices (an embedding
/// lookup) or positional data indexed along another axis.
fn gather_rows(cx: &mut Cx, axis: usize, ins: &[Val], index_rank: usize) -> Result<Val, IrError> {
    match ins {
        [Val::Static(data), Val::Row { id, axis: a }] => {
            Ok(Val::Row { id: cx.g.gather(*data, *id, axis)?, axis: axis + a })
        }
        [Val::Row { id, axis: a }, Val::Static(indices)] if *a != axis => {
            let out = if *a < axis { *a } else { a - 1 + index_rank };
            Ok(Val::Row { id: cx.g.gather(*id, *indices, axis)?, axis: out })
        }
        _ => Err(refuse("gather", "indexes along the sequence axis".into())),
    }
}

/// Where the sequence axis of one product operand lies.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Role {
    Static,
    Batch(usize),
    Free(usize),
    Contracted,
}

fn role(v: Val, batch: &[usize], contract: &[usize], rank: usize) -> Role {
    let Val::Row { axis, .. } = v else { return Role::Static };
    if let Some(i) = batch.iter().position(|&d| d == axis) {
        Role::Batch(i)
    } else if contract.contains(&axis) {
        Role::Contracted
    } else {
        Role::Free(free_dims(rank, batch, contract).iter().position(|&d| d == axis).unwrap_or(0))
    }
}

/// A product with a positional operand. The side whose sequence axis is a
/// free dim stays a row; the other side is read whole (keys, values) when it
/// is positional, or cut to row `p` along the paired batch dim when the
/// sequence is a batch dim.
fn contract(cx: &mut Cx, node: &Node, c: &Contract, ins: &[Val]) -> Result<Val, IrError> {
    let (lr, rr) = (cx.src.ty(node.inputs[0])?.rank(), cx.src.ty(node.inputs[1])?.rank());
    let l = role(ins[0], &c.lhs_batch, &c.lhs_contract, lr);
    let r = role(ins[1], &c.rhs_batch, &c.rhs_contract, rr);
    let nb = c.lhs_batch.len();
    let lf = free_dims(lr, &c.lhs_batch, &c.lhs_contract).len();
    let whole = |cx: &mut Cx, i: usize| cx.whole(node.inputs[i], ins[i]);
    let (a, b, axis) = match (l, r) {
        (Role::Batch(i), Role::Batch(j)) if i == j => {
            (cx.at(ins[0], c.lhs_batch[i])?, cx.at(ins[1], c.rhs_batch[i])?, i)
        }
        (Role::Batch(i), Role::Static) => (cx.at(ins[0], c.lhs_batch[i])?, cx.at(ins[1], c.rhs_batch[i])?, i),
        (Role::Static, Role::Batch(i)) => (cx.at(ins[0], c.lhs_batch[i])?, cx.at(ins[1], c.rhs_batch[i])?, i),
        (Role::Free(i), Role::Static | Role::Free(_) | Role::Contracted) => (node_of(ins[0]), whole(cx, 1)?, nb + i),
        (Role::Static | Role::Contracted, Role::Free(j)) => (whole(cx, 0)?, node_of(ins[1]), nb + lf + j),
        _ => return Err(refuse("contract", "sums over positions".into())),
    };
    Ok(Val::Row { id: cx.g.contract(a, b, c.clone())?, axis })
}
