//! `rtmp flv-play`: plays an HTTP-FLV (`http://`) or WebSocket-FLV (`ws://`) stream and reports the
//! response, the FLV header flags, tag counts and first timestamps, and the time to the first tag.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use rtmp_proto::flv::{self, FlvError, FlvReader, FLV_HEADER_LEN};
use rtmp_proto::message::msg_type;
use rtmp_proto::websocket as ws;
use serde::Serialize;

use crate::flvconn::FlvUrl;
use crate::CliError;

/// Response heads larger than this are refused.
const MAX_HEAD: usize = 64 * 1024;
/// WebSocket frames larger than this are refused (an FLV tag is at most 16 MiB plus headers).
const MAX_WS_PAYLOAD: u64 = 17 << 20;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub struct FlvPlayArgs<'a> {
    pub url: &'a str,
    pub duration: f64,
    pub json: bool,
    /// Extra request headers, `NAME:VALUE`.
    pub headers: &'a [String],
}

/// What the command reports (`--json` prints it as is).
#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub status: u16,
    /// Response headers, names lower-cased; repeated ones joined with ", ".
    pub headers: BTreeMap<String, String>,
    /// `null` when fewer than 5 bytes of FLV came.
    pub flv_header: Option<FlvHeaderFlags>,
    pub tags: u64,
    pub video: u64,
    pub audio: u64,
    pub script: u64,
    /// Video key frames, sequence headers not counted.
    pub keyframes: u64,
    pub first_video_ts: Option<u32>,
    pub first_audio_ts: Option<u32>,
    pub last_ts: u32,
    pub first_video_is_seq_header: bool,
    pub first_video_keyframe_ts: Option<u32>,
    /// FLV bytes received (after de-chunking or WebSocket de-framing).
    pub bytes: u64,
    pub chunked: bool,
    /// "eof", "duration", "close-frame", or "error" (then `error` says why).
    pub ended: &'static str,
    /// From the start of the command (DNS and connect included).
    pub ms_to_first_tag: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct FlvHeaderFlags {
    pub audio: bool,
    pub video: bool,
}

/// Runs the command; the result is the exit code: 0 when a 200/101 came and at least one tag, 2 on
/// a non-2xx status, 1 otherwise.
pub fn run(args: &FlvPlayArgs) -> Result<u8, CliError> {
    let begin = Instant::now();
    let deadline = begin + crate::secs(args.duration);
    let target = Target::parse(args.url)?;
    let extra = extra_headers(args.headers)?;
    let ws_key = STANDARD.encode(rand::random::<[u8; 16]>());
    let request = target.request(&extra, target.ws.then_some(ws_key.as_str()));

    let mut conn = Conn::open(&target, deadline)?;
    conn.stream.write_all(request.as_bytes()).map_err(io_err("send request"))?;
    let Head { status, headers, rest } = read_head(&mut conn)?;

    let mut report = Report { status, headers, ..Report::default() };
    if status != 101 && !(200..300).contains(&status) {
        println!("status {status}");
        return Ok(2);
    }
    let mut body = if target.ws {
        if status != 101 {
            return Err(CliError::Other(format!("status {status}: the server did not upgrade to WebSocket")));
        }
        let want = ws::accept_key(&ws_key);
        let got = report.headers.get("sec-websocket-accept").map(String::as_str);
        if got != Some(want.as_str()) {
            return Err(CliError::Other(format!("Sec-WebSocket-Accept {got:?}, expected {want:?}")));
        }
        Body::Ws(WsClient::default())
    } else if status == 101 {
        return Err(CliError::Other("status 101 to a plain HTTP request".into()));
    } else if report
        .headers
        .get("transfer-encoding")
        .and_then(|te| te.rsplit(',').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
    {
        report.chunked = true;
        Body::Chunked(Dechunker::default())
    } else {
        let length = report.headers.get("content-length").and_then(|l| l.trim().parse().ok());
        Body::Plain { remaining: length }
    };

    let mut media = Media::new(begin);
    let mut out = Vec::new();
    let mut input = rest;
    let mut rb = vec![0u8; 64 * 1024];
    let ended = loop {
        out.clear();
        match body.decode(&input, &mut out, &mut conn.stream) {
            Ok(end) => {
                if let Err(e) = media.push(&out, &mut report) {
                    break Err(e.to_string());
                }
                if let Some(end) = end {
                    break Ok(end);
                }
            }
            Err(e) => break Err(e),
        }
        input.clear();
        match conn.read(&mut rb) {
            Ok(None) => break Ok("duration"),
            Ok(Some(0)) => break Ok("eof"),
            Ok(Some(n)) => input.extend_from_slice(&rb[..n]),
            Err(e) => break Err(format!("receive: {e}")),
        }
    };
    let ok = match ended {
        Ok(end) => {
            report.ended = end;
            report.tags > 0
        }
        Err(e) => {
            report.ended = "error";
            report.error = Some(e);
            false
        }
    };
    report.flv_header = media.header_flags();
    if args.json {
        let s = serde_json::to_string(&report).map_err(|e| CliError::Other(e.to_string()))?;
        println!("{s}");
    } else {
        print_text(&report);
    }
    Ok(if ok { 0 } else { 1 })
}

fn io_err(what: &'static str) -> impl Fn(io::Error) -> CliError {
    move |e| CliError::Other(format!("{what}: {e}"))
}

/// An `http://` or `ws://` URL, split for the request.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    ws: bool,
    /// Host, port and path, as for `rtmp bench`'s HTTP-FLV players.
    url: FlvUrl,
}

