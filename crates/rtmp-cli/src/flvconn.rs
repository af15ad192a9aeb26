//! One non-blocking HTTP-FLV player connection for `rtmp bench`: TCP connect → `GET` → response
//! head → FLV tags as the same `ConnEvent`s an RTMP player yields, counting the body's wire bytes.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Instant;

use mio::net::TcpStream;
use rtmp_proto::flv::FlvReader;

use crate::conn::{finish_connect, ClientSocket, ConnError, ConnEvent, Stage};
use crate::flvplay::Dechunker;

/// Response heads larger than this are refused.
const MAX_HEAD: usize = 16 * 1024;
/// The stream id FLV tags get as messages (an RTMP player's first stream's).
const STREAM_ID: u32 = 1;

/// An `http://host[:port]/path?query` URL, split for the request line and `Host`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlvUrl {
    /// As typed (with the port if one was given): the `Host` header.
    pub authority: String,
    pub host: String,
    pub port: u16,
    pub path_and_query: String,
}

impl FlvUrl {
    pub fn parse(url: &str) -> Result<FlvUrl, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: expected http://host[:port]/path"))?;
        FlvUrl::from_rest(url, rest)
    }

    /// `rest`, what follows the scheme of `url` (named in errors): `host[:port][/path][?query]`,
    /// `[v6]:port` or `[v6]`; the port is 80 unless given.
    pub fn from_rest(url: &str, rest: &str) -> Result<FlvUrl, String> {
        let bad = |why: &str| format!("{url}: {why}");
        let split = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(split);
        let path_and_query = match path.chars().next() {
            None => "/".to_string(),
            Some('?') => format!("/{path}"),
            Some(_) => path.to_string(),
        };
        if path_and_query.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad("spaces or control characters in the path"));
        }
        let (host, port) = if let Some(r) = authority.strip_prefix('[') {
            let (h, p) = r.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (h, p.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port {
            None => 80,
            Some(p) => p.parse().map_err(|_| bad("bad port"))?,
        };
        Ok(FlvUrl {
            authority: authority.to_string(),
            host: host.to_string(),
            port,
            path_and_query,
        })
    }

    /// The same URL for stream `name_<i>`: `…/name.flv` becomes `…/name_<i>.flv`, or
    /// `stream=name` becomes `stream=name_<i>`.
    pub fn with_suffix(&self, i: usize) -> Result<FlvUrl, String> {
        let (path, query) = match self.path_and_query.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (self.path_and_query.as_str(), None),
        };
        let mut found = false;
        let query = query.map(|q| {
            q.split('&')
                .map(|kv| match kv.strip_prefix("stream=") {
                    Some(v) if !found => {
                        found = true;
                        format!("stream={v}_{i}")
                    }
                    _ => kv.to_string(),
                })
                .collect::<Vec<_>>()
                .join("&")
        });
        let path = match path.strip_suffix(".flv") {
            Some(stem) if !found => {
                found = true;
                format!("{stem}_{i}.flv")
            }
            _ => path.to_string(),
        };
        if !found {
            return Err(format!(
                "{self}: several streams need a URL ending in <name>.flv or with stream=<name>"
            ));
        }
        let mut u = self.clone();
        u.path_and_query = match query {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        Ok(u)
    }

    pub fn resolve(&self) -> Result<SocketAddr, ConnError> {
        let addr = format!("{}:{}", self.host, self.port);
        let mut it = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| ConnError::Resolve {
                addr: addr.clone(),
                source: Some(e),
            })?;
        it.next().ok_or(ConnError::Resolve { addr, source: None })
    }

    /// A minimal HTTP/1.1 request, as a player's first request on a fresh connection.
    fn request(&self) -> Vec<u8> {
        format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\n\r\n",
            self.path_and_query, self.authority
        )
        .into_bytes()
    }
}

impl fmt::Display for FlvUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path_and_query)
    }
}

