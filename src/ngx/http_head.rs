//! The head of an HTTP response (status line and header lines) read by nginx's own parsers,
//! `ngx_http_parse_status_line` and `ngx_http_parse_header_line` (those of its upstream module),
//! for clients that stream a body themselves (remote VOD downloads).

use std::mem::{self, MaybeUninit};

use nginx_sys::{ngx_buf_t, ngx_http_request_t, ngx_http_status_t, ngx_int_t};

/// A complete response head.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Header lines in order, values as text (invalid UTF-8 replaced).
    pub headers: Vec<(String, String)>,
    /// Bytes of the head, blank line included: the body starts there.
    pub len: usize,
}

impl Head {
    /// Every value of the headers called `name` (case-insensitive).
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

const OK: ngx_int_t = nginx_sys::NGX_OK as ngx_int_t;
const AGAIN: ngx_int_t = nginx_sys::NGX_AGAIN as ngx_int_t;
const HEADER_DONE: ngx_int_t = nginx_sys::NGX_HTTP_PARSE_HEADER_DONE as ngx_int_t;

/// A zeroed request for the parsers' state (they use nothing else of it), with room to spare.
#[repr(C)]
struct Scratch {
    r: ngx_http_request_t,
    spare: [u8; 1024],
}

/// Parses the response head at the start of `buf`: `Ok(None)` while it is incomplete, an error
/// for bytes that are not an HTTP/1.x response head.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<Head>, String> {
    if buf.is_empty() {
        return Ok(None);
    }
    let mut scratch: Box<MaybeUninit<Scratch>> = Box::new(MaybeUninit::zeroed());
    let r: *mut ngx_http_request_t = scratch.as_mut_ptr().cast();
    // SAFETY: the parsers only read the bytes between b.pos and b.last (the `*mut` is what their
    // signature asks for, they never write through it) and keep their state in the zeroed
    // request, a plain C struct for which all-zero is nginx's own initial state. Pointers they
    // leave in the request point into `buf`, alive for this whole function.
    unsafe {
        let mut b: ngx_buf_t = mem::zeroed();
        b.start = buf.as_ptr() as *mut u8;
        b.pos = b.start;
        b.last = b.start.add(buf.len());
        b.end = b.last;
        let mut st: ngx_http_status_t = mem::zeroed();
        match nginx_sys::ngx_http_parse_status_line(r, &mut b, &mut st) {
            OK => {}
            AGAIN => return Ok(None),
            _ => return Err(format!("not an HTTP response (starts with \"{}\")", snippet(buf))),
        }
        let status = u16::try_from(st.code).unwrap_or(0);
        if !(100..600).contains(&status) {
            return Err(format!("status code {status:03} out of range"));
        }
        let mut headers = Vec::new();
        loop {
            match nginx_sys::ngx_http_parse_header_line(r, &mut b, 1) {
                OK => {
                    let text = |s: *mut u8, e: *mut u8| {
                        let n = usize::try_from(e.offset_from(s)).unwrap_or(0);
                        String::from_utf8_lossy(std::slice::from_raw_parts(s, n)).trim().to_string()
                    };
                    let name = text((*r).header_name_start, (*r).header_name_end);
                    let value = text((*r).header_start, (*r).header_end);
                    headers.push((name, value));
                }
                HEADER_DONE => {
                    let len = usize::try_from(b.pos.offset_from(buf.as_ptr())).unwrap_or(buf.len());
                    return Ok(Some(Head { status, headers, len }));
                }
                AGAIN => return Ok(None),
                _ => return Err(format!("invalid header line in the response (starts with \"{}\")", snippet(buf))),
            }
        }
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
