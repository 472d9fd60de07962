//! `nnc sample`: text from a trained language model, one token at a time.
//!
//! The model is the experiment's inference graph at batch 1, as `nnc
//! predict` runs it: token ids `[1, T]` in, scores `[1, T, V]` out, the
//! scores at position t being for the token after position t. The tokens
//! fill the window from position 0; once they pass T, the window restarts
//! from the last T/2 of them (llama.cpp's context shift), so that every
//! token is scored at a position the model was trained on.
//!
//! Each token runs the one-position step [`crate::decode`] derives from the
//! graph, with attention's keys and values kept in caches: a token costs one
//! position, O(T) for attention, not a forward pass over the window. Where
//! no such step can be derived (the reason is printed), each token runs the
//! whole window instead, with the same window rule and so the same text.
//!
//! A causal model's scores at a position do not depend on the positions
//! after it. That is checked before the first token, not assumed, and the
//! cached step is checked against the whole window on the prompt: a model
//! that looks ahead would be sampled from wrongly without a word, so it is
//! refused.

use super::BuildError;
use super::model::{Param, bind, set_weights};
use crate::decode::{Decoder, POSITION, decoder, next};
use crate::ir::DType;
use crate::lower::Predict;
use crate::runner::data::{SplitMix64, Vocab};
use crate::runtime::{CompiledStep, Options, RuntimeError};
use std::path::{Path, PathBuf};

/// How the next token is drawn from the model's scores.
#[derive(Clone, Debug)]
pub struct Sampling {
    /// Scores are divided by it before the softmax; 0 takes the best token.
    pub temperature: f64,
    /// Draw only among the k most likely tokens.
    pub top_k: Option<usize>,
    /// Draw only among the most likely tokens whose probabilities add up to p.
    pub top_p: Option<f64>,
}

/// A language model ready to score windows.
pub struct Generator {
    /// The whole window at once: the reference the cached step is checked
    /// against, and the way to run a model with no cached step.
    window: CompiledStep,
    input: String,
    /// Positions in the window (T).
    context: usize,
    /// Scores per position (V).
    scores: usize,
    /// Where the window starts in the tokens so far.
    start: usize,
    cached: Result<Cached, String>,
    pub vocab: Vocab,
}

/// The one-position step and what its caches hold.
struct Cached {
    step: CompiledStep,
    input: String,
    decoder: Decoder,
    /// The window's tokens whose keys and values the caches hold, from position 0.
    tokens: Vec<i32>,
    scratch: Vec<f32>,
}

fn unsupported(m: String) -> BuildError {
    BuildError::Other(format!("cannot sample from this model: {m}"))
}

fn runtime(e: RuntimeError) -> BuildError {
    BuildError::Codegen(e.to_string())
}

/// A trained language model: its inference graph at batch 1, what it reads
/// and scores, its vocabulary and its weights.
pub struct LanguageModel {
    pub graph: crate::ir::Graph,
    /// The token input, i32 `[1, T]`.
    pub input: String,
    /// Positions in the window (T).
    pub context: usize,
    /// Scores per position (V).
    pub scores: usize,
    pub vocab: Vocab,
    pub params: Vec<Param>,
    pub weights: Vec<u8>,
}

impl LanguageModel {
    /// The experiment's model at batch 1 with the weights of `ckpt`, and the
    /// vocabulary of its run (`vocab`, else `vocab.json` beside the run's
    /// `checkpoints/` folder).
    pub fn load(
        file: &Path,
        sets: &[String],
        experiment: Option<String>,
        ckpt: &Path,
        vocab: Option<&Path>,
    ) -> Result<LanguageModel, BuildError> {
        let mut predicts = crate::compile_predict(file, sets, experiment, &[1]).map_err(BuildError::Compile)?;
        let p = predicts.pop().ok_or_else(|| unsupported("no inference graph".into()))?;
        LanguageModel::from_predict(p, ckpt, vocab)
    }

