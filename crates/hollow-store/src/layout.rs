//! Where a dataset's blobs live under its prefix, and what the announcement says.
//!
//! ```text
//! snapshot/<state>            the whole state
//! delta/<from>-<to>           from state `from` to the newer state `to`
//! reversedelta/<from>-<to>    from state `from` back to the older state `to`
//! announced.version           the state consumers should serve, checksummed
//! leader.lease                who leads the producers, when they elect one (see `Lease`)
//! .hollow.lock                in a local folder only: the lock of its compare-and-swap
//! ```
//! A state is written `<version>.<tag>`, the tag as 16 hex digits (`5.9b0c1d2e3f405162`): two
//! producers that mint the same version never write the same name, so their blobs never mix.

use hollow_core::StateId;

use crate::sealed_text;

/// The announcement's name under the prefix.
pub const ANNOUNCEMENT: &str = "announced.version";

/// The leader lease's name under the prefix.
pub const LEASE: &str = "leader.lease";

/// In a local folder's dataset: the lock file that makes a compare-and-swap there safe between
/// processes (it holds nothing).
pub const FOLDER_LOCK: &str = ".hollow.lock";

/// One blob of a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BlobName {
    /// The whole of a state.
    Snapshot(StateId),
    /// From `from` to the newer `to`.
    Delta {
        /// Origin state.
        from: StateId,
        /// Destination state.
        to: StateId,
    },
    /// From `from` back to the older `to`.
    ReverseDelta {
        /// Origin state (the newer one).
        from: StateId,
        /// Destination state (the older one).
        to: StateId,
    },
}

/// `5.9b0c1d2e3f405162`.
fn state_name(id: StateId) -> String {
    format!("{}.{:016x}", id.version, id.tag)
}

/// A version as decimal digits: 1 to 20 ASCII digits, no sign, no leading zero, at least 1.
fn parse_version(digits: &str) -> Option<u64> {
    let ok = !digits.is_empty()
        && digits.len() <= 20
        && !digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| digits.parse().ok()).flatten()
}

/// A tag as exactly 16 lower-case hex digits.
pub(crate) fn parse_tag(hex: &str) -> Option<u64> {
    let ok = hex.len() == 16 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then(|| u64::from_str_radix(hex, 16).ok()).flatten()
}

/// Reads `<version>.<tag>`.
pub fn parse_state(text: &str) -> Option<StateId> {
    let (version, tag) = text.split_once('.')?;
    Some(StateId::new(parse_version(version)?, parse_tag(tag)?))
}

impl BlobName {
    /// The name under the dataset prefix.
    pub fn path(&self) -> String {
        match *self {
            BlobName::Snapshot(s) => format!("snapshot/{}", state_name(s)),
            BlobName::Delta { from, to } => {
                format!("delta/{}-{}", state_name(from), state_name(to))
            }
            BlobName::ReverseDelta { from, to } => {
                format!("reversedelta/{}-{}", state_name(from), state_name(to))
            }
        }
    }

    /// Parses a name under the prefix; `None` for anything else.
    pub fn parse(path: &str) -> Option<Self> {
        let (dir, rest) = path.split_once('/')?;
        let pair = || -> Option<(StateId, StateId)> {
            let (a, b) = rest.split_once('-')?;
            Some((parse_state(a)?, parse_state(b)?))
        };
        match dir {
            "snapshot" => parse_state(rest).map(BlobName::Snapshot),
            "delta" => pair()
                .filter(|(f, t)| f.version < t.version)
                .map(|(from, to)| BlobName::Delta { from, to }),
            "reversedelta" => pair()
                .filter(|(f, t)| f.version > t.version)
                .map(|(from, to)| BlobName::ReverseDelta { from, to }),
            _ => None,
        }
    }

    /// The state the blob produces.
    pub fn destination(&self) -> StateId {
        match *self {
            BlobName::Snapshot(s) => s,
            BlobName::Delta { to, .. } | BlobName::ReverseDelta { to, .. } => to,
        }
    }

    /// The newest version the blob names.
    pub fn newest_version(&self) -> u64 {
        match *self {
            BlobName::Snapshot(s) => s.version,
            BlobName::Delta { to, .. } => to.version,
            BlobName::ReverseDelta { from, .. } => from.version,
        }
    }

    /// `snapshot`, `delta` or `reverse_delta`, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            BlobName::Snapshot(_) => "snapshot",
            BlobName::Delta { .. } => "delta",
            BlobName::ReverseDelta { .. } => "reverse_delta",
        }
    }
}

impl std::fmt::Display for BlobName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path())
    }
}

/// What an announcement says: the state consumers should serve (none before the first version
/// of a dataset whose leader has fenced it) and the leadership epoch of the producer that wrote
/// it (0 for producers without leader election).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnnouncementBody {
    /// The announced state, if any.
    pub state: Option<StateId>,
    /// The leadership epoch of the writer.
    pub epoch: u64,
}

/// The first format: a state and no epoch (still written when the epoch is 0, so that readers
/// of that format keep reading what producers without leader election write).
const HEADER_V1: &str = "hollow-announcement 1";
/// The second: a state or `none`, and the writer's leadership epoch.
const HEADER_V2: &str = "hollow-announcement 2";

/// The announcement's content for `state`, written by a producer without leader election.
///
/// ```text
/// hollow-announcement 1
/// state 5.9b0c1d2e3f405162
/// checksum 1f2e3d4c5b6a7988
/// ```
pub fn announcement(state: StateId) -> Vec<u8> {
    announcement_of(AnnouncementBody {
        state: Some(state),
        epoch: 0,
    })
}

