//! Fixed-width bit-packed entries kept in chunks of [`CHUNK_ENTRIES`], so that the next
//! version of a table shares every chunk it does not write: a delta that changes a few
//! records updates the primary key index in a few chunks instead of copying the whole table
//! (4.7 MB at 1 M records, 47 MB at 10 M).

use bytes::Bytes;

use crate::mapped_words::Words;
use crate::packed::{
    fill_from_le_bytes, get_bits, packed_len_bytes, set_bits, BitWriter, PackedBits,
};
use crate::prefetch::prefetch;
use crate::table_lineage::{Owned, Version};

/// Entries per chunk, as a power of two: a chunk of 24-bit entries is 12 KB, and the chunks
/// of a 10 M-record table take 3,300 handles (100 KB, which lookups read beside the entry).
const CHUNK_ENTRIES_LOG2: u32 = 12;
const CHUNK_ENTRIES: u64 = 1 << CHUNK_ENTRIES_LOG2;

/// Bringing a buffer up to date loads the entries this many ahead of the one it writes.
const RESTORES_AHEAD: usize = 16;

/// `len` entries of `width` bits, readable in O(1), in chunks that versions share.
#[derive(Clone, Debug, Default)]
pub(crate) struct EntryTable {
    chunks: Vec<PackedBits>,
    len: u64,
    width: u8,
    /// The buffer the table was made from, while chunks are slices of it.
    buffer: Option<Bytes>,
    /// This version of the table in its line (see [`crate::table_lineage`]).
    version: Version,
}

