//! Pure batching: serialized rows into JSON arrays of at most `max_bytes`, and gzip.

use flate2::Compression;
use flate2::write::GzEncoder;
use std::io::Write;
use std::ops::Range;

/// Splits serialized rows into consecutive ranges whose JSON array (`[` rows joined by `,` `]`)
/// stays within `max_bytes`. A row that alone exceeds it gets a range of its own (callers cut
/// rows to fit first, so this only happens when `max_bytes` is tiny).
pub(super) fn split(rows: &[Vec<u8>], max_bytes: usize) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut size = 2; // "[" and "]"
    for (i, row) in rows.iter().enumerate() {
        let add = row.len() + usize::from(i > start);
        if i > start && size + add > max_bytes {
            ranges.push(start..i);
            start = i;
            size = 2 + row.len();
        } else {
            size += add;
        }
    }
    if start < rows.len() {
        ranges.push(start..rows.len());
    }
    ranges
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
