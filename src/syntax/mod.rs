//! The front end's first stage: `.nn` text → AST with spans.

pub mod ast;
mod errors;
mod parse;

pub use parse::{parse, parse_expr};
