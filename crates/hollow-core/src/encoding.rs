//! How a column's values become bits: frame-of-reference, minimal width, and a null code.
//!
//! Every value has a canonical `u64` form: integers as two's complement, floats as their IEEE
//! bits, booleans as 0/1, references as the target's ordinal, strings and bytes as the index of
//! the entry in the column's dictionary. A column stores `canonical - base` in `width` bits; when
//! the column is nullable, the all-ones code of that width means null.

use crate::error::{Error, Result};
use crate::packed::{bits_needed, low_mask};
use crate::schema::{Kind, ValueType};

/// How one column is packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ColumnEncoding {
    /// Canonical value stored as 0.
    pub base: u64,
    /// Bits per value.
    pub width: u8,
}

/// Maps canonical values to a domain where unsigned order is the value order.
#[inline]
fn order_key(kind: Kind, canonical: u64) -> u64 {
    if kind.is_signed() {
        canonical ^ (1 << 63)
    } else {
        canonical
    }
}

impl ColumnEncoding {
    /// The null code of this encoding.
    #[inline]
    pub fn null_code(self) -> u64 {
        low_mask(self.width)
    }

    /// Stored bits for a canonical value (`None` = null).
    #[inline]
    pub fn encode(self, value: Option<u64>) -> u64 {
        match value {
            Some(v) => v.wrapping_sub(self.base),
            None => self.null_code(),
        }
    }

    /// True when every value in `range` (and a null, if `nullable`) can be stored.
    pub fn fits(self, kind: Kind, nullable: bool, range: &ValueRange) -> bool {
        if self.width > 64 {
            return false;
        }
        let Some((min, max)) = range.bounds else {
            return !nullable || self.width > 0;
        };
        let base = order_key(kind, self.base);
        if min < base {
            return false;
        }
        let limit = low_mask(self.width) - nullable as u64;
        max - base <= limit && (!nullable || self.width > 0)
    }

    /// The smallest encoding for `range`.
    pub fn minimal(ty: ValueType, range: &ValueRange) -> Result<Self> {
        let Some((min, max)) = range.bounds else {
            return Ok(Self {
                base: 0,
                width: ty.nullable as u8,
            });
        };
        let span = max - min;
        let needed = if ty.nullable {
            span.checked_add(1).ok_or_else(|| {
                Error::Write(
                    "a nullable 64-bit column holds values spanning the whole 64-bit range; \
                     there is no bit pattern left for null"
                        .into(),
                )
            })?
        } else {
            span
        };
        Ok(Self {
            base: order_key(ty.kind, min),
            width: bits_needed(needed),
        })
    }
}

/// The smallest and largest non-null values of a column, in order-key form.
#[derive(Clone, Copy, Debug, Default)]
pub struct ValueRange {
    bounds: Option<(u64, u64)>,
}

impl ValueRange {
    /// Includes a canonical value of `kind`.
    #[inline]
    pub fn add(&mut self, kind: Kind, canonical: u64) {
        let k = order_key(kind, canonical);
        self.bounds = Some(match self.bounds {
            None => (k, k),
            Some((lo, hi)) => (lo.min(k), hi.max(k)),
        });
    }
}

/// Decodes stored bits back to a canonical value (`None` = null).
#[inline(always)]
pub fn decode(stored: u64, encoding: ColumnEncoding, nullable: bool) -> Option<u64> {
    if nullable && stored == encoding.null_code() {
        None
    } else {
        Some(stored.wrapping_add(encoding.base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn round_trip(kind: Kind, nullable: bool, values: &[Option<u64>]) {
        let mut range = ValueRange::default();
        for v in values.iter().flatten() {
            range.add(kind, *v);
        }
        let ty = ValueType { kind, nullable };
        let enc = match ColumnEncoding::minimal(ty, &range) {
            Ok(enc) => enc,
            Err(e) => {
                // The one range no encoding holds: nullable, and spanning all 2^64 values.
                let full = matches!(range.bounds, Some((lo, hi)) if hi - lo == u64::MAX);
                assert!(nullable && full, "{e} for {values:?}");
                return;
            }
        };
        assert!(enc.fits(kind, nullable, &range));
        for v in values {
            let stored = enc.encode(*v);
            assert!(stored <= low_mask(enc.width));
            assert_eq!(decode(stored, enc, nullable), *v);
        }
    }

    #[test]
    fn widths_are_minimal() {
        let mut r = ValueRange::default();
        for y in 1920..2025i64 {
            r.add(Kind::I32, y as u64);
        }
        let ty = |nullable| ValueType {
            kind: Kind::I32,
            nullable,
        };
        assert_eq!(ColumnEncoding::minimal(ty(false), &r).unwrap().width, 7);
        assert_eq!(ColumnEncoding::minimal(ty(true), &r).unwrap().width, 7);
        let mut one = ValueRange::default();
        one.add(Kind::I64, 5);
        assert_eq!(ColumnEncoding::minimal(ty(false), &one).unwrap().width, 0);
        assert_eq!(ColumnEncoding::minimal(ty(true), &one).unwrap().width, 1);
    }

    #[test]
    fn full_range_with_null_is_an_error_not_a_collision() {
        let mut r = ValueRange::default();
        r.add(Kind::I64, i64::MIN as u64);
        r.add(Kind::I64, i64::MAX as u64);
        let ty = ValueType {
            kind: Kind::I64,
            nullable: true,
        };
        assert!(ColumnEncoding::minimal(ty, &r).is_err());
        let ty = ValueType {
            kind: Kind::I64,
            nullable: false,
        };
        assert_eq!(ColumnEncoding::minimal(ty, &r).unwrap().width, 64);
    }

    proptest! {
        #[test]
        fn signed_values_round_trip(vals in prop::collection::vec(prop::option::of(any::<i64>()), 0..50), nullable: bool) {
            let vals: Vec<Option<u64>> = vals.into_iter().map(|v| v.map(|x| x as u64)).map(|v| if nullable { v } else { v.or(Some(0)) }).collect();
            round_trip(Kind::I64, nullable, &vals);
        }

        /// Floats are stored as their IEEE bits, ordered as unsigned numbers: any 64-bit pattern.
        #[test]
        fn float_bit_patterns_round_trip(vals in prop::collection::vec(prop::option::of(any::<u64>()), 0..50), nullable: bool) {
            let vals: Vec<Option<u64>> = vals.into_iter().map(|v| if nullable { v } else { v.or(Some(0)) }).collect();
            round_trip(Kind::F64, nullable, &vals);
        }

        #[test]
        fn narrow_integers_and_booleans_round_trip(vals in prop::collection::vec(prop::option::of(any::<i32>()), 0..50), nullable: bool) {
            let ints: Vec<Option<u64>> = vals.iter().map(|v| v.map(|x| x as i64 as u64)).map(|v| if nullable { v } else { v.or(Some(0)) }).collect();
            round_trip(Kind::I32, nullable, &ints);
            let bools: Vec<Option<u64>> = vals.iter().map(|v| v.map(|x| (x & 1) as u64)).map(|v| if nullable { v } else { v.or(Some(0)) }).collect();
            round_trip(Kind::Bool, nullable, &bools);
        }
    }
}
