//! The leader lease: which producer leads a dataset, in which epoch, for how long; one small
//! checksummed object next to the announcement, only ever changed by compare-and-swap.
//!
//! ```text
//! hollow-lease 1
//! epoch 7
//! holder producer-a
//! token 9b0c1d2e3f405162
//! duration_ms 1000
//! renewal 42
//! released no
//! checksum 1f2e3d4c5b6a7988
//! ```

use std::time::Duration;

use object_store::UpdateVersion;

use crate::error::{Error, Result};
use crate::layout::{self, parse_tag, parse_version_or_zero, preview};
use crate::sealed_text;
use crate::store::{BlobStore, Swap};

/// Who leads the producers of a dataset, as the lease object says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The leadership's epoch: every new leader takes a higher one.
    pub epoch: u64,
    /// The leader's id (as configured; see [`Lease::valid_holder`]).
    pub holder: String,
    /// A random number of the holder's process, so that two runs of one id are told apart.
    pub token: u64,
    /// How long the lease lasts after each renewal, as the holder promised.
    pub duration: Duration,
    /// Renewals so far in this epoch: every renewal changes the object.
    pub renewal: u64,
    /// The holder gave the lease up (a clean shutdown): another producer may take it at once.
    pub released: bool,
}

/// The lease object as stored: what it says and its object version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseObject {
    /// What it says.
    pub lease: Lease,
    /// The store's e-tag / version of the object.
    pub object_version: UpdateVersion,
}

const HEADER: &str = "hollow-lease 1";

impl Lease {
    /// Checks a holder id: 1 to 128 characters, none of them a control character.
    pub fn valid_holder(holder: &str) -> std::result::Result<(), String> {
        if holder.is_empty() || holder.chars().count() > 128 {
            return Err(format!(
                "a holder id has 1 to 128 characters, not {}",
                holder.chars().count()
            ));
        }
        if holder.chars().any(char::is_control) {
            return Err(format!("the holder id {holder:?} has a control character"));
        }
        Ok(())
    }

    /// The object's content.
    pub fn to_bytes(&self) -> Vec<u8> {
        sealed_text::seal(&format!(
            "{HEADER}\nepoch {}\nholder {}\ntoken {:016x}\nduration_ms {}\nrenewal {}\nreleased {}\n",
            self.epoch,
            self.holder,
            self.token,
            self.duration.as_millis(),
            self.renewal,
            if self.released { "yes" } else { "no" },
        ))
    }

    /// Reads a lease object. It is untrusted input: anything but what [`Lease::to_bytes`]
    /// writes is an error saying what is wrong.
    pub fn parse(bytes: &[u8]) -> std::result::Result<Lease, String> {
        let body = sealed_text::unseal(bytes)?;
        let malformed = || format!("not a lease of a known format: {:?}", preview(body));
        let mut lines = body.lines();
        let mut field = |name: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix(' '))
                .ok_or_else(malformed)
        };
        if field("hollow-lease")? != "1" {
            return Err(malformed());
        }
        let number = |text: &str| parse_version_or_zero(text).ok_or_else(malformed);
        let epoch = number(field("epoch")?)?;
        let holder = field("holder")?.to_string();
        Lease::valid_holder(&holder)?;
        let token = parse_tag(field("token")?).ok_or_else(malformed)?;
        let duration = Duration::from_millis(number(field("duration_ms")?)?);
        let renewal = number(field("renewal")?)?;
        let released = match field("released")? {
            "yes" => true,
            "no" => false,
            _ => return Err(malformed()),
        };
        if lines.next().is_some() {
            return Err(malformed());
        }
        Ok(Lease {
            epoch,
            holder,
            token,
            duration,
            renewal,
            released,
        })
    }
}

impl BlobStore {
    /// The leader lease, `None` when no producer ever took one.
    pub async fn lease(&self) -> Result<Option<LeaseObject>> {
        self.lease_if_changed(None).await.map(Option::flatten)
    }

    /// The lease, unless its object version is still `known` (a cheap conditional request):
    /// `Ok(None)` = unchanged, `Ok(Some(None))` = no lease.
    pub async fn lease_if_changed(
        &self,
        known: Option<&UpdateVersion>,
    ) -> Result<Option<Option<LeaseObject>>> {
        let Some(read) = self.read_if_changed(layout::LEASE, known).await? else {
            return Ok(None);
        };
        let Some((bytes, object_version)) = read else {
            return Ok(Some(None));
        };
        let lease = Lease::parse(&bytes).map_err(|reason| Error::BadLease {
            path: self.location(layout::LEASE),
            reason,
        })?;
        Ok(Some(Some(LeaseObject {
            lease,
            object_version,
        })))
    }

    /// Replaces the lease `previous` (`None`: there was none) with `lease`, or fails with
    /// [`Error::LeaseConflict`] when the store holds anything else by then (see
    /// [`BlobStore::swap_announcement`] for how each kind of store does it).
    pub async fn swap_lease(
        &self,
        lease: Lease,
        previous: Option<&LeaseObject>,
    ) -> Result<LeaseObject> {
        let expected = previous.map(|p| (&p.object_version, p.lease.to_bytes()));
        match self.swap(layout::LEASE, lease.to_bytes(), expected).await {
            Ok(object_version) => Ok(LeaseObject {
                lease,
                object_version,
            }),
            Err(Swap::Conflict) => {
                let found = self.lease().await.ok().flatten();
                Err(Error::LeaseConflict {
                    path: self.location(layout::LEASE),
                    found: found.map(|f| (f.lease.holder, f.lease.epoch)),
                })
            }
            Err(Swap::Failed(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease() -> Lease {
        Lease {
            epoch: 7,
            holder: "producer-a (eu-west-1)".into(),
            token: 0x9b0c_1d2e_3f40_5162,
            duration: Duration::from_millis(1500),
            renewal: 42,
            released: false,
        }
    }

    #[test]
    fn leases_round_trip_and_reject_any_damage() {
        let mut l = lease();
        assert_eq!(Lease::parse(&l.to_bytes()), Ok(l.clone()));
        l.released = true;
        l.renewal = 0;
        assert_eq!(Lease::parse(&l.to_bytes()), Ok(l.clone()));
        let good = l.to_bytes();
        for cut in 0..good.len() {
            assert!(Lease::parse(&good[..cut]).is_err(), "cut {cut}");
        }
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x20;
            assert!(Lease::parse(&b).is_err(), "byte {i}");
        }
        assert!(Lease::parse(&layout::announcement(hollow_core::StateId::new(1, 1))).is_err());
    }

    #[test]
    fn holder_ids_are_checked() {
        assert!(Lease::valid_holder("a").is_ok());
        assert!(Lease::valid_holder("").is_err());
        assert!(Lease::valid_holder("a\nepoch 9").is_err());
        assert!(Lease::valid_holder(&"x".repeat(129)).is_err());
    }
}
