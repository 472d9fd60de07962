//! The arena and its checked, hash-consing, folding insertion.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use super::error::IrError;
use super::op::{LoweringClass, Op, Rewrite};
use super::ops::{
    elementwise::BinaryOp,
    source::{Const, Literal},
};
use super::origin::Origin;
use super::tensor::Tensor;
use super::types::{NodeId, Scalar, Type};

/// One node: an op, its inputs (all with smaller ids) and its inferred type.
#[derive(Clone, PartialEq, Debug)]
pub struct Node {
    pub op: Op,
    pub inputs: Vec<NodeId>,
    pub ty: Type,
}

/// A tensor program in SSA form: an arena of nodes in topological order,
/// named inputs (the `Input` nodes, in declaration order) and named outputs.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    nodes: Vec<Node>,
    inputs: Vec<NodeId>,
    outputs: Vec<(String, NodeId)>,
    /// Hash of (op, inputs) to the nodes with that hash: hash-consing without
    /// storing a second copy of every op.
    index: HashMap<u64, Vec<NodeId>>,
    input_names: HashMap<String, NodeId>,
    /// Output name to its place in `outputs`: a graph of a deep model names
    /// tens of thousands of gradients, and a search per name is quadratic.
    output_names: HashMap<String, usize>,
    /// Whether inserts apply constant folding and local simplification.
    no_fold: bool,
    /// Each node's origin, by id.
    origins: Vec<Origin>,
    /// The origin new nodes get.
    origin: Origin,
}

impl Graph {
    /// An empty graph whose builder folds and simplifies.
    pub fn new() -> Graph {
        Graph::default()
    }

    /// An empty graph whose builder only checks types and hash-conses; for
    /// testing the interpreter on ops the folder would otherwise remove.
    pub fn unfolded() -> Graph {
        Graph { no_fold: true, ..Graph::default() }
    }

