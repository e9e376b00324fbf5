//! What a recording loop has not stored yet: the recorder's outputs in order, each with the write
//! it needs, held while the database refuses writes (a full disk, a read-only file, an I/O
//! error) so that the loop keeps reading the machine and the live view keeps flowing.
//!
//! Bounded in samples. Past the bound, the oldest shot with unstored samples is *lost*: its
//! unstored samples (and every later one) are dropped, the loss is returned for one clear log
//! line at that moment, and the shot's `Finish` is kept, as partial, so that the shot ends with
//! what was stored of it. Consecutive journal writes of one shot are merged while they wait: a
//! backlog drains in few commits.
//!
//! Pure: no IO, no clock (times are carried, never read).

use std::collections::{HashMap, VecDeque};

use recorder_core::{Output, ShotKey, ShotStatus};
use storage::Write;
use tokio::time::Instant;

/// One output waiting: its write (`None`: nothing to store, only to announce in order).
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) output: Output,
    pub(crate) write: Option<Write>,
    /// When the input that caused it arrived.
    pub(crate) caused_at: Instant,
}

/// A shot lost to the bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Lost {
    pub(crate) key: ShotKey,
    /// Samples dropped now.
    pub(crate) samples: usize,
}

/// The queue.
#[derive(Debug)]
pub(crate) struct Unstored {
    items: VecDeque<Item>,
    /// Journal samples in `items`.
    samples: usize,
    max_samples: usize,
    /// Lost shots still recording, and the samples of theirs dropped so far.
    lost: HashMap<ShotKey, usize>,
    /// Samples dropped since the start.
    dropped: u64,
}

impl Item {
    /// The journal samples it stores.
    pub(crate) fn samples(&self) -> usize {
        match &self.write {
            Some(Write::Journal { samples, .. }) => samples.len(),
            _ => 0,
        }
    }
}

impl Unstored {
    /// At most `max_samples` journal samples held (at least one journal write's worth is always
    /// taken).
    pub(crate) fn new(max_samples: usize) -> Self {
        Self {
            items: VecDeque::new(),
            samples: 0,
            max_samples,
            lost: HashMap::new(),
            dropped: 0,
        }
    }

    /// Journal samples waiting.
    pub(crate) fn samples(&self) -> usize {
        self.samples
    }

    /// Samples dropped since the start.
    pub(crate) fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Queues `output` with `write`; a shot lost to the bound is returned.
    pub(crate) fn push(
        &mut self,
        mut output: Output,
        mut write: Option<Write>,
        caused_at: Instant,
    ) -> Option<Lost> {
        match &mut output {
            Output::Journal { key, samples } if self.lost.contains_key(key) => {
                *self.lost.get_mut(key)? += samples.len();
                self.dropped += samples.len() as u64;
                return None;
            }
            Output::Finish(shot) if self.lost.remove(&shot.key).is_some() => {
                shot.status = ShotStatus::Partial;
                if let Some(Write::Finish(stored)) = &mut write {
                    stored.status = ShotStatus::Partial;
                }
            }
            Output::Discard { key, .. } => {
                self.lost.remove(key);
            }
            _ => {}
        }
        if let (
            Output::Journal { key, samples },
            Some(Item {
                output:
                    Output::Journal {
                        key: last_key,
                        samples: last_samples,
                    },
                write:
                    Some(Write::Journal {
                        samples: last_write,
                        ..
                    }),
                ..
            }),
        ) = (&output, self.items.back_mut())
            && key == last_key
        {
            self.samples += samples.len();
            last_samples.extend(samples.iter().cloned());
            last_write.extend(samples.iter().cloned());
        } else {
            let item = Item {
                output,
                write,
                caused_at,
            };
            self.samples += item.samples();
            self.items.push_back(item);
        }
        (self.samples > self.max_samples)
            .then(|| self.lose_oldest())
            .flatten()
    }

    /// Drops the unstored samples of the oldest shot that has some.
    fn lose_oldest(&mut self) -> Option<Lost> {
        let key = self.items.iter().find_map(|item| match &item.output {
            Output::Journal { key, .. } => Some(*key),
            _ => None,
        })?;
        let before = self.samples;
        self.items
            .retain(|item| !matches!(&item.output, Output::Journal { key: k, .. } if *k == key));
        self.samples = self.items.iter().map(Item::samples).sum();
        let samples = before - self.samples;
        self.dropped += samples as u64;
        // A shot that has ended already (its Finish waits here) takes no more samples.
        let ended = self.items.iter().any(|item| {
            matches!(&item.output, Output::Finish(s) if s.key == key)
                || matches!(&item.output, Output::Discard { key: k, .. } if *k == key)
        });
        if ended {
            for item in &mut self.items {
                if let Output::Finish(shot) = &mut item.output
                    && shot.key == key
                {
                    shot.status = ShotStatus::Partial;
                    if let Some(Write::Finish(stored)) = &mut item.write {
                        stored.status = ShotStatus::Partial;
                    }
                }
            }
        } else {
            self.lost.insert(key, samples);
        }
        Some(Lost { key, samples })
    }

