//! The buffer a snapshot was read into, shared by its type sections, each of which gives its
//! memory back as soon as no state reads it.
//!
//! A state loaded from a snapshot reads its types in place, in that one buffer. A delta gives
//! the types it changes buffers of their own, and shares the rest, so once the state loaded
//! from the snapshot is dropped, the sections of the changed types are read by nobody. A
//! single `Bytes` over the whole buffer would keep every page of them allocated as long as
//! any section is still read (an object type whose base rows a delta overlays, say). Here each
//! type section is a `Bytes` of its own over the shared buffer: when the last view of a
//! section goes, its whole pages are given back to the operating system
//! (`madvise(MADV_DONTNEED)`), and the buffer itself goes with its last section.

use std::sync::Arc;

use crate::mapped_words::release_pages;

use bytes::{Bytes, BytesMut};

/// A heap buffer, read through a raw pointer so that pages of it can be given back while
/// other parts are still read.
pub(crate) struct SnapshotBuffer {
    ptr: *mut u8,
    len: usize,
    /// The memory `ptr` points into, owned here and never touched otherwise (dropped last).
    _owner: BytesMut,
}

// SAFETY: the buffer is plain bytes owned by this value (`BytesMut` is `Send`); it is only
// read, through the views below.
unsafe impl Send for SnapshotBuffer {}
// SAFETY: as above: shared references only read.
unsafe impl Sync for SnapshotBuffer {}

impl SnapshotBuffer {
    /// Takes over the memory of `blob` when nothing else holds it (a blob just read or
    /// decompressed), without copying it, returning a `Bytes` over the whole buffer and the
    /// buffer, from which [`SnapshotBuffer::section`] makes views. A blob shared elsewhere, or
    /// memory-mapped, is returned as it is, with `None`.
    pub(crate) fn adopt(blob: Bytes) -> (Bytes, Option<Arc<Self>>) {
        // `try_into_mut` succeeds only for a unique blob, and then without copying it.
        let mut owner = match blob.try_into_mut() {
            Ok(owned) => owned,
            Err(shared) => return (shared, None),
        };
        let buffer = Arc::new(Self {
            ptr: owner.as_mut_ptr(),
            len: owner.len(),
            _owner: owner,
        });
        let whole = Bytes::from_owner(View {
            buffer: buffer.clone(),
            start: 0,
            len: buffer.len,
            release: false,
        });
        (whole, Some(buffer))
    }

    /// `data` (a slice of this buffer) as a view of its own, whose pages are given back when
    /// its last clone is dropped. Anything else is returned as it is.
    pub(crate) fn section(self: &Arc<Self>, data: Bytes) -> Bytes {
        let at = (data.as_ptr() as usize).wrapping_sub(self.ptr as usize);
        if data.is_empty() || at >= self.len || self.len - at < data.len() {
            return data;
        }
        Bytes::from_owner(View {
            buffer: self.clone(),
            start: at,
            len: data.len(),
            release: true,
        })
    }

    /// `whole` (a view of a whole buffer, or any blob) as a view that keeps `sections` (views
    /// of its type sections) alive while it lives: none of them gives its pages back while
    /// the blob is still read whole through it.
    pub(crate) fn keeping_sections(whole: Bytes, sections: Vec<Bytes>) -> Bytes {
        Bytes::from_owner(WholeBlob {
            whole,
            _sections: sections,
        })
    }

    fn bytes(&self, start: usize, len: usize) -> &[u8] {
        // SAFETY: `start + len <= self.len` for every view (checked in `section`) and the
        // buffer lives as long as this borrow of it. Its bytes are never written; pages given
        // back lie inside a type section whose last view is gone, and no live view reads them:
        // `ReadState::decode_snapshot` makes every type section a view of its own, so what is
        // still read through the whole blob's view (header, schema, tags) lies outside them,
        // and a whole view handed out to be read whole holds every section's view
        // (`keeping_sections`).
        unsafe { std::slice::from_raw_parts(self.ptr.add(start), len) }
    }
}

/// A whole blob, read while the views of its type sections are held.
struct WholeBlob {
    whole: Bytes,
    _sections: Vec<Bytes>,
}

impl AsRef<[u8]> for WholeBlob {
    fn as_ref(&self) -> &[u8] {
        &self.whole
    }
}

/// A range of a snapshot buffer.
struct View {
    buffer: Arc<SnapshotBuffer>,
    start: usize,
    len: usize,
    /// Whether dropping the view gives its pages back (a type section's view, not the whole).
    release: bool,
}

impl AsRef<[u8]> for View {
    fn as_ref(&self) -> &[u8] {
        self.buffer.bytes(self.start, self.len)
    }
}

impl Drop for View {
    fn drop(&mut self) {
        if self.release {
            // SAFETY: the pages lie inside the range of a section no one reads any more (this is
            // its last view, being dropped), within the live buffer, which is private anonymous
            // memory; nothing touches them again but the allocator, when the buffer is freed,
            // which needs no content.
            unsafe { release_pages(self.buffer.ptr as usize + self.start, self.len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_read_their_bytes_until_the_last_goes_and_shared_blobs_are_left_alone() {
        let data: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let blob = Bytes::from(data.clone());
        let at = blob.as_ptr();
        let (whole, buffer) = SnapshotBuffer::adopt(blob);
        let buffer = buffer.expect("a unique blob is adopted");
        assert_eq!(whole.as_ptr(), at, "adopted in place, not copied");
        assert_eq!(&whole[..], &data[..]);
        let first = buffer.section(whole.slice(10..300_000));
        let second = buffer.section(whole.slice(300_000..1 << 20));
        let of_first = first.slice(5..100);
        drop(first);
        // The first section's pages are given back once its last view goes.
        drop(of_first);
        assert_eq!(&second[..], &data[300_000..]);
        // Not a slice of the buffer: as it is.
        let other = Bytes::from_static(b"elsewhere");
        assert_eq!(buffer.section(other.clone()).as_ptr(), other.as_ptr());
        drop((whole, buffer));
        assert_eq!(second[7], data[300_007]);

        let shared = Bytes::from(data);
        let _kept = shared.clone();
        assert!(SnapshotBuffer::adopt(shared).1.is_none());
    }

    #[test]
    fn a_whole_view_keeping_its_sections_reads_them_after_their_other_views_go() {
        let data: Vec<u8> = (0..1 << 20).map(|i| (i % 251) as u8).collect();
        let (whole, buffer) = SnapshotBuffer::adopt(Bytes::from(data.clone()));
        let buffer = buffer.expect("a unique blob is adopted");
        let sections = vec![
            buffer.section(whole.slice(8..500_000)),
            buffer.section(whole.slice(500_000..1 << 20)),
        ];
        let kept = SnapshotBuffer::keeping_sections(whole, sections.clone());
        drop((sections, buffer));
        // Had a section's last other view given its pages back, they would read as zeros.
        assert!(kept[..] == data[..]);
    }
}