    /// [`LanguageModel::load`] for an inference graph already lowered at batch 1.
    pub fn from_predict(p: Predict, ckpt: &Path, vocab: Option<&Path>) -> Result<LanguageModel, BuildError> {
        let Reads { input, context, classes, scores } = reads(&p)?;
        let vocab = load_vocab(vocab, ckpt)?;
        let fits = vocab.len() <= scores && classes.is_none_or(|c| vocab.len() <= c) && !vocab.is_empty();
        if !fits {
            return Err(unsupported(format!(
                "the vocabulary has {} characters; the model reads ids below {} and scores {scores}",
                vocab.len(),
                classes.map_or("any".into(), |c| c.to_string())
            )));
        }
        let want: Vec<(String, Vec<usize>)> = p.params.iter().map(|p| (p.name.clone(), p.shape.clone())).collect();
        let (params, weights, _) = bind(ckpt, &want)?;
        Ok(LanguageModel { graph: p.graph, input, context, scores, vocab, params, weights })
    }
}

/// What a language model reads and scores.
struct Reads {
    input: String,
    context: usize,
    classes: Option<usize>,
    scores: usize,
}

/// One field of token ids `[T]` in, scores `[1, T, V]` out; else why not.
fn reads(p: &Predict) -> Result<Reads, BuildError> {
    let (input, context, classes) = match p.inputs.as_slice() {
        [f] if f.dtype == DType::I32 && f.shape.len() == 1 => (f.name.clone(), f.shape[0], f.classes),
        fields => {
            let shown: Vec<String> =
                fields.iter().map(|f| format!("`{}`: {}{:?}", f.name, f.dtype.name(), f.shape)).collect();
            return Err(unsupported(format!(
                "it reads {}; sampling needs one field of token ids per sample, i32[T]",
                shown.join(", ")
            )));
        }
    };
    let scores = scores_per_position(&p.graph, context)?;
    Ok(Reads { input, context, classes, scores })
}

/// Whether `p` (an inference graph at batch 1) reads token ids `[1, T]` and
/// scores the next token at every position, `[1, T, V]`.
pub fn is_language_model(p: &Predict) -> bool {
    reads(p).is_ok()
}

/// V of a `[1, T, V]` output: scores over the next token at every position.
fn scores_per_position(g: &crate::ir::Graph, context: usize) -> Result<usize, BuildError> {
    let out = g.output("logits").and_then(|id| g.ty(id).ok()).map(|t| t.shape).unwrap_or_default();
    match out.as_slice() {
        [1, t, v] if *t == context => Ok(*v),
        _ => Err(unsupported(format!(
            "its output has shape {out:?}; sampling needs scores [B, T, V] over the next token at every position of its [B, {context}] input"
        ))),
    }
}

impl Generator {
    /// The model ready to score windows: the whole-window step and, where
    /// [`decoder`] derives one, the one-position step.
    pub fn new(lm: &LanguageModel) -> Result<Generator, BuildError> {
        let window = compile(&lm.graph, &lm.params, &lm.weights)?;
        let cached = match decoder(&lm.graph, &lm.input) {
            Ok(decoder) => {
                let step = compile(&decoder.graph, &lm.params, &lm.weights)?;
                Ok(Cached { step, input: lm.input.clone(), decoder, tokens: Vec::new(), scratch: Vec::new() })
            }
            Err(e) => Err(e.to_string()),
        };
        Ok(Generator {
            window,
            input: lm.input.clone(),
            context: lm.context,
            scores: lm.scores,
            start: 0,
            cached,
            vocab: lm.vocab.clone(),
        })
    }

    /// The one-position step, or why each token runs the whole window.
    pub fn decoder(&self) -> Result<&Decoder, &str> {
        self.cached.as_ref().map(|c| &c.decoder).map_err(String::as_str)
    }

    /// The scores of the token after `ids`, which extend the tokens of the
    /// previous call (or start again): the window rule of the module doc.
    pub fn next_scores(&mut self, ids: &[i32]) -> Result<Vec<f32>, BuildError> {
        if ids.is_empty() {
            return Err(BuildError::Other("no tokens to continue".into()));
        }
        if self.start >= ids.len() {
            self.start = 0;
        }
        if ids.len() - self.start > self.context {
            self.start = ids.len() - self.context.div_ceil(2);
        }
        let window = &ids[self.start..];
        let scores = match &mut self.cached {
            Ok(c) => c.scores(window)?,
            Err(_) => self.window_scores(window, 0)?.pop().unwrap_or_default(),
        };
        Ok(scores[..self.vocab.len()].to_vec())
    }