impl EntryTable {
    /// The table of `len` entries of `width` bits laid end to end in `bytes`, followed by
    /// the padding word (as a [`BitWriter`] writes them); the chunks are slices of `bytes`.
    /// `None` when `bytes` is too short or not a whole number of words.
    pub(crate) fn new(bytes: Bytes, len: u64, width: u8) -> Option<Self> {
        let bits = len * width as u64;
        if (bytes.len() as u64) < packed_len_bytes(bits) || !bytes.len().is_multiple_of(8) {
            return None;
        }
        // A whole number of words, since the entries of a chunk are a multiple of 64.
        let chunk_bytes = (CHUNK_ENTRIES * width as u64 / 8) as usize;
        let chunks = (0..len.div_ceil(CHUNK_ENTRIES))
            .map(|c| {
                let start = c as usize * chunk_bytes;
                let chunk_bits = Self::entries_in(len, c as usize) * width as u64;
                // The next chunk's first word (the padding word, for the last) ends the slice.
                let end = start + packed_len_bytes(chunk_bits) as usize;
                PackedBits::new(bytes.slice(start..end), chunk_bits)
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Self {
            chunks,
            len,
            width,
            buffer: Some(bytes),
            version: Version::first(),
        })
    }

    /// Whether `chunk` is a slice of the buffer this table was made from.
    fn shares_buffer(&self, chunk: &PackedBits) -> bool {
        self.buffer.as_ref().is_some_and(|buffer| {
            let range = buffer.as_ptr_range();
            range.contains(&chunk.bytes().as_ptr())
        })
    }

    /// How many chunks are slices of the buffer this table was made from.
    fn in_buffer(&self) -> usize {
        (self.chunks.iter())
            .filter(|chunk| self.shares_buffer(chunk))
            .count()
    }

    /// Entries in chunk `c` of a table of `len`.
    fn entries_in(len: u64, c: usize) -> u64 {
        (len - c as u64 * CHUNK_ENTRIES).min(CHUNK_ENTRIES)
    }

    /// Entry `i`; 0 past the end.
    #[inline(always)]
    pub(crate) fn get(&self, i: u64) -> u64 {
        match self.chunks.get((i >> CHUNK_ENTRIES_LOG2) as usize) {
            Some(chunk) => chunk.get((i & (CHUNK_ENTRIES - 1)) * self.width as u64, self.width),
            None => 0,
        }
    }

    /// Hints the CPU to load entry `i`, which a later [`EntryTable::get`] will read.
    #[inline(always)]
    pub(crate) fn prefetch(&self, i: u64) {
        if let Some(chunk) = self.chunks.get((i >> CHUNK_ENTRIES_LOG2) as usize) {
            chunk.prefetch((i & (CHUNK_ENTRIES - 1)) * self.width as u64);
        }
    }

    /// The entries laid end to end as [`EntryTable::new`] takes them: the buffer it was made
    /// from while no chunk has been rewritten.
    pub(crate) fn to_bytes(&self) -> Bytes {
        if let Some(buffer) = self
            .buffer
            .as_ref()
            .filter(|_| self.in_buffer() == self.chunks.len())
        {
            return buffer.clone();
        }
        let bits = self.len * self.width as u64;
        let mut bytes = Vec::with_capacity(packed_len_bytes(bits) as usize);
        for (c, chunk) in self.chunks.iter().enumerate() {
            let words = (Self::entries_in(self.len, c) * self.width as u64).div_ceil(64);
            bytes.extend_from_slice(&chunk.bytes()[..words as usize * 8]);
        }
        bytes.extend_from_slice(&[0; 8]);
        Bytes::from(bytes)
    }

    /// Bytes held: the buffer the table was made from, while any chunk shares it, the
    /// chunks written since, and where the version before was written.
    pub(crate) fn heap_bytes(&self) -> usize {
        let buffer = self.buffer.as_ref().map_or(0, Bytes::len);
        let written = self.chunks.len() - self.in_buffer();
        buffer
            + written * packed_len_bytes(CHUNK_ENTRIES * self.width as u64) as usize
            + self.version.written() * 8
    }

    /// A writer of the next version of this table, about to make `writes` writes spread
    /// over it. It copies a chunk when it first writes to it; but when the writes are as many
    /// as the chunks (most chunks would be copied), it makes a whole copy of the table in a
    /// buffer of its own, which is faster than copying chunk by chunk between the writes. That
    /// buffer is the one an earlier version of the table let go, when one is kept: brought up
    /// to date where the two versions differ (see [`crate::table_lineage`]), or copied over
    /// (its pages resident already) when they differ in too many entries.
    pub(crate) fn writer(&self, writes: usize) -> EntryTableWriter<'_> {
        let copy = match writes >= self.chunks.len() {
            true => Copy::Whole(self.whole_copy()),
            false => Copy::Chunks((0..self.chunks.len()).map(|_| None).collect()),
        };
        EntryTableWriter {
            table: self,
            copy,
            written: Vec::with_capacity(writes),
        }
    }

    /// The entries and the padding word, in a buffer of their own.
    fn whole_copy(&self) -> Words {
        let bits = self.len * self.width as u64;
        let len = (bits.div_ceil(64) + 1) as usize;
        let returned = match cfg!(target_endian = "little") {
            true => self.version.take_returned(len, self.len),
            false => None,
        };
        if let Some((mut words, Some(differ))) = returned {
            let width = self.width as u64;
            let words_out = words.as_mut_slice();
            for (k, &i) in differ.iter().enumerate() {
                // The entries are spread over the table: each one's cache lines are loaded
                // while those before are written.
                if let Some(&ahead) = differ.get(k + RESTORES_AHEAD) {
                    self.prefetch(ahead);
                    prefetch(
                        words_out
                            .as_ptr()
                            .wrapping_add(((ahead * width) >> 6) as usize),
                    );
                }
                set_bits(words_out, i * width, self.width, self.get(i));
            }
            return words;
        }
        // The buffer the table was made from, while every chunk is a slice of it.
        let source = self.to_bytes();
        match returned {
            Some((mut words, None)) => {
                fill_from_le_bytes(words.as_mut_slice(), &source, bits);
                words
            }
            // SAFETY: `fill_from_le_bytes` writes every word and reads none.
            _ => unsafe {
                Words::overwritten(len, |words| fill_from_le_bytes(words, &source, bits))
            },
        }
    }
}

