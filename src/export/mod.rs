//! `nnc export`: a trained experiment's inference graph as an ONNX model
//! (opset 17), the checkpoint's weights as initializers, the dataset's raw
//! fields as named inputs with a symbolic batch axis, `logits` (and
//! `probs` where the loss gives the output a reading) as outputs.
//!
//! The stages: lower the inference graph at two batch sizes and optimize
//! both ([`batch`] fits every dim to the batch), write each IR node as ONNX
//! operators ([`emit`]), encode the messages of the vendored schema
//! ([`onnx`]) and write the file atomically.

pub mod batch;
mod emit;
pub mod onnx;

use crate::build::BuildError;
use crate::ir::{Graph, InputRole, Op};
use batch::Dim;
use emit::{Emitter, attr_int, onnx_dtype};
use onnx::{
    DimValue, Dimension, GraphProto, ModelProto, OperatorSetIdProto, TensorShapeProto, TensorTypeProto, TypeProto,
    TypeValue, ValueInfoProto,
};
use prost::Message;
use std::path::PathBuf;

/// The operator set written: 17 has every operator used here, and is read
/// by onnxruntime, tract and ONNX's own checker.
pub const OPSET: i64 = 17;
/// The IR version of opset 17's release (ONNX 1.12).
const IR_VERSION: i64 = 8;

pub struct ExportOptions {
    pub file: PathBuf,
    pub sets: Vec<String>,
    pub experiment: Option<String>,
    pub checkpoint: PathBuf,
    pub output: PathBuf,
}

/// What an export wrote.
pub struct Exported {
    /// `name: dtype[dims]` of each input and output.
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub nodes: usize,
    pub weight_bytes: usize,
}

pub fn export(o: &ExportOptions) -> Result<Exported, BuildError> {
    let predicts =
        crate::compile_predict(&o.file, &o.sets, o.experiment.clone(), &batch::SIZES).map_err(BuildError::Compile)?;
    let graphs = predicts
        .iter()
        .map(|p| crate::opt::optimize(&p.graph))
        .collect::<Result<Vec<Graph>, _>>()
        .map_err(|e| BuildError::Codegen(format!("internal compiler error: optimizing: {e}")))?;
    let [g1, g2] = graphs.as_slice() else { unreachable!("two batch sizes were lowered") };
    let want: Vec<(String, Vec<usize>)> =
        predicts[0].params.iter().map(|p| (p.name.clone(), p.shape.clone())).collect();
    let (params, weights, _) = crate::build::model::bind(&o.checkpoint, &want)?;
    let weight = |name: &str| params.iter().find(|p| p.name == name).map(|p| p.bytes(&weights).to_vec());
    let mut model = onnx_model(g1, g2, &weight).map_err(BuildError::Unsupported)?;
    model.doc_string = format!("{} with the weights of {}", o.file.display(), o.checkpoint.display());
    if let Some(g) = model.graph.as_mut() {
        g.name = o.file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    }
    let graph = model.graph.as_ref();
    let described = |v: Option<&Vec<ValueInfoProto>>| v.into_iter().flatten().map(describe).collect();
    let done = Exported {
        inputs: described(graph.map(|g| &g.input)),
        outputs: described(graph.map(|g| &g.output)),
        nodes: graph.map_or(0, |g| g.node.len()),
        weight_bytes: graph.map_or(0, |g| g.initializer.iter().map(|t| t.raw_data.len()).sum()),
    };
    crate::runner::checkpoint::write_atomic(&o.output, &model.encode_to_vec())
        .map_err(|err| crate::build::io_err(&o.output, err))?;
    Ok(done)
}