impl Target {
    fn parse(url: &str) -> Result<Target, CliError> {
        let (ws, rest) = if let Some(r) = url.strip_prefix("http://") {
            (false, r)
        } else if let Some(r) = url.strip_prefix("ws://") {
            (true, r)
        } else {
            return Err(CliError::Other(format!(
                "{url}: expected http://host[:port]/path or ws://host[:port]/path"
            )));
        };
        let url = FlvUrl::from_rest(url, rest).map_err(CliError::Other)?;
        Ok(Target { ws, url })
    }

    /// The request head; `ws_key` makes it a WebSocket upgrade.
    fn request(&self, extra: &[(String, String)], ws_key: Option<&str>) -> String {
        let mut r = format!("GET {} HTTP/1.1\r\nHost: {}\r\n", self.url.path_and_query, self.url.authority);
        match ws_key {
            Some(key) => r.push_str(&format!(
                "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            )),
            None => r.push_str("Connection: close\r\n"),
        }
        for (name, value) in extra {
            r.push_str(&format!("{name}: {value}\r\n"));
        }
        r.push_str("\r\n");
        r
    }
}

/// `NAME:VALUE` arguments as header pairs; names must be tokens and nothing may break the head.
fn extra_headers(raw: &[String]) -> Result<Vec<(String, String)>, CliError> {
    raw.iter()
        .map(|h| {
            let bad = || CliError::Other(format!("--header {h:?}: expected NAME:VALUE"));
            let (name, value) = h.split_once(':').ok_or_else(bad)?;
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if name.is_empty() || !name.bytes().all(token) || value.bytes().any(|b| b == b'\r' || b == b'\n') {
                return Err(bad());
            }
            Ok((name.to_string(), value.trim().to_string()))
        })
        .collect()
}

/// A blocking socket whose reads give up at the deadline.
struct Conn {
    stream: TcpStream,
    deadline: Instant,
}

impl Conn {
    fn open(t: &Target, deadline: Instant) -> Result<Conn, CliError> {
        let t = &t.url;
        let addrs = (t.host.as_str(), t.port).to_socket_addrs().map_err(io_err("resolve"))?;
        let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
        for a in addrs {
            match TcpStream::connect_timeout(&a, CONNECT_TIMEOUT) {
                Ok(stream) => {
                    stream.set_write_timeout(Some(CONNECT_TIMEOUT)).map_err(io_err("socket"))?;
                    let _ = stream.set_nodelay(true);
                    return Ok(Conn { stream, deadline });
                }
                Err(e) => last = e,
            }
        }
        Err(CliError::Other(format!("connect {}:{}: {last}", t.host, t.port)))
    }

    /// `Ok(None)` once the deadline passed, `Ok(Some(0))` at end of stream.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some(left))?;
            match self.stream.read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// A response head and the body bytes read past it.
struct Head {
    status: u16,
    /// Names lower-cased.
    headers: BTreeMap<String, String>,
    rest: Vec<u8>,
}

fn read_head(conn: &mut Conn) -> Result<Head, CliError> {
    let mut buf = Vec::new();
    let mut rb = [0u8; 4096];
    loop {
        let mut raw = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut raw);
        match resp.parse(&buf) {
            Ok(httparse::Status::Complete(len)) => {
                let mut headers: BTreeMap<String, String> = BTreeMap::new();
                for h in resp.headers.iter() {
                    let value = String::from_utf8_lossy(h.value).trim().to_string();
                    headers
                        .entry(h.name.to_ascii_lowercase())
                        .and_modify(|v| {
                            v.push_str(", ");
                            v.push_str(&value);
                        })
                        .or_insert(value);
                }
                let status = resp.code.unwrap_or(0);
                return Ok(Head { status, headers, rest: buf[len..].to_vec() });
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            Ok(httparse::Status::Partial) => return Err(CliError::Other("response head too large".into())),
            Err(e) => return Err(CliError::Other(format!("bad response head: {e}"))),
        }
        match conn.read(&mut rb).map_err(io_err("receive"))? {
            None => return Err(CliError::Other("no response before the duration ran out".into())),
            Some(0) => return Err(CliError::Other("connection closed before a response".into())),
            Some(n) => buf.extend_from_slice(&rb[..n]),
        }
    }
}

/// How the FLV bytes come in the response body.
enum Body {
    /// Until `remaining` (Content-Length) runs out, or until the server closes.
    Plain { remaining: Option<u64> },
    Chunked(Dechunker),
    Ws(WsClient),
}

impl Body {
    /// Appends the FLV bytes in `input` to `out`; `Some(reason)` when the body ended.
    fn decode(&mut self, input: &[u8], out: &mut Vec<u8>, sock: &mut TcpStream) -> Result<Option<&'static str>, String> {
        match self {
            Body::Plain { remaining: None } => {
                out.extend_from_slice(input);
                Ok(None)
            }
            Body::Plain { remaining: Some(left) } => {
                let take = input.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[..take]);
                *left -= take as u64;
                Ok((*left == 0).then_some("eof"))
            }
            Body::Chunked(d) => {
                d.feed(input, out)?;
                Ok(d.done().then_some("eof"))
            }
            Body::Ws(c) => c.feed(input, out, sock),
        }
    }
}

/// De-chunks a `Transfer-Encoding: chunked` body as it arrives.
#[derive(Debug, Default)]
pub struct Dechunker {
    state: ChunkState,
    /// The size or trailer line read so far.
    line: Vec<u8>,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum ChunkState {
    #[default]
    Size,
    Data(u64),
    /// The CRLF after a chunk's data.
    DataEnd,
    Trailers,
    Done,
}

/// Longest chunk-size or trailer line accepted.
const MAX_LINE: usize = 4096;

impl Dechunker {
    pub fn feed(&mut self, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), String> {
        while !input.is_empty() {
            if let ChunkState::Data(left) = &mut self.state {
                let take = input.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                out.extend_from_slice(&input[..take]);
                input = &input[take..];
                *left -= take as u64;
                if *left == 0 {
                    self.state = ChunkState::DataEnd;
                }
                continue;
            }
            if self.state == ChunkState::Done {
                return Ok(());
            }
            // The other states read a line.
            let Some(nl) = input.iter().position(|&b| b == b'\n') else {
                self.line.extend_from_slice(input);
                return self.check_line_len();
            };
            self.line.extend_from_slice(&input[..=nl]);
            input = &input[nl + 1..];
            self.check_line_len()?;
            let line = std::mem::take(&mut self.line);
            let empty = line == b"\r\n";
            self.state = match self.state {
                ChunkState::Size => match httparse::parse_chunk_size(&line) {
                    Ok(httparse::Status::Complete((_, 0))) => ChunkState::Trailers,
                    Ok(httparse::Status::Complete((_, n))) => ChunkState::Data(n),
                    _ => return Err(format!("bad chunk size line {:?}", String::from_utf8_lossy(&line))),
                },
                ChunkState::DataEnd if empty => ChunkState::Size,
                ChunkState::DataEnd => return Err("chunk data longer than its size".into()),
                ChunkState::Trailers if empty => ChunkState::Done,
                ChunkState::Trailers => ChunkState::Trailers,
                ChunkState::Data(_) | ChunkState::Done => unreachable!("handled above"),
            };
        }
        Ok(())
    }

