//! What the Logs Ingestion simulator received: the accepted bodies, per stream. Data only (the
//! shared state holds it; the router in `logs.rs` fills it).

use bytes::Bytes;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Read;

/// Uploads received, per stream, in arrival order. Each accepted body is kept as it came (gzip
/// stays compressed) and parsed into rows only when someone reads them: parsing every upload
/// into `Value` trees, and keeping a decompressed copy, was most of what an upload cost, and
/// nobody reads the rows during a benchmark.
#[derive(Debug, Default)]
pub struct LogsStore {
    bodies: BTreeMap<String, Vec<Stored>>,
    /// Number of accepted uploads per stream.
    pub uploads: BTreeMap<String, u64>,
}

/// An accepted upload body, as sent.
#[derive(Debug)]
enum Stored {
    Plain(Bytes),
    Gzip(Bytes),
}

impl LogsStore {
    /// Keeps an accepted upload body of `stream` as it came (`gzip`: still compressed).
    pub fn accept(&mut self, stream: String, body: Bytes, gzip: bool) {
        *self.uploads.entry(stream.clone()).or_default() += 1;
        let stored = if gzip {
            Stored::Gzip(body)
        } else {
            Stored::Plain(body)
        };
        self.bodies.entry(stream).or_default().push(stored);
    }

    /// Rows received on `stream`, in arrival order.
    pub fn rows(&self, stream: &str) -> Vec<Value> {
        let mut out = Vec::new();
        for b in self.bodies.get(stream).into_iter().flatten() {
            let parsed = match b {
                Stored::Plain(b) => serde_json::from_slice::<Value>(b),
                Stored::Gzip(b) => {
                    let mut raw = Vec::new();
                    // Decompressed and checked once already, on arrival.
                    if flate2::read::GzDecoder::new(&b[..])
                        .read_to_end(&mut raw)
                        .is_err()
                    {
                        continue;
                    }
                    serde_json::from_slice::<Value>(&raw)
                }
            };
            // Every stored body was checked to be a JSON array on arrival.
            if let Ok(Value::Array(rows)) = parsed {
                out.extend(rows);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_bodies_read_back_as_rows() {
        let mut st = LogsStore::default();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, br#"[{"a":3}]"#).unwrap();
        st.bodies.entry("s".into()).or_default().extend([
            Stored::Plain(Bytes::from_static(br#"[{"a":1},{"a":2}]"#)),
            Stored::Gzip(Bytes::from(gz.finish().unwrap())),
        ]);
        assert_eq!(
            st.rows("s"),
            vec![
                serde_json::json!({"a":1}),
                serde_json::json!({"a":2}),
                serde_json::json!({"a":3})
            ]
        );
        assert!(st.rows("other").is_empty());
    }
}
