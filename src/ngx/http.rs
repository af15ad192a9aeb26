//! The HTTP side of the adapter: HTTP modules of this library (stat, control, HTTP-FLV) declared
//! from safe code, a copyable `Request` handle (arguments, headers, simple answers) and `HttpOut`,
//! which streams reference-counted bytes without copying them: through nginx's output filter
//! chain (chunked encoding, TLS, HTTP/2), or, on a plain HTTP/1.x connection once the header is
//! out, by the caller's own writev of bytes it framed itself.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ptr::{self, NonNull};

use bytes::Bytes;
use nginx_sys::{
    ngx_buf_t, ngx_chain_t, ngx_http_conf_ctx_t, ngx_http_core_loc_conf_t, ngx_http_module_t,
    ngx_http_request_t, ngx_int_t, ngx_module_t, ngx_str_t, ngx_table_elt_t, ngx_uint_t,
};

use super::conf::{pool_alloc, Conf};
use super::conn::Conn;
use super::log::Log;
use super::module::{create_conf, merge_conf, Merge};

pub const NGX_OK: ngx_int_t = nginx_sys::NGX_OK as ngx_int_t;
pub const NGX_DONE: ngx_int_t = nginx_sys::NGX_DONE as ngx_int_t;
pub const NGX_ERROR: ngx_int_t = nginx_sys::NGX_ERROR as ngx_int_t;
pub const NGX_DECLINED: ngx_int_t = nginx_sys::NGX_DECLINED as ngx_int_t;
const NGX_AGAIN: ngx_int_t = nginx_sys::NGX_AGAIN as ngx_int_t;

/// `NGX_HTTP_LOC_CONF_OFFSET` for directive tables.
pub const LOC_CONF_OFFSET: usize = std::mem::offset_of!(ngx_http_conf_ctx_t, loc_conf);
pub const HTTP_MAIN_CONF: u32 = nginx_sys::NGX_HTTP_MAIN_CONF;
pub const HTTP_SRV_CONF: u32 = nginx_sys::NGX_HTTP_SRV_CONF;
pub const HTTP_LOC_CONF: u32 = nginx_sys::NGX_HTTP_LOC_CONF;
pub const NGX_HTTP_MODULE: usize = nginx_sys::NGX_HTTP_MODULE as usize;

/// An HTTP module of this library: location-level conf only.
pub trait HttpModule: 'static {
    type LocConf: Default + Merge + 'static;
    fn module() -> &'static ngx_module_t;
}

pub const fn http_module_ctx<M: HttpModule>() -> ngx_http_module_t {
    ngx_http_module_t {
        preconfiguration: None,
        postconfiguration: None,
        create_main_conf: None,
        init_main_conf: None,
        create_srv_conf: None,
        merge_srv_conf: None,
        create_loc_conf: Some(create_conf::<M::LocConf>),
        merge_loc_conf: Some(merge_conf::<M::LocConf>),
    }
}

/// A content handler: what a location answers.
pub trait Content: 'static {
    fn handle(r: Request) -> ngx_int_t;
}

unsafe extern "C" fn content_handler<H: Content>(r: *mut ngx_http_request_t) -> ngx_int_t {
    match NonNull::new(r) {
        Some(r) => H::handle(Request(r)),
        None => NGX_ERROR,
    }
}

/// Makes `H` the content handler of the location whose block is being parsed (as the C module's
/// `rtmp_stat` and `rtmp_control` do).
pub fn set_content_handler<H: Content>(cf: &Conf) {
    // SAFETY: inside an http location, cf->ctx is an ngx_http_conf_ctx_t whose loc_conf array
    // holds the core module's location conf at its ctx_index.
    unsafe {
        let ctx = cf.ctx() as *mut ngx_http_conf_ctx_t;
        let idx = nginx_sys::ngx_http_core_module.ctx_index;
        let clcf = *(*ctx).loc_conf.add(idx) as *mut ngx_http_core_loc_conf_t;
        (*clcf).handler = Some(content_handler::<H>);
    }
}

/// An HTTP request. Valid from the content handler until the request is finalized and freed;
/// keepers of a copy (a streaming player) drop it in the request pool's cleanup.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Request(NonNull<ngx_http_request_t>);

