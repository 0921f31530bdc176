//! Emptied buffers handed back for reuse. A thread that fills buffers which another thread
//! frees got fresh pages from the allocator for each (zeroed by the kernel: up to a fifth of
//! the thread's time), so consumers give emptied buffers back here and producers take them.
//!
//! Invariant: at most `max` buffers are kept; one given back beyond that is freed.

use std::sync::Mutex;

pub struct Spare<T> {
    kept: Mutex<Vec<T>>,
    max: usize,
}

impl<T> Spare<T> {
    pub const fn new(max: usize) -> Spare<T> {
        Spare {
            kept: Mutex::new(Vec::new()),
            max,
        }
    }

    /// A buffer given back, if there is one.
    pub fn take(&self) -> Option<T> {
        self.kept.lock().ok()?.pop()
    }

    /// Keeps `t` for reuse, unless `max` are kept already.
    pub fn give(&self, t: T) {
        if let Ok(mut kept) = self.kept.lock()
            && kept.len() < self.max
        {
            kept.push(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_its_bound_and_hands_back_the_last_given() {
        let spare = Spare::new(2);
        assert_eq!(spare.take(), None::<u8>);
        for i in 0..5 {
            spare.give(i);
        }
        assert_eq!(
            (spare.take(), spare.take(), spare.take()),
            (Some(1), Some(0), None)
        );
    }
}
