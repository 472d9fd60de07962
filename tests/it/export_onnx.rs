//! `nnc export`: the ONNX file of every kind of model runs, in tract (a
//! Rust ONNX runtime, always) and onnxruntime (`benches/onnx_compare.py`,
//! where Python has it), to the outputs `nnc predict` prints, at any batch
//! size. Every IR op kind, from the op table, exports to ONNX operators that
//! compute what the interpreter does, corners included.

use super::common::{mnist_test, nnc, scratch, write_idx};
use crate::ir_util::{Rng, declare, feeds};
use nnc::export::onnx::{self, ModelProto};
use nnc::ir::interp::{self, Precision};
use nnc::ir::{BinaryOp, DType, Graph, OpKind, Type};
use prost::Message;
use std::path::{Path, PathBuf};
use tract_onnx::prelude::*;

/// Runs an ONNX model in tract on `inputs` (in the model's input order);
/// every output as f64 values.
fn tract_run(model: &[u8], inputs: Vec<Tensor>) -> TractResult<Vec<Vec<f64>>> {
    let mut m = tract_onnx::onnx().model_for_read(&mut &model[..])?;
    for (i, t) in inputs.iter().enumerate() {
        m = m.with_input_fact(i, InferenceFact::dt_shape(t.datum_type(), t.shape()))?;
    }
    let plan = m.into_optimized()?.into_runnable()?;
    let outs = plan.run(inputs.into_iter().map(|t| t.into_tvalue()).collect())?;
    outs.iter().map(|o| Ok(o.cast_to::<f64>()?.to_plain_array_view::<f64>()?.iter().copied().collect())).collect()
}

fn close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: {} values, want {}", got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let same = (g.is_nan() && w.is_nan()) || (g - w).abs() <= tol * (1.0 + w.abs());
        assert!(same, "{what}: value {i} is {g}, want {w}");
    }
}

/// Every kind of op, from `op_table`'s cases: exported with fixed shapes
/// (its differentiable inputs as initializers, the others as inputs), run
/// in tract, compared with the interpreter. Random numbers and scatters are
/// no inference ops: they are refused, with a reason.
#[test]
fn every_op_kind_exports_like_the_interpreter() {
    for (k, &kind) in OpKind::ALL.iter().enumerate() {
        let mut rng = Rng(40 + k as u64);
        let (args, f) = crate::op_table::case(kind, &mut rng);
        let mut g = Graph::unfolded();
        let ids = declare(&mut g, &args);
        let out = f(&mut g, &ids).unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        g.set_output("y", out).unwrap();
        let weight = |name: &str| {
            let a = args.iter().find(|a| a.name == name)?;
            Some(a.data.iter().flat_map(|&v| (v as f32).to_le_bytes()).collect())
        };
        let model = nnc::export::onnx_model(&g, &g, &weight);
        if matches!(kind, OpKind::Random | OpKind::ScatterAdd) {
            let e = model.err().unwrap_or_else(|| panic!("{kind:?}: exported"));
            assert!(e.contains("random") || e.contains("scatter"), "{kind:?}: {e}");
            continue;
        }
        let model = model.unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        let want = interp::run(&g, &feeds(&args), Precision::F32).unwrap();
        let data: Vec<Tensor> = args.iter().filter(|a| !a.diff).map(|a| tensor(&a.ty, &a.data)).collect();
        let got = tract_run(&model.encode_to_vec(), data).unwrap_or_else(|e| panic!("{kind:?}: {e:?}"));
        close(&got[0], &want[0].to_f64s(), 1e-5, &format!("{kind:?}"));
    }
}

/// A tract tensor of `ty` holding `data`.
fn tensor(ty: &Type, data: &[f64]) -> Tensor {
    let s = &ty.shape;
    match ty.dtype {
        DType::F32 => Tensor::from_shape(s, &data.iter().map(|&v| v as f32).collect::<Vec<_>>()),
        DType::I32 => Tensor::from_shape(s, &data.iter().map(|&v| v as i32).collect::<Vec<_>>()),
        DType::Bool => Tensor::from_shape(s, &data.iter().map(|&v| v != 0.0).collect::<Vec<_>>()),
        DType::U8 => Tensor::from_shape(s, &data.iter().map(|&v| v as u8).collect::<Vec<_>>()),
    }
    .unwrap()
}