    fn check_line_len(&self) -> Result<(), String> {
        if self.line.len() > MAX_LINE {
            return Err("chunk size or trailer line too long".into());
        }
        Ok(())
    }

    /// The last chunk and its trailers came.
    pub fn done(&self) -> bool {
        self.state == ChunkState::Done
    }
}

/// The client side of a WebSocket: server frames in, binary payloads out, pings answered.
#[derive(Default)]
struct WsClient {
    buf: Vec<u8>,
    /// Inside a fragmented text message, whose continuations are not FLV.
    in_text: bool,
}

impl WsClient {
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>, sock: &mut TcpStream) -> Result<Option<&'static str>, String> {
        self.buf.extend_from_slice(input);
        let mut at = 0;
        let r = loop {
            let b = &self.buf[at..];
            let Some((op, fin, hlen, len)) = ws::parse_server_frame(b) else {
                if b.len() >= 2 && b[1] & 0x80 != 0 {
                    break Err("masked frame from the server".to_string());
                }
                break Ok(None);
            };
            if len > MAX_WS_PAYLOAD {
                break Err(format!("websocket frame of {len} bytes"));
            }
            let end = hlen + len as usize;
            if b.len() < end {
                break Ok(None);
            }
            let payload = &b[hlen..end];
            at += end;
            let mask = rand::random::<[u8; 4]>();
            match op {
                ws::OP_BINARY => out.extend_from_slice(payload),
                ws::OP_TEXT => self.in_text = !fin,
                ws::OP_CONT if self.in_text => self.in_text = !fin,
                ws::OP_CONT => out.extend_from_slice(payload),
                ws::OP_PING => {
                    let pong = ws::masked_frame(ws::OP_PONG, true, mask, payload);
                    if let Err(e) = sock.write_all(&pong) {
                        break Err(format!("send pong: {e}"));
                    }
                }
                ws::OP_CLOSE => {
                    // Echo the status code, as RFC 6455 §5.5.1 asks; the server closes then.
                    let code = payload.get(..2).unwrap_or_default();
                    let _ = sock.write_all(&ws::masked_frame(ws::OP_CLOSE, true, mask, code));
                    break Ok(Some("close-frame"));
                }
                _ => {}
            }
        };
        self.buf.drain(..at);
        r
    }
}

