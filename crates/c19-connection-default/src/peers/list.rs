//! The provider's list of peers as the book last saw it, with what every round needs
//! from it worked out once: each distinct peer's dialled name, and the ring of names.
//!
//! Providers return the same list round after round; naming and sorting a thousand
//! peers for every push round would cost more than the round itself in a large cluster.

use c19_core::Peer;

use super::Target;

/// One list of peers, named and ordered.
#[derive(Debug, Default)]
pub(super) struct PeerList {
    /// The list as the provider gave it.
    given: Vec<Peer>,
    /// This agent as the provider said its peers see it.
    given_itself: Option<Peer>,
    /// The distinct peers, in the order given.
    pub targets: Vec<Target>,
    /// The names of the ring, sorted and distinct: each with its index in `targets`, or
    /// `None` for the provider's `itself` when the list leaves it out.
    pub ring: Vec<(String, Option<usize>)>,
    /// The name of the provider's `itself`.
    pub itself: Option<String>,
}

impl PeerList {
    /// Works the list out again unless `peers` is what it was made of.
    pub fn refresh(&mut self, peers: &[Peer], dial_port: u16) {
        if self.given == peers {
            return;
        }
        let mut seen = std::collections::HashSet::new();
        self.targets = peers
            .iter()
            .filter_map(|peer| {
                let name = peer.authority(dial_port);
                seen.insert(name.clone()).then(|| Target {
                    name,
                    peer: peer.clone(),
                })
            })
            .collect();
        self.given = peers.to_vec();
        self.order_ring();
    }

    /// The index in `targets` of the peer named `name`, if it is on the list.
    pub fn position(&self, name: &str) -> Option<usize> {
        let at = self
            .ring
            .binary_search_by(|(entry, _)| entry.as_str().cmp(name))
            .ok()?;
        self.ring[at].1
    }

    /// Places `itself` on the ring, unless it is already there.
    pub fn place_itself(&mut self, itself: Option<&Peer>, dial_port: u16) {
        if self.given_itself.as_ref() == itself {
            return;
        }
        self.given_itself = itself.cloned();
        self.itself = itself.map(|peer| peer.authority(dial_port));
        self.order_ring();
    }

    fn order_ring(&mut self) {
        let mut ring: Vec<(String, Option<usize>)> = self
            .targets
            .iter()
            .enumerate()
            .map(|(index, target)| (target.name.clone(), Some(index)))
            .collect();
        if let Some(name) = &self.itself
            && !self.targets.iter().any(|target| &target.name == name)
        {
            ring.push((name.clone(), None));
        }
        ring.sort();
        self.ring = ring;
    }
}
