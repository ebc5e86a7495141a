//! Small writes gathered into one state write (group commit).
//!
//! Each write to the state copies the tree path of its keys, publishes a new snapshot
//! and frees the one it replaced; with many clients writing one key each, that fixed
//! cost is most of a `PUT`. So a small `PUT` queues its body and yields once: by the
//! time it runs again, the requests that became ready meanwhile have queued theirs,
//! and the first of them to take the write turn applies the queue with one
//! [`State::set_all_local`] — each body still validated and applied all-or-nothing on its
//! own, each answered with its own result. A group holds at most 64 KiB of bodies (the
//! rest waits for the next turn), so no group holds a worker longer than one body of the
//! largest size applied inline. A lone writer waits one scheduler pass.

use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use c19_core::{Applied, SafeState, StateError, StateValue};
use tokio::sync::oneshot::{self, error::TryRecvError};

use crate::error::{Error, Result};

/// At most this many bytes of bodies are applied in one group (at least one body): the
/// group is applied on an async worker, which serves nothing else meanwhile.
const GROUP_BYTES: usize = 64 * 1024;

/// The queue of small writes and the turn that applies it.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    queue: Mutex<Queue>,
    /// Taken to apply the queue: a request waiting for its turn yields its worker,
    /// where waiting on the state's writer lock would park the worker thread.
    turn: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Queue {
    next_id: u64,
    waiting: Vec<Queued>,
}

/// A body waiting to be applied, and where its result goes.
#[derive(Debug)]
struct Queued {
    id: u64,
    body: Bytes,
    done: oneshot::Sender<Result<Applied, StateError>>,
}

impl Writes {
    /// Applies `body` to `state` together with the other small writes queued at the
    /// same time; returns once it is applied (or refused).
    pub async fn set(&self, state: &SafeState, body: Bytes) -> Result<Applied> {
        let (done, mut result) = oneshot::channel();
        let mut ticket = self.enqueue(body, done);
        loop {
            tokio::task::yield_now().await;
            {
                let _turn = self.turn.lock().await;
                let queued = self.take_group();
                if !queued.is_empty() {
                    apply(state, queued);
                }
            }
            // Unless it is still queued behind a full group, this body was applied
            // under the turn just taken or an earlier one.
            match result.try_recv() {
                Ok(applied) => {
                    ticket.answered = true;
                    return Ok(applied?);
                }
                Err(TryRecvError::Empty) => continue,
                // Only a state whose `set_all` answers fewer results than writes does this.
                Err(TryRecvError::Closed) => {
                    ticket.answered = true;
                    return Err(Error::Internal(
                        "the state gave no result for a write".into(),
                    ));
                }
            }
        }
    }

    /// Runs `write` (a delete) alone, in its turn among the queued writes.
    pub async fn alone<T>(&self, write: impl FnOnce() -> T) -> T {
        let _turn = self.turn.lock().await;
        write()
    }

