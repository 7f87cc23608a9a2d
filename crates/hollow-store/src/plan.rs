//! Refresh planning: which blobs take a consumer from the state it has to the one it wants.
//!
//! Blobs form a graph of states (see [`crate::layout`]). A plan only ever follows links whose
//! ends are named by the blobs themselves, so it reaches exactly the target state: blobs of a
//! producer that lost a race lead to states with other tags, and are never on the way.

use std::collections::{HashMap, VecDeque};

use hollow_core::StateId;

use crate::error::{Error, Result};
use crate::layout::BlobName;

/// The blobs to fetch and apply, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// A snapshot to start from, or `None` to start from the current state.
    pub snapshot: Option<StateId>,
    /// Deltas or reverse deltas to apply after it, in order.
    pub steps: Vec<BlobName>,
}

impl Plan {
    /// True when there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.snapshot.is_none() && self.steps.is_empty()
    }

    /// How the plan gets there, for logs and listeners: `snapshot 5 + 2 deltas`.
    pub fn describe(&self) -> String {
        let deltas = self.steps.len();
        let kind = if self
            .steps
            .iter()
            .any(|s| matches!(s, BlobName::ReverseDelta { .. }))
        {
            "reverse delta"
        } else {
            "delta"
        };
        let plural = if deltas == 1 { "" } else { "s" };
        match (self.snapshot, deltas) {
            (None, 0) => "nothing to do".into(),
            (Some(s), 0) => format!("snapshot {}", s.version),
            (Some(s), n) => format!("snapshot {} + {n} {kind}{plural}", s.version),
            (None, n) => format!("{n} {kind}{plural}"),
        }
    }
}

/// For every state from which links of one kind lead to `target`: the next state on a shortest
/// way there. Found by a breadth-first walk from the target along links backwards.
fn ways_to(links: &[(StateId, StateId)], target: StateId) -> HashMap<StateId, (StateId, usize)> {
    let mut into: HashMap<StateId, Vec<StateId>> = HashMap::new();
    for &(from, to) in links {
        into.entry(to).or_default().push(from);
    }
    let mut next = HashMap::new();
    let mut queue = VecDeque::from([(target, 0usize)]);
    while let Some((at, distance)) = queue.pop_front() {
        for &from in into.get(&at).into_iter().flatten() {
            if from != target && !next.contains_key(&from) {
                next.insert(from, (at, distance + 1));
                queue.push_back((from, distance + 1));
            }
        }
    }
    next
}

/// The links from `from` to `target` along `ways`.
fn follow(
    ways: &HashMap<StateId, (StateId, usize)>,
    mut from: StateId,
    target: StateId,
) -> Vec<(StateId, StateId)> {
    let mut out = Vec::new();
    while from != target {
        let (next, _) = ways[&from];
        out.push((from, next));
        from = next;
    }
    out
}

/// Plans the way from `current` (the state held, if any) to `target`, given the blobs the store
/// has: follow deltas (or reverse deltas, going back) when they link the two in at most
/// `max_chain` steps; otherwise start from the newest snapshot at or before the target from
/// which deltas reach it.
pub fn plan(
    blobs: &[BlobName],
    current: Option<StateId>,
    target: StateId,
    max_chain: usize,
) -> Result<Plan> {
    let (forward, backward, snapshots) = links(blobs);
    let ahead = ways_to(&forward, target);
    if let Some(c) = current {
        if c == target {
            return Ok(Plan {
                snapshot: None,
                steps: Vec::new(),
            });
        }
        let along = |ways: &HashMap<StateId, (StateId, usize)>,
                     link: fn(StateId, StateId) -> BlobName| {
            ways.get(&c)
                .is_some_and(|&(_, d)| d <= max_chain)
                .then(|| Plan {
                    snapshot: None,
                    steps: follow(ways, c, target)
                        .into_iter()
                        .map(|(from, to)| link(from, to))
                        .collect(),
                })
        };
        let deltas = along(&ahead, |from, to| BlobName::Delta { from, to });
        let reverse = || {
            along(&ways_to(&backward, target), |from, to| {
                BlobName::ReverseDelta { from, to }
            })
        };
        if let Some(plan) = deltas.or_else(reverse) {
            return Ok(plan);
        }
    }
    let start = snapshots
        .into_iter()
        .filter(|s| *s == target || ahead.contains_key(s))
        .max_by_key(|s| s.version);
    match start {
        Some(s) => Ok(Plan {
            snapshot: Some(s),
            steps: follow(&ahead, s, target)
                .into_iter()
                .map(|(from, to)| BlobName::Delta { from, to })
                .collect(),
        }),
        None => Err(Error::Unreachable {
            target,
            reason: format!(
                "no snapshot of it, and none before it linked to it by deltas, among {} blobs",
                blobs.len()
            ),
        }),
    }
}

/// The links of the blobs: (deltas, reverse deltas, snapshots).
type Links = (
    Vec<(StateId, StateId)>,
    Vec<(StateId, StateId)>,
    Vec<StateId>,
);

