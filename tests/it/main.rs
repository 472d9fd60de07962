//! The integration tests, one crate: each module below was its own test
//! crate, and each of those linked the whole compiler. One crate links it
//! once. `tests/README.md` says where each kind of test goes.

mod arith;
mod batchnorm;
mod build_cli;
mod check_cli;
mod codegen_fusion;
mod codegen_math;
mod codegen_mnist;
mod codegen_ops;
mod common;
mod conv;
mod data_batch;
mod data_formats;
mod data_mnist;
mod decode;
mod eval_cli;
mod export_onnx;
mod finetune;
mod fuzz_check;
mod ir_builder;
mod ir_golden;
mod ir_grad;
mod ir_interp;
mod ir_opt;
mod ir_print;
mod ir_util;
mod op_table;
mod oracle;
mod plot_cli;
mod predict_outputs;
mod profile_cli;
mod run_cli;
mod run_interp;
mod sample_cli;
mod shape_rules;
mod std_grad;
mod summary_cli;
mod tensorboard_cli;
mod torch_import;
mod ui;
mod watch_cli;