#[derive(Debug)]
pub enum FlvConnError {
    /// Connecting, reading or writing failed, or the server closed: as for an RTMP player.
    Conn(ConnError),
    /// The response was not `200` (404: nobody publishes the stream).
    Status(u16),
    /// A malformed response head, chunk framing or FLV stream (`what` names which).
    Protocol { what: &'static str, detail: String },
}

impl fmt::Display for FlvConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlvConnError::Conn(e) => write!(f, "{e}"),
            FlvConnError::Status(s) => write!(f, "server answered HTTP {s}"),
            FlvConnError::Protocol { what, detail } => write!(f, "{what}: {detail}"),
        }
    }
}

impl FlvConnError {
    /// A short label for grouping failures in bench reports.
    pub fn kind_label(&self) -> String {
        match self {
            FlvConnError::Conn(e) => e.kind_label(),
            FlvConnError::Status(s) => format!("http {s}"),
            FlvConnError::Protocol { what, .. } => (*what).to_string(),
        }
    }
}

/// How the FLV bytes come in the body.
enum Body {
    Chunked(Dechunker),
    /// Until the server closes (a live stream has no length).
    Plain,
}

pub struct FlvConn {
    sock: TcpStream,
    addr: SocketAddr,
    /// The request and how much of it is written.
    request: Vec<u8>,
    written: usize,
    /// `Tcp` → `Start` (request out, waiting for the head) → `Active` (a 200 head came).
    stage: Stage,
    head: Vec<u8>,
    body: Body,
    /// The body de-chunked (reused across reads).
    flv_bytes: Vec<u8>,
    flv: FlvReader,
    /// The body's first bytes, until they make the `FLV` signature.
    signature: Vec<u8>,
    /// When the body's first bytes arrived (the read that completed the `FLV` signature).
    first_byte: Option<Instant>,
    /// Body bytes as they came on the wire (chunk framing included).
    body_received: u64,
    events: VecDeque<ConnEvent>,
    /// TCP_NODELAY once connected (off: the socket keeps the OS defaults).
    nodelay: bool,
}

impl ClientSocket for FlvConn {
    fn socket(&mut self) -> &mut TcpStream {
        &mut self.sock
    }
}

impl FlvConn {
    /// Starts a non-blocking connect; the request goes once the socket is registered and ready.
    pub fn connect(addr: SocketAddr, url: &FlvUrl) -> Result<FlvConn, ConnError> {
        let sock =
            TcpStream::connect(addr).map_err(|source| ConnError::Connect { addr, source })?;
        Ok(FlvConn {
            sock,
            addr,
            request: url.request(),
            written: 0,
            stage: Stage::Tcp,
            head: Vec::new(),
            body: Body::Plain,
            flv_bytes: Vec::new(),
            flv: FlvReader::new(),
            signature: Vec::with_capacity(3),
            first_byte: None,
            body_received: 0,
            events: VecDeque::new(),
            nodelay: true,
        })
    }

    /// Leaves the socket's options at the OS defaults (Nagle on), as browsers do.
    pub fn plain_socket(&mut self) {
        self.nodelay = false;
    }

    pub fn stage(&self) -> Stage {
        self.stage
    }

    pub fn bytes_received(&self) -> u64 {
        self.body_received
    }

    /// When the first body bytes (checked to start with `FLV`) arrived.
    pub fn first_byte_at(&self) -> Option<Instant> {
        self.first_byte
    }

    pub fn next_event(&mut self) -> Option<ConnEvent> {
        self.events.pop_front()
    }

    /// Handles readiness: finishes the TCP connect, writes the request, reads everything
    /// available. `scratch` is a shared read buffer.
    pub fn on_ready(&mut self, scratch: &mut [u8]) -> Result<(), FlvConnError> {
        if self.stage == Stage::Tcp {
            if !finish_connect(&self.sock, self.addr, self.nodelay).map_err(FlvConnError::Conn)? {
                return Ok(());
            }
            self.stage = Stage::Start;
        }
        self.write_request()?;
        while let Some(n) = sock_io(&mut self.sock, self.addr, self.stage, |s| s.read(scratch))? {
            self.feed(scratch.get(..n).unwrap_or_default())?;
        }
        Ok(())
    }

