//! A deliberately naive event-stream parser, written line for line from the WHATWG HTML
//! "event stream interpretation" section, for comparison with the real one. It takes the whole
//! stream at once, decodes it first, and never tries to be fast.

use sse_codec::{Event, Item};

/// Parses a complete stream (the end of `input` is the end of the stream).
#[allow(dead_code)] // Not every test that includes this module uses both functions.
pub(crate) fn parse(input: &[u8]) -> Vec<Item> {
    parse_stream(input).0
}

/// Parses a complete stream; also returns the last event ID string at its end (the value a
/// client would send as `Last-Event-ID`).
pub(crate) fn parse_stream(input: &[u8]) -> (Vec<Item>, String) {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let text = String::from_utf8_lossy(input);
    let chars: Vec<char> = text.chars().collect();

    let mut items = Vec::new();
    let mut data = String::new();
    let mut event_type = String::new();
    let mut id_buffer = String::new();
    let mut last_event_id = String::new();

    let mut i = 0;
    loop {
        // Collect one line; a line without a terminator at the end of the stream is not a line.
        let start = i;
        while i < chars.len() && chars[i] != '\r' && chars[i] != '\n' {
            i += 1;
        }
        if i == chars.len() {
            break; // end of stream: an unterminated line and event are discarded
        }
        let line: String = chars[start..i].iter().collect();
        if chars[i] == '\r' && chars.get(i + 1) == Some(&'\n') {
            i += 2;
        } else {
            i += 1;
        }

        if line.is_empty() {
            // Dispatch.
            // The last event ID string is set from the buffer, which is never reset.
            last_event_id = id_buffer.clone();
            if data.is_empty() {
                event_type.clear();
                continue;
            }
            if data.ends_with('\n') {
                data.pop();
            }
            let t = if event_type.is_empty() {
                "message"
            } else {
                event_type.as_str()
            };
            items.push(Item::Event(Event::new(t, data.clone(), &last_event_id)));
            data.clear();
            event_type.clear();
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.find(':') {
            Some(at) => {
                let value = &line[at + 1..];
                (&line[..at], value.strip_prefix(' ').unwrap_or(value))
            }
            None => (line.as_str(), ""),
        };
        #[allow(clippy::collapsible_match)] // Kept in the shape of the specification's steps.
        match field {
            "event" => event_type = value.to_string(),
            "data" => {
                data.push_str(value);
                data.push('\n');
            }
            "id" => {
                if !value.contains('\0') {
                    id_buffer = value.to_string();
                }
            }
            "retry" => {
                if !value.is_empty() && value.chars().all(|c| c.is_ascii_digit()) {
                    let ms = value.bytes().fold(0u64, |acc, d| {
                        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                    });
                    items.push(Item::Retry(ms));
                }
            }
            _ => {}
        }
    }
    (items, last_event_id)
}
