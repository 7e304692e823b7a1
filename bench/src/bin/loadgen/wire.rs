//! A minimal HTTP/1.1 client, enough for the protocol's three routes: response heads with
//! `httparse`, `Content-Length` and chunked bodies, and an event stream fed to the codec's
//! [`Parser`]. Hand-written rather than hyper's client so that the generator spends as little
//! CPU and memory per connection as possible: it shares the machine with the server.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream as StdStream};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use sse_codec::{Event, Item, Parser};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// The largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// What the client needs of a response head.
#[derive(Debug)]
pub(crate) struct Head {
    pub(crate) status: u16,
    pub(crate) content_length: Option<usize>,
    pub(crate) chunked: bool,
    /// `connection: close`: the server ends the connection after this response.
    pub(crate) close: bool,
}

/// Parses a response head at the start of `buf`; `None` if it is not complete yet. On success
/// the head is removed from `buf`.
fn parse_head(buf: &mut BytesMut) -> io::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut res = httparse::Response::new(&mut headers);
    let len = match res.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
            return Err(invalid("response head too large"));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => return Err(invalid(format!("bad response head: {err}"))),
    };
    let mut head = Head {
        status: res.code.unwrap_or(0),
        content_length: None,
        chunked: false,
        close: false,
    };
    for h in res.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(h.value).map_err(|_| invalid("content-length"))?;
            head.content_length = Some(value.trim().parse().map_err(|_| invalid("length"))?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = h.value.eq_ignore_ascii_case(b"chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            head.close = h.value.eq_ignore_ascii_case(b"close");
        }
    }
    buf.advance(len);
    Ok(Some(head))
}

/// Where a chunked body decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, with this many bytes left.
    Data(usize),
    /// After a chunk's data, before its CRLF.
    End,
    /// The last (zero) chunk was read.
    Done,
}

/// How the body of the event stream is framed.
#[derive(Debug)]
enum Framing {
    Chunked(Chunk),
    /// Up to this many bytes (`Content-Length`) or to the end of the connection (`None`).
    Raw(Option<usize>),
}

impl Framing {
    /// Moves the body bytes at the front of `buf` to `out`; returns whether the body ended.
    fn decode(&mut self, buf: &mut BytesMut, out: &mut impl FnMut(Bytes)) -> io::Result<bool> {
        match self {
            Self::Raw(None) => {
                if !buf.is_empty() {
                    out(buf.split().freeze());
                }
                Ok(false)
            }
            Self::Raw(Some(left)) => {
                let n = (*left).min(buf.len());
                if n > 0 {
                    out(buf.split_to(n).freeze());
                }
                *left -= n;
                Ok(*left == 0)
            }
            Self::Chunked(state) => loop {
                match *state {
                    Chunk::Size => {
                        let Some(eol) = buf.windows(2).position(|w| w == b"\r\n") else {
                            if buf.len() > 1024 {
                                return Err(invalid("chunk size line too long"));
                            }
                            return Ok(false);
                        };
                        let line =
                            std::str::from_utf8(&buf[..eol]).map_err(|_| invalid("chunk"))?;
                        let hex = line.split(';').next().unwrap_or("").trim();
                        let size = usize::from_str_radix(hex, 16)
                            .map_err(|_| invalid(format!("bad chunk size {hex:?}")))?;
                        buf.advance(eol + 2);
                        *state = if size == 0 {
                            Chunk::Done
                        } else {
                            Chunk::Data(size)
                        };
                    }
                    Chunk::Data(left) => {
                        if buf.is_empty() {
                            return Ok(false);
                        }
                        let n = left.min(buf.len());
                        out(buf.split_to(n).freeze());
                        *state = if n == left {
                            Chunk::End
                        } else {
                            Chunk::Data(left - n)
                        };
                    }
                    Chunk::End => {
                        if buf.len() < 2 {
                            return Ok(false);
                        }
                        if &buf[..2] != b"\r\n" {
                            return Err(invalid("chunk not followed by CRLF"));
                        }
                        buf.advance(2);
                        *state = Chunk::Size;
                    }
                    // Trailers and the final CRLF are not needed: the stream is over.
                    Chunk::Done => return Ok(true),
                }
            },
        }
    }
}

