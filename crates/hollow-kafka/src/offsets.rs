//! Which messages a state contains: per partition, the offset of the next message to apply,
//! recorded as a state tag; and waiting for a state that contains a given write.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hollow_consumer::Consumer;
use hollow_core::ReadState;

/// Per partition of a topic: the offset of the next message to apply. Every message before it
/// is in the state; none from it on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Offsets(BTreeMap<i32, i64>);

impl Offsets {
    /// The state tag that holds the offsets of `topic`.
    pub fn tag_key(topic: &str) -> String {
        format!("kafka.offsets.{topic}")
    }

    /// The offsets of `topic` that `state` contains: none when the state has no such tag (a
    /// state no Kafka source published); an error when the tag is damaged.
    pub fn of_state(state: &ReadState, topic: &str) -> Result<Self, String> {
        match state.tag(&Self::tag_key(topic)) {
            Some(text) => text.parse(),
            None => Ok(Self::default()),
        }
    }

    /// The offset of the next message of `partition` to apply, if any message of it was.
    pub fn next(&self, partition: i32) -> Option<i64> {
        self.0.get(&partition).copied()
    }

    /// Records that every message of `partition` before `next` is applied.
    pub fn set_next(&mut self, partition: i32, next: i64) {
        self.0.insert(partition, next);
    }

    /// True when the message at `offset` of `partition` is applied.
    pub fn contains(&self, partition: i32, offset: i64) -> bool {
        self.next(partition).is_some_and(|next| next > offset)
    }

    /// The partitions and their next offsets.
    pub fn iter(&self) -> impl Iterator<Item = (i32, i64)> + '_ {
        self.0.iter().map(|(&p, &o)| (p, o))
    }

    /// Messages between these offsets and `later` (0 for a partition not ahead).
    pub fn messages_until(&self, later: &Offsets) -> u64 {
        later
            .iter()
            .map(|(p, o)| (o - self.next(p).unwrap_or(0)).max(0) as u64)
            .sum()
    }
}

/// `0=120,1=98`: partition=next offset, by partition.
impl fmt::Display for Offsets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (p, o)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}={o}")?;
        }
        Ok(())
    }
}

impl FromStr for Offsets {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = BTreeMap::new();
        for item in s.split(',').filter(|i| !i.is_empty()) {
            let parsed = item.split_once('=').and_then(|(p, o)| {
                let (p, o) = (p.parse::<i32>().ok()?, o.parse::<i64>().ok()?);
                (p >= 0 && o >= 0).then_some((p, o))
            });
            let Some((p, o)) = parsed else {
                return Err(format!(
                    "damaged Kafka offsets {s:?}: {item:?} is not partition=offset"
                ));
            };
            if out.insert(p, o).is_some() {
                return Err(format!("damaged Kafka offsets {s:?}: partition {p} twice"));
            }
        }
        Ok(Self(out))
    }
}

/// Where a write landed: its partition and offset. A state contains the write once its offsets
/// of that partition are past it. Printed and parsed as `partition:offset` (`3:1207`), to hand to
/// a client that later reads "after" its write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WriteToken {
    /// The partition the message was written to.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
}

impl fmt::Display for WriteToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.partition, self.offset)
    }
}

impl FromStr for WriteToken {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        s.split_once(':')
            .and_then(|(p, o)| Some((p.parse::<i32>().ok()?, o.parse::<i64>().ok()?)))
            .filter(|&(p, o)| p >= 0 && o >= 0)
            .map(|(partition, offset)| WriteToken { partition, offset })
            .ok_or_else(|| format!("{s:?} is not a write token (partition:offset)"))
    }
}

/// Read-your-writes for a [`Consumer`] of a dataset a [`KafkaSource`](crate::KafkaSource)
/// publishes: wait until the state served contains given messages of the topic.
#[allow(async_fn_in_trait)]
pub trait ReadYourWrites {
    /// The offsets of `topic` the state served contains (none before a state is served).
    fn offsets(&self, topic: &str) -> Result<Offsets, String>;

    /// Waits until the state served contains every `(partition, offset)` of `topic`, or
    /// `timeout` passes; returns that state, to read from, or `None` on timeout.
    async fn wait_for_offsets(
        &self,
        topic: &str,
        messages: &[(i32, i64)],
        timeout: Duration,
    ) -> Option<Arc<ReadState>>;

    /// Waits until the state served contains the write `token` names (see
    /// [`ReadYourWrites::wait_for_offsets`]).
    async fn wait_for_write(
        &self,
        topic: &str,
        token: WriteToken,
        timeout: Duration,
    ) -> Option<Arc<ReadState>> {
        self.wait_for_offsets(topic, &[(token.partition, token.offset)], timeout)
            .await
    }
}

impl ReadYourWrites for Consumer {
    fn offsets(&self, topic: &str) -> Result<Offsets, String> {
        match self.current() {
            Some(state) => Offsets::of_state(&state, topic),
            None => Ok(Offsets::default()),
        }
    }

    async fn wait_for_offsets(
        &self,
        topic: &str,
        messages: &[(i32, i64)],
        timeout: Duration,
    ) -> Option<Arc<ReadState>> {
        self.wait_until(
            |state| {
                Offsets::of_state(state, topic)
                    .is_ok_and(|o| messages.iter().all(|&(p, m)| o.contains(p, m)))
            },
            timeout,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_and_tokens_round_trip_and_refuse_damage() {
        let o: Offsets = "0=12,3=7".parse().unwrap();
        assert_eq!(o.to_string(), "0=12,3=7");
        assert!(o.contains(0, 11) && !o.contains(0, 12) && !o.contains(1, 0));
        assert_eq!("".parse::<Offsets>().unwrap(), Offsets::default());
        for bad in ["0=1,0=2", "x=1", "0=-1", "0:1", "-1=0"] {
            assert!(bad.parse::<Offsets>().is_err(), "{bad}");
        }
        let t: WriteToken = "3:1207".parse().unwrap();
        assert_eq!(
            t,
            WriteToken {
                partition: 3,
                offset: 1207
            }
        );
        assert_eq!(t.to_string(), "3:1207");
        for bad in ["3", "3:", "a:1", "3:-4"] {
            assert!(bad.parse::<WriteToken>().is_err(), "{bad}");
        }
    }
}
