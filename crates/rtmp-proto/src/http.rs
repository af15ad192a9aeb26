//! A small HTTP/1.1 client, sans-IO: the requests of notify callbacks (form or JSON bodies) and an
//! incremental, size-bounded response parser over `httparse` (Content-Length, chunked, until close).

use std::fmt;

/// Sent as `User-Agent` with every request.
pub const USER_AGENT: &str = "nginx-rtmp-rs";
/// `Content-Type` of form bodies.
pub const FORM: &str = "application/x-www-form-urlencoded";
/// `Content-Type` of JSON bodies.
pub const JSON: &str = "application/json";

/// Headers accepted in one response head (or trailer section); more is a bad response.
const MAX_HEADERS: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// `application/x-www-form-urlencoded`: every byte outside RFC 3986's unreserved set
/// (`A-Z a-z 0-9 - . _ ~`) becomes `%XX`, spaces included (always `%20`, never `+`), so a name or a
/// value may hold `&`, `=`, `%`, `+`, NUL or any UTF-8 and decodes back unchanged.
pub fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        escape_into(&mut out, name.as_bytes(), |b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        out.push('=');
        escape_into(&mut out, value.as_bytes(), |b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
        });
    }
    out
}

/// `s` with every byte outside RFC 3986's unreserved set and `also_keep` as `%XX` (a URI
/// component, or a file name when `also_keep` is empty: no separator survives).
pub fn percent_encode(s: &str, also_keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(&mut out, s.as_bytes(), |b| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') || also_keep.contains(&b)
    });
    out
}

/// Decodes %XX and '+' (a query string from a client's URL); bad escapes stay as they are.
pub fn percent_decode(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&c, tail)) = rest.split_first() {
        let hex = tail.get(..2).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (c, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                rest = tail.get(2..).unwrap_or_default();
            }
            (b'+', _) => {
                out.push(b' ');
                rest = tail;
            }
            (c, _) => {
                out.push(c);
                rest = tail;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn escape_into(out: &mut String, bytes: &[u8], keep: impl Fn(u8) -> bool) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(b >> 4)] as char);
            out.push(HEX[usize::from(b & 15)] as char);
        }
    }
}

/// One request; `encode` gives its bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    /// `Host` header: `host`, or `host:port` when the port is not 80.
    pub host_header: String,
    /// Origin-form target (`/path?query`); bytes that cannot appear in a request line are
    /// percent-escaped by `encode`.
    pub path_and_query: String,
    pub body: Vec<u8>,
    /// `Content-Type` of the body (none for a GET without one).
    pub content_type: Option<String>,
}

impl Request {
    /// A notify request: for POST the form is the body; for GET it is appended to the query
    /// string (after `&` when the target already has a query).
    pub fn with_form(method: Method, host_header: &str, path_and_query: &str, form: &[(&str, &str)]) -> Request {
        let encoded = form_encode(form);
        let (path_and_query, body, content_type) = match method {
            Method::Post => (path_and_query.to_string(), encoded.into_bytes(), Some(FORM.to_string())),
            Method::Get => {
                let mut target = path_and_query.to_string();
                if !encoded.is_empty() {
                    if !target.contains('?') {
                        target.push('?');
                    } else if !target.ends_with(['?', '&']) {
                        target.push('&');
                    }
                    target.push_str(&encoded);
                }
                (target, Vec::new(), None)
            }
        };
        Request { method, host_header: host_header.to_string(), path_and_query, body, content_type }
    }

    /// A POST with a JSON body.
    pub fn with_json(host_header: &str, path_and_query: &str, json: &str) -> Request {
        Request {
            method: Method::Post,
            host_header: host_header.to_string(),
            path_and_query: path_and_query.to_string(),
            body: json.as_bytes().to_vec(),
            content_type: Some(JSON.to_string()),
        }
    }