/// The next version of an [`EntryTable`], being written.
pub(crate) struct EntryTableWriter<'a> {
    table: &'a EntryTable,
    copy: Copy,
    /// The entries written, in the order they were.
    written: Vec<u64>,
}

/// What an [`EntryTableWriter`] copied.
enum Copy {
    /// The whole table, with its padding word.
    Whole(Words),
    /// Per chunk, its copy once written to; the chunks not written are shared.
    Chunks(Vec<Option<BitWriter>>),
}

impl EntryTableWriter<'_> {
    /// Where entry `i` is: its chunk and the bit its bits start at there. (In a whole copy,
    /// entry `i` is at bit `i` × width.)
    #[inline(always)]
    fn at(&self, i: u64) -> (usize, u64) {
        let bit = (i & (CHUNK_ENTRIES - 1)) * self.table.width as u64;
        ((i >> CHUNK_ENTRIES_LOG2) as usize, bit)
    }

    /// Entry `i` as written so far; 0 past the end.
    #[inline(always)]
    pub(crate) fn get(&self, i: u64) -> u64 {
        let width = self.table.width;
        let (c, bit) = self.at(i);
        match &self.copy {
            Copy::Whole(copy) if i < self.table.len => {
                get_bits(copy.as_ref(), i * width as u64, width)
            }
            Copy::Chunks(written) => match written.get(c) {
                Some(Some(copy)) => copy.get(bit, width),
                Some(None) => self.table.chunks[c].get(bit, width),
                None => 0,
            },
            Copy::Whole(_) => 0,
        }
    }

    /// Hints the CPU to load entry `i`, which a later [`EntryTableWriter::get`] will read.
    #[inline(always)]
    pub(crate) fn prefetch(&self, i: u64) {
        let (c, bit) = self.at(i);
        match &self.copy {
            Copy::Whole(copy) => {
                let word = ((i * self.table.width as u64) >> 6) as usize;
                prefetch(copy.as_ref().as_ptr().wrapping_add(word));
            }
            Copy::Chunks(written) => match written.get(c) {
                Some(Some(copy)) => copy.prefetch(bit),
                Some(None) => self.table.chunks[c].prefetch(bit),
                None => {}
            },
        }
    }

    /// Sets entry `i` (which must be in the table) to `value`, copying its chunk first if
    /// this is the first write to it.
    pub(crate) fn set(&mut self, i: u64, value: u64) {
        let (c, bit) = self.at(i);
        let table = self.table;
        self.written.push(i);
        match &mut self.copy {
            Copy::Whole(copy) => set_bits(
                copy.as_mut_slice(),
                i * table.width as u64,
                table.width,
                value,
            ),
            Copy::Chunks(written) => {
                let copy = written[c].get_or_insert_with(|| {
                    let bits = EntryTable::entries_in(table.len, c) * table.width as u64;
                    BitWriter::from_le_bytes(table.chunks[c].bytes(), bits)
                });
                copy.set(bit, table.width, value);
            }
        }
    }

    /// The new table: the chunks written, and the others shared. Once fewer than half of its
    /// chunks share the buffer the first version was made from, those are copied too, so
    /// that the buffer can go with the versions still using it: a table never holds more than
    /// half a table's worth beside its own entries.
    pub(crate) fn finish(self) -> EntryTable {
        let table = self.table;
        let version = table.version.child(self.written);
        let written = match self.copy {
            Copy::Whole(copy) => {
                let bytes = match cfg!(target_endian = "little") {
                    // Given back to the line when let go, for a later version to start from.
                    true => Bytes::from_owner(Owned::new(copy, version.clone())),
                    false => copy.into_le_bytes(),
                };
                let table = EntryTable::new(bytes, table.len, table.width).unwrap_or_default();
                return EntryTable { version, ..table };
            }
            Copy::Chunks(written) => written,
        };
        let in_buffer = (written.iter().zip(&table.chunks))
            .filter(|(w, chunk)| w.is_none() && table.shares_buffer(chunk))
            .count();
        let keep_buffer = in_buffer * 2 >= table.chunks.len();
        let chunks = (written.into_iter().zip(&table.chunks).enumerate())
            .map(|(c, (written, chunk))| {
                let bits = EntryTable::entries_in(table.len, c) * table.width as u64;
                match written {
                    Some(copy) => PackedBits::new(copy.into_bytes(), bits).unwrap_or_default(),
                    None if !keep_buffer && table.shares_buffer(chunk) => chunk.copied(),
                    None => chunk.clone(),
                }
            })
            .collect();
        EntryTable {
            chunks,
            len: table.len,
            width: table.width,
            buffer: table.buffer.clone().filter(|_| keep_buffer),
            version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packed::BitWriter;

    fn table(len: u64, width: u8) -> EntryTable {
        let mut w = BitWriter::with_bits(len * width as u64);
        for i in 0..len {
            w.set(i * width as u64, width, i % (1 << width));
        }
        EntryTable::new(w.into_bytes(), len, width).unwrap()
    }

    /// Entries read back across chunk boundaries, with a last chunk part full; an update
    /// copies only the chunks it writes, and the next version reads the same otherwise.
    #[test]
    fn an_update_copies_only_the_chunks_it_writes() {
        let (len, width) = (3 * CHUNK_ENTRIES + 100, 21);
        let first = table(len, width);
        assert!((0..len).all(|i| first.get(i) == i % (1 << width)));
        assert_eq!(first.get(len), 0);

        let mut writer = first.writer(2);
        writer.set(5, 7);
        writer.set(CHUNK_ENTRIES - 1, 9);
        assert_eq!(writer.get(5), 7);
        let second = writer.finish();
        assert_eq!(second.get(5), 7);
        assert_eq!(second.get(CHUNK_ENTRIES - 1), 9);
        assert_eq!(second.get(CHUNK_ENTRIES), CHUNK_ENTRIES);
        assert!((6..CHUNK_ENTRIES - 1).all(|i| second.get(i) == i));
        assert_eq!(first.get(5), 5, "the first version is unchanged");
        assert_eq!(second.in_buffer(), 3, "three of four chunks shared");
        assert!(second.heap_bytes() > first.heap_bytes());

        // Its bytes make the same table again.
        let again = EntryTable::new(second.to_bytes(), len, width).unwrap();
        assert!((0..len).all(|i| again.get(i) == second.get(i)));
        assert_eq!(first.to_bytes(), first.buffer.clone().unwrap());
    }

    /// Once most chunks are written, the rest are copied and the first buffer let go.
    #[test]
    fn the_first_buffer_goes_once_most_chunks_are_written() {
        let (len, width) = (4 * CHUNK_ENTRIES, 12);
        let first = table(len, width);
        let mut writer = first.writer(2);
        writer.set(0, 1);
        writer.set(CHUNK_ENTRIES, 1);
        let second = writer.finish();
        assert!(second.buffer.is_some());
        let mut writer = second.writer(1);
        writer.set(2 * CHUNK_ENTRIES, 1);
        let third = writer.finish();
        assert!(third.buffer.is_none());
        assert_eq!(third.in_buffer(), 0);
        assert!((0..3).all(|c| third.get(c * CHUNK_ENTRIES) == 1));
        assert!((1..CHUNK_ENTRIES).all(|i| third.get(3 * CHUNK_ENTRIES + i) == i % 4096));
    }

    /// The address of a table's first entry.
    fn address(table: &EntryTable) -> *const u8 {
        table.chunks[0].bytes().as_ptr()
    }

    /// `count` writes spread over `table` (entry `seed + i * step`, value `seed + i`).
    fn written(table: &EntryTable, count: u64, step: u64, seed: u64) -> EntryTable {
        let mut writer = table.writer(count as usize);
        for i in 0..count {
            writer.set(
                (seed + i * step) % table.len,
                (seed + i) % (1 << table.width),
            );
        }
        writer.finish()
    }

    /// The entries of `table(len, width)` after `writes` by [`written`], in order.
    fn model(len: u64, width: u8, writes: &[(u64, u64, u64)]) -> Vec<u64> {
        let mut model: Vec<u64> = (0..len).map(|i| i % (1 << width)).collect();
        for &(count, step, seed) in writes {
            for i in 0..count {
                model[((seed + i * step) % len) as usize] = (seed + i) % (1 << width);
            }
        }
        model
    }

    fn entries(table: &EntryTable) -> Vec<u64> {
        (0..table.len).map(|i| table.get(i)).collect()
    }

    /// A whole copy let go is the buffer the next whole copy starts from, brought up to date
    /// where the two differ: for a sibling (a state derived and let go) and for a child once
    /// its parent is let go (a consumer moving on).
    #[test]
    fn a_version_let_go_is_brought_up_to_date_for_the_next() {
        let (len, width) = (3 * CHUNK_ENTRIES + 100, 21);
        let first = table(len, width);
        // Siblings: the second starts from the first's buffer.
        let sibling = written(&first, 40, 301, 1);
        let at = address(&sibling);
        drop(sibling);
        let sibling = written(&first, 50, 7, 9);
        assert_eq!(address(&sibling), at, "the buffer let go was reused");
        assert_eq!(entries(&sibling), model(len, width, &[(50, 7, 9)]));
        assert_eq!(entries(&first), model(len, width, &[]));
        // A line: from the third on, each version starts from its grandparent's buffer.
        let mut writes = vec![(50, 7, 9), (30, 97, 0)];
        let mut parent = sibling;
        let mut child = written(&parent, 30, 97, 0);
        for k in 1..6u64 {
            let at = address(&parent);
            drop(parent);
            writes.push((30 + k, 97 + k, 100 * k));
            let next = written(&child, 30 + k, 97 + k, 100 * k);
            assert_eq!(
                address(&next),
                at,
                "version {k} starts from its grandparent's"
            );
            assert_eq!(entries(&next), model(len, width, &writes));
            assert_eq!(
                entries(&child),
                model(len, width, &writes[..writes.len() - 1])
            );
            (parent, child) = (child, next);
        }
        // A version that differs from its parent in too many entries (900 of 12,388) is
        // copied whole, into the buffer let go all the same.
        drop(parent);
        let many = written(&child, 900, 13, 5);
        writes.push((900, 13, 5));
        let at = address(&child);
        drop(child);
        let next = written(&many, 4, 1, 0);
        assert_eq!(address(&next), at);
        writes.push((4, 1, 0));
        assert_eq!(entries(&next), model(len, width, &writes));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

        /// Versions written from any live version, some whole and some by chunks, and let go
        /// in any order: every live version reads what was written into it, whichever buffer
        /// it started from.
        #[test]
        fn versions_read_what_was_written_whatever_was_let_go(
            steps in proptest::collection::vec((0usize..8, 0u64..700, 1u64..5000, proptest::bool::ANY), 1..24),
        ) {
            let (len, width) = (3 * CHUNK_ENTRIES + 100, 13);
            let mut live: Vec<(EntryTable, Vec<u64>)> =
                vec![(table(len, width), model(len, width, &[]))];
            for (seed, &(pick, count, step, let_go)) in steps.iter().enumerate() {
                let (from, before) = &live[pick % live.len()];
                let next = written(from, count, step, seed as u64 * 31);
                let mut after = before.clone();
                for i in 0..count {
                    let at = (seed as u64 * 31 + i * step) % len;
                    after[at as usize] = (seed as u64 * 31 + i) % (1 << width);
                }
                live.push((next, after));
                if let_go && live.len() > 1 {
                    live.remove(pick % (live.len() - 1));
                }
                for (table, expected) in &live {
                    proptest::prop_assert!(entries(table) == *expected);
                }
            }
        }
    }

    #[test]
    fn short_bytes_are_refused() {
        assert!(EntryTable::new(Bytes::from(vec![0u8; 8]), 100, 12).is_none());
        assert!(EntryTable::new(Bytes::from(vec![0u8; 9]), 1, 12).is_none());
    }
}
