//! IR nodes to ONNX nodes: one arm per op (no wildcard), each writing the
//! ONNX operators that compute exactly the IR's semantics, including the
//! corners ONNX leaves open (an out-of-range gather index yields 0, an
//! integer division by zero is 0).

use super::batch::Dim;
use super::onnx::{AttributeProto, NodeProto, TensorProto, attr_type, data_type};
use crate::ir::{BinaryOp, Contract, Conv, ConvRole, DType, Graph, NodeId, Op, ReduceOp, UnaryOp};
use std::collections::HashMap;

/// The ONNX graph being written: nodes, initializers, and each IR node's
/// value name.
pub struct Emitter<'a> {
    pub g: &'a Graph,
    /// The same graph at the second batch size (for fitting slice bounds).
    pub g2: &'a Graph,
    pub shapes: &'a [Vec<Dim>],
    pub nodes: Vec<NodeProto>,
    pub inits: Vec<TensorProto>,
    /// The value computing each IR node, once emitted.
    pub names: Vec<Option<String>>,
    /// An int64 `[1]` value holding the batch size, for dims that need it.
    pub batch: Option<String>,
    dims: HashMap<Dim, String>,
    shapes_written: HashMap<Vec<Dim>, String>,
    fresh: usize,
}

pub type EmitResult<T> = Result<T, String>;

pub fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attr_type::INT, i: Some(i), ..Default::default() }
}

pub fn attr_ints(name: &str, ints: impl IntoIterator<Item = i64>) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        r#type: attr_type::INTS,
        ints: ints.into_iter().collect(),
        ..Default::default()
    }
}