    /// A graph from raw parts, with no checks at all (for tests of the
    /// verifier and for deserialisation). Run [`super::verify`] on it.
    pub fn from_raw(nodes: Vec<Node>, outputs: Vec<(String, NodeId)>) -> Graph {
        let inputs =
            (0..nodes.len()).filter(|&i| matches!(nodes[i].op, Op::Input(_))).map(|i| NodeId(i as u32)).collect();
        let mut output_names = HashMap::new();
        for (i, (n, _)) in outputs.iter().enumerate() {
            output_names.entry(n.clone()).or_insert(i);
        }
        let origins = vec![Origin::default(); nodes.len()];
        Graph { nodes, inputs, outputs, output_names, no_fold: true, origins, ..Graph::default() }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// All ids, in topological order.
    pub fn ids(&self) -> impl DoubleEndedIterator<Item = NodeId> + use<> {
        (0..self.nodes.len() as u32).map(NodeId)
    }

    /// The node `id`. Panics on an id from another graph, like slice indexing;
    /// use [`Graph::get`] where the id is not known to be valid.
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    pub fn get(&self, id: NodeId) -> Result<&Node, IrError> {
        self.nodes.get(id.index()).ok_or(IrError::UnknownNode(id))
    }

    /// The type of `id` (cloned: callers usually go on to mutate the graph).
    pub fn ty(&self, id: NodeId) -> Result<Type, IrError> {
        Ok(self.get(id)?.ty.clone())
    }

    /// The `Input` nodes in declaration order.
    pub fn inputs(&self) -> &[NodeId] {
        &self.inputs
    }

    pub fn find_input(&self, name: &str) -> Option<NodeId> {
        self.input_names.get(name).copied()
    }

    pub fn outputs(&self) -> &[(String, NodeId)] {
        &self.outputs
    }

    pub fn output(&self, name: &str) -> Option<NodeId> {
        self.output_names.get(name).map(|&i| self.outputs[i].1)
    }

    /// Names `id` as an output (replacing an earlier output of that name).
    pub fn set_output(&mut self, name: impl Into<String>, id: NodeId) -> Result<(), IrError> {
        self.get(id)?;
        let name = name.into();
        match self.output_names.get(&name) {
            Some(&i) => self.outputs[i].1 = id,
            None => {
                self.output_names.insert(name.clone(), self.outputs.len());
                self.outputs.push((name, id));
            }
        }
        Ok(())
    }

    /// Where node `id` came from (the default for an id from elsewhere).
    pub fn origin(&self, id: NodeId) -> Origin {
        self.origins.get(id.index()).copied().unwrap_or_default()
    }

    /// The origin the nodes inserted from now on get.
    pub fn current_origin(&self) -> Origin {
        self.origin
    }

    /// Sets the origin of the nodes inserted from now on; returns the last one.
    pub fn set_origin(&mut self, origin: Origin) -> Origin {
        std::mem::replace(&mut self.origin, origin)
    }

    /// The value of a splat constant node, if `id` is one.
    pub fn splat(&self, id: NodeId) -> Option<f64> {
        if let Op::Const(c) = &self.nodes.get(id.index())?.op { Some(c.value.0) } else { None }
    }

    /// Adds `op` applied to `inputs`: checks ids and types, applies local
    /// folding, and returns an existing identical node when there is one.
    pub fn insert(&mut self, op: Op, inputs: &[NodeId]) -> Result<NodeId, IrError> {
        for &id in inputs {
            self.get(id)?;
        }
        let (op, inputs) = canonical(op, inputs);
        let ty = {
            let tys: Vec<&Type> = inputs.iter().map(|&i| &self.nodes[i.index()].ty).collect();
            op.rule().infer(&tys)?
        };
        if !self.no_fold
            && let Some(rw) = self.fold(&op, &inputs, &ty)?
        {
            return match rw {
                Rewrite::Node(id) => Ok(id),
                Rewrite::Const(v) => Ok(self.constant(v, ty)),
                Rewrite::Op(op, ins) => self.insert(op, &ins),
            };
        }
        if let Op::Input(inp) = &op
            && let Some(&prev) = self.input_names.get(&inp.name)
            && self.nodes[prev.index()].op != op
        {
            return Err(IrError::ty("input", format!("`{}` declared twice with different types or roles", inp.name)));
        }
        Ok(self.intern(op, inputs, ty))
    }

    /// Returns the node equal to (op, inputs), adding it if there is none.
    fn intern(&mut self, op: Op, inputs: Vec<NodeId>, ty: Type) -> NodeId {
        let hash = key_hash(&op, &inputs);
        let nodes = &self.nodes;
        let found = self.index.get(&hash).into_iter().flatten().find(|&&id| {
            let n = &nodes[id.index()];
            n.op == op && n.inputs == inputs
        });
        if let Some(&id) = found {
            return id;
        }
        // Ids are u32 by design; 4 billion nodes is a resource limit, like a
        // Vec's capacity overflow.
        let id = NodeId(u32::try_from(self.nodes.len()).expect("graph exceeds 2^32 nodes"));
        if let Op::Input(inp) = &op {
            self.input_names.insert(inp.name.clone(), id);
            self.inputs.push(id);
        }
        self.nodes.push(Node { op, inputs, ty });
        self.origins.push(self.origin);
        self.index.entry(hash).or_default().push(id);
        id
    }

    /// Insert-time folding: all-constant elementwise ops are evaluated, and
    /// each op's own `simplify` rule gets a look.
    fn fold(&self, op: &Op, inputs: &[NodeId], ty: &Type) -> Result<Option<Rewrite>, IrError> {
        let consts: Option<Vec<f64>> = inputs.iter().map(|&i| self.splat(i)).collect();
        if let (LoweringClass::Elementwise, Some(vals), false) = (op.class(), consts, inputs.is_empty()) {
            let scalars: Vec<Tensor> = inputs
                .iter()
                .zip(vals)
                .map(|(&i, v)| Tensor::full(&Type::scalar(self.nodes[i.index()].ty.dtype), v))
                .collect();
            let refs: Vec<&Tensor> = scalars.iter().collect();
            let out = op.rule().eval(&Type::scalar(ty.dtype), &refs)?;
            return Ok(out.to_f64s().first().map(|&v| Rewrite::Const(v)));
        }
        Ok(op.rule().simplify(self, inputs, ty))
    }

    /// A splat constant of type `ty` (its value rounded to the dtype).
    pub fn constant(&mut self, value: f64, ty: Type) -> NodeId {
        let op = Op::Const(Const { value: Scalar(ty.dtype.round(value)), ty: ty.clone() });
        self.intern(op, Vec::new(), ty)
    }

    /// A tensor literal (row-major values, rounded to the dtype).
    pub fn literal(&mut self, values: &[f64], ty: Type) -> Result<NodeId, IrError> {
        let values = values.iter().map(|&v| Scalar(ty.dtype.round(v))).collect();
        self.insert(Op::Literal(Literal { values, ty }), &[])
    }
}

/// Orders the operands of commutative ops so `a+b` and `b+a` are one node.
fn canonical(op: Op, inputs: &[NodeId]) -> (Op, Vec<NodeId>) {
    let mut inputs = inputs.to_vec();
    if let Op::Binary(b) = &op
        && b.is_commutative()
        && inputs.len() == 2
        && inputs[0] > inputs[1]
    {
        inputs.swap(0, 1);
    }
    // Constants are stored rounded to their dtype.
    let op = if let Op::Const(c) = op {
        Op::Const(Const { value: Scalar(c.ty.dtype.round(c.value.0)), ty: c.ty })
    } else {
        op
    };
    (op, inputs)
}

fn key_hash(op: &Op, inputs: &[NodeId]) -> u64 {
    let mut h = DefaultHasher::new();
    op.hash(&mut h);
    inputs.hash(&mut h);
    h.finish()
}

impl BinaryOp {
    pub fn is_commutative(self) -> bool {
        match self {
            BinaryOp::Add | BinaryOp::Mul | BinaryOp::Max | BinaryOp::Min => true,
            BinaryOp::Eq | BinaryOp::Ne | BinaryOp::And | BinaryOp::Or => true,
            BinaryOp::Sub | BinaryOp::Div | BinaryOp::Pow => false,
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => false,
        }
    }
}
