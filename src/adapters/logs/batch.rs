//! Pure batching: serialized rows into JSON arrays of at most `max_bytes`, and gzip.

use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write;
use std::ops::Range;

/// Sizes of consecutive rows in a JSON array (`[` rows joined by `,` `]`) of at most
/// `max_bytes`: says when a row must start the next array.
struct Sizer {
    max_bytes: usize,
    size: usize,
    rows: usize,
}

impl Sizer {
    fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            size: 2, // "[" and "]"
            rows: 0,
        }
    }

    /// Adds a row of `len` bytes; true when it starts a new array (the current one is full).
    /// A row that alone exceeds the limit gets an array of its own (callers cut rows to fit
    /// first, so this only happens when `max_bytes` is tiny).
    fn starts_new(&mut self, len: usize) -> bool {
        let full = self.rows > 0 && self.size + 1 + len > self.max_bytes;
        if full {
            self.size = 2;
            self.rows = 0;
        }
        self.size += len + usize::from(self.rows > 0);
        self.rows += 1;
        full
    }
}

/// Splits serialized rows into consecutive ranges whose JSON array stays within `max_bytes`.
pub(super) fn split(rows: &[Vec<u8>], max_bytes: usize) -> Vec<Range<usize>> {
    let mut sizer = Sizer::new(max_bytes);
    let mut ranges = Vec::new();
    let mut start = 0;
    for (i, row) in rows.iter().enumerate() {
        if sizer.starts_new(row.len()) {
            ranges.push(start..i);
            start = i;
        }
    }
    if start < rows.len() {
        ranges.push(start..rows.len());
    }
    ranges
}

/// The streaming form of [`split`]: gathers rows as they are serialized and hands back each
/// full chunk, so only about one call's worth of rows is held at a time.
pub(super) struct Chunker {
    sizer: Sizer,
    rows: Vec<Vec<u8>>,
}

impl Chunker {
    pub(super) fn new(max_bytes: usize) -> Self {
        Self {
            sizer: Sizer::new(max_bytes),
            rows: Vec::new(),
        }
    }

    /// Adds a row; returns the chunk it did not fit in, if that one is now full.
    pub(super) fn push(&mut self, row: Vec<u8>) -> Option<Vec<Vec<u8>>> {
        let full = self
            .sizer
            .starts_new(row.len())
            .then(|| std::mem::take(&mut self.rows));
        self.rows.push(row);
        full
    }

    /// The last chunk, unless empty.
    pub(super) fn finish(self) -> Option<Vec<Vec<u8>>> {
        (!self.rows.is_empty()).then_some(self.rows)
    }
}

/// The JSON array of `rows`.
pub(super) fn json_array(rows: &[Vec<u8>]) -> Vec<u8> {
    let mut body = Vec::with_capacity(rows.iter().map(|r| r.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(row);
    }
    body.push(b']');
    body
}

/// Gzip of `data` (in memory: writing to a `Vec` cannot fail).
pub(super) fn gzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 4 + 64), Compression::fast());
    enc.write_all(data)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_never_exceed_the_limit_and_keep_order() {
        let rows: Vec<Vec<u8>> = (0..50).map(|i| vec![b'x'; 10 + i]).collect();
        let ranges = split(&rows, 200);
        assert!(ranges.len() > 1);
        let mut next = 0;
        for r in &ranges {
            assert_eq!(r.start, next, "consecutive");
            next = r.end;
            assert!(json_array(&rows[r.clone()]).len() <= 200, "{r:?}");
        }
        assert_eq!(next, rows.len());
    }

    #[test]
    fn exact_fit_is_one_batch() {
        let rows = vec![vec![b'a'; 4], vec![b'b'; 4]];
        assert_eq!(json_array(&rows).len(), 11);
        assert_eq!(split(&rows, 11), vec![0..2]);
        assert_eq!(split(&rows, 10), vec![0..1, 1..2]);
        assert!(split(&[], 10).is_empty());
    }

    #[test]
    fn the_chunker_cuts_where_split_does() {
        let rows: Vec<Vec<u8>> = (0..50).map(|i| vec![b'x'; 10 + i]).collect();
        let mut chunker = Chunker::new(200);
        let mut chunks: Vec<Vec<Vec<u8>>> = rows
            .iter()
            .filter_map(|r| chunker.push(r.clone()))
            .collect();
        chunks.extend(chunker.finish());
        let expected: Vec<Vec<Vec<u8>>> = split(&rows, 200)
            .into_iter()
            .map(|r| rows[r].to_vec())
            .collect();
        assert!(expected.len() > 1);
        assert_eq!(chunks, expected);
        assert!(Chunker::new(10).finish().is_none());
    }

    #[test]
    fn gzip_round_trips() {
        use std::io::Read;
        let data = json_array(&[b"{\"a\":1}".to_vec()]);
        let gz = gzip(&data).unwrap();
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
    }
}