fn links(blobs: &[BlobName]) -> Links {
    let (mut forward, mut backward, mut snapshots) = (Vec::new(), Vec::new(), Vec::new());
    for b in blobs {
        match *b {
            BlobName::Snapshot(s) => snapshots.push(s),
            BlobName::Delta { from, to } => forward.push((from, to)),
            BlobName::ReverseDelta { from, to } => backward.push((from, to)),
        }
    }
    (forward, backward, snapshots)
}

/// The line of announced states that ends at `announced`: it and every state deltas lead to it
/// from, oldest first. Each state a producer publishes follows the one announced before it,
/// so these are the states that were announced, back to where retention removed the deltas;
/// a state published but never announced (its producer killed, or beaten by another) has no
/// delta out of it to this line.
pub fn announced_line(blobs: &[BlobName], announced: StateId) -> Vec<StateId> {
    let (forward, _, _) = links(blobs);
    let mut line: Vec<StateId> = ways_to(&forward, announced).into_keys().collect();
    line.push(announced);
    line.sort_unstable_by_key(|s| (s.version, s.tag));
    line
}

/// The state of `version` to pin. On the line of `announced` (the announced state and the
/// states deltas lead to it from: every state a producer announced, in order) when that line
/// reaches back to `version`: a version the line skips was spent by a cycle that never
/// announced (a producer killed between publishing and announcing, or one that lost a race),
/// and is refused, as is a version newer than the announced one. Older than the line reaches
/// (deltas removed by retention), or with nothing announced: the one reverse deltas lead to
/// from `current` (the line the consumer came along), else the one deltas lead to from
/// `current`, else the only state of that version in the store. An ambiguous choice is an
/// error, not a guess.
pub fn resolve_version(
    blobs: &[BlobName],
    current: Option<StateId>,
    announced: Option<StateId>,
    version: u64,
) -> Result<StateId> {
    let (forward, backward, snapshots) = links(blobs);
    let unreachable = |reason: String| Error::Unreachable {
        target: StateId::from(version),
        reason,
    };
    if let Some(a) = announced {
        if a.version == version {
            return Ok(a);
        }
        if version > a.version {
            return Err(unreachable(format!(
                "it was never announced: the announced version is {}",
                a.version
            )));
        }
        let line = announced_line(blobs, a);
        let on_line: Vec<StateId> = line
            .iter()
            .copied()
            .filter(|s| s.version == version)
            .collect();
        if let [only] = on_line.as_slice() {
            return Ok(*only);
        }
        let before = line
            .iter()
            .map(|s| s.version)
            .filter(|&v| v < version)
            .max();
        if let (Some(before), []) = (before, on_line.as_slice()) {
            let after = line
                .iter()
                .map(|s| s.version)
                .filter(|&v| v > version)
                .min()
                .unwrap_or(a.version);
            return Err(unreachable(format!(
                "it was never announced: the announced states go from version {before} to \
                 {after} (a producer spent it in a cycle that did not announce)"
            )));
        }
    }
    let mut candidates: Vec<StateId> = snapshots
        .into_iter()
        .chain(forward.iter().chain(&backward).flat_map(|&(a, b)| [a, b]))
        .filter(|s| s.version == version)
        .collect();
    candidates.sort_unstable();
    candidates.dedup();
    let unique = |found: Vec<StateId>| {
        match found.as_slice() {
        [only] => Ok(*only),
        [] => Err("no blob of that version is in the store".to_string()),
        many => Err(format!(
            "{} states of that version are in the store and none is on the line of the current state",
            many.len()
        )),
    }
    };
    let result = match current {
        Some(c) if c.version == version && candidates.contains(&c) => Ok(c),
        Some(c) => {
            let along = |links: &[(StateId, StateId)]| -> Vec<StateId> {
                candidates
                    .iter()
                    .copied()
                    .filter(|x| ways_to(links, *x).contains_key(&c))
                    .collect()
            };
            let back = along(&backward);
            let ahead = along(&forward);
            if back.len() == 1 {
                Ok(back[0])
            } else if ahead.len() == 1 {
                Ok(ahead[0])
            } else {
                unique(candidates)
            }
        }
        None => unique(candidates),
    };
    result.map_err(unreachable)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: u64) -> StateId {
        StateId::new(v, 0xa0 + v)
    }

    fn blobs() -> Vec<BlobName> {
        let mut b = vec![BlobName::Snapshot(s(1)), BlobName::Snapshot(s(4))];
        for v in 1..6 {
            b.push(BlobName::Delta {
                from: s(v),
                to: s(v + 1),
            });
            b.push(BlobName::ReverseDelta {
                from: s(v + 1),
                to: s(v),
            });
        }
        b
    }

    #[test]
    fn follows_deltas_forward_and_back() {
        let p = plan(&blobs(), Some(s(2)), s(5), 10).unwrap();
        assert_eq!(p.snapshot, None);
        assert_eq!(p.steps.len(), 3);
        assert_eq!(p.describe(), "3 deltas");
        let p = plan(&blobs(), Some(s(5)), s(3), 10).unwrap();
        assert_eq!(
            p.steps,
            vec![
                BlobName::ReverseDelta {
                    from: s(5),
                    to: s(4)
                },
                BlobName::ReverseDelta {
                    from: s(4),
                    to: s(3)
                }
            ]
        );
        assert!(plan(&blobs(), Some(s(3)), s(3), 10).unwrap().is_empty());
    }

    #[test]
    fn falls_back_to_the_newest_usable_snapshot() {
        let p = plan(&blobs(), None, s(6), 10).unwrap();
        assert_eq!((p.snapshot, p.steps.len()), (Some(s(4)), 2));
        assert_eq!(p.describe(), "snapshot 4 + 2 deltas");
        // Too long a chain.
        let p = plan(&blobs(), Some(s(1)), s(6), 2).unwrap();
        assert_eq!(p.snapshot, Some(s(4)));
        // A missing link.
        let mut b = blobs();
        b.retain(|x| {
            *x != BlobName::Delta {
                from: s(2),
                to: s(3),
            }
        });
        assert!(matches!(
            plan(&b, Some(s(1)), s(3), 10),
            Err(Error::Unreachable { .. })
        ));
        // ...but a version past the gap is reached from the snapshot after it.
        assert_eq!(plan(&b, Some(s(1)), s(5), 10).unwrap().snapshot, Some(s(4)));
    }

    /// A producer that lost the race for version 3 published its own snapshot and deltas of a
    /// version 3 and beyond; none of them is ever on the way to the announced state.
    #[test]
    fn blobs_of_another_line_are_never_followed() {
        let mut b = blobs();
        let loser = |v: u64| StateId::new(v, 0xbad0 + v);
        b.push(BlobName::Snapshot(loser(3)));
        b.push(BlobName::Delta {
            from: s(2),
            to: loser(3),
        });
        b.push(BlobName::Delta {
            from: loser(3),
            to: loser(4),
        });
        b.push(BlobName::Snapshot(loser(6)));
        for current in [None, Some(s(1)), Some(s(2)), Some(loser(3))] {
            let p = plan(&b, current, s(6), 10).unwrap();
            let mut at = p.snapshot.or(current).unwrap();
            for step in &p.steps {
                let BlobName::Delta { from, to } = *step else {
                    panic!("{step}")
                };
                assert_eq!(from, at);
                assert!(to.tag == s(to.version).tag, "{step}");
                at = to;
            }
            assert_eq!(at, s(6));
        }
        assert_eq!(resolve_version(&b, Some(s(5)), None, 3).unwrap(), s(3));
        assert_eq!(resolve_version(&b, Some(s(5)), None, 5).unwrap(), s(5));
        assert_eq!(resolve_version(&b, None, None, 5).unwrap(), s(5));
        // Deltas from 1 lead to both states of version 3: no guess.
        assert!(resolve_version(&b, Some(s(1)), None, 3).is_err());
        assert!(resolve_version(&b, None, None, 3).is_err());
        // The announcement settles it: version 3 is the announced line's.
        for current in [None, Some(s(1)), Some(loser(3))] {
            assert_eq!(resolve_version(&b, current, Some(s(6)), 3).unwrap(), s(3));
        }
    }

    /// A producer killed between publishing version 4 and announcing it: the one restarted
    /// publishes version 5 on top of the announced 3. Version 4 is the only state of its
    /// version in the store, yet was never announced, and is not pinned.
    #[test]
    fn versions_spent_without_an_announcement_are_not_pinned() {
        let orphan = StateId::new(4, 0xdead);
        let mut b = vec![BlobName::Snapshot(s(1))];
        for (from, to) in [(s(1), s(2)), (s(2), s(3)), (s(3), orphan), (s(3), s(5))] {
            b.push(BlobName::Delta { from, to });
            b.push(BlobName::ReverseDelta { from: to, to: from });
        }
        b.push(BlobName::Snapshot(orphan));
        for current in [None, Some(s(3)), Some(s(5))] {
            let e = resolve_version(&b, current, Some(s(5)), 4).unwrap_err();
            assert!(
                e.to_string().contains("never announced")
                    && e.to_string().contains("from version 3 to 5"),
                "{e}"
            );
            for v in [1, 2, 3, 5] {
                assert_eq!(resolve_version(&b, current, Some(s(5)), v).unwrap(), s(v));
            }
            let e = resolve_version(&b, current, Some(s(5)), 6).unwrap_err();
            assert!(e.to_string().contains("announced version is 5"), "{e}");
        }
        // Without an announcement the store alone cannot tell: the only state of version 4.
        assert_eq!(resolve_version(&b, None, None, 4).unwrap(), orphan);
        // Older than the announced line reaches (deltas removed by retention): as before.
        let kept: Vec<BlobName> = b
            .iter()
            .filter(|n| n.newest_version() >= 3 || matches!(n, BlobName::Snapshot(_)))
            .cloned()
            .collect();
        assert_eq!(resolve_version(&kept, None, Some(s(5)), 1).unwrap(), s(1));
    }
}