    /// The request's bytes: `Connection: close`, so the response may end with the connection.
    pub fn encode(&self) -> Vec<u8> {
        let mut target = String::with_capacity(self.path_and_query.len() + 1);
        if !self.path_and_query.starts_with('/') {
            target.push('/');
        }
        // A request line is printable ASCII without spaces; anything else travels escaped.
        escape_into(&mut target, self.path_and_query.as_bytes(), |b| (0x21..0x7f).contains(&b));
        let mut head = format!(
            "{} {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: {USER_AGENT}\r\nConnection: close\r\n",
            self.method.as_str(),
            header_value(&self.host_header),
        );
        if let Some(ct) = &self.content_type {
            head.push_str(&format!("Content-Type: {}\r\n", header_value(ct)));
        }
        if self.method == Method::Post || !self.body.is_empty() {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str("\r\n");
        let mut out = head.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// A header value without control characters (no header injection from configuration text).
fn header_value(v: &str) -> String {
    v.chars().filter(|c| !c.is_control()).collect()
}

/// A complete response.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// `Location`, for redirects.
    pub location: Option<String>,
    /// Every header of the final head, in order; values as text (invalid UTF-8 replaced).
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HttpError {
    /// The response did not fit in this many bytes (head, framing and body).
    TooLarge(usize),
    /// Not HTTP/1.x, or broken framing.
    Malformed(String),
    /// The peer closed the connection before the response was complete; says where.
    Truncated(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::TooLarge(n) => write!(f, "response larger than {n} bytes"),
            HttpError::Malformed(m) => write!(f, "bad response: {m}"),
            HttpError::Truncated(m) => write!(f, "bad response: connection closed {m}"),
        }
    }
}

impl std::error::Error for HttpError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    /// Body bytes still expected (Content-Length).
    Length(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd,
    Trailers,
    UntilClose,
    Done,
}

/// Incremental response parser: feed it what the socket gives, in any pieces.
pub struct ResponseParser {
    max: usize,
    /// Received bytes; `buf[pos..]` are not parsed yet.
    buf: Vec<u8>,
    pos: usize,
    /// Bytes parsed so far, over every head, framing and body byte.
    used: usize,
    /// Where to resume looking for the end of a header block (index into `buf`).
    scan: usize,
    state: State,
    head: Response,
}

impl ResponseParser {
    /// A parser refusing responses longer than `max` bytes.
    pub fn new(max: usize) -> ResponseParser {
        ResponseParser { max, buf: Vec::new(), pos: 0, used: 0, scan: 0, state: State::Head, head: Response::default() }
    }

    /// Bytes taken in so far (parsed or waiting).
    pub fn received(&self) -> usize {
        self.used + self.pending().len()
    }

    /// Takes more bytes: the response once complete (bytes after it are ignored), `None` while
    /// more is needed. After a response or an error the parser is finished and takes nothing.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<Response>, HttpError> {
        if self.state == State::Done {
            return Ok(None);
        }
        // Keep at most one byte over the limit: enough to tell "complete" from "too large".
        let room = (self.max + 1).saturating_sub(self.received());
        self.buf.extend_from_slice(&data[..data.len().min(room)]);
        let r = self.advance();
        self.compact();
        self.finish(r)
    }

    /// The peer closed the connection: completes a response delimited by the close, or says
    /// what was missing.
    pub fn eof(&mut self) -> Result<Response, HttpError> {
        let r = match self.state {
            State::Done => Err(HttpError::Malformed("response already complete".into())),
            State::UntilClose => {
                self.take_body(u64::MAX);
                Ok(true)
            }
            // A last chunk whose final CRLF never came: everything that matters is there.
            State::Trailers if self.pending().is_empty() => Ok(true),
            State::Head => Err(match self.parse_head() {
                Err(e) => e,
                Ok(_) if self.received() == 0 => HttpError::Truncated("without sending a response".into()),
                Ok(_) => HttpError::Truncated("in the middle of the response header".into()),
            }),
            State::Length(left) => Err(HttpError::Truncated(format!(
                "after {} body bytes, {left} more were announced",
                self.head.body.len() + self.pending().len()
            ))),
            State::ChunkSize | State::ChunkData(_) | State::ChunkEnd | State::Trailers => {
                Err(HttpError::Truncated("inside the chunked body".into()))
            }
        };
        match self.finish(r) {
            Ok(Some(resp)) => Ok(resp),
            Ok(None) => Err(HttpError::Truncated("before the response was complete".into())),
            Err(e) => Err(e),
        }
    }

    fn finish(&mut self, r: Result<bool, HttpError>) -> Result<Option<Response>, HttpError> {
        let r = match r {
            Ok(true) if self.used > self.max => Err(HttpError::TooLarge(self.max)),
            Ok(false) if self.received() > self.max => Err(HttpError::TooLarge(self.max)),
            r => r,
        };
        match r {
            Ok(false) => Ok(None),
            Ok(true) => {
                self.state = State::Done;
                self.buf = Vec::new();
                Ok(Some(std::mem::take(&mut self.head)))
            }
            Err(e) => {
                self.state = State::Done;
                self.buf = Vec::new();
                Err(e)
            }
        }
    }

    fn pending(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        self.used += n;
    }

    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.scan = self.scan.saturating_sub(self.pos);
            self.pos = 0;
        }
    }

    /// Moves up to `max` pending bytes into the body; returns how many.
    fn take_body(&mut self, max: u64) -> u64 {
        let n = self.pending().len().min(usize::try_from(max).unwrap_or(usize::MAX));
        self.head.body.extend_from_slice(&self.buf[self.pos..self.pos + n]);
        self.consume(n);
        n as u64
    }

    /// Would a body of `len` more bytes overflow the limit? (Refuses early, before reading it.)
    fn check_room(&self, len: u64) -> Result<(), HttpError> {
        if (self.used as u64).saturating_add(len) > self.max as u64 {
            return Err(HttpError::TooLarge(self.max));
        }
        Ok(())
    }

    /// Parses as far as the bytes go; true once the response is complete.
    fn advance(&mut self) -> Result<bool, HttpError> {
        loop {
            match self.state {
                State::Done => return Ok(true),
                State::Head => {
                    self.check_status_line_start()?;
                    if !self.find_block_end() {
                        return Ok(false);
                    }
                    match self.parse_head()? {
                        Some(n) => {
                            self.consume(n);
                            self.scan = self.pos;
                            self.state = self.body_state()?;
                        }
                        // The blank line was not the end of the head (leading empty lines).
                        None => continue,
                    }
                }
                State::Length(left) => {
                    let left = left - self.take_body(left);
                    if left > 0 {
                        self.state = State::Length(left);
                        return Ok(false);
                    }
                    return Ok(true);
                }
                State::ChunkSize => {
                    let rest = self.pending();
                    let Some(&first) = rest.first() else { return Ok(false) };
                    if !first.is_ascii_hexdigit() {
                        return Err(HttpError::Malformed("invalid chunk size".into()));
                    }
                    match httparse::parse_chunk_size(rest) {
                        Ok(httparse::Status::Complete((n, size))) => {
                            self.consume(n);
                            self.check_room(size)?;
                            self.state = if size == 0 { State::Trailers } else { State::ChunkData(size) };
                            self.scan = self.pos;
                        }
                        Ok(httparse::Status::Partial) => return Ok(false),
                        Err(_) => return Err(HttpError::Malformed("invalid chunk size".into())),
                    }
                }
                State::ChunkData(left) => {
                    let left = left - self.take_body(left);
                    if left > 0 {
                        self.state = State::ChunkData(left);
                        return Ok(false);
                    }
                    self.state = State::ChunkEnd;
                }
                State::ChunkEnd => match self.pending() {
                    [b'\r', b'\n', ..] => {
                        self.consume(2);
                        self.state = State::ChunkSize;
                    }
                    [b'\n', ..] => {
                        self.consume(1);
                        self.state = State::ChunkSize;
                    }
                    [] | [b'\r'] => return Ok(false),
                    _ => return Err(HttpError::Malformed("chunk data longer than its size".into())),
                },
                State::Trailers => match self.pending() {
                    [b'\r', b'\n', ..] => {
                        self.consume(2);
                        return Ok(true);
                    }
                    [b'\n', ..] => {
                        self.consume(1);
                        return Ok(true);
                    }
                    [] | [b'\r'] => return Ok(false),
                    _ => {
                        if !self.find_block_end() {
                            return Ok(false);
                        }
                        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                        match httparse::parse_headers(self.pending(), &mut headers) {
                            Ok(httparse::Status::Complete((n, _))) => {
                                self.consume(n);
                                return Ok(true);
                            }
                            Ok(httparse::Status::Partial) => continue,
                            Err(e) => return Err(HttpError::Malformed(format!("trailer: {e}"))),
                        }
                    }
                },
                State::UntilClose => {
                    self.take_body(u64::MAX);
                    return Ok(false);
                }
            }
        }
    }

    /// Fails early on bytes that cannot start a status line (another protocol, binary garbage),
    /// rather than waiting for a blank line that may never come.
    fn check_status_line_start(&self) -> Result<(), HttpError> {
        let rest = self.pending();
        let start = rest.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(rest.len());
        let line = &rest[start..];
        let n = line.len().min(5);
        if line[..n] != b"HTTP/"[..n] {
            return Err(HttpError::Malformed(format!("not an HTTP response (starts with \"{}\")", snippet(rest))));
        }
        Ok(())
    }

    /// Looks for the blank line ending a header block in the pending bytes, resuming where the
    /// last look stopped (so a head arriving byte by byte is scanned once).
    fn find_block_end(&mut self) -> bool {
        let buf = &self.buf;
        for i in self.scan.max(self.pos)..buf.len() {
            if buf[i] != b'\n' {
                continue;
            }
            match (buf.get(i + 1), buf.get(i + 2)) {
                (Some(b'\n'), _) | (Some(b'\r'), Some(b'\n')) => {
                    self.scan = i + 1;
                    return true;
                }
                // Undecided until more bytes come: look here again.
                (None, _) | (Some(b'\r'), None) => {
                    self.scan = i;
                    return false;
                }
                _ => {}
            }
        }
        self.scan = buf.len();
        false
    }

    /// Parses the pending head: its length once complete; keeps status, reason and headers.
    fn parse_head(&mut self) -> Result<Option<usize>, HttpError> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut r = httparse::Response::new(&mut headers);
        let rest = &self.buf[self.pos..];
        match r.parse(rest) {
            Ok(httparse::Status::Complete(n)) => {
                let text = |v: &[u8]| String::from_utf8_lossy(v).trim().to_string();
                self.head.status = r.code.unwrap_or(0);
                self.head.reason = r.reason.unwrap_or_default().to_string();
                self.head.headers = r.headers.iter().map(|h| (h.name.to_string(), text(h.value))).collect();
                self.head.location = self.head.header("location").map(str::to_string);
                Ok(Some(n))
            }
            Ok(httparse::Status::Partial) => Ok(None),
            Err(e) => Err(HttpError::Malformed(format!("{e} (response starts with \"{}\")", snippet(rest)))),
        }
    }

    /// How the body of the head just parsed is delimited (RFC 9112 section 6.3).
    fn body_state(&mut self) -> Result<State, HttpError> {
        let status = self.head.status;
        // httparse takes any three digits ("020"); a status code is 100..=599 (RFC 9110 15).
        if !(100..600).contains(&status) {
            return Err(HttpError::Malformed(format!("status code {status:03} out of range")));
        }
        if status == 101 {
            return Err(HttpError::Malformed("unexpected 101 Switching Protocols".into()));
        }
        if (100..200).contains(&status) {
            // An interim answer (100 Continue, 103 Early Hints): the real one follows.
            self.head = Response::default();
            return Ok(State::Head);
        }
        let values = |name: &str| -> Vec<String> {
            self.head
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .flat_map(|(_, v)| v.split(',').map(|s| s.trim().to_string()).collect::<Vec<_>>())
                .collect()
        };
        let te = values("transfer-encoding");
        let cl = values("content-length");
        if status == 204 || status == 304 {
            return Ok(State::Done);
        }
        if !te.is_empty() {
            let last = te.iter().rev().find(|s| !s.is_empty());
            return Ok(if last.is_some_and(|s| s.eq_ignore_ascii_case("chunked")) {
                State::ChunkSize
            } else {
                State::UntilClose
            });
        }
        if cl.is_empty() {
            return Ok(State::UntilClose);
        }
        let mut len = None;
        for v in &cl {
            let n = (!v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .then(|| v.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| HttpError::Malformed(format!("invalid Content-Length \"{v}\"")))?;
            if len.is_some_and(|l| l != n) {
                return Err(HttpError::Malformed("conflicting Content-Length headers".into()));
            }
            len = Some(n);
        }
        let len = len.unwrap_or(0);
        self.check_room(len)?;
        Ok(if len == 0 { State::Done } else { State::Length(len) })
    }
}

