//! The threads a step splits big kernels across.
//!
//! A step runs tens of kernels in a few hundred microseconds, so handing a
//! kernel to another thread must cost about a microsecond: workers spin on
//! a job counter while steps are running and sleep on a condition variable
//! once idle for a while. A job is cut into fixed chunks (contiguous ranges
//! of the kernel's split axis, the same for every run, so results never
//! depend on timing); the caller and the workers claim chunks until none is
//! left. A worker the OS has descheduled (a busy machine) then costs at most
//! the chunk it already claimed, not a wait for it to start.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::FlushDenormals;

/// A generated kernel: `(arena, consts, slots, start, end)`.
pub type KernelFn = unsafe extern "C" fn(*mut u8, *mut u8, *const *mut u8, i64, i64);

/// How long an idle worker spins before it sleeps.
const SPIN: Duration = Duration::from_micros(300);

/// Chunks per thread for loops; products take one each (every call of
/// the `gemm` crate packs its operands again).
const CHUNKS_PER_THREAD: i64 = 4;

/// One job, published by bumping the epoch. Fields are atomics because a
/// late worker may read them while the next job is being written: it then
/// fails to claim a chunk (the claim word carries the epoch) and drops
/// what it read.
#[derive(Default)]
struct Job {
    f: AtomicUsize,
    arena: AtomicUsize,
    consts: AtomicUsize,
    slots: AtomicUsize,
    n: AtomicI64,
    grain: AtomicI64,
    chunks: AtomicI64,
}

#[derive(Clone, Copy)]
struct JobCopy {
    f: usize,
    arena: usize,
    consts: usize,
    slots: usize,
    n: i64,
    grain: i64,
    chunks: i64,
}

impl Job {
    fn read(&self) -> JobCopy {
        let r = Ordering::Relaxed;
        JobCopy {
            f: self.f.load(r),
            arena: self.arena.load(r),
            consts: self.consts.load(r),
            slots: self.slots.load(r),
            n: self.n.load(r),
            grain: self.grain.load(r),
            chunks: self.chunks.load(r),
        }
    }

    fn write(&self, j: JobCopy) {
        let r = Ordering::Relaxed;
        self.f.store(j.f, r);
        self.arena.store(j.arena, r);
        self.consts.store(j.consts, r);
        self.slots.store(j.slots, r);
        self.n.store(j.n, r);
        self.grain.store(j.grain, r);
        self.chunks.store(j.chunks, r);
    }
}

/// The state workers share with the caller.
pub struct Shared {
    threads: usize,
    /// Bumped once per job (and on shutdown).
    epoch: AtomicU64,
    /// `epoch << 32 | next unclaimed chunk` of the current job.
    claim: AtomicU64,
    /// Chunks of the current job finished.
    done: AtomicI64,
    stop: AtomicBool,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    wake: Condvar,
    job: Job,
}

pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// A pool running jobs on `threads` threads: the caller and
    /// `threads - 1` workers.
    pub fn new(threads: usize) -> Pool {
        let shared = Arc::new(Shared {
            threads: threads.max(1),
            epoch: AtomicU64::new(0),
            claim: AtomicU64::new(0),
            done: AtomicI64::new(0),
            stop: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wake: Condvar::new(),
            job: Job::default(),
        });
        let workers = (1..shared.threads)
            .filter_map(|w| {
                let s = Arc::clone(&shared);
                std::thread::Builder::new().name(format!("nnc-worker-{w}")).spawn(move || worker(&s)).ok()
            })
            .collect::<Vec<_>>();
        let complete = workers.len() + 1 == shared.threads;
        let pool = Pool { shared, workers };
        if complete {
            pool
        } else {
            // A thread that failed to start: run on this one rather than
            // wait for a share nobody runs.
            drop(pool);
            Pool::new(1)
        }
    }

    pub fn threads(&self) -> usize {
        self.shared.threads
    }

    /// The pointer generated code passes back to [`nnc_rt_parallel`].
    pub fn handle(&self) -> *const Shared {
        Arc::as_ptr(&self.shared)
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.epoch.fetch_add(1, Ordering::SeqCst);
        drop(self.shared.lock.lock());
        self.shared.wake.notify_all();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Chunk `i` of `chunks` of `n` units: contiguous, boundaries on
/// multiples of `grain` where there is room for that.
fn share(n: i64, grain: i64, chunks: i64, i: i64) -> (i64, i64) {
    let g = if n >= grain * chunks { grain.max(1) } else { 1 };
    let at = |k: i64| if k == chunks { n } else { (n * k / chunks) / g * g };
    (at(i), at(i + 1))
}

/// Claims and runs chunks of job `epoch` until none is left.
fn run_chunks(s: &Shared, epoch: u64, job: &JobCopy) {
    let tag = (epoch & 0xffff_ffff) << 32;
    let mut cur = s.claim.load(Ordering::Acquire);
    loop {
        if cur & !0xffff_ffff != tag || (cur & 0xffff_ffff) as i64 >= job.chunks {
            return;
        }
        match s.claim.compare_exchange_weak(cur, cur + 1, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                let (start, end) = share(job.n, job.grain, job.chunks, (cur & 0xffff_ffff) as i64);
                if start < end {
                    // SAFETY: `f` is a generated kernel (see `nnc_rt_parallel`);
                    // chunks are disjoint ranges of its units.
                    unsafe {
                        let f = std::mem::transmute::<usize, KernelFn>(job.f);
                        f(job.arena as *mut u8, job.consts as *mut u8, job.slots as *const *mut u8, start, end);
                    }
                }
                s.done.fetch_add(1, Ordering::AcqRel);
                cur = s.claim.load(Ordering::Acquire);
            }
            Err(now) => cur = now,
        }
    }
}