fn attr_str(name: &str, s: &str) -> AttributeProto {
    AttributeProto { name: name.into(), r#type: attr_type::STRING, s: s.as_bytes().to_vec(), ..Default::default() }
}

pub fn onnx_dtype(d: DType) -> i32 {
    match d {
        DType::F32 => data_type::FLOAT,
        DType::I32 => data_type::INT32,
        DType::Bool => data_type::BOOL,
        DType::U8 => data_type::UINT8,
    }
}

/// Values of `dtype` as ONNX raw data (little-endian; bools one byte).
fn raw(dtype: DType, values: impl IntoIterator<Item = f64>) -> Vec<u8> {
    let mut out = Vec::new();
    for v in values {
        match dtype {
            DType::F32 => out.extend((v as f32).to_le_bytes()),
            DType::I32 => out.extend((v as i32).to_le_bytes()),
            DType::Bool => out.push(u8::from(v != 0.0)),
            DType::U8 => out.push(v as u8),
        }
    }
    out
}

/// What an ONNX node reads for one operand of an IR node.
#[derive(Clone, Copy)]
pub enum Operand {
    Value(NodeId),
    /// A splat constant, written as a scalar.
    Splat(f64, DType),
}

/// The operands of `id` as its ONNX node reads them. An elementwise op
/// looks through broadcasts and splat constants to their sources (ONNX
/// broadcasts like numpy, as the IR's `broadcast` does), as long as one
/// operand keeps the output's full shape; other ops read their inputs.
pub fn operands(g: &Graph, id: NodeId) -> Vec<Operand> {
    let n = g.node(id);
    let plain = n.inputs.iter().map(|&i| Operand::Value(i));
    if !matches!(n.op, Op::Binary(_) | Op::Select) {
        return plain.collect();
    }
    let through = |i: NodeId| {
        let src = match &g.node(i).op {
            Op::Broadcast(_) => g.node(i).inputs[0],
            _ => i,
        };
        match &g.node(src).op {
            Op::Const(c) => Operand::Splat(c.value.0, c.ty.dtype),
            _ => Operand::Value(src),
        }
    };
    let full = |i: &NodeId| g.node(*i).ty.shape == n.ty.shape;
    // The first operand of the full shape is read as it is; with none, the first.
    let keep = n.inputs.iter().position(|i| full(i) && !matches!(through(*i), Operand::Splat(..))).unwrap_or(0);
    n.inputs.iter().enumerate().map(|(k, &i)| if k == keep { Operand::Value(i) } else { through(i) }).collect()
}

fn axes(range: impl IntoIterator<Item = usize>) -> Vec<i64> {
    range.into_iter().map(|a| a as i64).collect()
}

impl<'a> Emitter<'a> {
    pub fn new(g: &'a Graph, g2: &'a Graph, shapes: &'a [Vec<Dim>]) -> Emitter<'a> {
        Emitter {
            g,
            g2,
            shapes,
            nodes: Vec::new(),
            inits: Vec::new(),
            names: vec![None; g.len()],
            batch: None,
            dims: HashMap::new(),
            shapes_written: HashMap::new(),
            fresh: 0,
        }
    }

    fn fresh(&mut self, hint: &str) -> String {
        self.fresh += 1;
        format!("{hint}_{}", self.fresh)
    }

    /// Appends `op_type(inputs)` with one output, and returns its name.
    pub fn op(&mut self, op_type: &str, inputs: &[&str], attribute: Vec<AttributeProto>) -> String {
        let out = self.fresh(&op_type.to_lowercase());
        self.op_into(op_type, inputs, attribute, out.clone());
        out
    }

    pub fn op_into(&mut self, op_type: &str, inputs: &[&str], attribute: Vec<AttributeProto>, out: String) {
        let name = format!("n{}", self.nodes.len());
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out],
            name,
            op_type: op_type.into(),
            attribute,
        });
    }

    /// An initializer of `dims` holding `values`.
    pub fn init(&mut self, name: String, dtype: DType, dims: &[usize], raw_data: Vec<u8>) -> String {
        let dims = dims.iter().map(|&d| d as i64).collect();
        self.inits.push(TensorProto { dims, data_type: onnx_dtype(dtype), name: name.clone(), raw_data });
        name
    }

    fn consts(&mut self, dtype: DType, dims: &[usize], values: impl IntoIterator<Item = f64>) -> String {
        let name = self.fresh("c");
        self.init(name, dtype, dims, raw(dtype, values))
    }

    /// A rank-0 constant.
    fn scalar(&mut self, dtype: DType, v: f64) -> String {
        self.consts(dtype, &[], [v])
    }

    fn i64s(&mut self, values: &[i64]) -> String {
        let name = self.fresh("c");
        let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.inits.push(TensorProto {
            dims: vec![values.len() as i64],
            data_type: data_type::INT64,
            name: name.clone(),
            raw_data: data,
        });
        name
    }

    /// An int64 `[1]` value holding `d`.
    fn dim(&mut self, d: Dim) -> EmitResult<String> {
        if d.is_fixed() {
            return Ok(self.i64s(&[d.fixed]));
        }
        if let Some(name) = self.dims.get(&d) {
            return Ok(name.clone());
        }
        let b = self.batch.clone().ok_or("a dim depends on the batch size, but the model reads no batched input")?;
        let mut v = b;
        if d.per_batch != 1 {
            let a = self.i64s(&[d.per_batch]);
            v = self.op("Mul", &[&v, &a], vec![]);
        }
        if d.fixed != 0 {
            let c = self.i64s(&[d.fixed]);
            v = self.op("Add", &[&v, &c], vec![]);
        }
        self.dims.insert(d, v.clone());
        Ok(v)
    }

    /// An int64 `[n]` value holding `dims`: a constant where none depends
    /// on the batch.
    fn shape(&mut self, dims: &[Dim]) -> EmitResult<String> {
        if dims.iter().all(|d| d.is_fixed()) {
            return Ok(self.i64s(&dims.iter().map(|d| d.fixed).collect::<Vec<_>>()));
        }
        if let Some(name) = self.shapes_written.get(dims) {
            return Ok(name.clone());
        }
        let mut parts = Vec::new();
        let mut run: Vec<i64> = Vec::new();
        for &d in dims {
            if d.is_fixed() {
                run.push(d.fixed);
                continue;
            }
            if !run.is_empty() {
                parts.push(self.i64s(&std::mem::take(&mut run)));
            }
            parts.push(self.dim(d)?);
        }
        if !run.is_empty() {
            parts.push(self.i64s(&run));
        }
        let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
        let name = self.op("Concat", &refs, vec![attr_int("axis", 0)]);
        self.shapes_written.insert(dims.to_vec(), name.clone());
        Ok(name)
    }

    fn name(&self, id: NodeId) -> EmitResult<&str> {
        self.names[id.index()].as_deref().ok_or_else(|| format!("internal error: %{} used before it is written", id.0))
    }

    /// Writes the ONNX nodes of IR node `id` (inputs and parameters are
    /// named by the caller).
    pub fn node(&mut self, id: NodeId) -> EmitResult<()> {
        let n = self.g.node(id);
        let mut ins = Vec::with_capacity(n.inputs.len());
        for o in operands(self.g, id) {
            ins.push(match o {
                Operand::Value(v) => self.name(v)?.to_owned(),
                Operand::Splat(v, dt) => self.scalar(dt, v),
            });
        }
        let i: Vec<&str> = ins.iter().map(String::as_str).collect();
        let dtype = n.ty.dtype;
        let shape = self.shapes[id.index()].clone();
        let out = match &n.op {
            Op::Input(x) => return Err(format!("internal error: input `{}` is not bound", x.name)),
            Op::Const(c) => {
                let value = TensorProto {
                    dims: vec![1],
                    data_type: onnx_dtype(dtype),
                    raw_data: raw(dtype, [c.value.0]),
                    ..Default::default()
                };
                let s = self.shape(&shape)?;
                let attr = AttributeProto {
                    name: "value".into(),
                    r#type: attr_type::TENSOR,
                    t: Some(value),
                    ..Default::default()
                };
                self.op("ConstantOfShape", &[&s], vec![attr])
            }
            Op::Literal(l) => self.consts(dtype, &l.ty.shape, l.values.iter().map(|v| v.0)),
            Op::Iota(iota) => self.iota(iota.axis, &shape)?,
            Op::Random(_) => return Err("the inference graph draws random numbers".into()),
            Op::Unary(u) => self.unary(*u, i[0]),
            Op::Binary(b) => self.binary(*b, i[0], i[1], self.g.node(n.inputs[0]).ty.dtype),
            Op::Select => self.op("Where", &i, vec![]),
            Op::Cast(c) => self.op("Cast", &i, vec![attr_int("to", onnx_dtype(c.to) as i64)]),
            Op::StopGradient => self.op("Identity", &i, vec![]),
            Op::Reduce(r) if r.axes.is_empty() => self.op("Identity", &i, vec![]),
            Op::Reduce(r) => {
                let ax = axes(r.axes.iter().copied());
                match r.op {
                    ReduceOp::Sum => {
                        let a = self.i64s(&ax);
                        self.op("ReduceSum", &[i[0], &a], vec![attr_int("keepdims", 0)])
                    }
                    ReduceOp::Max => self.op("ReduceMax", &i, vec![attr_ints("axes", ax), attr_int("keepdims", 0)]),
                }
            }
            Op::Reshape(_) => {
                let s = self.shape(&shape)?;
                self.op("Reshape", &[i[0], &s], vec![attr_int("allowzero", 1)])
            }
            Op::Permute(p) => self.op("Transpose", &i, vec![attr_ints("perm", axes(p.perm.iter().copied()))]),
            Op::Broadcast(_) => {
                let s = self.shape(&shape)?;
                self.op("Expand", &[i[0], &s], vec![])
            }
            Op::Slice(s) => self.slice(id, s, i[0])?,
            Op::Pad(p) => {
                let pads: Vec<i64> = axes(p.lo.iter().chain(&p.hi).copied());
                let pads = self.i64s(&pads);
                let v = self.scalar(dtype, p.value.0);
                self.op("Pad", &[i[0], &pads, &v], vec![attr_str("mode", "constant")])
            }
            Op::Concat(c) => self.op("Concat", &i, vec![attr_int("axis", c.axis as i64)]),
            Op::Contract(c) => self.contract(c, n.inputs[0], n.inputs[1], i[0], i[1])?,
            Op::Conv(c) => self.conv(c, i[0], i[1])?,
            Op::Gather(gather) => self.gather(gather.axis, n.inputs[0], n.inputs[1], i[0], i[1])?,
            Op::ScatterAdd(_) => return Err("the inference graph scatters (a gradient op)".into()),
        };
        self.names[id.index()] = Some(out);
        Ok(())
    }

    fn unary(&mut self, u: UnaryOp, x: &str) -> String {
        let name = match u {
            UnaryOp::Neg => "Neg",
            UnaryOp::Abs => "Abs",
            UnaryOp::Exp => "Exp",
            UnaryOp::Log => "Log",
            UnaryOp::Sqrt => "Sqrt",
            UnaryOp::Rsqrt => {
                let s = self.op("Sqrt", &[x], vec![]);
                return self.op("Reciprocal", &[&s], vec![]);
            }
            UnaryOp::Tanh => "Tanh",
            UnaryOp::Sigmoid => "Sigmoid",
            UnaryOp::Sin => "Sin",
            UnaryOp::Cos => "Cos",
            UnaryOp::Floor => "Floor",
            UnaryOp::Sign => "Sign",
            UnaryOp::Erf => "Erf",
            UnaryOp::Not => "Not",
            UnaryOp::Recip => "Reciprocal",
        };
        self.op(name, &[x], vec![])
    }

    /// `a op b` on operands of one shape and dtype `dtype`.
    fn binary(&mut self, b: BinaryOp, x: &str, y: &str, dtype: DType) -> String {
        use BinaryOp as B;
        // ONNX orders numbers only; nnc orders bools as 0 < 1.
        let ordered = matches!(b, B::Lt | B::Le | B::Gt | B::Ge) && dtype == DType::Bool;
        let (x, y) = if ordered {
            let to = vec![attr_int("to", data_type::INT32 as i64)];
            (self.op("Cast", &[x], to.clone()), self.op("Cast", &[y], to))
        } else {
            (x.to_owned(), y.to_owned())
        };
        let name = match b {
            B::Add => "Add",
            B::Sub => "Sub",
            B::Mul => "Mul",
            B::Div if dtype == DType::I32 => return self.int_div(&x, &y),
            B::Div => "Div",
            B::Pow => "Pow",
            B::Max => "Max",
            B::Min => "Min",
            B::Lt => "Less",
            B::Le => "LessOrEqual",
            B::Gt => "Greater",
            B::Ge => "GreaterOrEqual",
            B::Eq => "Equal",
            B::Ne => {
                let eq = self.op("Equal", &[&x, &y], vec![]);
                return self.op("Not", &[&eq], vec![]);
            }
            B::And => "And",
            B::Or => "Or",
        };
        self.op(name, &[&x, &y], vec![])
    }

    /// nnc's integer division: floor division (Python's `//`), `x / 0 = 0`,
    /// `i32::MIN / -1` wrapping to `i32::MIN`. ONNX's truncates and leaves
    /// both corners undefined, so neither divisor reaches it.
    fn int_div(&mut self, x: &str, y: &str) -> String {
        let [zero, one, minus, min] = [0.0, 1.0, -1.0, f64::from(i32::MIN)].map(|v| self.scalar(DType::I32, v));
        let by_zero = self.op("Equal", &[y, &zero], vec![]);
        let (is_min, by_minus) = (self.op("Equal", &[x, &min], vec![]), self.op("Equal", &[y, &minus], vec![]));
        let wraps = self.op("And", &[&is_min, &by_minus], vec![]);
        let bad = self.op("Or", &[&by_zero, &wraps], vec![]);
        let d = self.op("Where", &[&bad, &one, y], vec![]);
        let q = self.op("Div", &[x, &d], vec![]);
        // Truncation rounds toward zero: one less where the remainder is
        // not 0 and its sign differs from the divisor's.
        let p = self.op("Mul", &[&q, &d], vec![]);
        let r = self.op("Sub", &[x, &p], vec![]);
        let exact = self.op("Equal", &[&r, &zero], vec![]);
        let inexact = self.op("Not", &[&exact], vec![]);
        let (r_neg, d_neg) = (self.op("Less", &[&r, &zero], vec![]), self.op("Less", &[&d, &zero], vec![]));
        let opposite = self.op("Xor", &[&r_neg, &d_neg], vec![]);
        let down = self.op("And", &[&inexact, &opposite], vec![]);
        let down = self.op("Cast", &[&down], vec![attr_int("to", data_type::INT32 as i64)]);
        let q = self.op("Sub", &[&q, &down], vec![]);
        self.op("Where", &[&by_zero, &zero, &q], vec![])
    }

    /// Each element's index along `axis`, as i32.
    fn iota(&mut self, axis: usize, shape: &[Dim]) -> EmitResult<String> {
        let n = shape[axis];
        let line = if n.is_fixed() {
            self.consts(DType::I32, &[n.fixed as usize], (0..n.fixed).map(|v| v as f64))
        } else {
            let n = self.dim(n)?;
            let zero = self.i64s(&[0]);
            let limit = self.op("Squeeze", &[&n, &zero], vec![]);
            let (start, delta) = (self.scalar_i64(0), self.scalar_i64(1));
            let r = self.op("Range", &[&start, &limit, &delta], vec![]);
            self.op("Cast", &[&r], vec![attr_int("to", data_type::INT32 as i64)])
        };
        let others: Vec<i64> = axes((0..shape.len()).filter(|&a| a != axis));
        let line = if others.is_empty() {
            line
        } else {
            let others = self.i64s(&others);
            self.op("Unsqueeze", &[&line, &others], vec![])
        };
        let s = self.shape(shape)?;
        Ok(self.op("Expand", &[&line, &s], vec![]))
    }

    fn scalar_i64(&mut self, v: i64) -> String {
        let name = self.fresh("c");
        self.inits.push(TensorProto {
            dims: vec![],
            data_type: data_type::INT64,
            name: name.clone(),
            raw_data: v.to_le_bytes().to_vec(),
        });
        name
    }

    /// Slice bounds fitted over the two graphs: a bound that grows with the
    /// batch is computed from it.
    fn slice(&mut self, id: NodeId, s: &crate::ir::Slice, x: &str) -> EmitResult<String> {
        let Op::Slice(s2) = &self.g2.node(id).op else {
            return Err("internal error: the two graphs disagree".into());
        };
        let ends: Vec<Dim> = s.end.iter().zip(&s2.end).map(|(&a, &b)| Dim::fit(a, b)).collect::<Result<_, _>>()?;
        let starts = self.i64s(&axes(s.start.iter().copied()));
        let ends = self.shape(&ends)?;
        let steps = self.i64s(&axes(s.step.iter().copied()));
        let all = self.i64s(&axes(0..s.start.len()));
        Ok(self.op("Slice", &[x, &starts, &ends, &all, &steps], vec![]))
    }

    /// A contraction: `MatMul` where the operands are laid out as one
    /// (batch dims leading and in order, lhs `[.., m, k]`, rhs `[.., k, n]`),
    /// else `Einsum`.
    fn contract(&mut self, c: &Contract, l: NodeId, r: NodeId, x: &str, y: &str) -> EmitResult<String> {
        let (lr, rr) = (self.g.node(l).ty.shape.len(), self.g.node(r).ty.shape.len());
        let nb = c.lhs_batch.len();
        let leading = |b: &[usize]| b.iter().enumerate().all(|(i, &d)| i == d);
        let lhs_rows = leading(&c.lhs_batch)
            && c.lhs_contract.len() == 1
            && c.lhs_contract[0] + 1 == lr
            && (lr == nb + 2 || nb == 0);
        let rhs_laid = leading(&c.rhs_batch) && rr == nb + 2;
        if lhs_rows && rhs_laid && c.rhs_contract == [nb] {
            return Ok(self.op("MatMul", &[x, y], vec![]));
        }
        if lhs_rows && rhs_laid && c.rhs_contract == [nb + 1] {
            let perm = axes((0..nb).chain([nb + 1, nb]));
            let t = self.op("Transpose", &[y], vec![attr_ints("perm", perm)]);
            return Ok(self.op("MatMul", &[x, &t], vec![]));
        }
        let letters: Vec<char> = ('a'..='z').chain('A'..='Z').collect();
        if lr + rr > letters.len() {
            return Err("a contraction of too many dims for an einsum equation".into());
        }
        // lhs dims get letters 0..lr; rhs batch and contracted dims reuse
        // their partner's, its free dims get fresh ones.
        let lhs: Vec<char> = (0..lr).map(|d| letters[d]).collect();
        let mut rhs: Vec<char> = (0..rr).map(|d| letters[lr + d]).collect();
        for (&a, &b) in c.lhs_batch.iter().zip(&c.rhs_batch).chain(c.lhs_contract.iter().zip(&c.rhs_contract)) {
            rhs[b] = lhs[a];
        }
        let free = |rank: usize, batch: &[usize], con: &[usize]| crate::ir::ops::contract::free_dims(rank, batch, con);
        let out: String = c
            .lhs_batch
            .iter()
            .map(|&d| lhs[d])
            .chain(free(lr, &c.lhs_batch, &c.lhs_contract).into_iter().map(|d| lhs[d]))
            .chain(free(rr, &c.rhs_batch, &c.rhs_contract).into_iter().map(|d| rhs[d]))
            .collect();
        let eq = format!("{},{}->{out}", lhs.iter().collect::<String>(), rhs.iter().collect::<String>());
        Ok(self.op("Einsum", &[x, y], vec![attr_str("equation", &eq)]))
    }

    /// NHWC image and HWIO kernel to ONNX's NCHW and OIHW, and back.
    fn conv(&mut self, c: &Conv, x: &str, w: &str) -> EmitResult<String> {
        if c.role != ConvRole::Forward {
            return Err("the inference graph holds a convolution's gradient".into());
        }
        let n = c.image.len();
        let a = &c.attrs;
        let to_nchw = self.op("Transpose", &[x], vec![attr_ints("perm", axes([0, n + 1].into_iter().chain(1..=n)))]);
        let to_oihw = self.op("Transpose", &[w], vec![attr_ints("perm", axes([n + 1, n].into_iter().chain(0..n)))]);
        let attrs = vec![
            attr_ints("kernel_shape", axes(c.window.iter().copied())),
            attr_ints("strides", axes(a.stride.iter().copied())),
            attr_ints("dilations", axes(a.dilation.iter().copied())),
            attr_ints("pads", axes(a.pad.iter().map(|p| p[0]).chain(a.pad.iter().map(|p| p[1])))),
            attr_int("group", a.groups as i64),
        ];
        let y = self.op("Conv", &[&to_nchw, &to_oihw], attrs);
        Ok(self.op("Transpose", &[&y], vec![attr_ints("perm", axes([0].into_iter().chain(2..n + 2).chain([1])))]))
    }

    /// `take(data, idx, axis)` where an index outside `[0, dim)` gives 0
    /// (ONNX's Gather would wrap a negative one and fail on a big one).
    fn gather(&mut self, axis: usize, data: NodeId, idx: NodeId, d: &str, i: &str) -> EmitResult<String> {
        let dt = &self.g.node(data).ty;
        let (dtype, dim, rank) = (dt.dtype, dt.shape[axis], dt.shape.len());
        let k = self.g.node(idx).ty.shape.len();
        let zero = self.scalar(DType::I32, 0.0);
        let len = self.scalar(DType::I32, dim as f64);
        let lo = self.op("GreaterOrEqual", &[i, &zero], vec![]);
        let hi = self.op("Less", &[i, &len], vec![]);
        let ok = self.op("And", &[&lo, &hi], vec![]);
        let safe = self.op("Where", &[&ok, i, &zero], vec![]);
        let taken = self.op("Gather", &[d, &safe], vec![attr_int("axis", axis as i64)]);
        let around: Vec<i64> = axes((0..axis).chain(axis + k..rank - 1 + k));
        let ok = if around.is_empty() {
            ok
        } else {
            let around = self.i64s(&around);
            self.op("Unsqueeze", &[&ok, &around], vec![])
        };
        let nothing = self.scalar(dtype, 0.0);
        Ok(self.op("Where", &[&ok, &taken, &nothing], vec![]))
    }
}