/// The ONNX model of the inference graph `g1`, `g2` being the same graph
/// lowered at the second batch size of [`batch::SIZES`] (pass `g1` twice
/// for fixed shapes). Data inputs become the model's inputs, parameters
/// and buffers initializers holding `weight(name)` (f32, little-endian).
pub fn onnx_model(g1: &Graph, g2: &Graph, weight: &dyn Fn(&str) -> Option<Vec<u8>>) -> Result<ModelProto, String> {
    let shapes = batch::shapes(g1, g2)?;
    let mut e = Emitter::new(g1, g2, &shapes);
    let mut inputs = Vec::new();
    for &id in g1.inputs() {
        let Op::Input(x) = &g1.node(id).op else { continue };
        match x.role {
            InputRole::Data => {
                inputs.push(value_info(&x.name, onnx_dtype(x.ty.dtype), &shapes[id.index()]));
                if e.batch.is_none() && !x.ty.shape.is_empty() {
                    let b = e.op("Shape", &[&x.name], vec![attr_int("start", 0), attr_int("end", 1)]);
                    e.batch = Some(b);
                }
            }
            InputRole::Param | InputRole::State => {
                let bytes =
                    weight(&x.name).ok_or_else(|| format!("internal error: parameter `{}` was not bound", x.name))?;
                e.init(x.name.clone(), x.ty.dtype, &x.ty.shape, bytes);
            }
            InputRole::Scalar | InputRole::RngKey => {
                return Err(format!("the inference graph reads `{}`, a training-step input", x.name));
            }
        }
        e.names[id.index()] = Some(x.name.clone());
    }
    let needed = needed(g1);
    for id in g1.ids().filter(|id| needed[id.index()] && !matches!(g1.node(*id).op, Op::Input(_))) {
        e.node(id).map_err(|m| format!("{m} (node %{}: {})", id.0, g1.node(id).op.name()))?;
    }
    let mut outputs = Vec::new();
    for (name, id) in g1.outputs() {
        let v = e.names[id.index()].clone().unwrap_or_default();
        e.op_into("Identity", &[&v], vec![], name.clone());
        outputs.push(value_info(name, onnx_dtype(g1.node(*id).ty.dtype), &shapes[id.index()]));
    }
    let graph = GraphProto {
        node: std::mem::take(&mut e.nodes),
        name: "nnc".into(),
        initializer: std::mem::take(&mut e.inits),
        input: inputs,
        output: outputs,
    };
    Ok(ModelProto {
        ir_version: IR_VERSION,
        opset_import: vec![OperatorSetIdProto { domain: String::new(), version: OPSET }],
        producer_name: "nnc".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        doc_string: String::new(),
        graph: Some(graph),
    })
}

/// The nodes some output depends on through the operands ONNX reads
/// ([`emit::operands`]): a broadcast every reader looks through is not written.
fn needed(g: &Graph) -> Vec<bool> {
    let mut needed = vec![false; g.len()];
    g.outputs().iter().for_each(|(_, id)| needed[id.index()] = true);
    for id in g.ids().rev() {
        if !needed[id.index()] {
            continue;
        }
        for o in emit::operands(g, id) {
            if let emit::Operand::Value(v) = o {
                needed[v.index()] = true;
            }
        }
    }
    needed
}

/// A tensor value's name, element type and shape, the batch as `batch`.
fn value_info(name: &str, elem_type: i32, shape: &[Dim]) -> ValueInfoProto {
    let dim = shape
        .iter()
        .map(|d| Dimension {
            value: Some(if d.is_fixed() { DimValue::Value(d.fixed) } else { DimValue::Param(d.to_string()) }),
        })
        .collect();
    let tensor = TensorTypeProto { elem_type, shape: Some(TensorShapeProto { dim }) };
    ValueInfoProto { name: name.into(), r#type: Some(TypeProto { value: Some(TypeValue::TensorType(tensor)) }) }
}

fn describe(v: &ValueInfoProto) -> String {
    let Some(TypeProto { value: Some(TypeValue::TensorType(t)) }) = &v.r#type else { return v.name.clone() };
    let dtype = match t.elem_type {
        onnx::data_type::FLOAT => "f32",
        onnx::data_type::INT32 => "i32",
        onnx::data_type::BOOL => "bool",
        onnx::data_type::UINT8 => "u8",
        _ => "?",
    };
    let dims: Vec<String> = t
        .shape
        .iter()
        .flat_map(|s| &s.dim)
        .map(|d| match &d.value {
            Some(DimValue::Value(v)) => v.to_string(),
            Some(DimValue::Param(p)) => p.clone(),
            None => "?".into(),
        })
        .collect();
    format!("{}: {dtype}[{}]", v.name, dims.join(", "))
}