    /// The next item to store.
    pub(crate) fn pop(&mut self) -> Option<Item> {
        let item = self.items.pop_front()?;
        self.samples -= item.samples();
        Some(item)
    }

    /// Puts back an item whose write failed, to be tried first again.
    pub(crate) fn put_back(&mut self, item: Item) {
        self.samples += item.samples();
        self.items.push_front(item);
    }
}

#[cfg(test)]
mod tests {
    use recorder_core::{EndReason, Shot};

    use super::*;

    fn sample(t: usize) -> meticulous::Sample {
        serde_json::from_value(serde_json::json!({
            "time": t, "profile_time": t,
            "shot": {"pressure": 1.0, "flow": 1.0, "weight": 1.0, "gravimetric_flow": 0.0,
                     "setpoints": {}},
            "sensors": {}, "status": "brewing"
        }))
        .unwrap()
    }

    fn journal(key: ShotKey, from: usize, n: usize) -> (Output, Option<Write>) {
        let samples: Vec<_> = (from..from + n).map(sample).collect();
        let output = Output::Journal {
            key,
            samples: samples.clone(),
        };
        (output, Some(Write::Journal { key, samples }))
    }

    fn finish(key: ShotKey) -> (Output, Option<Write>) {
        let shot = Shot {
            key,
            id: None,
            started_unix_s: 0.0,
            status: ShotStatus::Complete,
            reason: EndReason::Finished,
            samples: 0,
        };
        (Output::Finish(shot.clone()), Some(Write::Finish(shot)))
    }

    fn push(q: &mut Unstored, (output, write): (Output, Option<Write>)) -> Option<Lost> {
        q.push(output, write, Instant::now())
    }

    fn drain(q: &mut Unstored) -> Vec<Item> {
        std::iter::from_fn(|| q.pop()).collect()
    }

    #[test]
    fn journals_of_one_shot_merge_and_keep_their_order() {
        let mut q = Unstored::new(1000);
        assert_eq!(push(&mut q, journal(1, 0, 16)), None);
        assert_eq!(push(&mut q, journal(1, 16, 16)), None);
        assert_eq!(push(&mut q, finish(1)), None);
        assert_eq!(push(&mut q, journal(2, 0, 3)), None);
        assert_eq!(q.samples(), 35);
        let items = drain(&mut q);
        assert_eq!(items.len(), 3);
        let Some(Write::Journal { samples, .. }) = &items[0].write else {
            panic!("{items:?}")
        };
        let times: Vec<_> = samples.iter().map(|s| s.time.to_string()).collect();
        let expected: Vec<_> = (0..32).map(|t| t.to_string()).collect();
        assert_eq!(times, expected);
        assert!(matches!(items[1].output, Output::Finish(_)));
        assert_eq!(q.samples(), 0);
        assert!(q.is_empty());
    }

    #[test]
    fn past_the_bound_the_oldest_shot_is_lost_and_ends_partial() {
        let mut q = Unstored::new(40);
        push(&mut q, journal(1, 0, 16));
        // A write that failed is put back first.
        let failed = q.pop().unwrap();
        q.put_back(failed);
        push(&mut q, journal(1, 16, 16));
        assert_eq!(
            push(&mut q, journal(1, 32, 16)),
            Some(Lost {
                key: 1,
                samples: 48
            })
        );
        assert_eq!(q.samples(), 0);
        // Later samples of the lost shot are dropped too, and counted.
        assert_eq!(push(&mut q, journal(1, 48, 16)), None);
        assert_eq!(q.samples(), 0);
        assert_eq!(q.dropped(), 64);
        assert_eq!(push(&mut q, finish(1)), None);
        let items = drain(&mut q);
        assert_eq!(items.len(), 1);
        let (Output::Finish(shot), Some(Write::Finish(stored))) =
            (&items[0].output, &items[0].write)
        else {
            panic!("{items:?}")
        };
        assert_eq!(
            (shot.status, stored.status),
            (ShotStatus::Partial, ShotStatus::Partial)
        );
        // The next shot is recorded whole again.
        push(&mut q, journal(2, 0, 16));
        push(&mut q, finish(2));
        let items = drain(&mut q);
        assert!(matches!(&items[1].output, Output::Finish(s) if s.status == ShotStatus::Complete));
    }

    #[test]
    fn an_ended_shot_lost_to_the_bound_leaves_the_next_one_alone() {
        let mut q = Unstored::new(20);
        push(&mut q, journal(1, 0, 16));
        push(&mut q, finish(1));
        assert_eq!(
            push(&mut q, journal(2, 0, 16)),
            Some(Lost {
                key: 1,
                samples: 16
            })
        );
        assert_eq!(q.samples(), 16);
        assert_eq!(push(&mut q, journal(2, 16, 2)), None);
        let items = drain(&mut q);
        assert!(
            matches!(&items[0].output, Output::Finish(s) if s.key == 1 && s.status == ShotStatus::Partial)
        );
        assert!(
            matches!(&items[1].write, Some(Write::Journal { key: 2, samples }) if samples.len() == 18)
        );
    }
}
