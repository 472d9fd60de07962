//! Compiled steps kept for the rest of the process, keyed by the graphs
//! they were compiled from: the points of a sweep that differ only in what
//! is fed at run time (the learning rate, the seed, the data) compile once.

use super::engine::Engine;
use super::{Backend, RunError};
use crate::ir::Graph;
use std::cell::RefCell;
use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

thread_local! {
    // Native steps hold raw buffer pointers and are not `Send`: one cache per thread.
    static CACHE: RefCell<HashMap<u64, (Engine, Option<Engine>)>> = RefCell::new(HashMap::new());
}

/// The identity of a pair of steps: their graphs' text and how they run.
pub fn key(train: &Graph, eval: &Graph, backend: Backend, threads: usize) -> u64 {
    let mut h = DefaultHasher::new();
    train.to_string().hash(&mut h);
    eval.to_string().hash(&mut h);
    format!("{backend:?}/{threads}").hash(&mut h);
    h.finish()
}

/// The cached training step for `key` and the evaluation step when an
/// earlier run compiled it, or a freshly compiled training step. Every
/// buffer a run reads is written by it before use, so reuse cannot leak
/// state.
pub fn take(key: u64, train: &Graph, backend: Backend, threads: usize) -> Result<(Engine, Option<Engine>), RunError> {
    if let Some(pair) = CACHE.with(|c| c.borrow_mut().remove(&key)) {
        return Ok(pair);
    }
    Ok((Engine::new(train, backend, threads)?, None))
}

pub fn put(key: u64, pair: (Engine, Option<Engine>)) {
    CACHE.with(|c| c.borrow_mut().insert(key, pair));
}
