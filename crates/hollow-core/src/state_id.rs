//! The identity of a state: its version and a tag chosen at random when the state was made.

/// Which state a blob holds or leads from and to. A version number alone does not identify a
/// state: two producers racing (or one restarted from an old announcement) can mint the same
/// number for different content. The tag, drawn at random by the producer that made the state,
/// tells them apart, as Netflix Hollow's randomized origin and destination tags do.
///
/// Tag 0 means "no tag": states written with a bare version (`StateId::from(5)`), and blobs of
/// format 1, which had no tags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateId {
    /// The version, increasing from cycle to cycle.
    pub version: u64,
    /// The random tag of the state (0: none).
    pub tag: u64,
}

impl StateId {
    /// The state of `version` with `tag`.
    pub const fn new(version: u64, tag: u64) -> Self {
        Self { version, tag }
    }
}

impl From<u64> for StateId {
    /// A version without a tag.
    fn from(version: u64) -> Self {
        Self { version, tag: 0 }
    }
}

impl std::fmt::Display for StateId {
    /// `5.9b0c1d2e3f405162`, or `5` without a tag.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.tag {
            0 => write!(f, "{}", self.version),
            tag => write!(f, "{}.{tag:016x}", self.version),
        }
    }
}