/// What ONNX leaves open or defines otherwise, exported to nnc's meaning:
/// a gather index outside the table gives 0 (ONNX wraps negatives, fails
/// on big ones), integer division floors and gives 0 for a zero divisor
/// (ONNX's truncates, and leaves that undefined), bools compare as 0 < 1.
#[test]
fn corners_onnx_defines_otherwise_keep_nnc_semantics() {
    let ids_ty = Type::new(DType::I32, vec![7]);
    let mut g = Graph::unfolded();
    let table = g.input("table", nnc::ir::InputRole::Data, Type::f32(vec![3, 2])).unwrap();
    let ids = g.input("ids", nnc::ir::InputRole::Data, ids_ty.clone()).unwrap();
    let den = g.input("den", nnc::ir::InputRole::Data, ids_ty.clone()).unwrap();
    let rows = g.gather(table, ids, 0).unwrap();
    g.set_output("rows", rows).unwrap();
    let q = g.binary(BinaryOp::Div, ids, den).unwrap();
    g.set_output("quotient", q).unwrap();
    let big = g.binary(BinaryOp::Gt, ids, den).unwrap();
    let small = g.binary(BinaryOp::Lt, ids, den).unwrap();
    let order = g.binary(BinaryOp::Lt, big, small).unwrap();
    g.set_output("order", order).unwrap();
    let table_v = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let (ids_v, den_v) = ([2.0, -1.0, 3.0, 0.0, 7.0, -2147483648.0, -7.0], [0.0, 2.0, -2.0, 0.0, 3.0, -1.0, -2.0]);
    let model = nnc::export::onnx_model(&g, &g, &|_| None).unwrap();
    let inputs = vec![tensor(&Type::f32(vec![3, 2]), &table_v), tensor(&ids_ty, &ids_v), tensor(&ids_ty, &den_v)];
    let got = tract_run(&model.encode_to_vec(), inputs).unwrap();
    let feed =
        [("table", Type::f32(vec![3, 2]), &table_v[..]), ("ids", ids_ty.clone(), &ids_v), ("den", ids_ty, &den_v)];
    let feed = feed.iter().map(|(n, t, d)| (n.to_string(), crate::ir_util::value(t, d))).collect();
    let want = interp::run(&g, &feed, Precision::F32).unwrap();
    assert_eq!(got[0], [5.0, 6.0, 0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "rows");
    for (i, name) in ["rows", "quotient", "order"].iter().enumerate() {
        close(&got[i], &want[i].to_f64s(), 0.0, name);
    }
    assert_eq!(got[1], [0.0, -1.0, -2.0, 0.0, 2.0, -2147483648.0, 3.0], "quotient");
}

const IMAGES: usize = 12;

/// The first MNIST test images as an uncompressed IDX file, and their pixels.
fn images(path: &Path) -> Vec<u8> {
    let pixels = mnist_test("images", IMAGES, 784);
    write_idx(path, &[IMAGES, 28, 28], &pixels);
    pixels
}

fn ok(out: std::process::Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Trains `file` on `samples` samples for one epoch, exports it and
/// predicts `input` with it: the ONNX file and nnc's raw outputs.
fn exported(file: &str, dir: &Path, samples: &str, input: &Path) -> (PathBuf, Vec<Vec<f64>>) {
    exported_all(file, dir, samples, &[input])
}

/// As [`exported`], with one file per input of the model.
fn exported_all(file: &str, dir: &Path, samples: &str, inputs: &[&Path]) -> (PathBuf, Vec<Vec<f64>>) {
    let run = ["run", file, "--train-samples", samples, "--epochs", "1", "--eval-samples", "16", "--quiet", "--out"];
    ok(nnc().args(run).arg(dir.join("run")).output().unwrap());
    let ckpt = dir.join("run/checkpoints/final.safetensors");
    let onnx = dir.join("model.onnx");
    let out = nnc().args(["export", file, "--checkpoint"]).arg(&ckpt).arg("-o").arg(&onnx).output().unwrap();
    assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
    let predict = ["predict", file, "--output", "raw", "--json", "--checkpoint"];
    let json = ok(nnc().args(predict).arg(&ckpt).args(inputs).output().unwrap());
    let rows = json
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["output"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect()
        })
        .collect();
    onnx_runtime_agrees(&onnx, inputs, &json, dir);
    (onnx, rows)
}

/// `benches/onnx_compare.py` runs the file in onnxruntime and compares
/// with nnc's output (skipped where Python or onnxruntime is missing).
fn onnx_runtime_agrees(onnx: &Path, inputs: &[&Path], predicted: &str, dir: &Path) {
    let expect = dir.join("predicted.jsonl");
    std::fs::write(&expect, predicted).unwrap();
    let python = std::env::var("NNC_PYTHON").unwrap_or_else(|_| "python3".into());
    let run = std::process::Command::new(&python)
        .arg("benches/onnx_compare.py")
        .arg(onnx)
        .args(inputs)
        .arg("--expect")
        .arg(&expect)
        .output();
    match run.as_ref().map(|o| o.status.code()) {
        Ok(Some(0)) => {}
        Ok(Some(2)) | Err(_) => eprintln!("skipped: onnxruntime is not importable from {python}"),
        _ => {
            let o = run.unwrap();
            panic!(
                "onnxruntime disagrees: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        }
    }
}

/// Runs the exported file at batch 1 (each sample alone) and at the whole
/// batch: both give nnc's outputs.
fn tract_agrees(onnx: &Path, input: Tensor, want: &[Vec<f64>], what: &str) {
    tract_agrees_all(onnx, vec![input], want, what);
}

fn tract_agrees_all(onnx: &Path, inputs: Vec<Tensor>, want: &[Vec<f64>], what: &str) {
    let bytes = std::fs::read(onnx).unwrap();
    let all = tract_run(&bytes, inputs.clone()).unwrap_or_else(|e| panic!("{what}: {e:?}"));
    close(&all[0], &want.concat(), 1e-4, &format!("{what}, batch {}", want.len()));
    let one = inputs.iter().map(|t| t.slice(0, 0, 1).unwrap()).collect();
    let first = tract_run(&bytes, one).unwrap();
    close(&first[0], &want[0], 1e-4, &format!("{what}, batch 1"));
}

fn image_models(models: &[(&str, &str)]) {
    for (file, samples) in models {
        let name = Path::new(file).file_stem().unwrap().to_string_lossy().into_owned();
        let dir = scratch("export_onnx", &name);
        let input = dir.join("images.idx");
        let pixels = images(&input);
        let (onnx, want) = exported(file, &dir, samples, &input);
        let x = Tensor::from_shape(&[IMAGES, 28, 28], &pixels).unwrap();
        tract_agrees(&onnx, x, &want, file);
    }
}

#[test]
fn the_mlp_cnn_and_resnet_export_like_predict() {
    image_models(&[("examples/mnist.nn", "500"), ("examples/mnist_cnn.nn", "200"), ("examples/resnet.nn", "64")]);
}

#[test]
fn models_that_are_no_classifiers_export_like_predict() {
    image_models(&[
        ("examples/autoencoder.nn", "200"),
        ("tests/fixtures/outputs/regression.nn", "200"),
        ("tests/fixtures/outputs/binary.nn", "200"),
    ]);
}

/// A model of two inputs (images and their labels) exports with both.
#[test]
fn a_model_of_two_inputs_exports_like_predict() {
    let dir = scratch("export_onnx", "conditional");
    let (image_file, labels) = (dir.join("images.idx"), dir.join("labels.idx"));
    let pixels = images(&image_file);
    let bytes = mnist_test("labels", IMAGES, 1);
    write_idx(&labels, &[IMAGES], &bytes);
    let digits: Vec<i32> = bytes.iter().map(|&l| i32::from(l)).collect();
    let (onnx, want) = exported_all("tests/fixtures/outputs/conditional.nn", &dir, "200", &[&image_file, &labels]);
    let x = Tensor::from_shape(&[IMAGES, 28, 28], &pixels).unwrap();
    let y = Tensor::from_shape(&[IMAGES], &digits).unwrap();
    tract_agrees_all(&onnx, vec![x, y], &want, "conditional");
}

#[test]
fn the_char_transformer_exports_like_predict() {
    let dir = scratch("export_onnx", "char_gpt");
    let text = std::fs::read("data/shakespeare/plays.txt").unwrap();
    let ids: Vec<i32> =
        (0..4).flat_map(|s| text[s * 1000..s * 1000 + 64].iter().map(|&c| i32::from(c.min(127)))).collect();
    let csv: Vec<String> =
        ids.chunks(64).map(|r| r.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",")).collect();
    let input = dir.join("ids.csv");
    std::fs::write(&input, csv.join("\n")).unwrap();
    let (onnx, want) = exported("examples/char_gpt.nn", &dir, "32", &input);
    tract_agrees(&onnx, Tensor::from_shape(&[4, 64], &ids).unwrap(), &want, "char_gpt");
    predictor_agrees("examples/char_gpt.nn", &dir, &input);
}

/// `nnc build --emit predictor` of a language model: an executable that
/// prints the scores at every position as `nnc predict` does, byte for byte
/// (skipped without a C compiler).
fn predictor_agrees(file: &str, dir: &Path, input: &Path) {
    if !std::process::Command::new("cc").arg("--version").output().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: no C compiler `cc`");
        return;
    }
    let ckpt = dir.join("run/checkpoints/final.safetensors");
    let exe = dir.join("predictor");
    let build = ["build", file, "--emit", "predictor", "-o"];
    ok(nnc().args(build).arg(&exe).arg("--checkpoint").arg(&ckpt).output().unwrap());
    for mode in ["raw", "class"] {
        let jit =
            ok(nnc().args(["predict", file, "--output", mode, "--checkpoint"]).arg(&ckpt).arg(input).output().unwrap());
        let built = ok(std::process::Command::new(&exe).args(["--output", mode]).arg(input).output().unwrap());
        assert_eq!(built, jit, "--output {mode}");
    }
}

/// A checkpoint of another model is refused with each tensor that does not
/// fit, and no file is written.
#[test]
fn a_checkpoint_of_another_model_is_refused() {
    let dir = scratch("export_onnx", "mismatch");
    let run = ["run", "examples/autoencoder.nn", "--train-samples", "64", "--epochs", "1", "--eval-samples", "16"];
    ok(nnc().args(run).args(["--quiet", "--out"]).arg(dir.join("run")).output().unwrap());
    let onnx = dir.join("model.onnx");
    let out = nnc()
        .args(["export", "examples/mnist.nn", "--checkpoint"])
        .arg(dir.join("run/checkpoints/final.safetensors"))
        .arg("-o")
        .arg(&onnx)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("does not fit this model") && err.contains("l1.w"), "{err}");
    assert!(!onnx.exists());
}

