//! A counting HTTP/1.1 proxy in front of Azurite: the handler's Table calls are counted by
//! operation without touching the handler. Written by hand (a few dozen lines on tokio)
//! because no maintained crate counts requests of a reverse proxy; it parses only request
//! heads and `Content-Length` bodies (what the handler's Table client sends) and copies
//! responses through unparsed (clients do not pipeline, so a request ends the previous reply).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Table calls by operation (`"METHOD kind"`), shared with the proxy tasks.
#[derive(Clone, Default)]
pub struct TableCounts(Arc<Mutex<BTreeMap<String, u64>>>);

impl TableCounts {
    fn add(&self, op: String) {
        *self
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(op)
            .or_default() += 1;
    }

    /// Takes the counts and starts again from zero.
    pub fn take(&self) -> BTreeMap<String, u64> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Starts the proxy on a free loopback port forwarding to `upstream_port`; returns its port.
pub async fn start(upstream_port: u16, counts: TableCounts) -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let counts = counts.clone();
            tokio::spawn(async move {
                if let Ok(server) = TcpStream::connect(("127.0.0.1", upstream_port)).await {
                    let _ = relay(client, server, counts).await;
                }
            });
        }
    });
    Ok(port)
}

async fn relay(client: TcpStream, server: TcpStream, counts: TableCounts) -> anyhow::Result<()> {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    tokio::spawn(async move { tokio::io::copy(&mut sr, &mut cw).await });
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Forward every complete request in the buffer, counting each.
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = content_length(&head);
            if buf.len() < end + 4 + len {
                break;
            }
            counts.add(classify(&head));
            sw.write_all(&buf[..end + 4 + len]).await?;
            buf.drain(..end + 4 + len);
        }
        let n = cr.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &str) -> usize {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `"METHOD kind"`: kind is `$batch`, `Tables` (table create/list), `entity` (one entity by
/// keys) or `table` (a query with GET, an insert with POST).
fn classify(head: &str) -> String {
    let mut first = head.lines().next().unwrap_or("").split_whitespace();
    let method = first.next().unwrap_or("?");
    let path = first.next().unwrap_or("");
    let path = path.split('?').next().unwrap_or("");
    let kind = if path.ends_with("$batch") {
        "$batch"
    } else if path.contains("/Tables") {
        "Tables"
    } else if path.contains("PartitionKey") || path.ends_with(')') || path.ends_with("%29") {
        "entity"
    } else {
        "table"
    };
    format!("{method} {kind}")
}
