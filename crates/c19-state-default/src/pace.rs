//! Long batches give their core away now and then.
//!
//! Merging a peer's whole state takes a blocking thread hundreds of milliseconds. On a
//! machine whose cores are all busy, the scheduler lets such a thread run for whole
//! slices (milliseconds) while a preempted async worker, and every request queued on
//! it, waits. Yielding every few thousand entries keeps that wait short, for one
//! `sched_yield` per fraction of a millisecond of merging.

/// Entries handled between two yields.
const ENTRIES_PER_YIELD: u32 = 2048;

/// Counts the entries of a batch and yields the thread every [`ENTRIES_PER_YIELD`].
#[derive(Debug, Default)]
pub(crate) struct Pacer(u32);

impl Pacer {
    /// One more entry handled.
    #[inline]
    pub fn tick(&mut self) {
        self.0 += 1;
        if self.0 == ENTRIES_PER_YIELD {
            self.0 = 0;
            std::thread::yield_now();
        }
    }
}
