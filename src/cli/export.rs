//! `nnc export`.

use crate::export::{self, ExportOptions};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct ExportArgs {
    /// The experiment file.
    file: PathBuf,
    /// The trained weights: a checkpoint written by `nnc run`
    /// (`runs/<exp>-<time>/checkpoints/final.safetensors`).
    #[arg(long, value_name = "CKPT")]
    checkpoint: PathBuf,
    /// The ONNX file to write.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// The experiment whose model to export, when the file has several.
    #[arg(long)]
    experiment: Option<String>,
    /// Override a hyperparameter: `--set hidden=256` (repeatable); must
    /// match the run the checkpoint comes from.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    set: Vec<String>,
}

pub fn export(a: ExportArgs) -> ExitCode {
    let o = ExportOptions {
        file: a.file,
        sets: a.set,
        experiment: a.experiment,
        checkpoint: a.checkpoint,
        output: a.output,
    };
    match export::export(&o) {
        Ok(e) => {
            eprintln!(
                "wrote {} (ONNX opset {}, {} nodes, {} bytes of weights)\n  inputs:  {}\n  outputs: {}",
                o.output.display(),
                export::OPSET,
                e.nodes,
                e.weight_bytes,
                e.inputs.join(", "),
                e.outputs.join(", ")
            );
            ExitCode::SUCCESS
        }
        Err(e) => super::build::fail(e),
    }
}
