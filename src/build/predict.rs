//! `nnc predict`: the same inference graphs as a build, run with the JIT,
//! to check a build against. Inputs are read and predictions printed by the
//! built executable's own C code (`io.c`, compiled into nnc by the build
//! script), so both accept the same files and print the same bytes; batches
//! are cut the same way: full batches of the biggest step, then of each
//! smaller one in turn.

use super::BuildError;
use super::OutputMode;
use super::model::{Model, Step};
use crate::ir::DType;
use crate::lower::Meaning;
use crate::runtime::{CompiledStep, Options};
use std::path::{Path, PathBuf};

/// Every sample's output as it is, its probabilities and its classes
/// (where the output's meaning has them; [`Model::positions`] classes and
/// [`Model::probs_size`] probabilities a sample).
pub struct Predictions {
    pub raw: Vec<f32>,
    pub probs: Vec<f32>,
    pub classes: Vec<i32>,
}

fn bad(path: &Path, message: String) -> BuildError {
    BuildError::Io { path: path.to_path_buf(), message }
}

/// What `src/build/io.c` knows of one sample.
#[repr(C)]
struct IoInput {
    rank: usize,
    dims: *const usize,
    size: usize,
    dtype: i32,
}

// SAFETY (for the calls below): io.c reads `len` bytes of `bytes` and
// writes at most the one spare byte after them; it writes at most `cap`
// bytes of `err`, NUL-terminated; results are malloc'd and freed here.
unsafe extern "C" {
    fn nnc_io_read(
        bytes: *mut u8,
        len: usize,
        raw: i32,
        input: *const IoInput,
        n: *mut usize,
        err: *mut std::ffi::c_char,
        cap: usize,
    ) -> *mut f32;
    fn nnc_io_format(
        n: usize,
        ni: usize,
        ints: *const i32,
        nf: usize,
        floats: *const f32,
        key: *const std::ffi::c_char,
        json: i32,
        names: *const *const std::ffi::c_char,
    ) -> *mut std::ffi::c_char;
}

/// The codes of nnc_model.h's NNC_F32, NNC_I32, NNC_U8, NNC_BOOL.
fn dtype_code(d: DType) -> i32 {
    match d {
        DType::F32 => 0,
        DType::I32 => 1,
        DType::U8 => 2,
        DType::Bool => 3,
    }
}

/// The samples of each input file (one per input of the model, in its
/// order) as f32 values, checked against that input by the built
/// executable's own reader (io.c): every file must hold the same number of
/// samples. Returns the values of each input and the sample count.
pub fn read_inputs(m: &Model, paths: &[PathBuf], raw: bool) -> Result<(Vec<Vec<f32>>, usize), BuildError> {
    if paths.len() != m.inputs.len() {
        let names: Vec<&str> = m.inputs.iter().map(|f| f.name.as_str()).collect();
        return Err(BuildError::Other(format!(
            "the model reads {} field{} ({}): give one input file for each, in that order, not {}",
            names.len(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", "),
            paths.len()
        )));
    }
    if paths.iter().filter(|p| p.as_path() == Path::new("-")).count() > 1 {
        return Err(BuildError::Other("- (stdin) can be given for one input only".into()));
    }
    let xs = paths.iter().enumerate().map(|(i, p)| read_input(m, i, p, raw)).collect::<Result<Vec<_>, _>>()?;
    let counts: Vec<usize> = xs.iter().enumerate().map(|(i, x)| x.len() / m.input_size(i).max(1)).collect();
    // The model has at least one input (Model::load), and as many paths.
    if let Some(i) = counts.iter().position(|&c| c != counts[0]) {
        let message = format!("{} samples, but {} holds {}", counts[i], paths[0].display(), counts[0]);
        return Err(bad(&paths[i], message));
    }
    Ok((xs, counts[0]))
}

/// The samples of `path` for input `i`.
fn read_input(m: &Model, i: usize, path: &Path, raw: bool) -> Result<Vec<f32>, BuildError> {
    let mut bytes = if path == Path::new("-") {
        let mut all = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut all).map(|_| all)
    } else {
        std::fs::read(path)
    }
    .map_err(|e| bad(path, e.to_string()))?;
    let len = bytes.len();
    bytes.push(0); // the spare byte io.c's CSV reader writes its terminator into
    let field = &m.inputs[i];
    let dims = &field.shape;
    let size = m.input_size(i);
    let input = IoInput { rank: dims.len(), dims: dims.as_ptr(), size, dtype: dtype_code(field.dtype) };
    let mut err = [0 as std::ffi::c_char; 512];
    let mut n = 0usize;
    // SAFETY: see the extern block; `bytes` has len + 1 bytes.
    let x =
        unsafe { nnc_io_read(bytes.as_mut_ptr(), len, i32::from(raw), &input, &mut n, err.as_mut_ptr(), err.len()) };
    if x.is_null() {
        // SAFETY: io.c NUL-terminates what it writes into `err` (zeroed above).
        let why = unsafe { std::ffi::CStr::from_ptr(err.as_ptr()) };
        return Err(bad(path, why.to_string_lossy().into_owned()));
    }
    // SAFETY: on success `x` holds n * size floats, malloc'd by io.c.
    let values = unsafe { std::slice::from_raw_parts(x, n * size) }.to_vec();
    unsafe { libc::free(x.cast()) };
    Ok(values)
}

