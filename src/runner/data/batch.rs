//! Epochs and index batches.
//!
//! An epoch's sample order is a pure function of (seed, epoch), so a run
//! resumed from a checkpoint that stored a [`Cursor`] rebuilds the same order
//! and continues with exactly the batches it would have seen.

use serde::{Deserialize, Serialize};

use super::error::DataError;
use super::rng::SplitMix64;

/// What to do with the final `n % batch_size` samples of an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LastBatch {
    /// Skip them: every batch has exactly `batch_size` samples.
    Drop,
    /// Yield them as one smaller final batch.
    Keep,
}

/// Sample order within an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Order {
    /// 0, 1, 2, ... every epoch (evaluation).
    Sequential,
    /// A fresh uniform permutation per epoch, derived from (seed, epoch).
    Shuffled { seed: u64 },
}

/// Where a run is: the next batch to take in `epoch`. This is what a
/// checkpoint stores to resume mid-epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cursor {
    pub epoch: u64,
    pub batch: usize,
}

/// How a dataset of `n` samples is cut into batches, every epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchPlan {
    n: usize,
    batch_size: usize,
    last: LastBatch,
    order: Order,
}

impl BatchPlan {
    /// Refuses plans whose epochs would be empty, which would otherwise make a
    /// training loop spin without ever taking a step.
    pub fn new(n: usize, batch_size: usize, last: LastBatch, order: Order) -> Result<BatchPlan, DataError> {
        if batch_size == 0 {
            return Err(DataError::Batch { expected: "a batch size of at least 1".into(), found: "0".into() });
        }
        let plan = BatchPlan { n, batch_size, last, order };
        if plan.batches_per_epoch() == 0 {
            return Err(DataError::Batch {
                expected: format!("at least {batch_size} samples for one batch ({last:?} policy)"),
                found: format!("{n} samples"),
            });
        }
        Ok(plan)
    }

    /// Number of samples in the dataset.
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }
    pub fn last_batch(&self) -> LastBatch {
        self.last
    }
    pub fn order(&self) -> Order {
        self.order
    }

    pub fn batches_per_epoch(&self) -> usize {
        match self.last {
            LastBatch::Drop => self.n / self.batch_size,
            LastBatch::Keep => self.n.div_ceil(self.batch_size),
        }
    }

    /// Fill `out` with the sample order of `epoch` (reuses its allocation).
    pub fn order_into(&self, epoch: u64, out: &mut Vec<usize>) {
        out.clear();
        out.extend(0..self.n);
        if let Order::Shuffled { seed } = self.order {
            SplitMix64::for_epoch(seed, epoch).shuffle(out);
        }
    }

    /// The batches of `epoch`, from its first batch.
    pub fn epoch(&self, epoch: u64) -> EpochBatches {
        let mut order = Vec::with_capacity(self.n);
        self.order_into(epoch, &mut order);
        EpochBatches { order, batch_size: self.batch_size, n_batches: self.batches_per_epoch(), epoch, next: 0 }
    }

    /// The batches of `cursor.epoch`, from `cursor.batch` on: identical to
    /// what the uninterrupted epoch would have yielded from that point.
    pub fn resume(&self, cursor: Cursor) -> Result<EpochBatches, DataError> {
        let n_batches = self.batches_per_epoch();
        if cursor.batch > n_batches {
            return Err(DataError::Batch {
                expected: format!("a batch index at most {n_batches}"),
                found: format!("cursor at batch {}", cursor.batch),
            });
        }
        let mut e = self.epoch(cursor.epoch);
        e.next = cursor.batch;
        Ok(e)
    }
}

/// The index batches of one epoch, consumed front to back.
#[derive(Clone, Debug)]
pub struct EpochBatches {
    order: Vec<usize>,
    batch_size: usize,
    n_batches: usize,
    epoch: u64,
    next: usize,
}

impl EpochBatches {
    /// The next batch of sample indices, or `None` when the epoch is done.
    pub fn next_batch(&mut self) -> Option<&[usize]> {
        if self.next >= self.n_batches {
            return None;
        }
        self.next += 1;
        self.batch_at(self.next - 1)
    }

    /// Batch `b` of this epoch, without moving the cursor.
    pub fn batch_at(&self, b: usize) -> Option<&[usize]> {
        if b >= self.n_batches {
            return None;
        }
        let start = b * self.batch_size;
        let end = (start + self.batch_size).min(self.order.len());
        self.order.get(start..end)
    }

    /// Position of the next batch; store this to resume later.
    pub fn cursor(&self) -> Cursor {
        Cursor { epoch: self.epoch, batch: self.next }
    }

    /// Batches not yet taken.
    pub fn remaining(&self) -> usize {
        self.n_batches - self.next
    }

    /// The whole sample order of this epoch.
    pub fn order(&self) -> &[usize] {
        &self.order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(mut e: EpochBatches) -> Vec<Vec<usize>> {
        let mut out = Vec::new();
        while let Some(b) = e.next_batch() {
            out.push(b.to_vec());
        }
        out
    }

    #[test]
    fn zero_batch_size_and_empty_epochs_are_errors() {
        assert!(BatchPlan::new(10, 0, LastBatch::Keep, Order::Sequential).is_err());
        assert!(BatchPlan::new(3, 4, LastBatch::Drop, Order::Sequential).is_err());
        assert!(BatchPlan::new(0, 4, LastBatch::Keep, Order::Sequential).is_err());
        assert!(BatchPlan::new(3, 4, LastBatch::Keep, Order::Sequential).is_ok());
    }

    #[test]
    fn sequential_keep() {
        let plan = BatchPlan::new(5, 2, LastBatch::Keep, Order::Sequential).expect("plan");
        assert_eq!(drain(plan.epoch(0)), vec![vec![0, 1], vec![2, 3], vec![4]]);
    }

    #[test]
    fn resume_past_end_is_error() {
        let plan = BatchPlan::new(5, 2, LastBatch::Drop, Order::Sequential).expect("plan");
        assert!(plan.resume(Cursor { epoch: 0, batch: 3 }).is_err());
        let done = plan.resume(Cursor { epoch: 0, batch: 2 }).expect("at end");
        assert_eq!(done.remaining(), 0);
    }
}