    /// The scores at every position of `window` (at most T tokens) from one
    /// pass over the whole window, the rest of it filled with `pad`.
    fn window_scores(&mut self, window: &[i32], pad: i32) -> Result<Vec<Vec<f32>>, BuildError> {
        let buf = self.window.input_mut::<i32>(&self.input).map_err(runtime)?;
        buf.fill(pad);
        buf[..window.len()].copy_from_slice(window);
        self.window.run();
        let out = self.window.output::<f32>("logits").map_err(runtime)?;
        Ok(out.chunks(self.scores).take(window.len()).map(<[f32]>::to_vec).collect())
    }

    /// Refuses a model whose scores at a position of `ids` depend on the
    /// positions after it (two paddings must give the same scores), and a
    /// cached step that disagrees with the whole window anywhere on them.
    pub fn check_causal(&mut self, ids: &[i32]) -> Result<(), BuildError> {
        let window = &ids[..ids.len().min(self.context)];
        let a = self.window_scores(window, 0)?;
        if window.len() < self.context {
            let b = self.window_scores(window, self.vocab.len() as i32 - 1)?;
            if let Some(t) = (0..window.len()).find(|&t| apart(&a[t], &b[t])) {
                return Err(unsupported(format!(
                    "its scores at position {t} change with the tokens after it: the model is not causal (mask attention to later positions) and its next-token scores depend on what has not been written yet"
                )));
            }
        }
        if let Ok(c) = &mut self.cached {
            c.tokens.clear();
            for (t, want) in a.iter().enumerate() {
                if apart(&c.scores(&window[..=t])?, want) {
                    return Err(BuildError::Codegen(format!(
                        "the one-position step's scores at position {t} differ from the whole window's; sampling would be wrong (please report this model)"
                    )));
                }
            }
        }
        Ok(())
    }
}

fn apart(a: &[f32], b: &[f32]) -> bool {
    a.iter().zip(b).any(|(x, y)| (x - y).abs() > 1e-4 * (1.0 + x.abs().max(y.abs())))
}

impl Cached {
    /// The scores after the last token of `window`, running the positions
    /// the caches do not hold yet.
    fn scores(&mut self, window: &[i32]) -> Result<Vec<f32>, BuildError> {
        let kept = self.tokens.iter().zip(window).take_while(|(a, b)| a == b).count().min(window.len() - 1);
        self.tokens.truncate(kept);
        if kept == 0 {
            // Rows past the position are masked, but a fresh start is exact.
            for name in &self.decoder.caches {
                self.step.input_mut::<f32>(name).map_err(runtime)?.fill(0.0);
            }
        }
        for &id in &window[kept..] {
            let p = self.tokens.len() as i32;
            self.step.set_input::<i32>(&self.input, &[id]).map_err(runtime)?;
            if let Ok(pos) = self.step.input_mut::<i32>(POSITION) {
                pos[0] = p;
            }
            self.step.run();
            for name in &self.decoder.caches {
                self.scratch.clear();
                self.scratch.extend_from_slice(self.step.output::<f32>(&next(name)).map_err(runtime)?);
                self.step.set_input::<f32>(name, &self.scratch).map_err(runtime)?;
            }
            self.tokens.push(id);
        }
        Ok(self.step.output::<f32>("logits").map_err(runtime)?.to_vec())
    }
}

/// `g` compiled for one thread, with the weights of the parameters it reads.
fn compile(g: &crate::ir::Graph, params: &[Param], weights: &[u8]) -> Result<CompiledStep, BuildError> {
    let opts = Options { in_place: false, threads: 1, c_products: false };
    let mut step = CompiledStep::compile_with(g, opts).map_err(runtime)?;
    set_weights(&mut step, params.iter().filter(|p| g.find_input(&p.name).is_some()), weights)?;
    Ok(step)
}

/// `vocab`, else the run's `vocab.json`: the checkpoint is
/// `runs/<run>/checkpoints/<name>.safetensors`.
fn load_vocab(vocab: Option<&Path>, ckpt: &Path) -> Result<Vocab, BuildError> {
    let path: PathBuf = match vocab {
        Some(p) => p.to_path_buf(),
        None => {
            let run = ckpt.parent().and_then(Path::parent).unwrap_or(Path::new("."));
            let path = run.join("vocab.json");
            if !path.exists() {
                return Err(BuildError::Other(format!(
                    "no vocabulary: {} does not exist (a run of a `text(...)` dataset writes it beside `checkpoints/`); name one with --vocab FILE",
                    path.display()
                )));
            }
            path
        }
    };
    Vocab::load(&path).map_err(|e| BuildError::Other(e.to_string()))
}