fn text(s: &ngx_str_t) -> String {
    // SAFETY: nginx strings of a live request.
    String::from_utf8_lossy(unsafe { super::conf::str_bytes(s) }).into_owned()
}

impl Request {
    fn r(self) -> *mut ngx_http_request_t {
        self.0.as_ptr()
    }

    pub fn loc_conf<M: HttpModule>(self) -> &'static M::LocConf {
        // SAFETY: r->loc_conf is the location's conf array; M's slot holds an M::LocConf made by
        // create_loc_conf::<M>, living as long as the configuration.
        unsafe { &*(*(*self.r()).loc_conf.add(M::module().ctx_index) as *const M::LocConf) }
    }

    pub fn conn(self) -> Option<Conn> {
        // SAFETY: a live request has a connection (the stream's fake one under HTTP/2).
        unsafe { Conn::from_raw((*self.r()).connection) }
    }

    pub fn log(self) -> Log {
        match self.conn() {
            Some(c) => c.log(),
            None => Log::cycle(),
        }
    }

    pub fn is_get(self) -> bool {
        // SAFETY: plain field of a live request.
        unsafe { (*self.r()).method == nginx_sys::NGX_HTTP_GET as ngx_uint_t }
    }

    pub fn is_head(self) -> bool {
        // SAFETY: as is_get.
        unsafe { (*self.r()).method == nginx_sys::NGX_HTTP_HEAD as ngx_uint_t }
    }

    /// 1000, 1001, 2000…
    pub fn http_version(self) -> u32 {
        // SAFETY: plain field.
        unsafe { (*self.r()).http_version as u32 }
    }

    /// Served over an HTTP/2 stream.
    pub fn is_http2(self) -> bool {
        // SAFETY: plain field.
        unsafe { !(*self.r()).stream.is_null() }
    }

    /// The URI path (decoded by nginx).
    pub fn uri(self) -> String {
        // SAFETY: field of a live request.
        text(unsafe { &(*self.r()).uri })
    }

    /// The raw query string.
    pub fn args(self) -> String {
        // SAFETY: field of a live request.
        text(unsafe { &(*self.r()).args })
    }

    /// A query argument, percent-decoded (the first one of that name).
    pub fn arg(self, name: &str) -> Option<String> {
        query_arg(&self.args(), name)
    }

    /// A request header (the first of that name, case-insensitive).
    pub fn header(self, name: &str) -> Option<String> {
        // SAFETY: headers_in.headers is nginx's list of ngx_table_elt_t for a parsed request.
        unsafe {
            let mut part: *const nginx_sys::ngx_list_part_t = &(*self.r()).headers_in.headers.part;
            while !part.is_null() {
                let elts = (*part).elts as *const ngx_table_elt_t;
                for i in 0..(*part).nelts {
                    let h = &*elts.add(i);
                    if super::conf::str_bytes(&h.key).eq_ignore_ascii_case(name.as_bytes()) {
                        return Some(text(&h.value));
                    }
                }
                part = (*part).next;
            }
        }
        None
    }

    /// The Host the client asked for (without port), as nginx parsed it.
    pub fn host(self) -> String {
        // SAFETY: headers_in.server is set by nginx's request parsing.
        text(unsafe { &(*self.r()).headers_in.server })
    }

    /// Adds a response header (before `send_header`).
    pub fn add_header(self, name: &'static str, value: &str) -> bool {
        // SAFETY: headers_out.headers is a list of ngx_table_elt_t in the request pool; the value
        // is copied into that pool, the name is static.
        unsafe {
            let h = nginx_sys::ngx_list_push(&mut (*self.r()).headers_out.headers) as *mut ngx_table_elt_t;
            if h.is_null() {
                return false;
            }
            let Some(v) = self.pool_copy(value.as_bytes()) else { return false };
            (*h).hash = 1;
            (*h).key = ngx_str_t { len: name.len(), data: name.as_ptr() as *mut u8 };
            (*h).value = ngx_str_t { len: value.len(), data: v };
            (*h).lowcase_key = ptr::null_mut();
        }
        true
    }

    fn pool_copy(self, b: &[u8]) -> Option<*mut u8> {
        // SAFETY: allocation in the live request's pool.
        unsafe {
            let p = nginx_sys::ngx_pnalloc((*self.r()).pool, b.len().max(1)) as *mut u8;
            if p.is_null() {
                return None;
            }
            ptr::copy_nonoverlapping(b.as_ptr(), p, b.len());
            Some(p)
        }
    }

    fn set_content_type(self, ct: &'static str) {
        // SAFETY: fields of the live request's headers_out; ct is static.
        unsafe {
            let h = &mut (*self.r()).headers_out;
            h.content_type = ngx_str_t { len: ct.len(), data: ct.as_ptr() as *mut u8 };
            h.content_type_len = ct.len();
        }
    }

    /// Discards the request body (GET has none; a client that sends one anyway is not read).
    pub fn discard_body(self) -> ngx_int_t {
        // SAFETY: live request.
        unsafe { nginx_sys::ngx_http_discard_request_body(self.r()) }
    }

    /// A whole answer: status, content type (if any) and body; returns what the content handler
    /// returns.
    pub fn respond(self, status: u32, content_type: Option<&'static str>, body: &[u8]) -> ngx_int_t {
        let rc = self.discard_body();
        if rc != NGX_OK {
            return rc;
        }
        // SAFETY: live request; the body is copied into the request pool, which outlives the send.
        unsafe {
            let r = self.r();
            (*r).headers_out.status = status as ngx_uint_t;
            (*r).headers_out.content_length_n = body.len() as i64;
            if let Some(ct) = content_type {
                self.set_content_type(ct);
            }
            let rc = nginx_sys::ngx_http_send_header(r);
            if rc == NGX_ERROR || rc > NGX_OK || (*r).header_only() != 0 || body.is_empty() {
                if body.is_empty() && rc == NGX_OK {
                    return nginx_sys::ngx_http_send_special(r, nginx_sys::NGX_HTTP_LAST as ngx_uint_t);
                }
                return rc;
            }
            let b = nginx_sys::ngx_pcalloc((*r).pool, std::mem::size_of::<ngx_buf_t>()) as *mut ngx_buf_t;
            let Some(data) = self.pool_copy(body) else { return NGX_ERROR };
            if b.is_null() {
                return NGX_ERROR;
            }
            (*b).pos = data;
            (*b).last = data.add(body.len());
            (*b).start = (*b).pos;
            (*b).end = (*b).last;
            (*b).set_memory(1);
            (*b).set_last_buf(if r == (*r).main { 1 } else { 0 });
            (*b).set_last_in_chain(1);
            let mut out = nginx_sys::ngx_chain_t { buf: b, next: ptr::null_mut() };
            nginx_sys::ngx_http_output_filter(r, &mut out)
        }
    }

    /// An empty answer with only a status (nginx's own error page for 4xx/5xx).
    pub fn status(self, status: u32) -> ngx_int_t {
        let _ = self.discard_body();
        status as ngx_int_t
    }

    /// Sends the status line and headers of a streamed body of unknown length (chunked on
    /// HTTP/1.1 unless `chunked_transfer_encoding off`).
    pub fn send_stream_header(self, status: u32, content_type: Option<&'static str>) -> ngx_int_t {
        // SAFETY: live request.
        unsafe {
            let r = self.r();
            (*r).headers_out.status = status as ngx_uint_t;
            (*r).headers_out.content_length_n = -1;
            if let Some(ct) = content_type {
                self.set_content_type(ct);
            }
            let rc = nginx_sys::ngx_http_send_header(r);
            if rc != NGX_OK {
                return rc;
            }
            // nginx holds a lone header back (postpone_output): push it out now, so the body
            // may follow on the socket directly.
            match nginx_sys::ngx_http_send_special(r, nginx_sys::NGX_HTTP_FLUSH as ngx_uint_t) {
                NGX_ERROR => NGX_ERROR,
                _ => NGX_OK,
            }
        }
    }

    /// Keeps the request alive after the content handler returns `NGX_DONE`: it ends with
    /// `finalize`.
    pub fn hold(self) {
        // SAFETY: r->main->count is nginx's reference count of the request.
        unsafe {
            let m = (*self.r()).main;
            (*m).set_count((*m).count() + 1);
        }
    }

    pub fn finalize(self, rc: ngx_int_t) {
        // SAFETY: live request.
        unsafe { nginx_sys::ngx_http_finalize_request(self.r(), rc) }
    }

    /// Ends a streamed body: the last buffer (chunked terminator), then finalize.
    pub fn finish_stream(self) {
        // SAFETY: live request whose header was sent.
        unsafe {
            let rc = nginx_sys::ngx_http_send_special(self.r(), nginx_sys::NGX_HTTP_LAST as ngx_uint_t);
            nginx_sys::ngx_http_finalize_request(self.r(), rc);
        }
    }

    /// Routes the request's read and write events to `H` (a streaming answer).
    pub fn set_event_handlers<H: RequestEvents>(self) {
        // SAFETY: live request.
        unsafe {
            (*self.r()).read_event_handler = Some(read_event::<H>);
            (*self.r()).write_event_handler = Some(write_event::<H>);
        }
    }

    /// Posts the request's write event: `H::on_write` runs once this worker is done with the
    /// current event.
    pub fn post_write(self) {
        if let Some(c) = self.conn() {
            c.post_write();
        }
    }

    pub fn post_read(self) {
        if let Some(c) = self.conn() {
            c.post_read();
        }
    }

    /// Stores `v` for the life of the request; it is dropped when the request pool is freed
    /// (after the request is finalized, whatever ended it).
    pub fn keep<T: 'static>(self, v: T) -> Option<*mut T> {
        // SAFETY: the request pool lives until the request is freed.
        unsafe { pool_alloc((*self.r()).pool, v) }
    }

    /// Keeps `v` for the life of the request as module M's request state (dropped when the
    /// request pool is freed, whatever ended the request). A module keeps one type there.
    pub fn keep_ctx<M: HttpModule, T: 'static>(self, v: T) -> bool {
        let Some(p) = self.keep(v) else { return false };
        // SAFETY: r->ctx has one slot per HTTP module.
        unsafe { *(*self.r()).ctx.add(M::module().ctx_index) = p.cast() };
        true
    }

    /// Module M's request state, of the type it kept with `keep_ctx`; `None` before that or
    /// after `clear_ctx`.
    pub fn ctx_mut<'a, M: HttpModule, T: 'static>(self) -> Option<&'a mut T> {
        // SAFETY: the slot is null or what keep_ctx::<M, T> stored: a T in the request pool,
        // alive until the request is freed; nginx calls a request's handlers one at a time.
        unsafe { ((*(*self.r()).ctx.add(M::module().ctx_index)) as *mut T).as_mut() }
    }

    /// Forgets module M's request state (it is still dropped with the pool).
    pub fn clear_ctx<M: HttpModule>(self) {
        // SAFETY: as keep_ctx.
        unsafe { *(*self.r()).ctx.add(M::module().ctx_index) = ptr::null_mut() }
    }

    /// Whether the request's write event fired by its timer.
    pub fn write_timed_out(self) -> bool {
        // SAFETY: live request connection.
        unsafe { (*(*(*self.r()).connection).write).timedout() != 0 }
    }

    pub fn clear_write_timed_out(self) {
        // SAFETY: live request connection.
        unsafe { (*(*(*self.r()).connection).write).set_timedout(0) }
    }

    /// After a `101 Switching Protocols` the connection is ours: keep it open and unbuffered.
    pub fn upgrade(self) {
        // SAFETY: live request.
        unsafe {
            (*self.r()).set_keepalive(0);
            (*self.r()).set_lingering_close(0);
        }
    }

    /// Whether nginx's chunked filter will frame this response's body (HTTP/1.1, not HTTP/2,
    /// `chunked_transfer_encoding on`, no length), known before the header is sent.
    pub fn will_chunk(self) -> bool {
        if self.is_http2() || self.http_version() < nginx_sys::NGX_HTTP_VERSION_11 {
            return false;
        }
        // SAFETY: the request's core location conf.
        unsafe {
            let idx = nginx_sys::ngx_http_core_module.ctx_index;
            let clcf = *(*self.r()).loc_conf.add(idx) as *const ngx_http_core_loc_conf_t;
            (*clcf).chunked_transfer_encoding != 0
        }
    }

    /// Whether the response is being chunked (after the header was sent).
    pub fn chunked(self) -> bool {
        // SAFETY: live request.
        unsafe { (*self.r()).chunked() != 0 }
    }

    /// A plain HTTP/1.x connection: the body may be written to the socket directly.
    pub fn plain_socket(self) -> bool {
        // SAFETY: live request and connection.
        !self.is_http2() && unsafe { (*(*self.r()).connection).ssl.is_null() }
    }

    /// The connection closes when the response ends (a stream is not followed by another request).
    pub fn no_keepalive(self) {
        // SAFETY: live request.
        unsafe { (*self.r()).set_keepalive(0) }
    }

    /// nginx's check of a request that expects no input: a client that closed the connection
    /// (or reset its HTTP/2 stream) ends the request (status 499), which frees it.
    pub fn test_reading(self) {
        // SAFETY: live request.
        unsafe { nginx_sys::ngx_http_test_reading(self.r()) }
    }

    fn raw_pool(self) -> *mut nginx_sys::ngx_pool_t {
        // SAFETY: live request.
        unsafe { (*self.r()).pool }
    }
}

