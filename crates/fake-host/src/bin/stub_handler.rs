//! A stand-in custom handler for the fake host's own tests (std only): answers `GET /`, never
//! answers `POST /Slow` (to exercise the functionTimeout kill), and answers any other POST with
//! a minimal valid reply. A POST that is not chunked or lacks the invocation-id header gets a
//! 400, so the fake host's own tests show it sends both, as the host does.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

fn main() -> std::io::Result<()> {
    let port = std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT").unwrap_or_default();
    let listener = TcpListener::bind(format!("127.0.0.1:{port}"))?;
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream));
    }
    Ok(())
}

fn serve(stream: TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let (mut chunked, mut has_id) = (false, false);
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let lower = line.to_ascii_lowercase();
        chunked |= lower.starts_with("transfer-encoding: chunked");
        has_id |= lower.starts_with("x-azure-functions-invocationid: ");
        if line == "\r\n" || line.is_empty() {
            break;
        }
    }
    if chunked {
        // Read chunks up to the terminating zero-length chunk.
        let mut line = String::new();
        while reader.read_line(&mut line)? > 0 && line != "0\r\n" {
            line.clear();
        }
    }
    let mut status = "200 OK";
    let (ct, body) = if request_line.starts_with("GET ") {
        ("text/plain", "stub".to_owned())
    } else if !chunked || !has_id {
        status = "400 Bad Request";
        (
            "text/plain",
            "POST must be chunked and carry X-Azure-Functions-InvocationId".to_owned(),
        )
    } else if request_line.starts_with("POST /Slow ") {
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    } else {
        (
            "application/json",
            r#"{"Outputs":{},"Logs":["stub"],"ReturnValue":null}"#.to_owned(),
        )
    };
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}
