//! A small, portable, serialisable PRNG for shuffling.
//!
//! SplitMix64 (Steele, Lea & Flood 2014): one u64 of state, integer-only
//! arithmetic, so the same seed gives the same stream on every platform and a
//! checkpoint stores the whole generator as one number. It is not
//! cryptographic and does not need to be.

use serde::{Deserialize, Serialize};

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The SplitMix64 output function: a strong 64-bit mixer.
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64 generator. The state is public so a checkpoint can store it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SplitMix64 {
    pub state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    /// The generator for `epoch` of a run seeded with `seed`. Deriving it from
    /// (seed, epoch) rather than chaining epochs means any epoch's order can
    /// be rebuilt without replaying the earlier ones.
    pub fn for_epoch(seed: u64, epoch: u64) -> Self {
        SplitMix64::new(mix64(seed ^ mix64(epoch.wrapping_add(GOLDEN))))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN);
        mix64(self.state)
    }

    /// Uniform in `0..n` without modulo bias (Lemire's multiply-and-reject).
    /// Returns 0 when `n == 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        let mut m = u128::from(self.next_u64()) * u128::from(n);
        if (m as u64) < n {
            // Reject the few low products that would over-represent some values.
            let threshold = n.wrapping_neg() % n;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(n);
            }
        }
        (m >> 64) as u64
    }

    /// Fisher–Yates: every permutation equally likely.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            // `i + 1` fits in u64 and the result is <= i, so both casts are lossless.
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_answer_vector() {
        // Reference values of SplitMix64 seeded with 0 (from the public-domain C code).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn below_stays_in_range_and_covers() {
        let mut r = SplitMix64::new(7);
        let mut seen = [false; 7];
        for _ in 0..1000 {
            let x = r.below(7);
            assert!(x < 7);
            seen[x as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
        assert_eq!(r.below(0), 0);
        assert_eq!(r.below(1), 0);
    }

    #[test]
    fn state_round_trips_through_json() {
        let mut r = SplitMix64::new(42);
        r.next_u64();
        let json = serde_json::to_string(&r).expect("serialise");
        let mut back: SplitMix64 = serde_json::from_str(&json).expect("deserialise");
        assert_eq!(back.next_u64(), r.next_u64());
    }

    #[test]
    fn epochs_differ() {
        let a = SplitMix64::for_epoch(1, 0).next_u64();
        let b = SplitMix64::for_epoch(1, 1).next_u64();
        let c = SplitMix64::for_epoch(2, 0).next_u64();
        assert!(a != b && a != c);
    }
}