/// Event callbacks of a streaming request (the request is passed; its state is in its ctx).
pub trait RequestEvents: 'static {
    fn on_read(r: Request);
    fn on_write(r: Request);
}

unsafe extern "C" fn read_event<H: RequestEvents>(r: *mut ngx_http_request_t) {
    if let Some(r) = NonNull::new(r) {
        H::on_read(Request(r));
    }
}

unsafe extern "C" fn write_event<H: RequestEvents>(r: *mut ngx_http_request_t) {
    if let Some(r) = NonNull::new(r) {
        H::on_write(Request(r));
    }
}

/// A `name=value` of a query string, percent-decoded ('+' is a space).
pub fn query_arg(args: &str, name: &str) -> Option<String> {
    args.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| rtmp_proto::http::percent_decode(v))
    })
}

/// How a hand-over to nginx's output filters went.
pub enum Out {
    /// nginx has sent everything it was given.
    Done,
    /// Some bytes wait in nginx for the socket; a write event follows.
    Again,
    Error,
}

/// Streams `Bytes` through a request's output filters. Buffers point into the `Bytes` (no copy);
/// the caller keeps each `Bytes` alive until `consumed` says nginx is done with it.
pub struct HttpOut {
    r: Request,
    /// Once nginx has sent the header, the body goes to the socket directly (plain HTTP/1.x:
    /// the bytes carry their own framing) instead of through the filters.
    raw: bool,
    /// The ngx_buf_t of each buffer handed over, front first.
    handed: RefCell<VecDeque<*mut ngx_buf_t>>,
    free: RefCell<Vec<*mut ngx_buf_t>>,
}