/// Parses the FLV stream and counts what it carries.
struct Media {
    begin: Instant,
    /// The first bytes of the stream, for the header flags FlvReader skips.
    head: Vec<u8>,
    reader: FlvReader,
}

impl Media {
    fn new(begin: Instant) -> Media {
        Media { begin, head: Vec::new(), reader: FlvReader::new() }
    }

    fn push(&mut self, data: &[u8], r: &mut Report) -> Result<(), FlvError> {
        if data.is_empty() {
            return Ok(());
        }
        r.bytes += data.len() as u64;
        let want = FLV_HEADER_LEN.saturating_sub(self.head.len()).min(data.len());
        self.head.extend_from_slice(&data[..want]);
        self.reader.extend(data);
        while let Some(tag) = self.reader.next_tag()? {
            r.ms_to_first_tag.get_or_insert_with(|| (self.begin.elapsed().as_secs_f64() * 1e6).round() / 1e3);
            r.tags += 1;
            r.last_ts = tag.timestamp;
            match tag.tag_type {
                msg_type::VIDEO => {
                    let info = flv::video_tag_info(&tag.data);
                    let seq = info.is_some_and(|i| i.sequence_header);
                    if r.video == 0 {
                        r.first_video_ts = Some(tag.timestamp);
                        r.first_video_is_seq_header = seq;
                    }
                    r.video += 1;
                    if info.is_some_and(|i| i.keyframe) && !seq {
                        r.keyframes += 1;
                        r.first_video_keyframe_ts.get_or_insert(tag.timestamp);
                    }
                }
                msg_type::AUDIO => {
                    r.first_audio_ts.get_or_insert(tag.timestamp);
                    r.audio += 1;
                }
                _ => r.script += 1,
            }
        }
        Ok(())
    }