/// The first bytes of a bad response, printable, for the log.
fn snippet(b: &[u8]) -> String {
    let s: String = b.iter().take(40).flat_map(|c| c.escape_ascii()).map(char::from).collect();
    if b.len() > 40 {
        format!("{s}...")
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn form_decode(s: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        fn unescape(s: &str) -> Vec<u8> {
            let b = s.as_bytes();
            let mut out = Vec::new();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'%' {
                    out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(if b[i] == b'+' { b' ' } else { b[i] });
                    i += 1;
                }
            }
            out
        }
        if s.is_empty() {
            return Vec::new();
        }
        s.split('&')
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap();
                (unescape(k), unescape(v))
            })
            .collect()
    }

    #[test]
    fn form_escapes_odd_names_and_args() {
        assert_eq!(form_encode(&[]), "");
        assert_eq!(form_encode(&[("app", "live"), ("name", "")]), "app=live&name=");
        assert_eq!(form_encode(&[("a b", "c d")]), "a%20b=c%20d");
        assert_eq!(form_encode(&[("x&y=z", "1&2=3")]), "x%26y%3Dz=1%262%3D3");
        assert_eq!(form_encode(&[("p", "100%+1")]), "p=100%25%2B1");
        assert_eq!(form_encode(&[("n", "caf\u{e9} \u{1f600}")]), "n=caf%C3%A9%20%F0%9F%98%80");
        assert_eq!(form_encode(&[("nul", "a\0b\r\n")]), "nul=a%00b%0D%0A");
        assert_eq!(form_encode(&[("keep", "AZaz09-._~")]), "keep=AZaz09-._~");
        assert_eq!(form_encode(&[("q", "?/#:@[]!$'()*,;")]), "q=%3F%2F%23%3A%40%5B%5D%21%24%27%28%29%2A%2C%3B");
    }

    proptest! {
        #[test]
        fn form_round_trips(pairs in proptest::collection::vec((".*", ".*"), 0..6)) {
            let refs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let enc = form_encode(&refs);
            prop_assert!(enc.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~%=&".contains(&b)));
            let dec = form_decode(&enc);
            let want: Vec<(Vec<u8>, Vec<u8>)> =
                pairs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect();
            prop_assert_eq!(dec, want);
        }

        #[test]
        fn parser_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 0..8),
                               max in 0usize..300) {
            let mut p = ResponseParser::new(max);
            for c in &chunks {
                if p.feed(c).is_err() {
                    break;
                }
            }
            let _ = p.eof();
        }
    }

    #[test]
    fn get_appends_the_form_to_the_query() {
        let r = Request::with_form(Method::Get, "example.com:8080", "/on_play", &[("name", "a b"), ("x", "&")]);
        let s = String::from_utf8(r.encode()).unwrap();
        assert_eq!(
            s,
            "GET /on_play?name=a%20b&x=%26 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: nginx-rtmp-rs\r\n\
             Connection: close\r\n\r\n"
        );
        let r = Request::with_form(Method::Get, "h", "/cb?token=1", &[("call", "play")]);
        assert_eq!(r.path_and_query, "/cb?token=1&call=play");
        let r = Request::with_form(Method::Get, "h", "/cb?", &[("call", "play")]);
        assert_eq!(r.path_and_query, "/cb?call=play");
        let r = Request::with_form(Method::Get, "h", "/cb", &[]);
        assert_eq!(r.path_and_query, "/cb");
    }

    #[test]
    fn post_sends_the_form_as_body() {
        let r = Request::with_form(Method::Post, "h", "/p?k=v", &[("call", "publish"), ("name", "é")]);
        let s = String::from_utf8(r.encode()).unwrap();
        let body = "call=publish&name=%C3%A9";
        assert_eq!(
            s,
            format!(
                "POST /p?k=v HTTP/1.1\r\nHost: h\r\nUser-Agent: nginx-rtmp-rs\r\nConnection: close\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        );
        let r = Request::with_form(Method::Post, "h", "/p", &[]);
        assert!(String::from_utf8(r.encode()).unwrap().ends_with("Content-Length: 0\r\n\r\n"));
    }

    #[test]
    fn json_body() {
        let r = Request::with_json("h", "/j", "{\"a\":1}");
        let s = String::from_utf8(r.encode()).unwrap();
        assert!(s.starts_with("POST /j HTTP/1.1\r\n"));
        assert!(s.contains("Content-Type: application/json\r\nContent-Length: 7\r\n\r\n{\"a\":1}"));
    }

    #[test]
    fn request_line_and_headers_cannot_be_injected() {
        let r = Request {
            method: Method::Get,
            host_header: "h\r\nX-Evil: 1".into(),
            path_and_query: "p a\r\nth".into(),
            body: Vec::new(),
            content_type: None,
        };
        let s = String::from_utf8(r.encode()).unwrap();
        assert!(s.starts_with("GET /p%20a%0D%0Ath HTTP/1.1\r\nHost: hX-Evil: 1\r\n"), "{s}");
    }

    /// Feeds `input` split at every byte boundary (two pieces), and byte by byte.
    fn parse_all_splits(input: &[u8], max: usize, eof: bool) -> Result<Response, HttpError> {
        // The same outcome whatever the pieces (an error's text may quote fewer bytes).
        let same = |a: &Result<Response, HttpError>, b: &Result<Response, HttpError>| match (a, b) {
            (Err(x), Err(y)) => std::mem::discriminant(x) == std::mem::discriminant(y),
            _ => a == b,
        };
        let whole = parse_pieces(&[input], max, eof);
        for i in 0..=input.len() {
            let split = parse_pieces(&[&input[..i], &input[i..]], max, eof);
            assert!(same(&split, &whole), "split at {i}: {split:?} vs {whole:?}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        let one = parse_pieces(&bytes, max, eof);
        assert!(same(&one, &whole), "byte by byte: {one:?} vs {whole:?}");
        whole
    }

    fn parse_pieces(pieces: &[&[u8]], max: usize, eof: bool) -> Result<Response, HttpError> {
        let mut p = ResponseParser::new(max);
        for piece in pieces {
            if let Some(r) = p.feed(piece)? {
                return Ok(r);
            }
        }
        if eof {
            p.eof()
        } else {
            Err(HttpError::Truncated("test: no eof".into()))
        }
    }

    #[test]
    fn content_length() {
        let input = b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
        let r = parse_all_splits(input, 1024, false).unwrap();
        assert_eq!((r.status, r.reason.as_str(), r.body.as_slice()), (200, "OK", &b"hello"[..]));
        assert_eq!(r.header("server"), Some("x"));
        assert_eq!(r.location, None);
    }

    #[test]
    fn redirect_with_location_and_no_body() {
        let input = b"HTTP/1.0 302 Found\r\nLocation: rtmp://other/app/new name\r\nContent-Length: 0\r\n\r\n";
        let r = parse_all_splits(input, 1024, false).unwrap();
        assert_eq!(r.status, 302);
        assert_eq!(r.location.as_deref(), Some("rtmp://other/app/new name"));
    }

    #[test]
    fn bare_lf_and_no_reason() {
        let r = parse_all_splits(b"HTTP/1.1 403\nContent-Length: 2\n\nno", 1024, false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (403, &b"no"[..]));
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                      5;name=\"v\"\r\nhello\r\n1 ; x\r\n,\r\nA\r\n0123456789\r\n0;last\r\nX-Trailer: yes\r\nY: 2\r\n\r\nZZZ";
        let r = parse_all_splits(input, 1024, false).unwrap();
        assert_eq!(r.body, b"hello,0123456789");
        let input =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 99\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
        assert_eq!(parse_all_splits(input, 1024, false).unwrap().body, b"abc");
    }

    #[test]
    fn chunked_errors() {
        let bad_size = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n";
        assert!(matches!(parse_all_splits(bad_size, 1024, true), Err(HttpError::Malformed(_))));
        let too_long = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n";
        assert!(matches!(parse_all_splits(too_long, 1024, true), Err(HttpError::Malformed(_))));
        let cut = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel";
        assert_eq!(
            parse_all_splits(cut, 1024, true).unwrap_err().to_string(),
            "bad response: connection closed inside the chunked body"
        );
        let huge = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFF\r\n";
        assert_eq!(parse_all_splits(huge, 1024, true), Err(HttpError::TooLarge(1024)));
    }

    #[test]
    fn interim_responses_are_skipped() {
        let input = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n\
                      HTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\n!";
        let r = parse_all_splits(input, 1024, false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (201, &b"!"[..]));
        assert_eq!(r.header("link"), None);
        let up = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n";
        assert!(matches!(parse_all_splits(up, 1024, true), Err(HttpError::Malformed(_))));
    }

    #[test]
    fn no_body_statuses() {
        let r = parse_all_splits(b"HTTP/1.1 204 No Content\r\nContent-Length: 10\r\n\r\n", 1024, false).unwrap();
        assert_eq!((r.status, r.body.len()), (204, 0));
        let r = parse_all_splits(b"HTTP/1.1 304 Not Modified\r\n\r\n", 1024, false).unwrap();
        assert_eq!(r.status, 304);
    }

    #[test]
    fn body_until_close() {
        let input = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of\r\nthis";
        let r = parse_all_splits(input, 1024, true).unwrap();
        assert_eq!(r.body, b"all of\r\nthis");
        // Without the close it is not complete.
        assert!(parse_pieces(&[input], 1024, false).is_err());
        let r = parse_all_splits(b"HTTP/1.0 200 OK\r\n\r\n", 1024, true).unwrap();
        assert!(r.body.is_empty());
    }

    #[test]
    fn eof_before_complete_is_an_error() {
        let e = |input: &[u8]| parse_all_splits(input, 1024, true).unwrap_err().to_string();
        assert_eq!(e(b""), "bad response: connection closed without sending a response");
        assert_eq!(
            e(b"HTTP/1.1 200 OK\r\nContent-Le"),
            "bad response: connection closed in the middle of the response header"
        );
        assert_eq!(
            e(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
            "bad response: connection closed after 3 body bytes, 7 more were announced"
        );
    }

    #[test]
    fn garbage_is_refused() {
        let e = |input: &[u8]| parse_all_splits(input, 1024, true).unwrap_err();
        let ssh = e(b"SSH-2.0-OpenSSH_9.2\r\n");
        assert_eq!(ssh.to_string(), "bad response: not an HTTP response (starts with \"SSH-2.0-OpenSSH_9.2\\r\\n\")");
        assert!(matches!(e(b"\x00\x01\x02\xff garbage"), HttpError::Malformed(_)));
        assert!(matches!(e(b"HTTP/1.1 abc OK\r\n\r\n"), HttpError::Malformed(_)));
        assert!(matches!(e(b"HTTP/2 200\r\n\r\n"), HttpError::Malformed(_)));
        assert!(matches!(e(b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n"), HttpError::Malformed(_)));
        assert!(matches!(e(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), HttpError::Malformed(_)));
        assert!(matches!(
            e(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
            HttpError::Malformed(_)
        ));
        // Garbage and close, before any blank line.
        assert!(matches!(e(b"HTTP/1.1 2"), HttpError::Truncated(_)));
        assert!(matches!(e(b"HTTP/1.1 2x"), HttpError::Malformed(_)));
        let many: String = (0..100).map(|i| format!("H{i}: v\r\n")).collect();
        let input = format!("HTTP/1.1 200 OK\r\n{many}\r\n");
        assert!(e(input.as_bytes()).to_string().starts_with("bad response: too many headers (response starts with"));
    }

    #[test]
    fn oversize_is_refused() {
        let input = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let n = input.len();
        assert!(parse_all_splits(input, n, false).is_ok(), "exactly the limit fits");
        assert_eq!(parse_all_splits(input, n - 1, true), Err(HttpError::TooLarge(n - 1)));
        // A large announced body is refused at the head.
        let mut p = ResponseParser::new(100);
        assert_eq!(p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n"), Err(HttpError::TooLarge(100)));
        // A head that never ends.
        let long = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(2000));
        assert_eq!(parse_all_splits(long.as_bytes(), 1024, true), Err(HttpError::TooLarge(1024)));
        // Until close.
        let body = format!("HTTP/1.0 200 OK\r\n\r\n{}", "b".repeat(2000));
        assert_eq!(
            parse_all_splits(body.as_bytes(), 1024, true).unwrap_err().to_string(),
            "response larger than 1024 bytes"
        );
        // Chunked, counting the framing.
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
        let n = chunked.len();
        assert!(parse_all_splits(chunked, n, false).is_ok());
        assert_eq!(parse_all_splits(chunked, n - 1, true), Err(HttpError::TooLarge(n - 1)));
    }

    #[test]
    fn finished_parser_takes_nothing() {
        let mut p = ResponseParser::new(1024);
        assert!(p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").unwrap().is_some());
        assert_eq!(p.feed(b"HTTP/1.1 200 OK\r\n\r\n"), Ok(None));
        assert!(p.eof().is_err());
    }
}