    fn enqueue(
        &self,
        body: Bytes,
        done: oneshot::Sender<Result<Applied, StateError>>,
    ) -> Ticket<'_> {
        let mut queue = self.lock();
        let id = queue.next_id;
        queue.next_id += 1;
        queue.waiting.push(Queued { id, body, done });
        Ticket {
            writes: self,
            id,
            answered: false,
        }
    }

    /// The oldest queued writes, up to [`GROUP_BYTES`] of bodies (at least one).
    fn take_group(&self) -> Vec<Queued> {
        let mut queue = self.lock();
        let mut bytes = 0;
        let count = queue
            .waiting
            .iter()
            .take_while(|queued| {
                bytes += queued.body.len();
                bytes <= GROUP_BYTES
            })
            .count()
            .max(1)
            .min(queue.waiting.len());
        queue.waiting.drain(..count).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Applies `queued` as one write and sends each its result.
fn apply(state: &SafeState, queued: Vec<Queued>) {
    let bodies: Vec<&dyn StateValue> = queued
        .iter()
        .map(|queued| &queued.body as &dyn StateValue)
        .collect();
    let results = state.set_all_local(&bodies);
    for (queued, result) in queued.into_iter().zip(results) {
        // The request may have gone; its write stands, as any write being applied.
        let _ = queued.done.send(result);
    }
}

/// A queued body; dropped before it was applied (its request went away), it leaves
/// the queue, so a body nobody waits for is never applied later.
struct Ticket<'a> {
    writes: &'a Writes,
    id: u64,
    answered: bool,
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.answered {
            self.writes
                .lock()
                .waiting
                .retain(|queued| queued.id != self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use c19_core::{Diff, State};
    use futures::{FutureExt, future::join_all};

    use super::*;

    /// A state that records how writes reach it; a body `bad` is refused.
    #[derive(Debug, Default)]
    struct Recorder {
        /// The bodies of each `set_all` call.
        calls: Mutex<Vec<Vec<String>>>,
    }

    impl State for Recorder {
        fn version(&self) -> String {
            String::new()
        }
        fn set(&self, value: &dyn StateValue) -> Result<Applied, StateError> {
            match value.as_bytes() {
                b"bad" => Err(StateError::Invalid("bad body".into())),
                _ => Ok(Applied::new(1, 0)),
            }
        }
        fn set_all(&self, values: &[&dyn StateValue]) -> Vec<Result<Applied, StateError>> {
            let bodies = values
                .iter()
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                .collect();
            self.calls.lock().unwrap().push(bodies);
            values.iter().map(|value| self.set(*value)).collect()
        }
        fn get(&self, _: &dyn StateValue) -> Option<Bytes> {
            None
        }
        fn delete(&self, _: &dyn StateValue) -> Result<bool, StateError> {
            Ok(false)
        }
        fn diff(&self, since: u64, _: usize) -> Result<Diff, StateError> {
            Ok(Diff {
                next: since,
                complete: true,
                ..Diff::default()
            })
        }
        fn head(&self) -> u64 {
            0
        }
        fn get_root(&self) -> Bytes {
            Bytes::from_static(b"{}")
        }
    }

    #[tokio::test]
    async fn writes_ready_together_reach_the_state_as_one_call_each_with_its_own_result() {
        let recorder = Arc::new(Recorder::default());
        let state: SafeState = recorder.clone();
        let writes = Writes::default();
        let bodies: [&'static str; 4] = ["one", "bad", "three", "four"];
        let results = join_all(
            bodies
                .into_iter()
                .map(|body| writes.set(&state, Bytes::from_static(body.as_bytes()))),
        )
        .await;

        assert_eq!(*recorder.calls.lock().unwrap(), vec![bodies.to_vec()]);
        let outcome: Vec<_> = results.iter().map(|result| result.is_ok()).collect();
        assert_eq!(outcome, [true, false, true, true]);
        assert!(matches!(&results[1], Err(Error::Refused(message)) if message == "bad body"));

        // A write that comes later is a call of its own.
        writes
            .set(&state, Bytes::from_static(b"five"))
            .await
            .unwrap();
        assert_eq!(recorder.calls.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_group_holds_at_most_its_size_and_the_rest_follows() {
        let recorder = Arc::new(Recorder::default());
        let state: SafeState = recorder.clone();
        let writes = Writes::default();
        let body = |tag: char| Bytes::from(tag.to_string().repeat(GROUP_BYTES / 2 - 10));
        let results =
            join_all(['a', 'b', 'c', 'd', 'e'].map(|tag| writes.set(&state, body(tag)))).await;
        assert!(results.iter().all(Result::is_ok));
        let groups: Vec<String> = recorder
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|call| call.iter().map(|body| &body[..1]).collect())
            .collect();
        assert_eq!(groups, ["ab", "cd", "e"]);
    }

    #[tokio::test]
    async fn a_write_whose_request_went_away_before_its_turn_is_not_applied() {
        let recorder = Arc::new(Recorder::default());
        let state: SafeState = recorder.clone();
        let writes = Writes::default();
        {
            let mut gone = Box::pin(writes.set(&state, Bytes::from_static(b"gone")));
            // Queued, waiting for its turn: the request is dropped there.
            assert!((&mut gone).now_or_never().is_none());
        }
        writes
            .set(&state, Bytes::from_static(b"kept"))
            .await
            .unwrap();
        assert_eq!(*recorder.calls.lock().unwrap(), vec![vec!["kept"]]);
    }

    #[tokio::test]
    async fn deletes_wait_for_the_turn() {
        let writes = Writes::default();
        let turn = writes.turn.lock().await;
        let mut delete = Box::pin(writes.alone(|| "deleted"));
        assert!((&mut delete).now_or_never().is_none());
        drop(turn);
        assert_eq!(delete.await, "deleted");
    }
}