/// The announcement's content for `body`: a header line, the state, the epoch (from format 2
/// on), and a checksum of the lines before it, so that a damaged or cut read is rejected whole.
///
/// ```text
/// hollow-announcement 2
/// state 5.9b0c1d2e3f405162
/// epoch 3
/// checksum 1f2e3d4c5b6a7988
/// ```
pub fn announcement_of(body: AnnouncementBody) -> Vec<u8> {
    let state = body.state.map_or("none".to_string(), state_name);
    match body {
        AnnouncementBody {
            state: Some(_),
            epoch: 0,
        } => sealed_text::seal(&format!("{HEADER_V1}\nstate {state}\n")),
        _ => sealed_text::seal(&format!(
            "{HEADER_V2}\nstate {state}\nepoch {}\n",
            body.epoch
        )),
    }
}

/// Reads an announcement of either format. It is untrusted input: anything but what
/// [`announcement_of`] writes is an error saying what is wrong.
pub fn parse_announcement(bytes: &[u8]) -> Result<AnnouncementBody, String> {
    let body = sealed_text::unseal(bytes)?;
    let malformed = || format!("not an announcement of a known format: {:?}", preview(body));
    let mut lines = body.lines();
    let header = lines.next().ok_or_else(malformed)?;
    let state = lines
        .next()
        .and_then(|l| l.strip_prefix("state "))
        .ok_or_else(malformed)?;
    let (state, epoch) = match header {
        HEADER_V1 => (Some(parse_state(state).ok_or_else(malformed)?), 0),
        HEADER_V2 => {
            let state = match state {
                "none" => None,
                s => Some(parse_state(s).ok_or_else(malformed)?),
            };
            let epoch = lines
                .next()
                .and_then(|l| l.strip_prefix("epoch "))
                .and_then(parse_version_or_zero)
                .ok_or_else(malformed)?;
            (state, epoch)
        }
        _ => return Err(malformed()),
    };
    if lines.next().is_some() {
        return Err(malformed());
    }
    Ok(AnnouncementBody { state, epoch })
}

/// A counter as decimal digits: `0`, or what [`parse_version`] reads.
pub(crate) fn parse_version_or_zero(digits: &str) -> Option<u64> {
    match digits {
        "0" => Some(0),
        d => parse_version(d),
    }
}

pub(crate) fn preview(text: &str) -> &str {
    let end = text.char_indices().nth(80).map_or(text.len(), |(i, _)| i);
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: StateId = StateId::new(7, 0xa7);
    const B: StateId = StateId::new(8, 0xb8);

    #[test]
    fn names_round_trip() {
        for b in [
            BlobName::Snapshot(A),
            BlobName::Delta { from: A, to: B },
            BlobName::ReverseDelta { from: B, to: A },
            BlobName::Snapshot(StateId::new(u64::MAX, u64::MAX)),
        ] {
            assert_eq!(BlobName::parse(&b.path()), Some(b), "{b}");
        }
        assert_eq!(
            BlobName::Delta { from: A, to: B }.path(),
            "delta/7.00000000000000a7-8.00000000000000b8"
        );
        for bad in [
            "snapshot/",
            "snapshot/7",
            "snapshot/07.00000000000000a7",
            "snapshot/7.a7",
            "snapshot/7.00000000000000A7",
            "delta/8.00000000000000b8-7.00000000000000a7",
            "reversedelta/7.00000000000000a7-8.00000000000000b8",
            "delta/7.00000000000000a7",
            "x/7.00000000000000a7",
            "announced.version",
        ] {
            assert_eq!(BlobName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn announcements_round_trip_and_reject_any_damage() {
        let good = announcement(B);
        assert_eq!(
            parse_announcement(&good),
            Ok(AnnouncementBody {
                state: Some(B),
                epoch: 0
            })
        );
        // Any cut and any changed byte is rejected (a damaged "277" read as "3", say).
        for cut in 0..good.len() {
            assert!(parse_announcement(&good[..cut]).is_err(), "cut {cut}");
        }
        for i in 0..good.len() {
            for bit in 0..8 {
                let mut b = good.clone();
                b[i] ^= 1 << bit;
                assert!(parse_announcement(&b).is_err(), "byte {i} bit {bit}");
            }
        }
        for bad in [&b""[..], b"8\n", b"\xff", b"checksum 0000000000000000\n"] {
            assert!(parse_announcement(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn epochs_and_fences_round_trip() {
        for body in [
            AnnouncementBody {
                state: Some(B),
                epoch: 3,
            },
            AnnouncementBody {
                state: None,
                epoch: 1,
            },
            AnnouncementBody {
                state: Some(A),
                epoch: u64::MAX,
            },
        ] {
            let bytes = announcement_of(body);
            assert!(bytes.starts_with(b"hollow-announcement 2\n"));
            assert_eq!(parse_announcement(&bytes), Ok(body));
            for cut in 0..bytes.len() {
                assert!(parse_announcement(&bytes[..cut]).is_err(), "cut {cut}");
            }
        }
    }

    /// An announcement as the first format wrote it (frozen bytes): still read, as epoch 0; and
    /// a producer without leader election still writes exactly that format.
    #[test]
    fn the_first_format_still_reads_and_is_still_written() {
        let frozen =
            b"hollow-announcement 1\nstate 8.00000000000000b8\nchecksum 4f6e2fbf3637bbd1\n";
        assert_eq!(
            parse_announcement(frozen),
            Ok(AnnouncementBody {
                state: Some(B),
                epoch: 0
            })
        );
        assert_eq!(announcement(B), frozen.to_vec());
    }
}
