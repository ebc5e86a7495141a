//! The caller's side of an exchange.
//!
//! `hello` → equal versions: done. Otherwise the callee's group hashes come back
//! (`digest`); the caller sends its bucket hashes of the groups that differ
//! (`buckets`), and the callee answers with its entries in the buckets that differ
//! (`page`). The caller merges them, sends back (`give`) what it holds newer or the
//! callee lacks in the same stretch of buckets, and asks for the next page (`fetch`)
//! until the buckets are exhausted. An empty caller gets pages of everything at once;
//! an empty callee gets everything given.

use std::sync::Arc;

use bytes::Bytes;
use c19_core::{Applied, Points, StateError, SyncSession};

use super::{
    FORMAT, heed,
    message::{Answer, BucketSet, Meta, Request, decode_answer, encode},
    parse_entries,
};
use crate::{
    record::Record,
    state::{DefaultState, now_ms},
    store::{by_key, fill},
};

/// Bytes kept free in a `give` for its header.
const GIVE_HEADER: usize = 64;

/// What the session waits for or does next.
#[derive(Debug)]
enum Next {
    /// Nothing was sent yet.
    Hello,
    /// The answer to `hello`.
    Opening,
    /// A page of the callee's entries starting at `from`.
    Page { from: u64 },
    /// Records to give, then the next page to fetch, if any.
    Giving {
        records: Vec<Record>,
        then: Option<(BucketSet, u64)>,
    },
    /// Everything to give to an empty callee, from this key hash on.
    GivingAll { from: u64 },
    /// The exchange is over.
    Done,
}

/// The caller's side of one exchange with a peer.
pub(crate) struct Session {
    state: Arc<DefaultState>,
    max: usize,
    /// When the exchange started (ms).
    started: u64,
    /// Whether this state held nothing when it started.
    was_empty: bool,
    /// What the peer last said about how current it is.
    peer: Meta,
    applied: Applied,
    /// The points the merges of the current step took.
    written: Option<Points>,
    next: Next,
}

impl Session {
    /// A session of `state` whose messages stay within about `max` bytes.
    pub fn new(state: Arc<DefaultState>, max: usize) -> Self {
        Self {
            state,
            max,
            started: now_ms(),
            was_empty: false,
            peer: Meta::default(),
            applied: Applied::default(),
            written: None,
            next: Next::Hello,
        }
    }

    fn hello(&mut self) -> Bytes {
        let digest = self.state.store.digest();
        self.was_empty = digest.empty;
        self.next = Next::Opening;
        encode(
            &Request::Hello {
                format: FORMAT,
                version: digest.version,
                empty: digest.empty,
                meta: self.state.store.sync_meta().meta(),
                max: self.max,
            },
            None,
        )
    }

    /// Handles the answer to `hello`.
    fn opened(&mut self, answer: &[u8]) -> Result<Option<Bytes>, StateError> {
        if answer.is_empty() {
            return Ok(self.finish());
        }
        match decode_answer(answer)? {
            (
                Answer::Digest {
                    groups,
                    empty,
                    meta,
                },
                _,
            ) => {
                self.heard(meta);
                if meta.last_sync.is_none() && (empty || self.is_current()) {
                    // A peer that never completed an exchange is catching up by its own
                    // pull, which also gives it what this side lacks (what it wrote
                    // since is pushed). Comparing now would send its partial state
                    // back, and giving would double its transfer.
                    return Ok(self.finish());
                }
                if empty {
                    return Ok(self.give_all(0));
                }
                let differing = self.state.store.differing_groups(&groups);
                if differing.is_empty() {
                    return Ok(self.finish());
                }
                self.next = Next::Page { from: 0 };
                Ok(Some(encode(
                    &Request::Buckets {
                        groups: self.state.store.group_digests(&differing),
                        max: self.max,
                    },
                    None,
                )))
            }
            (page @ Answer::Page { .. }, entries) if self.was_empty => self.paged(page, entries, 0),
            (Answer::Page { .. }, _) => Err(unexpected("a page before any digest")),
        }
    }

