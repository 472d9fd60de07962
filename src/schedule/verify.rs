//! The schedule verifier: what the code generator assumes of a buffer plan,
//! checked after scheduling (cheap enough to run on every compile).
//!
//! 1. Every buffer a kernel names exists and is placed inside its segment
//!    (its slot with the slot's size, the arena, the constants).
//! 2. Every read is of a value already there: a caller's input, a
//!    constant, or a buffer an earlier kernel wrote (a product's epilogue
//!    may read the product it follows).
//! 3. Buffers that share memory are never alive at once: arena neighbours
//!    by the plan, and an in-place output only from the kernel that writes
//!    it, after the last read of the input it replaces.

use super::{Access, BufId, Kernel, KernelBody, Place, Schedule, ScheduleError, SlotRole, StoreMode, elem_size};

fn invalid(m: String) -> Result<(), ScheduleError> {
    Err(ScheduleError::Invalid(format!("schedule verifier: {m}")))
}

pub fn verify(s: &Schedule) -> Result<(), ScheduleError> {
    let n = s.buffers.len();
    // (first kernel that writes, last kernel that touches)
    let mut first_write: Vec<Option<usize>> = vec![None; n];
    let mut last_use: Vec<Option<usize>> = vec![None; n];
    // A slot's buffer holds the caller's value only if no kernel writes it
    // (in an in-place slot, the other buffer is the new value).
    let mut ever_written = vec![false; n];
    for b in s.kernels.iter().flat_map(Kernel::writes) {
        if let Some(w) = ever_written.get_mut(b.index()) {
            *w = true;
        }
    }
    for (k, kernel) in s.kernels.iter().enumerate() {
        for b in kernel.reads().into_iter().chain(kernel.writes()) {
            if b.index() >= n {
                return invalid(format!("kernel {k} ({}) names {b}, which does not exist", kernel.label));
            }
            last_use[b.index()] = Some(k);
        }
        for b in kernel.reads() {
            let ready = match &s.buffers[b.index()].place {
                Place::Slot(i) => s.slots[*i].role != SlotRole::Output && !ever_written[b.index()],
                Place::Const(_) => true,
                Place::Arena(_) => false,
            };
            let written = first_write[b.index()].is_some_and(|w| w < k) || epilogue_reads_product(kernel, b);
            if !ready && !written {
                return invalid(format!("kernel {k} ({}) reads {b} before anything writes it", kernel.label));
            }
        }
        for b in kernel.writes() {
            first_write[b.index()].get_or_insert(k);
        }
    }
    places(s, &last_use)?;
    // An input lives from the start, an output to the end (the caller
    // reads it); in an in-place slot the input is the buffer never written.
    let live = |b: usize| -> Option<(usize, usize)> {
        let written = first_write[b];
        let role = match &s.buffers[b].place {
            Place::Slot(i) => Some(s.slots[*i].role),
            Place::Arena(_) | Place::Const(_) => None,
        };
        let input = written.is_none() && matches!(role, Some(SlotRole::Input | SlotRole::InOut));
        let output = written.is_some() && matches!(role, Some(SlotRole::Output | SlotRole::InOut));
        let start = if input { 0 } else { written.or(last_use[b])? };
        let end = if output { usize::MAX } else { last_use[b].unwrap_or(start) };
        Some((start, end))
    };
    shared_memory(s, &live)
}

/// Whether `b` is the product a Gemm kernel computes before its epilogue.
fn epilogue_reads_product(kernel: &Kernel, b: BufId) -> bool {
    matches!(&kernel.body, KernelBody::Gemm(g) if g.out.buf == b)
}

/// Every buffer a kernel touches is inside its segment (untouched ones are
/// never placed).
fn places(s: &Schedule, last_use: &[Option<usize>]) -> Result<(), ScheduleError> {
    for (i, b) in s.buffers.iter().enumerate().filter(|(i, _)| last_use[*i].is_some()) {
        let bytes = b.bytes();
        let fits = match &b.place {
            Place::Slot(k) => s.slots.get(*k).is_some_and(|slot| {
                slot.shape.iter().product::<usize>() * elem_size(slot.dtype) == bytes && slot.dtype == b.dtype
            }),
            Place::Arena(o) => bytes == 0 || o.checked_add(bytes).is_some_and(|e| e <= s.arena_bytes),
            Place::Const(o) => o.checked_add(bytes).is_some_and(|e| e <= s.consts.len()),
        };
        if !fits {
            return invalid(format!("b{i} ({bytes} bytes at {:?}) is not inside its segment", b.place));
        }
    }
    Ok(())
}

