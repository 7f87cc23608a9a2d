//! The kinds of blob: snapshot, delta, reverse delta.

/// What a blob holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlobKind {
    /// A whole state.
    Snapshot,
    /// The changes from the origin state to the destination state.
    Delta,
    /// The changes from a newer origin state back to an older destination state.
    ReverseDelta,
}

impl BlobKind {
    pub(crate) fn code(self) -> u32 {
        match self {
            BlobKind::Snapshot => 1,
            BlobKind::Delta => 2,
            BlobKind::ReverseDelta => 3,
        }
    }

    pub(crate) fn from_code(code: u32) -> Option<Self> {
        Some(match code {
            1 => BlobKind::Snapshot,
            2 => BlobKind::Delta,
            3 => BlobKind::ReverseDelta,
            _ => return None,
        })
    }

    /// Lower-case name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            BlobKind::Snapshot => "snapshot",
            BlobKind::Delta => "delta",
            BlobKind::ReverseDelta => "reverse delta",
        }
    }
}

impl std::fmt::Display for BlobKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