    /// Merges a page of the callee's entries and works out what to give back.
    fn paged(
        &mut self,
        page: Answer,
        entries: &[u8],
        asked: u64,
    ) -> Result<Option<Bytes>, StateError> {
        let Answer::Page {
            buckets,
            from,
            next,
            meta,
        } = page
        else {
            return Err(unexpected("a digest where a page was due"));
        };
        if from != asked {
            return Err(unexpected("a page that starts elsewhere than asked"));
        }
        self.heard(meta);
        let (store, now, ttl) = (&self.state.store, now_ms(), self.state.tombstone_ttl);
        let batch = parse_entries(&self.state, entries)?;
        let theirs: std::collections::HashMap<String, Record> = by_key(&batch)
            .into_iter()
            .map(|(key, record)| (key.to_owned(), record))
            .collect();
        let applied = store.merge_exchanged(batch, now, ttl);
        self.applied.applied += applied.applied;
        self.applied.ignored += applied.ignored;
        self.written = joined(self.written, applied.points);
        // Merged first, so what this store holds now is at least as new as theirs. A peer
        // that never completed an exchange is catching up by its own pull: nothing is
        // given to it, which would double its transfer.
        let mut records = store.records_in(&buckets, from, next, now, ttl);
        if self.peer.last_sync.is_none() {
            records.clear();
        }
        let records = records
            .into_iter()
            .filter(|record| {
                record.key_str().is_some_and(|key| {
                    theirs
                        .get(key)
                        .is_none_or(|held| record.merge_order(held).is_gt())
                })
            })
            .collect();
        self.next = Next::Giving {
            records,
            then: next.map(|next| (buckets, next)),
        };
        Ok(self.give_or_fetch())
    }

    /// The next `give`, or the next `fetch`, or the end.
    fn give_or_fetch(&mut self) -> Option<Bytes> {
        let Next::Giving { records, then } = &mut self.next else {
            return self.finish();
        };
        if !records.is_empty() {
            let entries = fill(records, self.max.saturating_sub(GIVE_HEADER));
            return Some(encode(&Request::Give {}, Some(&entries)));
        }
        match then.take() {
            Some((buckets, from)) => {
                self.next = Next::Page { from };
                Some(encode(
                    &Request::Fetch {
                        buckets,
                        from,
                        max: self.max,
                    },
                    None,
                ))
            }
            None => self.finish(),
        }
    }

    /// Gives an empty callee the next page of everything, from key hash `from`.
    fn give_all(&mut self, from: u64) -> Option<Bytes> {
        let page = self.state.store.page(
            &BucketSet::all(),
            from,
            self.max.saturating_sub(GIVE_HEADER),
            now_ms(),
            self.state.tombstone_ttl,
        );
        self.next = match page.next {
            Some(from) => Next::GivingAll { from },
            None => Next::Giving {
                records: Vec::new(),
                then: None,
            },
        };
        if page.count == 0 && page.next.is_none() {
            return self.finish();
        }
        Some(encode(&Request::Give {}, Some(&page.entries)))
    }

    /// Whether this side has completed an exchange before, and held data when this one
    /// began.
    fn is_current(&self) -> bool {
        !self.was_empty && self.state.store.sync_meta().meta().last_sync.is_some()
    }

    /// Notes what the peer says about how current it is.
    fn heard(&mut self, meta: Meta) {
        heed(&self.state, meta);
        self.peer = meta;
    }

    /// Ends the exchange: this state is now as current as it started, or, when it held
    /// nothing before, as current as the peer it copied.
    fn finish(&mut self) -> Option<Bytes> {
        let current = if self.was_empty {
            self.peer.last_sync.unwrap_or(self.started)
        } else {
            self.started
        };
        self.state.store.sync_meta().current_at(current);
        self.next = Next::Done;
        None
    }
}

impl SyncSession for Session {
    fn step(&mut self, answer: Option<&[u8]>) -> Result<Option<Bytes>, StateError> {
        self.written = None;
        let result = match (std::mem::replace(&mut self.next, Next::Done), answer) {
            (Next::Hello, None) => Ok(Some(self.hello())),
            (Next::Opening, Some(answer)) => self.opened(answer),
            (Next::Page { .. }, Some([])) => Ok(self.finish()),
            (Next::Page { from }, Some(answer)) => {
                let (page, entries) = decode_answer(answer)?;
                self.paged(page, entries, from)
            }
            (next @ Next::Giving { .. }, Some(_)) => {
                self.next = next;
                Ok(self.give_or_fetch())
            }
            (Next::GivingAll { from }, Some(_)) => Ok(self.give_all(from)),
            (Next::Done, _) => Ok(None),
            _ => Err(unexpected("an answer out of turn")),
        };
        if result.is_err() {
            self.next = Next::Done;
        }
        result
    }

    fn written(&self) -> Option<Points> {
        self.written
    }

    fn applied(&self) -> Applied {
        self.applied
    }
}

fn unexpected(what: &str) -> StateError {
    StateError::Invalid(format!("the peer's exchange went wrong: {what}"))
}

/// The points of a step so far, `earlier`, with those of its next merge: one stretch
/// when they touch, else the latest alone (some other change came between, so only the
/// latest stretch is the step's alone).
fn joined(earlier: Option<Points>, points: Option<Points>) -> Option<Points> {
    let Some(points) = points else {
        return earlier;
    };
    Some(match earlier {
        Some(earlier) if earlier.last.checked_add(1) == Some(points.first) => Points {
            first: earlier.first,
            last: points.last,
        },
        _ => points,
    })
}
