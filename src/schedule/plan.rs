//! The static buffer plan: every arena buffer gets a byte offset such that
//! buffers alive at the same time never overlap. A buffer is alive from the
//! first kernel that touches it to the last; intervals are packed greedily,
//! largest first, each at the lowest offset that fits.

use super::{Place, Schedule, ScheduleError};

/// Alignment of every arena offset: a cache line, and enough for any vector.
pub const ALIGN: usize = 64;

pub(super) fn run(s: &mut Schedule) -> Result<(), ScheduleError> {
    let n = s.buffers.len();
    let mut live: Vec<Option<(usize, usize)>> = vec![None; n];
    for (k, kernel) in s.kernels.iter().enumerate() {
        for b in kernel.reads().into_iter().chain(kernel.writes()) {
            let slot = &mut live[b.index()];
            *slot = Some(slot.map_or((k, k), |(first, _)| (first, k)));
        }
    }
    let mut order: Vec<usize> = (0..n).filter(|&b| matches!(s.buffers[b].place, Place::Arena(_))).collect();
    order.sort_by_key(|&b| std::cmp::Reverse(s.buffers[b].bytes()));
    let mut placed: Vec<(usize, usize, (usize, usize))> = Vec::new(); // (offset, size, live)
    let mut top = 0usize;
    for b in order {
        let size = s.buffers[b].bytes().next_multiple_of(ALIGN);
        let Some(range) = live[b] else {
            s.buffers[b].place = Place::Arena(0);
            continue;
        };
        let mut clashes: Vec<(usize, usize)> =
            placed.iter().filter(|(_, _, r)| r.0 <= range.1 && range.0 <= r.1).map(|&(o, sz, _)| (o, sz)).collect();
        clashes.sort_unstable();
        let mut offset = 0;
        for (o, sz) in clashes {
            if offset + size <= o {
                break;
            }
            offset = offset.max(o + sz);
        }
        placed.push((offset, size, range));
        top = top.max(
            offset
                .checked_add(size)
                .ok_or_else(|| ScheduleError::TooLarge("arena exceeds the address space".into()))?,
        );
        s.buffers[b].place = Place::Arena(offset);
    }
    s.arena_bytes = top;
    Ok(())
}
