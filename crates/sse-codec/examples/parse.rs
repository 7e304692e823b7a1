//! Run with: `cargo run -p sse-codec --example parse < stream.txt`
//!
//! Reads a raw event stream from stdin and prints, in stream order, one JSON object per line:
//! `{"type": T, "data": D, "id": I}` for each dispatched event (I is the last event id in effect,
//! `""` if none) and `{"retry": N}` for each valid `retry` field. Limit errors go to stderr.
//! This is how to check the parser against another implementation.

use std::io::{self, BufWriter, Read, Write};

use sse_codec::{Item, Parser};

fn main() -> io::Result<()> {
    let mut stdin = io::stdin().lock();
    let mut out = BufWriter::new(io::stdout().lock());
    let mut parser = Parser::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = stdin.read(&mut buf)?;
        if n == 0 {
            parser.finish();
        } else {
            parser.push_slice(&buf[..n]);
        }
        while let Some(item) = parser.next() {
            match item {
                Ok(Item::Event(event)) => {
                    // Written by hand to keep the documented key order.
                    writeln!(
                        out,
                        r#"{{"type":{},"data":{},"id":{}}}"#,
                        json_string(event.event_type()),
                        json_string(event.data()),
                        json_string(event.last_event_id()),
                    )?;
                }
                Ok(Item::Retry(ms)) => writeln!(out, r#"{{"retry":{ms}}}"#)?,
                Err(err) => eprintln!("parse: {err}"),
            }
        }
        if n == 0 {
            break;
        }
    }
    out.flush()
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}