impl HttpOut {
    /// Through nginx's output filters (TLS, HTTP/2).
    pub fn new(r: Request) -> Self {
        HttpOut { r, raw: false, handed: RefCell::new(VecDeque::new()), free: RefCell::new(Vec::new()) }
    }

    /// Straight to the socket once the header is out (plain HTTP/1.x; the body bytes are
    /// already framed as the filters would frame them).
    pub fn raw(r: Request) -> Self {
        HttpOut { raw: true, ..HttpOut::new(r) }
    }

    /// Whether the caller may write the body to the socket itself now: raw output, and nginx
    /// holds nothing of the response any more (its header went out).
    pub fn direct(&self) -> Out {
        if !self.raw {
            return Out::Again;
        }
        if !self.r_buffered() && self.handed() == 0 && self.r_out_empty() {
            return Out::Done;
        }
        // Let nginx send what it holds (the header) first.
        match self.write(&VecDeque::new()).1 {
            Out::Done if self.r_out_empty() => Out::Done,
            Out::Error => Out::Error,
            _ => Out::Again,
        }
    }

    pub fn is_raw(&self) -> bool {
        self.raw
    }

    fn r_out_empty(&self) -> bool {
        // SAFETY: live request.
        unsafe { (*self.r.r()).out.is_null() }
    }