/// The next token: the best one at temperature 0, else a draw from the
/// softmax of `scores / temperature` cut to the top k and the top p.
pub fn choose(scores: &[f32], s: &Sampling, rng: &mut SplitMix64) -> usize {
    let best = (0..scores.len()).fold(0, |b, i| if scores[i] > scores[b] { i } else { b });
    if s.temperature <= 0.0 || scores.len() < 2 {
        return best;
    }
    let probs = cut(&softmax(scores, s.temperature), s);
    let total: f64 = probs.iter().map(|&(_, p)| p).sum();
    // 53 random bits: a uniform draw in [0, total).
    let mut u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
    for &(i, p) in &probs {
        if u < p {
            return i;
        }
        u -= p;
    }
    probs.last().map_or(best, |&(i, _)| i)
}

fn softmax(scores: &[f32], temperature: f64) -> Vec<f64> {
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) as f64;
    let e: Vec<f64> = scores.iter().map(|&x| ((x as f64 - max) / temperature).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|x| x / sum).collect()
}

/// The tokens top-k and top-p keep, most likely first (ties by id), with
/// their probabilities (not renormalised: [`choose`] draws within their sum).
fn cut(probs: &[f64], s: &Sampling) -> Vec<(usize, f64)> {
    let mut ranked: Vec<(usize, f64)> = probs.iter().copied().enumerate().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if let Some(k) = s.top_k {
        ranked.truncate(k.max(1));
    }
    if let Some(p) = s.top_p {
        let mut sum = 0.0;
        let keep = ranked.iter().take_while(|&&(_, q)| {
            let before = sum;
            sum += q;
            before < p
        });
        let n = keep.count().max(1);
        ranked.truncate(n);
    }
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampling(temperature: f64, top_k: Option<usize>, top_p: Option<f64>) -> Sampling {
        Sampling { temperature, top_k, top_p }
    }

    fn draws(scores: &[f32], s: &Sampling, n: usize) -> Vec<usize> {
        let mut rng = SplitMix64::new(7);
        let mut counts = vec![0; scores.len()];
        for _ in 0..n {
            counts[choose(scores, s, &mut rng)] += 1;
        }
        counts
    }

    #[test]
    fn temperature_zero_is_the_argmax() {
        let scores = [0.5, 3.0, -1.0, 3.0, 2.9];
        assert_eq!(draws(&scores, &sampling(0.0, None, None), 50), vec![0, 50, 0, 0, 0]);
    }

    #[test]
    fn top_k_and_top_p_never_draw_past_their_cut() {
        let scores = [1.0, 4.0, 3.0, 2.0, 0.0];
        let k = draws(&scores, &sampling(1.0, Some(2), None), 2000);
        assert_eq!((k[0], k[3], k[4]), (0, 0, 0), "{k:?}");
        assert!(k[1] > k[2] && k[2] > 0, "{k:?}");
        // Probabilities 0.64, 0.24, 0.09, ...: p = 0.8 keeps the first two.
        let p = draws(&scores, &sampling(1.0, None, Some(0.8)), 2000);
        assert_eq!((p[0], p[3], p[4]), (0, 0, 0), "{p:?}");
        // A cut below the best token's probability still keeps it.
        assert_eq!(draws(&scores, &sampling(1.0, None, Some(0.01)), 100), vec![0, 100, 0, 0, 0]);
    }

    /// Frequencies over many draws match the softmax: Pearson's chi-square
    /// with 4 degrees of freedom stays under 18.5 (p = 0.001).
    #[test]
    fn draws_follow_the_softmax() {
        let scores = [0.3f32, 1.2, -0.5, 0.9, 0.0];
        for t in [0.5, 1.0, 2.0] {
            let n = 20_000;
            let counts = draws(&scores, &sampling(t, None, None), n);
            let probs = softmax(&scores, t);
            let chi2: f64 = counts
                .iter()
                .zip(&probs)
                .map(|(&c, &p)| {
                    let e = p * n as f64;
                    (c as f64 - e).powi(2) / e
                })
                .sum();
            assert!(chi2 < 18.5, "temperature {t}: chi-square {chi2}, counts {counts:?}, probs {probs:?}");
        }
    }
}