    fn header_flags(&self) -> Option<FlvHeaderFlags> {
        let flags = *self.head.get(4)?;
        Some(FlvHeaderFlags { audio: flags & 0x04 != 0, video: flags & 0x01 != 0 })
    }
}

fn print_text(r: &Report) {
    let opt = |v: Option<u32>| v.map_or("-".to_string(), |v| v.to_string());
    let header = match &r.flv_header {
        Some(h) => format!("audio {}, video {}", h.audio, h.video),
        None => "none".to_string(),
    };
    println!("status {}{}, FLV header: {header}", r.status, if r.chunked { " (chunked)" } else { "" });
    println!(
        "tags {}: video {} (keyframes {}), audio {}, script {}",
        r.tags, r.video, r.keyframes, r.audio, r.script
    );
    println!(
        "first video ts {}{}, first keyframe ts {}, first audio ts {}, last ts {}",
        opt(r.first_video_ts),
        if r.first_video_is_seq_header { " (sequence header)" } else { "" },
        opt(r.first_video_keyframe_ts),
        opt(r.first_audio_ts),
        r.last_ts
    );
    let ttft = r.ms_to_first_tag.map_or("-".to_string(), |ms| format!("{ms:.1} ms"));
    println!("{} bytes, first tag after {ttft}, ended: {}", r.bytes, r.ended);
    if let Some(e) = &r.error {
        println!("error: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHUNKED: &[u8] = b"4\r\nFLV\x01\r\na;ext=1\r\n0123456789\r\n1\r\nZ\r\n0\r\nX-Trailer: y\r\n\r\n";
    const PLAIN: &[u8] = b"FLV\x010123456789Z";

    fn dechunk(parts: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut d = Dechunker::default();
        let mut out = Vec::new();
        for p in parts {
            d.feed(p, &mut out).unwrap();
        }
        (out, d.done())
    }

    #[test]
    fn dechunk_split_at_every_byte() {
        for i in 0..=CHUNKED.len() {
            let (a, b) = CHUNKED.split_at(i);
            assert_eq!(dechunk(&[a, b]), (PLAIN.to_vec(), true), "split at {i}");
            for j in i..=CHUNKED.len() {
                let (b, c) = b.split_at(j - i);
                assert_eq!(dechunk(&[a, b, c]), (PLAIN.to_vec(), true), "split at {i} and {j}");
            }
        }
        let bytes: Vec<&[u8]> = CHUNKED.chunks(1).collect();
        assert_eq!(dechunk(&bytes), (PLAIN.to_vec(), true));
        // Not done before the last chunk's empty line.
        assert_eq!(dechunk(&[&CHUNKED[..CHUNKED.len() - 1]]), (PLAIN.to_vec(), false));
    }

    #[test]
    fn dechunk_errors() {
        let mut out = Vec::new();
        assert!(Dechunker::default().feed(b"zz\r\n", &mut out).is_err());
        assert!(Dechunker::default().feed(b"2\r\nabc\r\n", &mut out).is_err());
        assert!(Dechunker::default().feed(&[b'1'; MAX_LINE + 1], &mut out).is_err());
    }

    #[test]
    fn urls() {
        let t = Target::parse("http://example.com:8080/live?app=live&stream=s").unwrap();
        assert_eq!(
            t,
            Target {
                ws: false,
                url: FlvUrl {
                    authority: "example.com:8080".into(),
                    host: "example.com".into(),
                    port: 8080,
                    path_and_query: "/live?app=live&stream=s".into(),
                },
            }
        );
        let t = Target::parse("ws://[::1]/x.flv").unwrap();
        assert_eq!((t.ws, t.url.host.as_str(), t.url.port, t.url.path_and_query.as_str()), (true, "::1", 80, "/x.flv"));
        assert_eq!(Target::parse("http://h").unwrap().url.path_and_query, "/");
        assert_eq!(Target::parse("http://h?a=1").unwrap().url.path_and_query, "/?a=1");
        assert!(Target::parse("rtmp://h/app").is_err());
        assert!(Target::parse("http://:80/").is_err());
        assert!(Target::parse("http://h:x/").is_err());
        assert!(Target::parse("http://h/a b").is_err());
    }

    #[test]
    fn requests() {
        let t = Target::parse("ws://h:1935/live/s.flv").unwrap();
        let extra = extra_headers(&["X-Token: abc".to_string()]).unwrap();
        let r = t.request(&extra, Some("k=="));
        assert!(r.starts_with("GET /live/s.flv HTTP/1.1\r\nHost: h:1935\r\nUpgrade: websocket\r\n"));
        assert!(r.contains("Sec-WebSocket-Key: k==\r\n") && r.ends_with("X-Token: abc\r\n\r\n"));
        assert!(t.request(&[], None).contains("Connection: close\r\n"));
        assert!(extra_headers(&["no-colon".to_string()]).is_err());
        assert!(extra_headers(&["Bad Name: v".to_string()]).is_err());
        assert!(extra_headers(&["X: a\r\nY: b".to_string()]).is_err());
    }

    #[test]
    fn media_counts() {
        let mut b = bytes::BytesMut::new();
        flv::write_header(&mut b, true, false);
        flv::write_tag(&mut b, 18, 0, &[2, 0, 0]);
        flv::write_tag(&mut b, 9, 10, &[0x17, 0, 0, 0, 0]);
        flv::write_tag(&mut b, 8, 12, &[0xAF, 0]);
        flv::write_tag(&mut b, 9, 40, &[0x17, 1, 0, 0, 0]);
        flv::write_tag(&mut b, 9, 80, &[0x27, 1, 0, 0, 0]);
        let mut m = Media::new(Instant::now());
        let mut r = Report::default();
        for byte in b.iter() {
            m.push(&[*byte], &mut r).unwrap();
        }
        assert_eq!(m.header_flags(), Some(FlvHeaderFlags { audio: true, video: false }));
        assert_eq!((r.tags, r.video, r.audio, r.script, r.keyframes), (5, 3, 1, 1, 1));
        assert_eq!((r.first_video_ts, r.first_audio_ts, r.first_video_keyframe_ts), (Some(10), Some(12), Some(40)));
        assert!(r.first_video_is_seq_header);
        assert_eq!((r.last_ts, r.bytes), (80, b.len() as u64));
        assert!(r.ms_to_first_tag.is_some());
    }
}