    fn write_request(&mut self) -> Result<(), FlvConnError> {
        while let Some(rest) = self.request.get(self.written..).filter(|r| !r.is_empty()) {
            match sock_io(&mut self.sock, self.addr, self.stage, |s| s.write(rest))? {
                Some(n) => self.written += n,
                None => return Ok(()),
            }
        }
        Ok(())
    }

    /// Takes bytes from the socket: the head until it is complete, then the body.
    fn feed(&mut self, data: &[u8]) -> Result<(), FlvConnError> {
        if self.stage == Stage::Active {
            return self.feed_body(data);
        }
        self.head.extend_from_slice(data);
        let mut raw = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut raw);
        let len = match resp.parse(&self.head) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) if self.head.len() <= MAX_HEAD => return Ok(()),
            Ok(httparse::Status::Partial) => {
                return Err(bad_head(format!("longer than {MAX_HEAD} bytes")))
            }
            Err(e) => return Err(bad_head(e.to_string())),
        };
        let status = resp.code.unwrap_or(0);
        if status != 200 {
            return Err(FlvConnError::Status(status));
        }
        let chunked = resp.headers.iter().any(|h| {
            h.name.eq_ignore_ascii_case("transfer-encoding")
                && String::from_utf8_lossy(h.value)
                    .rsplit(',')
                    .next()
                    .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
        });
        if chunked {
            self.body = Body::Chunked(Dechunker::default());
        }
        self.stage = Stage::Active;
        self.events.push_back(ConnEvent::Started);
        let rest = self.head.split_off(len);
        self.head = Vec::new();
        self.feed_body(&rest)
    }

    fn feed_body(&mut self, data: &[u8]) -> Result<(), FlvConnError> {
        if data.is_empty() {
            return Ok(());
        }
        self.body_received += data.len() as u64;
        let flv: &[u8] = match &mut self.body {
            Body::Chunked(d) => {
                self.flv_bytes.clear();
                d.feed(data, &mut self.flv_bytes)
                    .map_err(|detail| FlvConnError::Protocol {
                        what: "bad chunked body",
                        detail,
                    })?;
                &self.flv_bytes
            }
            Body::Plain => data,
        };
        if self.first_byte.is_none() && !flv.is_empty() {
            let want = 3 - self.signature.len();
            self.signature
                .extend_from_slice(flv.get(..want.min(flv.len())).unwrap_or_default());
            if !b"FLV".starts_with(&self.signature) {
                return Err(FlvConnError::Protocol {
                    what: "body is not FLV",
                    detail: format!("body starts with {:?}", String::from_utf8_lossy(&self.signature)),
                });
            }
            if self.signature.len() == 3 {
                self.first_byte = Some(Instant::now());
            }
        }
        self.flv.extend(flv);
        loop {
            match self.flv.next_tag() {
                Ok(Some(tag)) => self
                    .events
                    .push_back(ConnEvent::Media(tag.into_message(STREAM_ID))),
                Ok(None) => return Ok(()),
                Err(e) => {
                    return Err(FlvConnError::Protocol {
                        what: "bad FLV tag",
                        detail: e.to_string(),
                    })
                }
            }
        }
    }
}

/// One read or write on `sock` (connected to `addr`, in `stage`), retried when interrupted:
/// `Ok(None)` when it would block; no bytes (the server closed) and failures are errors.
fn sock_io(
    sock: &mut TcpStream,
    addr: SocketAddr,
    stage: Stage,
    mut op: impl FnMut(&mut TcpStream) -> io::Result<usize>,
) -> Result<Option<usize>, FlvConnError> {
    loop {
        match op(sock) {
            Ok(0) => return Err(FlvConnError::Conn(ConnError::Closed { stage })),
            Ok(n) => return Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(FlvConnError::Conn(ConnError::Io { addr, source })),
        }
    }
}

