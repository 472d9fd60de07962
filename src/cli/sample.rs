//! `nnc sample`: generate text from a trained language model.

use crate::build::BuildError;
use crate::build::sample::{Generator, LanguageModel, Sampling, choose};
use crate::runner::data::SplitMix64;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct SampleArgs {
    /// The experiment file the model was trained with.
    file: PathBuf,
    /// The trained weights (`runs/<run>/checkpoints/final.safetensors`).
    #[arg(long, value_name = "CKPT")]
    checkpoint: PathBuf,
    /// The text to continue; every character must be in the vocabulary.
    #[arg(long, default_value = "\n")]
    prompt: String,
    /// How many characters to write after the prompt.
    #[arg(long, default_value_t = 200)]
    tokens: usize,
    /// Divides the scores before the softmax: below 1 is more conservative,
    /// above 1 more varied; 0 always takes the most likely character.
    #[arg(long, default_value_t = 0.8, value_parser = temperature)]
    temperature: f64,
    /// Draw only among the K most likely characters.
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(1..))]
    top_k: Option<u64>,
    /// Draw only among the most likely characters whose probabilities add up
    /// to P (nucleus sampling), 0 < P <= 1.
    #[arg(long, value_name = "P", value_parser = top_p)]
    top_p: Option<f64>,
    /// The same seed writes the same text.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The run's vocabulary; by default `vocab.json` of the checkpoint's run.
    #[arg(long, value_name = "FILE")]
    vocab: Option<PathBuf>,
    /// The experiment whose model to run, when the file has several.
    #[arg(long)]
    experiment: Option<String>,
    /// Override a hyperparameter: `--set d=256` (repeatable); must match the
    /// run the checkpoint comes from.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

fn temperature(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t.is_finite() && t >= 0.0 => Ok(t),
        _ => Err("expected a number >= 0".into()),
    }
}

fn top_p(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if p > 0.0 && p <= 1.0 => Ok(p),
        _ => Err("expected a number in (0, 1]".into()),
    }
}

pub fn sample(a: SampleArgs) -> ExitCode {
    match generate(&a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => super::build::fail(e),
    }
}

/// Writes the prompt, then each character as it is drawn.
fn generate(a: &SampleArgs) -> Result<(), BuildError> {
    let loading = Instant::now();
    let lm = LanguageModel::load(&a.file, &a.set, a.experiment.clone(), &a.checkpoint, a.vocab.as_deref())?;
    let mut g = Generator::new(&lm)?;
    let mut ids = Vec::with_capacity(a.prompt.chars().count() + a.tokens);
    for c in a.prompt.chars() {
        let id = g.vocab.id(c).ok_or_else(|| {
            BuildError::Other(format!(
                "the prompt's {c:?} is not in the model's vocabulary of {} characters",
                g.vocab.len()
            ))
        })?;
        ids.push(id);
    }
    if ids.is_empty() {
        return Err(BuildError::Other("the prompt is empty: give at least one character to continue".into()));
    }
    g.check_causal(&ids)?;
    if let Err(why) = g.decoder() {
        eprintln!("note: every token runs the whole window (no key/value cache): {why}");
    }
    let s = Sampling { temperature: a.temperature, top_k: a.top_k.map(|k| k as usize), top_p: a.top_p };
    let mut rng = SplitMix64::new(a.seed);
    let (loaded, sampling) = (loading.elapsed(), Instant::now());
    let mut out = std::io::stdout().lock();
    // A closed pipe (`| head`) ends the text quietly.
    let _ = write!(out, "{}", a.prompt);
    for _ in 0..a.tokens {
        let scores = g.next_scores(&ids)?;
        let id = choose(&scores, &s, &mut rng) as i32;
        ids.push(id);
        // `choose` picks among the vocabulary's scores, so `id` decodes.
        let c = g.vocab.char(id).unwrap_or(char::REPLACEMENT_CHARACTER);
        if write!(out, "{c}").and_then(|()| out.flush()).is_err() {
            return Ok(());
        }
    }
    let _ = writeln!(out);
    let took = sampling.elapsed();
    eprintln!(
        "{} tokens in {:.1} ms ({:.3} ms per token; loaded and compiled in {:.0} ms)",
        a.tokens,
        took.as_secs_f64() * 1e3,
        took.as_secs_f64() * 1e3 / a.tokens.max(1) as f64,
        loaded.as_secs_f64() * 1e3
    );
    Ok(())
}
