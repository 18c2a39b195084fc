//! A counting semaphore usable from both blocking and async callers: the bound on jobs
//! running at once (and on compiles, which take a job's slot).

use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// At most `limit` holders at once; [`Permits::acquire`] blocks until a slot frees.
#[derive(Debug)]
pub(crate) struct Permits {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Permits {
    /// A semaphore with `limit` slots (at least one).
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            free: Mutex::new(limit.max(1)),
            freed: Condvar::new(),
        }
    }

    /// Slots free now.
    pub(crate) fn free(&self) -> usize {
        *self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Blocks the current thread until a slot is free and takes it. The permit owns a handle
    /// on the semaphore, so it can move to another thread.
    pub(crate) fn acquire(self: &Arc<Self>) -> Permit {
        // The counter stays consistent even if a holder panicked, so poison is ignored.
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= 1;
        Permit {
            permits: self.clone(),
        }
    }
}

/// A held slot, given back on drop.
#[must_use = "the slot is released when the permit is dropped"]
pub(crate) struct Permit {
    permits: Arc<Permits>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut free = self
            .permits
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *free += 1;
        self.permits.freed.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::Permits;

    #[test]
    fn never_more_holders_than_slots() {
        let permits = Arc::new(Permits::new(3));
        let (active, peak) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let threads: Vec<_> = (0..12)
            .map(|_| {
                let (permits, active, peak) = (permits.clone(), active.clone(), peak.clone());
                std::thread::spawn(move || {
                    let _permit = permits.acquire();
                    let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    active.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert_eq!(*permits.free.lock().unwrap(), 3, "every slot came back");
    }

    #[test]
    fn zero_slots_means_one() {
        let permits = Arc::new(Permits::new(0));
        drop(permits.acquire());
        drop(permits.acquire());
    }
}