/// The file declares the batch as a symbol, names its inputs and outputs
/// after the dataset's fields, and holds the checkpoint's weights.
#[test]
fn the_file_has_a_dynamic_batch_and_named_values() {
    let dir = scratch("export_onnx", "layout");
    let input = dir.join("images.idx");
    images(&input);
    let (onnx, _) = exported("examples/mnist.nn", &dir, "100", &input);
    let m = ModelProto::decode(&std::fs::read(onnx).unwrap()[..]).unwrap();
    assert_eq!(m.opset_import[0].version, nnc::export::OPSET);
    let g = m.graph.unwrap();
    let dims = |v: &onnx::ValueInfoProto| match &v.r#type.as_ref().unwrap().value {
        Some(onnx::TypeValue::TensorType(t)) => {
            t.shape.as_ref().unwrap().dim.iter().map(|d| format!("{:?}", d.value.as_ref().unwrap())).collect::<Vec<_>>()
        }
        None => panic!("no tensor type"),
    };
    assert_eq!(g.input.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["image"]);
    assert_eq!(dims(&g.input[0]), [r#"Param("batch")"#, "Value(28)", "Value(28)"]);
    assert_eq!(g.output.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), ["logits", "probs"]);
    assert_eq!(dims(&g.output[0]), [r#"Param("batch")"#, "Value(10)"]);
    let inits: Vec<&str> = g.initializer.iter().filter(|t| t.name.contains('.')).map(|t| t.name.as_str()).collect();
    assert_eq!(inits, ["l1.w", "l1.b", "l2.w", "l2.b"]);
}

/// The field numbers of `nnc::export::onnx`'s messages are the vendored
/// schema's: each field, set alone, is encoded under the number that
/// `src/export/onnx.proto` gives its name in its message.
#[test]
fn message_tags_match_the_vendored_onnx_schema() {
    let schema = std::fs::read_to_string("src/export/onnx.proto").unwrap();
    let tag_of = |message: &str, field: &str| -> u64 {
        let start = schema.find(&format!("message {message} {{")).unwrap_or_else(|| panic!("no message {message}"));
        let body = &schema[start..];
        let line = body
            .lines()
            .map(|l| l.split("//").next().unwrap().trim())
            .find(|l| l.split_whitespace().any(|w| w == field) && l.contains('='))
            .unwrap_or_else(|| panic!("no field {message}.{field}"));
        line.split('=').nth(1).unwrap().trim().trim_end_matches(';').split_whitespace().next().unwrap().parse().unwrap()
    };
    let key = |bytes: Vec<u8>| -> u64 { prost::encoding::decode_varint(&mut &bytes[..]).unwrap() >> 3 };
    use onnx::*;
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("ModelProto", "ir_version", ModelProto { ir_version: 1, ..Default::default() }.encode_to_vec()),
        (
            "ModelProto",
            "opset_import",
            ModelProto { opset_import: vec![Default::default()], ..Default::default() }.encode_to_vec(),
        ),
        ("ModelProto", "producer_name", ModelProto { producer_name: "x".into(), ..Default::default() }.encode_to_vec()),
        (
            "ModelProto",
            "producer_version",
            ModelProto { producer_version: "x".into(), ..Default::default() }.encode_to_vec(),
        ),
        ("ModelProto", "doc_string", ModelProto { doc_string: "x".into(), ..Default::default() }.encode_to_vec()),
        ("ModelProto", "graph", ModelProto { graph: Some(Default::default()), ..Default::default() }.encode_to_vec()),
        (
            "OperatorSetIdProto",
            "domain",
            OperatorSetIdProto { domain: "x".into(), ..Default::default() }.encode_to_vec(),
        ),
        ("OperatorSetIdProto", "version", OperatorSetIdProto { version: 1, ..Default::default() }.encode_to_vec()),
        ("GraphProto", "node", GraphProto { node: vec![Default::default()], ..Default::default() }.encode_to_vec()),
        ("GraphProto", "name", GraphProto { name: "x".into(), ..Default::default() }.encode_to_vec()),
        (
            "GraphProto",
            "initializer",
            GraphProto { initializer: vec![Default::default()], ..Default::default() }.encode_to_vec(),
        ),
        ("GraphProto", "input", GraphProto { input: vec![Default::default()], ..Default::default() }.encode_to_vec()),
        ("GraphProto", "output", GraphProto { output: vec![Default::default()], ..Default::default() }.encode_to_vec()),
        ("NodeProto", "input", NodeProto { input: vec!["x".into()], ..Default::default() }.encode_to_vec()),
        ("NodeProto", "output", NodeProto { output: vec!["x".into()], ..Default::default() }.encode_to_vec()),
        ("NodeProto", "name", NodeProto { name: "x".into(), ..Default::default() }.encode_to_vec()),
        ("NodeProto", "op_type", NodeProto { op_type: "x".into(), ..Default::default() }.encode_to_vec()),
        (
            "NodeProto",
            "attribute",
            NodeProto { attribute: vec![Default::default()], ..Default::default() }.encode_to_vec(),
        ),
        ("AttributeProto", "name", AttributeProto { name: "x".into(), ..Default::default() }.encode_to_vec()),
        ("AttributeProto", "type", AttributeProto { r#type: 1, ..Default::default() }.encode_to_vec()),
        ("AttributeProto", "f", AttributeProto { f: Some(0.0), ..Default::default() }.encode_to_vec()),
        ("AttributeProto", "i", AttributeProto { i: Some(0), ..Default::default() }.encode_to_vec()),
        ("AttributeProto", "s", AttributeProto { s: vec![1], ..Default::default() }.encode_to_vec()),
        ("AttributeProto", "t", AttributeProto { t: Some(Default::default()), ..Default::default() }.encode_to_vec()),
        ("AttributeProto", "ints", AttributeProto { ints: vec![1], ..Default::default() }.encode_to_vec()),
        ("TensorProto", "dims", TensorProto { dims: vec![1], ..Default::default() }.encode_to_vec()),
        ("TensorProto", "data_type", TensorProto { data_type: 1, ..Default::default() }.encode_to_vec()),
        ("TensorProto", "name", TensorProto { name: "x".into(), ..Default::default() }.encode_to_vec()),
        ("TensorProto", "raw_data", TensorProto { raw_data: vec![1], ..Default::default() }.encode_to_vec()),
        ("ValueInfoProto", "name", ValueInfoProto { name: "x".into(), ..Default::default() }.encode_to_vec()),
        (
            "ValueInfoProto",
            "type",
            ValueInfoProto { r#type: Some(Default::default()), ..Default::default() }.encode_to_vec(),
        ),
        (
            "TypeProto",
            "tensor_type",
            TypeProto { value: Some(TypeValue::TensorType(Default::default())) }.encode_to_vec(),
        ),
        ("Tensor", "elem_type", TensorTypeProto { elem_type: 1, ..Default::default() }.encode_to_vec()),
        ("Tensor", "shape", TensorTypeProto { shape: Some(Default::default()), ..Default::default() }.encode_to_vec()),
        ("TensorShapeProto", "dim", TensorShapeProto { dim: vec![Default::default()] }.encode_to_vec()),
        ("Dimension", "dim_value", Dimension { value: Some(DimValue::Value(1)) }.encode_to_vec()),
        ("Dimension", "dim_param", Dimension { value: Some(DimValue::Param("b".into())) }.encode_to_vec()),
    ];
    for (message, field, bytes) in cases {
        assert_eq!(key(bytes), tag_of(message, field), "{message}.{field}");
    }
}