fn bad_head(detail: String) -> FlvConnError {
    FlvConnError::Protocol {
        what: "bad response head",
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use rtmp_proto::flv;
    use rtmp_proto::message::msg_type;

    #[test]
    fn urls() {
        let u = FlvUrl::parse("http://127.0.0.1:8080/flv/live/s.flv").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 8080));
        assert_eq!(u.to_string(), "http://127.0.0.1:8080/flv/live/s.flv");
        assert_eq!(
            u.with_suffix(3).unwrap().path_and_query,
            "/flv/live/s_3.flv"
        );
        let q = FlvUrl::parse("http://h/flv?port=1935&app=live&stream=s").unwrap();
        assert_eq!(q.port, 80);
        assert_eq!(
            q.with_suffix(0).unwrap().path_and_query,
            "/flv?port=1935&app=live&stream=s_0"
        );
        assert!(FlvUrl::parse("http://h/x").unwrap().with_suffix(1).is_err());
        assert_eq!(FlvUrl::parse("http://h?a=1").unwrap().path_and_query, "/?a=1");
        assert!(FlvUrl::parse("rtmp://h/live/s").is_err());
        assert!(FlvUrl::parse("http:///x").is_err());
        assert!(FlvUrl::parse("http://h/a b").is_err());
        assert_eq!(
            String::from_utf8(u.request()).unwrap(),
            "GET /flv/live/s.flv HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"
        );
    }

    /// A connection in its `Active`-to-be state, fed by hand (the socket is never used).
    fn conn() -> FlvConn {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let url = FlvUrl::parse(&format!("http://{addr}/live/s.flv")).unwrap();
        let mut c = FlvConn::connect(addr, &url).unwrap();
        c.stage = Stage::Start;
        c
    }

    fn flv_stream() -> Vec<u8> {
        let mut b = BytesMut::new();
        flv::write_header(&mut b, true, true);
        flv::write_tag(&mut b, 9, 0, &[0x17, 0, 0, 0, 0]);
        flv::write_tag(&mut b, 9, 40, &[0x17, 1, 0, 0, 0]);
        flv::write_tag(&mut b, 8, 42, &[0xAF, 1, 7]);
        b.to_vec()
    }

    fn drain(c: &mut FlvConn) -> (bool, Vec<(u8, u32)>) {
        let mut started = false;
        let mut tags = Vec::new();
        while let Some(ev) = c.next_event() {
            match ev {
                ConnEvent::Started => started = true,
                ConnEvent::Media(m) => tags.push((m.msg_type, m.timestamp)),
                ConnEvent::Status(_) => {}
            }
        }
        (started, tags)
    }

    #[test]
    fn chunked_body_byte_by_byte() {
        let body = flv_stream();
        let mut wire = b"HTTP/1.1 200 OK\r\nContent-Type: video/x-flv\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let head_len = wire.len();
        for part in body.chunks(7) {
            wire.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
            wire.extend_from_slice(part);
            wire.extend_from_slice(b"\r\n");
        }
        let mut c = conn();
        for (i, byte) in wire.iter().enumerate() {
            c.feed(std::slice::from_ref(byte)).unwrap();
            // "FLV" is the 3 bytes after the first chunk's "7\r\n".
            assert_eq!(c.first_byte_at().is_some(), i >= head_len + 5, "byte {i}");
        }
        let (started, tags) = drain(&mut c);
        assert!(started);
        assert_eq!(
            tags,
            vec![(msg_type::VIDEO, 0), (msg_type::VIDEO, 40), (msg_type::AUDIO, 42)]
        );
        assert_eq!(c.bytes_received(), (wire.len() - head_len) as u64);
    }

    #[test]
    fn plain_body_in_one_read() {
        let mut wire = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        wire.extend_from_slice(&flv_stream());
        let mut c = conn();
        c.feed(&wire).unwrap();
        assert!(c.first_byte_at().is_some());
        assert_eq!(drain(&mut c).1.len(), 3);
    }

    #[test]
    fn refusals() {
        let mut c = conn();
        let e = c.feed(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(e.unwrap_err().kind_label(), "http 404");
        let mut c = conn();
        let e = c.feed(b"HTTP/1.1 200 OK\r\n\r\n<html>");
        assert_eq!(e.unwrap_err().kind_label(), "body is not FLV");
        assert!(c.first_byte_at().is_none());
        let mut c = conn();
        let e = c.feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        assert_eq!(e.unwrap_err().kind_label(), "bad chunked body");
        let mut c = conn();
        assert_eq!(c.feed(b"garbage\r\n\r\n").unwrap_err().kind_label(), "bad response head");
    }
}
