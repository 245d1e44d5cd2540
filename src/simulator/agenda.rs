//! The discrete-event core: simulated time jumps from one event to the next, kept in a binary
//! heap; nothing sleeps. Events due at the same time come out in the order they were put in,
//! so a run is deterministic.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

struct Entry<E> {
    at: f64,
    seq: u64,
    event: E,
}

impl<E> PartialEq for Entry<E> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl<E> Eq for Entry<E> {}
impl<E> PartialOrd for Entry<E> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<E> Ord for Entry<E> {
    // BinaryHeap is a max-heap: the earliest (then the first put) is the greatest
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at
            .total_cmp(&self.at)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Events of type `E` on a simulated clock that starts at 0 (seconds).
pub struct Agenda<E> {
    heap: BinaryHeap<Entry<E>>,
    seq: u64,
    now: f64,
}

impl<E> Default for Agenda<E> {
    fn default() -> Self {
        Agenda {
            heap: BinaryHeap::new(),
            seq: 0,
            now: 0.0,
        }
    }
}

impl<E> Agenda<E> {
    /// The simulated time: that of the last event taken.
    pub fn now(&self) -> f64 {
        self.now
    }

    /// Puts `event` `delay` seconds from now (never in the past).
    pub fn after(&mut self, delay: f64, event: E) {
        self.seq += 1;
        self.heap.push(Entry {
            at: self.now + delay.max(0.0),
            seq: self.seq,
            event,
        });
    }

    /// Takes the next event if it is due before `until`, and moves the clock to it. (As
    /// SimPy's `run(until=…)`, which the original uses: what is due at `until` itself does
    /// not happen.)
    pub fn next_before(&mut self, until: f64) -> Option<E> {
        if self.heap.peek()?.at >= until {
            return None;
        }
        let e = self.heap.pop()?;
        self.now = e.at;
        Some(e.event)
    }

    /// Moves the clock forward to `t` (the end of a run with nothing due before it).
    pub fn advance_to(&mut self, t: f64) {
        self.now = self.now.max(t);
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_come_out_in_time_order_then_in_order_put() {
        let mut a = Agenda::default();
        a.after(5.0, "c");
        a.after(1.0, "a");
        a.after(5.0, "d");
        a.after(1.0, "b");
        a.after(9.0, "late");
        let mut seen = Vec::new();
        while let Some(e) = a.next_before(9.0) {
            seen.push((a.now(), e));
        }
        assert_eq!(seen, [(1.0, "a"), (1.0, "b"), (5.0, "c"), (5.0, "d")]);
        // after() counts from the event being handled
        a.after(0.5, "next");
        assert_eq!(a.next_before(100.0), Some("next"));
        assert_eq!(a.now(), 5.5);
        assert_eq!(a.len(), 1);
    }
}