    pub fn request(&self) -> Request {
        self.r
    }

    /// How many of the caller's front buffers nginx holds now.
    pub fn handed(&self) -> usize {
        self.handed.borrow().len()
    }

    fn buf(&self) -> *mut ngx_buf_t {
        if let Some(b) = self.free.borrow_mut().pop() {
            return b;
        }
        // SAFETY: allocation in the live request's pool (freed with it).
        unsafe { nginx_sys::ngx_pcalloc(self.r.raw_pool(), std::mem::size_of::<ngx_buf_t>()) as *mut ngx_buf_t }
    }

    /// Hands `bufs[handed()..]` to nginx (all of `bufs` stays owned by the caller), lets nginx
    /// send what it can, and returns how many front buffers nginx has finished with: the caller
    /// drops those.
    pub fn write(&self, bufs: &VecDeque<Bytes>) -> (usize, Out) {
        let start = self.handed();
        let pool = self.r.raw_pool();
        let mut links: Vec<*mut ngx_chain_t> = Vec::new();
        for b in bufs.iter().skip(start) {
            let nb = self.buf();
            // SAFETY: the chain links come from the request pool; each buffer points into a
            // Bytes the caller keeps until this buffer is reported consumed.
            unsafe {
                let cl = nginx_sys::ngx_alloc_chain_link(pool);
                if nb.is_null() || cl.is_null() {
                    return (0, Out::Error);
                }
                ptr::write_bytes(nb, 0, 1);
                (*nb).pos = b.as_ptr() as *mut u8;
                (*nb).last = (*nb).pos.add(b.len());
                (*nb).start = (*nb).pos;
                (*nb).end = (*nb).last;
                (*nb).set_memory(1);
                (*cl).buf = nb;
                (*cl).next = ptr::null_mut();
                if let Some(prev) = links.last() {
                    (**prev).next = cl;
                }
                links.push(cl);
            }
            self.handed.borrow_mut().push_back(nb);
        }
        // SAFETY: as above; the last new buffer asks the filters to send now.
        let rc = unsafe {
            if let Some(last) = links.last() {
                (*(**last).buf).set_flush(1);
            }
            let head = links.first().copied().unwrap_or(ptr::null_mut());
            let rc = nginx_sys::ngx_http_output_filter(self.r.r(), head);
            // The filters copy the links they keep; ours go back to the pool's free list.
            for cl in links {
                (*cl).next = (*pool).chain;
                (*pool).chain = cl;
            }
            rc
        };
        let mut done = 0;
        {
            let mut handed = self.handed.borrow_mut();
            // SAFETY: handed buffers are ours (from buf()); nginx advances pos as it sends.
            while let Some(&b) = handed.front() {
                if unsafe { (*b).pos < (*b).last } {
                    break;
                }
                handed.pop_front();
                self.free.borrow_mut().push(b);
                done += 1;
            }
        }
        let out = if rc == NGX_ERROR {
            Out::Error
        } else if self.handed() > 0 || rc == NGX_AGAIN || self.r_buffered() {
            Out::Again
        } else {
            Out::Done
        };
        (done, out)
    }

    fn r_buffered(&self) -> bool {
        // SAFETY: live request and connection.
        unsafe { (*(*self.r.r()).connection).buffered() != 0 || (*self.r.r()).buffered() != 0 }
    }

    /// Arms the write event after `Out::Again` (HTTP/1; HTTP/2 wakes the stream itself).
    pub fn wait_writable(&self) -> bool {
        // SAFETY: live request connection.
        unsafe { nginx_sys::ngx_handle_write_event((*(*self.r.r()).connection).write, 0) == NGX_OK }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_args_are_decoded() {
        let q = "port=1935&app=live&stream=a%20b+c&x";
        assert_eq!(query_arg(q, "app").as_deref(), Some("live"));
        assert_eq!(query_arg(q, "stream").as_deref(), Some("a b c"));
        assert_eq!(query_arg(q, "x").as_deref(), Some(""));
        assert_eq!(query_arg(q, "y"), None);
        assert_eq!(query_arg("a=%zz%4", "a").as_deref(), Some("%zz%4"));
        assert_eq!(query_arg("a=%41%", "a").as_deref(), Some("A%"));
    }
}