fn worker(s: &Shared) {
    let _ftz = FlushDenormals::new();
    let mut seen = 0u64;
    loop {
        let mut idle = Instant::now();
        let mut spins = 0u32;
        loop {
            let e = s.epoch.load(Ordering::Acquire);
            if e != seen {
                seen = e;
                break;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(256) || idle.elapsed() < SPIN {
                std::hint::spin_loop();
                continue;
            }
            let mut g = s.lock.lock().unwrap_or_else(|p| p.into_inner());
            s.sleepers.fetch_add(1, Ordering::SeqCst);
            while s.epoch.load(Ordering::SeqCst) == seen {
                g = s.wake.wait(g).unwrap_or_else(|p| p.into_inner());
            }
            s.sleepers.fetch_sub(1, Ordering::SeqCst);
            idle = Instant::now();
        }
        if s.stop.load(Ordering::SeqCst) {
            return;
        }
        let job = s.job.read();
        run_chunks(s, seen, &job);
    }
}

/// Runs `f` over units `[0, n)`, cut into chunks that the pool's threads
/// run concurrently; returns when all are done.
///
/// # Safety
/// `pool` comes from [`Pool::handle`] of a live pool not running another
/// job, and `f` with the other arguments is a generated kernel that may be
/// called on disjoint ranges concurrently.
pub unsafe extern "C" fn nnc_rt_parallel(
    pool: *const Shared,
    f: KernelFn,
    arena: *mut u8,
    consts: *mut u8,
    slots: *const *mut u8,
    n: i64,
    grain: i64,
) {
    // SAFETY: guaranteed by the caller.
    let s = unsafe { &*pool };
    // A negative grain marks a product: one chunk per thread.
    let per = if grain < 0 { 1 } else { CHUNKS_PER_THREAD };
    let chunks = (s.threads as i64 * per).min(n).max(1);
    let job = JobCopy {
        f: f as usize,
        arena: arena as usize,
        consts: consts as usize,
        slots: slots as usize,
        n,
        grain: grain.abs(),
        chunks,
    };
    s.job.write(job);
    s.done.store(0, Ordering::Relaxed);
    let epoch = s.epoch.load(Ordering::Relaxed) + 1;
    s.claim.store((epoch & 0xffff_ffff) << 32, Ordering::Release);
    s.epoch.store(epoch, Ordering::SeqCst);
    if s.sleepers.load(Ordering::SeqCst) > 0 {
        drop(s.lock.lock());
        s.wake.notify_all();
    }
    run_chunks(s, epoch, &job);
    let start = Instant::now();
    let mut spins = 0u32;
    while s.done.load(Ordering::Acquire) < chunks {
        spins = spins.wrapping_add(1);
        // A worker holding a chunk may have lost its core: let it have ours.
        if spins.is_multiple_of(64) && start.elapsed() > Duration::from_micros(20) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn shares_cover_the_range_once() {
        for (n, grain, t) in [(100, 16, 2), (7, 16, 3), (1000, 4, 5), (1, 1, 2)] {
            let mut next = 0;
            for i in 0..t {
                let (s, e) = share(n, grain, t, i);
                assert_eq!(s, next);
                assert!(e >= s);
                next = e;
            }
            assert_eq!(next, n);
        }
    }
}
