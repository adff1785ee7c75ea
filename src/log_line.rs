//! One line per log event, whatever the payloads hold. Incident titles, comments, tags and the
//! error texts that quote them come from outside (Defender, Sentinel, a webhook caller): a
//! newline in one would forge a log event of its own, an ANSI escape would rewrite a terminal,
//! a bidi override would hide text. Every stdout event ([`OneLinePerEvent`]) and every line of an
//! invocation's `Logs` (`host::envelope`) is passed through [`escape`], which writes such
//! characters as `\n`, `\u001b`, … and leaves everything else (tabs, any printable Unicode) alone.

use std::borrow::Cow;
use std::io::{self, Write};

/// Whether `c` must not reach a log line as is: line breaks and every other control character
/// (C0, DEL, C1), the Unicode line and paragraph separators, bidi controls, zero-width
/// characters and the BOM. A tab stays.
fn unsafe_char(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(
            c,
            '\u{2028}' | '\u{2029}'
                | '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{202a}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `line` with every unsafe character escaped (`\n`, `\r`, else `\uXXXX`: every unsafe character
/// is in the BMP); borrowed when there is none. The escapes are JSON's, so a JSON log line (whose
/// serializer already escaped controls, but not U+2028 or bidi controls) stays valid JSON.
pub fn escape(line: &str) -> Cow<'_, str> {
    if !line.chars().any(unsafe_char) {
        return Cow::Borrowed(line);
    }
    let mut out = String::with_capacity(line.len() + 16);
    for c in line.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A `tracing_subscriber` writer: each event (one `write` of the whole formatted event, ending
/// in `\n`) goes out as exactly one line, escaped.
#[derive(Debug, Clone, Copy, Default)]
pub struct OneLinePerEvent;

/// The writer of one event.
pub struct EventWriter(io::Stdout);

impl Write for EventWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let body = text.strip_suffix('\n').unwrap_or(&text);
        let body = body.strip_suffix('\r').unwrap_or(body);
        let mut line = escape(body).into_owned();
        line.push('\n');
        self.0.lock().write_all(line.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for OneLinePerEvent {
    type Writer = EventWriter;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter(io::stdout())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_escapes_and_invisible_characters_are_escaped() {
        let hostile =
            "a\r\n2026-01-01T00:00:00Z ERROR forged\u{1b}[31m\u{202e}x\u{200b}\u{85}\u{2028}\0";
        let escaped = escape(hostile);
        assert_eq!(
            escaped,
            "a\\r\\n2026-01-01T00:00:00Z ERROR forged\\u001b[31m\\u202ex\\u200b\\u0085\\u2028\\u0000"
        );
        assert!(!escaped.chars().any(unsafe_char));
    }

    #[test]
    fn a_json_line_stays_valid_json_and_reads_back_the_same() {
        let value = serde_json::json!({"message": "t\u{2028}i\u{202e}t\u{200b}le\n\u{1b}[2J"});
        let line = serde_json::to_string(&value).unwrap();
        let escaped = escape(&line);
        assert!(!escaped.chars().any(unsafe_char), "{escaped}");
        let back: serde_json::Value = serde_json::from_str(&escaped).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn ordinary_text_is_left_alone_and_borrowed() {
        for s in ["plain", "tab\tok", "Ünïcødé 𝕏 日本語 emoji 🙂", ""] {
            assert!(matches!(escape(s), Cow::Borrowed(x) if x == s), "{s}");
        }
    }
}