/// One client connection: requests, then an event stream read through the codec's parser.
#[derive(Debug)]
pub(crate) struct Conn {
    io: TcpStream,
    buf: BytesMut,
    host: SocketAddr,
    /// The framing of the event stream, once its head was read.
    framing: Option<Framing>,
    /// The event stream's parser; it carries the last event id over reconnections.
    pub(crate) parser: Parser,
    /// The server said `connection: close` on its last response: the next request needs a
    /// new connection.
    pub(crate) closing: bool,
}

impl Conn {
    /// Connects to `server` from `source` (port chosen by the kernel).
    pub(crate) async fn connect(server: SocketAddr, source: IpAddr) -> io::Result<Self> {
        let socket = match source {
            IpAddr::V4(_) => TcpSocket::new_v4()?,
            IpAddr::V6(_) => TcpSocket::new_v6()?,
        };
        // The port is chosen at connect time, for this 4-tuple: bound to port 0 without it, the
        // kernel must find a port free for every destination, a search that grows costly when
        // the runs before left tens of thousands of sockets in TIME_WAIT on these addresses.
        if source.is_ipv4() {
            use nix::sys::socket::{setsockopt, sockopt::IpBindAddressNoPort};
            setsockopt(&socket, IpBindAddressNoPort, &true).map_err(io::Error::from)?;
        }
        socket.bind(SocketAddr::new(source, 0))?;
        let io = socket.connect(server).await?;
        io.set_nodelay(true)?;
        Ok(Self {
            io,
            buf: BytesMut::with_capacity(1024),
            host: server,
            framing: None,
            parser: Parser::new(),
            closing: false,
        })
    }

    /// Replaces the connection (a reconnection), keeping the parser and so the last event id.
    pub(crate) async fn reconnect(&mut self, source: IpAddr) -> io::Result<()> {
        let fresh = Self::connect(self.host, source).await?;
        self.io = fresh.io;
        self.buf.clear();
        self.framing = None;
        self.closing = false;
        // Drops a partly received event and readies the parser for a new stream.
        self.parser.finish();
        while self.parser.next().is_some() {}
        Ok(())
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.buf.capacity() - self.buf.len() < 512 {
            self.buf.reserve(2048);
        }
        match self.io.read_buf(&mut self.buf).await? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            _ => Ok(()),
        }
    }

    async fn head(&mut self) -> io::Result<Head> {
        loop {
            if let Some(head) = parse_head(&mut self.buf)? {
                return Ok(head);
            }
            self.fill().await?;
        }
    }

    /// `POST /sse/clients`: the new client's id.
    pub(crate) async fn create_client(&mut self) -> io::Result<String> {
        let req = format!(
            "POST /sse/clients HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\n\r\n",
            self.host
        );
        self.io.write_all(req.as_bytes()).await?;
        let head = self.head().await?;
        let mut body = BytesMut::new();
        let mut framing = if head.chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::Raw(Some(head.content_length.unwrap_or(0)))
        };
        loop {
            let done = framing.decode(&mut self.buf, &mut |b| body.extend_from_slice(&b))?;
            if done || matches!(framing, Framing::Raw(Some(0))) {
                break;
            }
            self.fill().await?;
        }
        self.closing = head.close;
        let body = String::from_utf8_lossy(&body).trim().to_owned();
        if head.status != 201 {
            return Err(invalid(format!("POST clients: {} {body}", head.status)));
        }
        Ok(body)
    }

    /// `GET /sse/events/{id}`, with the parser's last event id as `Last-Event-ID` if it has one.
    pub(crate) async fn open_events(&mut self, id: &str) -> io::Result<()> {
        let last = self.parser.last_event_id();
        let resume = if last.is_empty() {
            String::new()
        } else {
            format!("Last-Event-ID: {last}\r\n")
        };
        let req = format!(
            "GET /sse/events/{id} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n{resume}\r\n",
            self.host
        );
        self.io.write_all(req.as_bytes()).await?;
        let head = self.head().await?;
        if head.status == 404 {
            // An id this server does not know (yet): on another node's Redis, it may not have
            // applied the record of an id issued elsewhere.
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "GET events: status 404",
            ));
        }
        if head.status != 200 {
            return Err(invalid(format!("GET events: status {}", head.status)));
        }
        self.framing = Some(if head.chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::Raw(head.content_length)
        });
        Ok(())
    }

    /// The next event of the stream. Cancel-safe: it only awaits a read, and everything read is
    /// moved into the parser before the next await.
    pub(crate) async fn next_event(&mut self) -> io::Result<Event> {
        loop {
            while let Some(item) = self.parser.next() {
                if let Ok(Item::Event(event)) = item {
                    return Ok(event);
                }
            }
            let Some(framing) = self.framing.as_mut() else {
                return Err(invalid("no event stream open"));
            };
            let parser = &mut self.parser;
            let mut pushed = false;
            let ended = framing.decode(&mut self.buf, &mut |chunk| {
                pushed = true;
                parser.push(chunk);
            })?;
            if pushed {
                // Parse what was decoded before reading more.
                continue;
            }
            if ended {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.fill().await?;
        }
    }
}