/// A compiled step with the weights loaded.
fn compile(m: &Model, s: &Step) -> Result<CompiledStep, BuildError> {
    let err = |e: crate::runtime::RuntimeError| BuildError::Codegen(e.to_string());
    let opts = Options { in_place: false, threads: 1, c_products: true };
    let mut step = CompiledStep::from_schedule(s.schedule.clone(), opts).map_err(err)?;
    super::model::set_weights(&mut step, &m.params, &m.weights)?;
    Ok(step)
}

/// Runs the `n` samples of `xs`, one buffer per input (checked by
/// [`read_inputs`]).
pub fn predict(m: &Model, xs: &[Vec<f32>], n: usize) -> Result<Predictions, BuildError> {
    let mut out = Predictions { raw: Vec::new(), probs: Vec::new(), classes: Vec::new() };
    let mut done = 0;
    for s in m.steps.iter().rev() {
        let mut step = compile(m, s)?;
        while n - done >= s.batch {
            for (i, (field, x)) in m.inputs.iter().zip(xs).enumerate() {
                let per = m.input_size(i);
                set(&mut step, &field.name, field.dtype, &x[done * per..(done + s.batch) * per])?;
            }
            step.run();
            let err = |e: crate::runtime::RuntimeError| BuildError::Codegen(e.to_string());
            let raw = step.output::<f32>("logits").map_err(err)?.to_vec();
            let raw = &raw[..];
            match m.meaning {
                Meaning::ClassScores => out.classes.extend(raw.chunks_exact(m.classes()).map(argmax)),
                Meaning::BinaryLogits => out.classes.extend(raw.iter().map(|&z| i32::from(z > 0.0))),
                Meaning::Probabilities => out.classes.extend(raw.iter().map(|&p| i32::from(p > 0.5))),
                Meaning::Values => {}
            }
            match m.meaning {
                Meaning::Probabilities => out.probs.extend_from_slice(raw),
                _ if m.probs_size() > 0 => out.probs.extend_from_slice(step.output::<f32>("probs").map_err(err)?),
                _ => {}
            }
            out.raw.extend_from_slice(raw);
            done += s.batch;
        }
    }
    Ok(out)
}

fn set(step: &mut CompiledStep, name: &str, dtype: DType, x: &[f32]) -> Result<(), BuildError> {
    let r = match dtype {
        DType::F32 => step.set_input::<f32>(name, x),
        DType::U8 => step.set_input::<u8>(name, &x.iter().map(|&v| v as u8).collect::<Vec<_>>()),
        DType::I32 => step.set_input::<i32>(name, &x.iter().map(|&v| v as i32).collect::<Vec<_>>()),
        DType::Bool => step.set_input::<bool>(name, &x.iter().map(|&v| v != 0.0).collect::<Vec<_>>()),
    };
    r.map_err(|e| BuildError::Codegen(e.to_string()))
}

/// The first index of the largest value (as the shim).
fn argmax(l: &[f32]) -> i32 {
    (1..l.len()).fold(0, |best, i| if l[i] > l[best] { i } else { best }) as i32
}

/// One line per sample, or a JSON object: io.c's printer, so the text is
/// byte for byte the built executable's. `class`: the classes, then the
/// probabilities when there are; `probs`: the probabilities; `raw`: the
/// model's output values.
pub fn format(m: &Model, p: &Predictions, mode: OutputMode, n: usize, json: bool) -> Result<String, BuildError> {
    let (ni, nf, floats, key) = match mode {
        OutputMode::Class => (m.positions(), m.probs_size(), &p.probs, c"probs"),
        OutputMode::Probs => (0, m.probs_size(), &p.probs, c"probs"),
        OutputMode::Raw => (0, m.output_size(), &p.raw, c"output"),
    };
    // Names come from a CSV cell: no NUL inside (a line of text).
    let owned: Vec<std::ffi::CString> =
        m.class_names.iter().flatten().filter_map(|n| std::ffi::CString::new(n.as_str()).ok()).collect();
    let ptrs: Vec<*const std::ffi::c_char> = owned.iter().map(|c| c.as_ptr()).collect();
    let named = mode == OutputMode::Class && m.class_names.is_some() && ptrs.len() == m.classes();
    let names = if named { ptrs.as_ptr() } else { std::ptr::null() };
    // SAFETY: `classes` holds n * ni ids (each below classes(), the length
    // of `names` when not null) and `floats` n * nf values; io.c returns a
    // malloc'd NUL-terminated string or NULL.
    let text =
        unsafe { nnc_io_format(n, ni, p.classes.as_ptr(), nf, floats.as_ptr(), key.as_ptr(), i32::from(json), names) };
    if text.is_null() {
        return Err(BuildError::Other("out of memory formatting the predictions".into()));
    }
    // SAFETY: non-null, NUL-terminated, owned by us from here.
    let out = unsafe { std::ffi::CStr::from_ptr(text) }.to_string_lossy().into_owned();
    unsafe { libc::free(text.cast()) };
    Ok(out)
}