/// Buffers whose bytes overlap must not be alive at the same kernel; an
/// in-place pair (one slot) may meet at the kernel that reads the old value
/// and writes the new one, element by element.
fn shared_memory(s: &Schedule, live: &dyn Fn(usize) -> Option<(usize, usize)>) -> Result<(), ScheduleError> {
    let mut by_memory: Vec<(u8, usize, usize, usize)> = Vec::new(); // (segment, start, end, buffer)
    for (i, b) in s.buffers.iter().enumerate() {
        let (seg, at) = match &b.place {
            Place::Slot(k) => (0, *k),
            Place::Arena(o) => (1, *o),
            Place::Const(_) => continue, // read-only
        };
        let len = if seg == 0 { 1 } else { b.bytes() };
        if len > 0 && live(i).is_some() {
            by_memory.push((seg, at, at + len, i));
        }
    }
    by_memory.sort_unstable();
    for (x, &(seg, _, end, a)) in by_memory.iter().enumerate() {
        for &(seg_b, start_b, _, b) in &by_memory[x + 1..] {
            if seg_b != seg || start_b >= end {
                break;
            }
            let (Some(la), Some(lb)) = (live(a), live(b)) else { continue };
            let (first, second) = if la.0 <= lb.0 { (la, lb) } else { (lb, la) };
            // An in-place pair may meet at one kernel: the one that reads
            // the old value element by element where it writes the new.
            let meet = seg == 0 && first.1 == second.0;
            let apart = first.1 < second.0 || (meet && same_element_only(&s.kernels[second.0], a, b));
            if !apart {
                return invalid(format!(
                    "b{a} (kernels {}..={}) and b{b} (kernels {}..={}) share memory while both are alive",
                    la.0, la.1, lb.0, lb.1
                ));
            }
        }
    }
    Ok(())
}

/// Whether `kernel` touches `a` and `b` (one slot) only as an elementwise
/// in-place update: a loop whose every read of the one is at the view of
/// every store to the other.
fn same_element_only(kernel: &Kernel, a: usize, b: usize) -> bool {
    let KernelBody::Loop(l) = &kernel.body else { return false };
    let stored = |x: usize| l.stores.iter().filter(move |s| s.buf.index() == x);
    let (new, old) = if stored(a).next().is_some() { (a, b) } else { (b, a) };
    let plain = stored(new).all(|s| s.mode == StoreMode::Assign && s.scatter.is_none());
    plain
        && stored(old).next().is_none()
        && l.nodes.iter().all(|n| match n.expr.reads() {
            Access::Element(buf, view) => buf.index() != old || stored(new).all(|s| s.view == *view),
            Access::Indexed(buf) => buf.index() != old,
            Access::Nothing => true,
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{DType, Graph, InputRole, Type};
    use crate::schedule::{Options, schedule};

    /// `y = exp(x) * 2; z = y + y.sum()`: several kernels and arena buffers.
    fn scheduled() -> Schedule {
        let mut g = Graph::new();
        let x = g.input("x", InputRole::Data, Type::new(DType::F32, vec![8, 16])).unwrap();
        let e = g.exp(x).unwrap();
        let y = g.mul_scalar(e, 2.0).unwrap();
        let s = g.sum_all(y).unwrap();
        let z = g.broadcast_binary(crate::ir::BinaryOp::Add, y, s).unwrap();
        g.set_output("z", z).unwrap();
        schedule(&g, Options::default()).unwrap()
    }

    #[test]
    fn a_planned_schedule_verifies() {
        verify(&scheduled()).unwrap();
    }

    #[test]
    fn reading_before_the_write_is_caught() {
        let mut s = scheduled();
        assert!(s.kernels.len() >= 2, "{}", s);
        s.kernels.reverse();
        let e = verify(&s).unwrap_err().to_string();
        assert!(e.contains("before anything writes it"), "{e}");
    }

    #[test]
    fn live_buffers_sharing_memory_are_caught() {
        let mut s = scheduled();
        let arena: Vec<usize> =
            (0..s.buffers.len()).filter(|&b| matches!(s.buffers[b].place, Place::Arena(_))).collect();
        // Every arena buffer at offset 0: some two of them are alive at once.
        for &b in &arena {
            s.buffers[b].place = Place::Arena(0);
        }
        let e = verify(&s).unwrap_err().to_string();
        assert!(e.contains("share memory"), "{e}");
    }

    #[test]
    fn a_buffer_outside_the_arena_is_caught() {
        let mut s = scheduled();
        s.arena_bytes = 0;
        let e = verify(&s).unwrap_err().to_string();
        assert!(e.contains("not inside its segment"), "{e}");
    }
}
