//! The model a build compiles: its inference graphs (optimized), its
//! inputs, its output and what it means, and the checkpoint's weights laid
//! out for embedding.

use super::BuildError;
use crate::ir::Graph;
use crate::lower::{DataField, Meaning};
use crate::runner::checkpoint;
use crate::schedule::{self, Schedule};
use std::path::Path;

/// Weights start on 64-byte boundaries (cache lines, whole vectors).
const ALIGN: usize = 64;

/// One parameter's place in [`Model::weights`].
pub struct Param {
    pub name: String,
    pub shape: Vec<usize>,
    /// Byte offset.
    pub offset: usize,
}

impl Param {
    /// Its f32 values in `weights`, little-endian.
    pub fn bytes<'w>(&self, weights: &'w [u8]) -> &'w [u8] {
        &weights[self.offset..self.offset + self.shape.iter().product::<usize>() * 4]
    }
}

/// The inference step for one batch size.
pub struct Step {
    pub batch: usize,
    pub schedule: Schedule,
}

pub struct Model {
    /// One per batch size, in the order asked for.
    pub steps: Vec<Step>,
    /// The raw fields the model reads, per sample, in the dataset's order:
    /// one input file each.
    pub inputs: Vec<DataField>,
    /// The shape of one sample's output (no batch axis).
    pub output: Vec<usize>,
    pub meaning: Meaning,
    /// Each class's name, when the checkpoint's training data named them.
    pub class_names: Option<Vec<String>>,
    pub params: Vec<Param>,
    /// Every parameter's f32 values, little-endian, at its offset.
    pub weights: Vec<u8>,
}

impl Model {
    /// Lower `file`'s inference graph for each of `batches` and bind the
    /// weights of `ckpt` to it.
    pub fn load(
        file: &Path,
        sets: &[String],
        experiment: Option<String>,
        ckpt: &Path,
        batches: &[usize],
    ) -> Result<Model, BuildError> {
        let predicts = crate::compile_predict(file, sets, experiment, batches).map_err(BuildError::Compile)?;
        let first = predicts.first().ok_or_else(|| BuildError::Unsupported("no batch size asked for".into()))?;
        if first.inputs.is_empty() {
            return Err(BuildError::Unsupported(
                "the model reads no field of the dataset: there is nothing to predict from".into(),
            ));
        }
        let inputs = first.inputs.clone();
        let output = output_shape(&first.graph)?;
        let want: Vec<(String, Vec<usize>)> = first.params.iter().map(|p| (p.name.clone(), p.shape.clone())).collect();
        let (params, weights, class_names) = bind(ckpt, &want)?;
        let steps = predicts.iter().map(|p| step(p.batch, &p.graph)).collect::<Result<_, _>>()?;
        let mut m = Model { steps, inputs, output, meaning: first.meaning, class_names: None, params, weights };
        m.class_names = class_names.filter(|n| m.meaning == Meaning::ClassScores && n.len() == m.classes());
        Ok(m)
    }

    /// Values of one sample's output.
    pub fn output_size(&self) -> usize {
        self.output.iter().product()
    }

    /// Classes per score vector: the last axis of class scores, else 2.
    pub fn classes(&self) -> usize {
        match self.meaning {
            Meaning::ClassScores => self.output.last().copied().unwrap_or(1),
            _ => 2,
        }
    }

    /// Classes each sample gets: one per score vector of class scores, one
    /// per value of a binary output, none for plain values.
    pub fn positions(&self) -> usize {
        match self.meaning {
            Meaning::ClassScores => self.output_size() / self.classes().max(1),
            Meaning::BinaryLogits | Meaning::Probabilities => self.output_size(),
            Meaning::Values => 0,
        }
    }

    /// Values of one sample's probabilities: the softmax of one score
    /// vector, the sigmoid of binary logits, a bce model's own output.
    pub fn probs_size(&self) -> usize {
        match self.meaning {
            Meaning::ClassScores if self.positions() == 1 => self.output_size(),
            Meaning::BinaryLogits | Meaning::Probabilities => self.output_size(),
            _ => 0,
        }
    }

    /// Elements of one sample of input `i`.
    pub fn input_size(&self, i: usize) -> usize {
        self.inputs[i].shape.iter().product()
    }
}

fn step(batch: usize, g: &Graph) -> Result<Step, BuildError> {
    Ok(Step { batch, schedule: scheduled(g)? })
}

/// `g` optimized and scheduled into kernels, every output in its own slot.
pub(super) fn scheduled(g: &Graph) -> Result<Schedule, BuildError> {
    let p = schedule::prepare(g, schedule::Options { in_place: false }).map_err(|e| match e {
        schedule::ScheduleError::Invalid(_) => BuildError::Codegen(format!("internal compiler error: {e}")),
        schedule::ScheduleError::TooLarge(_) => BuildError::Codegen(e.to_string()),
    })?;
    Ok(p.schedule)
}

/// The shape of one sample's output: the model's output without its batch axis.
fn output_shape(g: &Graph) -> Result<Vec<usize>, BuildError> {
    let t = g.output("logits").and_then(|id| g.ty(id).ok());
    match t.map(|t| t.shape) {
        Some(s) if !s.is_empty() => Ok(s[1..].to_vec()),
        s => Err(BuildError::Unsupported(format!(
            "the model's output has shape {:?}; it needs a batch axis in front",
            s.unwrap_or_default()
        ))),
    }
}

/// The checkpoint's tensors for `want`, checked by name and shape (extra
/// tensors, such as optimizer states, are ignored), laid out in one buffer.
pub(crate) type Bound = (Vec<Param>, Vec<u8>, Option<Vec<String>>);

pub(crate) fn bind(ckpt: &Path, want: &[(String, Vec<usize>)]) -> Result<Bound, BuildError> {
    let (tensors, progress) = checkpoint::load(ckpt).map_err(|e| BuildError::Other(e.to_string()))?;
    let mut problems = checkpoint::missing(&tensors, want);
    // A diverged run's weights would predict NaN for every input.
    for (name, _) in want {
        if let Some((_, values)) = tensors.get(name)
            && let Some(i) = values.iter().position(|v| !v.is_finite())
        {
            problems.push(format!("`{name}` holds {} at element {i}: the weights are not finite", values[i]));
        }
    }
    if !problems.is_empty() {
        return Err(BuildError::Checkpoint { path: ckpt.into(), problems });
    }
    let mut weights = Vec::new();
    let mut params = Vec::with_capacity(want.len());
    for (name, shape) in want {
        // `missing` found every wanted name present.
        let Some((_, values)) = tensors.get(name) else { continue };
        weights.resize(weights.len().next_multiple_of(ALIGN), 0);
        params.push(Param { name: name.clone(), shape: shape.clone(), offset: weights.len() });
        weights.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    }
    weights.resize(weights.len().next_multiple_of(ALIGN).max(ALIGN), 0);
    Ok((params, weights, progress.and_then(|p| p.class_names)))
}

/// Loads the weights of `params` (laid out in `weights` by [`bind`]) into a
/// JIT-compiled step.
pub(super) fn set_weights<'a>(
    step: &mut crate::runtime::CompiledStep,
    params: impl IntoIterator<Item = &'a Param>,
    weights: &[u8],
) -> Result<(), BuildError> {
    for p in params {
        let values: Vec<f32> =
            p.bytes(weights).chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
        step.set_input::<f32>(&p.name, &values).map_err(|e| BuildError::Codegen(e.to_string()))?;
    }
    Ok(())
}
