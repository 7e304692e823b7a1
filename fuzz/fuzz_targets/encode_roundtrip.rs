//! Encode arbitrary events, parse them back: the parser sees exactly what was put in (with line
//! breaks written as LF), and no value can add or split an event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sse_codec::{EventId, EventName, Frame, Item, Parser};

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    events: Vec<(Option<String>, Option<String>, Option<String>, Option<u64>, Option<String>)>,
}

fuzz_target!(|input: Input| {
    let mut parser = Parser::new();
    let mut last_id = String::new();
    for (name, id, data, retry, comment) in input.events {
        let name = name.and_then(|n| EventName::new(n).ok());
        let id = id.and_then(|i| EventId::new(i).ok());
        let mut frame = Frame::new();
        if let Some(name) = &name {
            frame = frame.event(name);
        }
        if let Some(id) = &id {
            frame = frame.id(id);
            last_id = id.as_str().to_owned();
        }
        if let Some(data) = &data {
            frame = frame.data(data);
        }
        if let Some(ms) = retry {
            frame = frame.retry(ms);
        }
        if let Some(text) = &comment {
            frame = frame.comment(text);
        }
        let bytes = frame.encode();
        assert_eq!(bytes.len(), frame.encoded_len());
        parser.push(bytes);
        let items: Vec<Item> = std::iter::from_fn(|| parser.next()).map(|r| r.unwrap()).collect();
        let mut expected = Vec::new();
        if let Some(ms) = retry {
            expected.push(Item::Retry(ms));
        }
        if let Some(data) = &data {
            let data = data.replace("\r\n", "\n").replace('\r', "\n");
            let t = name.as_ref().map_or("message", EventName::as_str);
            expected.push(Item::Event(sse_codec::Event::new(t, data, &last_id)));
        }
        assert_eq!(items, expected);
        assert_eq!(parser.last_event_id(), last_id);
    }
});