/// A blocking keep-alive connection for the coordinator's admin requests.
#[derive(Debug)]
pub(crate) struct Admin {
    io: StdStream,
    host: SocketAddr,
    token: String,
    buf: BytesMut,
}

impl Admin {
    /// Connects to `server`.
    pub(crate) fn connect(server: SocketAddr, token: &str) -> io::Result<Self> {
        let io = StdStream::connect_timeout(&server, Duration::from_secs(5))?;
        io.set_nodelay(true)?;
        io.set_read_timeout(Some(Duration::from_secs(30)))?;
        io.set_write_timeout(Some(Duration::from_secs(30)))?;
        Ok(Self {
            io,
            host: server,
            token: token.to_owned(),
            buf: BytesMut::new(),
        })
    }

    /// `POST /sse/broadcast` with `body`: the status and the response body.
    pub(crate) fn broadcast(&mut self, body: &str) -> io::Result<(u16, String)> {
        let req = format!(
            "POST /sse/broadcast HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.host,
            self.token,
            body.len()
        );
        self.io.write_all(req.as_bytes())?;
        let head = loop {
            if let Some(head) = parse_head(&mut self.buf)? {
                break head;
            }
            self.fill()?;
        };
        let mut out = BytesMut::new();
        let mut framing = if head.chunked {
            Framing::Chunked(Chunk::Size)
        } else {
            Framing::Raw(Some(head.content_length.unwrap_or(0)))
        };
        loop {
            let done = framing.decode(&mut self.buf, &mut |b| out.extend_from_slice(&b))?;
            if done || matches!(framing, Framing::Raw(Some(0))) {
                break;
            }
            self.fill()?;
        }
        Ok((head.status, String::from_utf8_lossy(&out).into_owned()))
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 4096];
        match self.io.read(&mut chunk)? {
            0 => Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_whatever_the_split() {
        let wire = b"7\r\ndata: a\r\n4;ext=1\r\n\n\nxy\r\n0\r\n\r\n";
        for split in 0..wire.len() {
            let mut framing = Framing::Chunked(Chunk::Size);
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut ended = false;
            for part in [&wire[..split], &wire[split..]] {
                buf.extend_from_slice(part);
                ended = framing
                    .decode(&mut buf, &mut |b| out.extend_from_slice(&b))
                    .expect("decodes");
            }
            assert!(ended, "split at {split}");
            assert_eq!(out, b"data: a\n\nxy", "split at {split}");
        }
    }

    #[test]
    fn heads_parse() {
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: x\r\n\r\nrest"[..],
        );
        let head = parse_head(&mut buf).expect("ok").expect("complete");
        assert_eq!((head.status, head.chunked), (200, true));
        assert_eq!(&buf[..], b"rest");
        let mut partial = BytesMut::from(&b"HTTP/1.1 201 Created\r\ncontent-le"[..]);
        assert!(parse_head(&mut partial).expect("ok").is_none());
    }
}
