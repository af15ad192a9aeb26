//! Client connections: a copyable `Conn` handle with non-blocking recv/writev, timers and posted
//! events, and `attach()` which routes nginx's read/write events to a safe `Handler`.

use std::ffi::c_void;
use std::ptr::{self, NonNull};

use bytes::{Bytes, BytesMut};
use nginx_sys::{ngx_connection_t, ngx_event_t, ngx_log_t, ngx_msec_t};

use super::log::Log;

/// Outcome of a non-blocking read.
pub enum Recv {
    Data(usize),
    Again,
    Eof,
    Error,
}

/// Outcome of a non-blocking write.
pub enum Sent {
    Bytes(usize),
    Again,
    Error,
}

/// What happened on a connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Event {
    Read,
    ReadTimeout,
    Write,
    WriteTimeout,
    /// nginx is shutting the worker down (worker_shutdown_timeout, or the connection is idle).
    Shutdown,
}

/// What the handler wants done with the connection afterwards.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flow {
    Keep,
    Close,
}

/// A connection accepted on our listener. Valid from accept until `Handler` returns `Flow::Close`;
/// whoever keeps a copy beyond that (a stream's player list) must drop it in its disconnect hook.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Conn(NonNull<ngx_connection_t>);

pub trait Handler: Sized + 'static {
    fn on_event(&mut self, conn: Conn, ev: Event) -> Flow;
}

impl Conn {
    /// # Safety
    /// `c` is a live connection from nginx's accept handler.
    pub unsafe fn from_raw(c: *mut ngx_connection_t) -> Option<Self> {
        NonNull::new(c).map(Conn)
    }
    /// The nginx connection, for the adapters of this folder.
    pub(super) fn raw(self) -> *mut ngx_connection_t {
        self.c()
    }
    fn c(self) -> *mut ngx_connection_t {
        self.0.as_ptr()
    }
    fn rev(self) -> *mut ngx_event_t {
        // SAFETY: live connection (type contract).
        unsafe { (*self.c()).read }
    }
    fn wev(self) -> *mut ngx_event_t {
        // SAFETY: live connection.
        unsafe { (*self.c()).write }
    }
    pub fn number(self) -> u64 {
        // SAFETY: live connection.
        unsafe { (*self.c()).number }
    }
    pub fn log(self) -> Log {
        // SAFETY: c->log lives in the connection's pool.
        unsafe { Log::from_raw((*self.c()).log) }
    }
    pub fn raw_log(self) -> *mut ngx_log_t {
        // SAFETY: live connection.
        unsafe { (*self.c()).log }
    }
    /// Client address as text ("127.0.0.1").
    pub fn addr_text(self) -> String {
        // SAFETY: addr_text is set by accept (ls->addr_ntop).
        unsafe { String::from_utf8_lossy(super::conf::str_bytes(&(*self.c()).addr_text)).into_owned() }
    }
    /// The client's IP address from `c->sockaddr`; `None` for unix-domain (and other non-IP)
    /// sockets. An IPv4-mapped IPv6 peer is returned as it is (`::ffff:a.b.c.d`).
    pub fn peer_addr(self) -> Option<std::net::IpAddr> {
        // SAFETY: accept set c->sockaddr (c->socklen bytes, in the connection's pool); the family
        // is read first and the struct is read only when socklen covers it.
        unsafe {
            let c = &*self.c();
            if c.sockaddr.is_null() {
                return None;
            }
            let len = c.socklen as usize;
            match i32::from((*c.sockaddr).sa_family) {
                f if f == nginx_sys::AF_INET as i32 && len >= std::mem::size_of::<nginx_sys::sockaddr_in>() => {
                    let sin = &*(c.sockaddr as *const nginx_sys::sockaddr_in);
                    Some(std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).into())
                }
                f if f == nginx_sys::AF_INET6 as i32 && len >= std::mem::size_of::<nginx_sys::sockaddr_in6>() => {
                    let sin6 = &*(c.sockaddr as *const nginx_sys::sockaddr_in6);
                    Some(std::net::Ipv6Addr::from(sin6.sin6_addr.__in6_u.__u6_addr8).into())
                }
                _ => None,
            }
        }
    }
    /// Bytes written to the client so far (`c->sent`, which `writev` keeps).
    pub fn sent(self) -> u64 {
        // SAFETY: live connection.
        unsafe { (*self.c()).sent.max(0) as u64 }
    }
    /// The `servers` pointer of the listening socket that accepted this connection.
    pub fn listening_servers(self) -> *mut c_void {
        // SAFETY: live connection with its listening.
        unsafe { (*(*self.c()).listening).servers }
    }
    /// The local address the client connected to (getsockname on wildcard listeners).
    pub fn local_sockaddr(self) -> Option<Vec<u8>> {
        // SAFETY: ngx_connection_local_sockaddr fills c->local_sockaddr from the pool.
        unsafe {
            if nginx_sys::ngx_connection_local_sockaddr(self.c(), ptr::null_mut(), 0) != 0 {
                return None;
            }
            let c = &*self.c();
            Some(std::slice::from_raw_parts(c.local_sockaddr as *const u8, c.local_socklen as usize).to_vec())
        }
    }

    /// Reads up to `max` bytes into the spare capacity of `buf`.
    pub fn recv(self, buf: &mut BytesMut, max: usize) -> Recv {
        match super::tls::state(self) {
            Some(super::tls::Handshake::Failed) => return Recv::Error,
            Some(super::tls::Handshake::Running) => return Recv::Again,
            _ => {}
        }
        buf.reserve(max);
        let spare = buf.spare_capacity_mut();
        let len = spare.len().min(max);
        // SAFETY: c->recv writes at most `len` bytes into the spare capacity; we then mark exactly
        // the bytes it reported as initialized.
        let n = unsafe {
            let recv = match (*self.c()).recv {
                Some(f) => f,
                None => return Recv::Error,
            };
            recv(self.c(), spare.as_mut_ptr() as *mut u8, len)
        };
        match n {
            0 => Recv::Eof,
            n if n > 0 => {
                // SAFETY: n bytes were written by recv.
                unsafe { buf.set_len(buf.len() + n as usize) };
                Recv::Data(n as usize)
            }
            n if n == nginx_sys::NGX_AGAIN as isize => Recv::Again,
            _ => Recv::Error,
        }
    }

    /// One writev of as many queued buffers as fit; returns bytes written.
    pub fn writev(self, bufs: &[Bytes]) -> Sent {
        // Linux's IOV_MAX: a join burst (statuses, headers and a whole cached GOP, a few hundred
        // buffers) leaves in one call. Only the entries used are written (no 16 KiB memset per
        // call on the fan-out path).
        const MAX_IOV: usize = 1024;
        let mut iov = [const { std::mem::MaybeUninit::<nginx_sys::iovec>::uninit() }; MAX_IOV];
        let mut n = 0;
        for b in bufs.iter().filter(|b| !b.is_empty()).take(MAX_IOV) {
            iov[n].write(nginx_sys::iovec { iov_base: b.as_ptr() as *mut c_void, iov_len: b.len() });
            n += 1;
        }
        if n == 0 {
            return Sent::Bytes(0);
        }
        // A TLS connection (rtmps relays) writes through nginx's SSL layer, once its handshake
        // is done.
        match super::tls::state(self) {
            None => {}
            Some(super::tls::Handshake::Running) => return Sent::Again,
            Some(super::tls::Handshake::Failed) => return Sent::Error,
            Some(super::tls::Handshake::Done) => {
                return match super::tls::send(self, bufs) {
                    Ok((0, true)) => Sent::Again,
                    Ok((n, _)) => Sent::Bytes(n),
                    Err(super::tls::SendError) => {
                        // SAFETY: live connection.
                        unsafe { (*self.wev()).set_error(1) };
                        Sent::Error
                    }
                };
            }
        }
        loop {
            // SAFETY: iov[..n] is initialized and points into live Bytes; fd is the connection's
            // socket.
            let rc = unsafe { nginx_sys::writev((*self.c()).fd, iov.as_ptr().cast(), n as i32) };
            if rc >= 0 {
                // SAFETY: live connection.
                unsafe { (*self.c()).sent += rc as i64 };
                return Sent::Bytes(rc as usize);
            }
            let err = nginx_sys::ngx_socket_errno();
            if err == nginx_sys::EINTR as i32 {
                continue;
            }
            if err == nginx_sys::EAGAIN as i32 {
                // SAFETY: live connection.
                unsafe { (*self.wev()).set_ready(0) };
                return Sent::Again;
            }
            // SAFETY: live connection.
            unsafe { (*self.wev()).set_error(1) };
            crate::log_info!(self.log(), "writev() failed: {} (errno {})", super::upstream::strerror(err), err);
            return Sent::Error;
        }
    }

    pub fn write_ready(self) -> bool {
        // SAFETY: live connection.
        unsafe { (*self.wev()).ready() != 0 }
    }
    pub fn read_ready(self) -> bool {
        // SAFETY: live connection.
        unsafe { (*self.rev()).ready() != 0 }
    }

    /// Arms (or re-arms) the read timer.
    pub fn read_timer(self, ms: u64) {
        // SAFETY: live connection's read event.
        unsafe { nginx_sys::ngx_add_timer(self.rev(), ms as ngx_msec_t) }
    }
    pub fn clear_read_timer(self) {
        // SAFETY: live connection's read event.
        unsafe {
            if (*self.rev()).timer_set() != 0 {
                nginx_sys::ngx_del_timer(self.rev())
            }
        }
    }
    pub fn write_timer(self, ms: u64) {
        // SAFETY: live connection's write event.
        unsafe { nginx_sys::ngx_add_timer(self.wev(), ms as ngx_msec_t) }
    }
    pub fn clear_write_timer(self) {
        // SAFETY: live connection's write event.
        unsafe {
            if (*self.wev()).timer_set() != 0 {
                nginx_sys::ngx_del_timer(self.wev())
            }
        }
    }
    pub fn write_timer_set(self) -> bool {
        // SAFETY: live connection's write event.
        unsafe { (*self.wev()).timer_set() != 0 }
    }

    /// Schedules the write handler to run after the current event (one writev per wake-up however
    /// many messages were queued meanwhile).
    pub fn post_write(self) {
        // SAFETY: live connection; ngx_posted_events is nginx's global posted queue.
        unsafe { nginx_sys::ngx_post_event(self.wev(), ptr::addr_of_mut!(nginx_sys::ngx_posted_events)) }
    }
    /// Schedules the read handler (to continue reading after yielding to other connections).
    pub fn post_read(self) {
        // SAFETY: as post_write.
        unsafe { nginx_sys::ngx_post_event(self.rev(), ptr::addr_of_mut!(nginx_sys::ngx_posted_events)) }
    }

    /// Re-arms level/edge notifications after a read hit EAGAIN.
    pub fn handle_read_event(self) -> bool {
        // SAFETY: live connection.
        unsafe { nginx_sys::ngx_handle_read_event(self.rev(), 0) == 0 }
    }
    pub fn handle_write_event(self) -> bool {
        // SAFETY: live connection.
        unsafe { nginx_sys::ngx_handle_write_event(self.wev(), 0) == 0 }
    }

    /// Gives the connection to `handler` for all its future events.
    pub fn attach<H: Handler>(self, handler: H) {
        let p = Box::into_raw(Box::new(handler));
        // SAFETY: c->data is ours from accept on; the handlers below are the only readers.
        unsafe {
            (*self.c()).data = p.cast();
            (*self.rev()).handler = Some(on_read::<H>);
            (*self.wev()).handler = Some(on_write::<H>);
        }
    }

    /// Runs the read handler now (e.g. data already arrived with a deferred accept).
    pub fn dispatch_read<H: Handler>(self) {
        // SAFETY: attach::<H> was called on this connection.
        unsafe { on_read::<H>(self.rev()) }
    }

    /// Closes the socket and frees the connection's pool. The handler state must be gone.
    fn close(self) {
        super::tls::close(self);
        // SAFETY: called once, after the handler box was dropped.
        unsafe {
            let pool = (*self.c()).pool;
            nginx_sys::ngx_close_connection(self.c());
            if !pool.is_null() {
                nginx_sys::ngx_destroy_pool(pool);
            }
        }
    }

    /// Closes a connection that never got a handler.
    pub fn close_unattached(self) {
        self.close();
    }
}

fn dispatch<H: Handler>(ev: *mut ngx_event_t, write: bool) {
    // SAFETY: ev->data is the connection (nginx's convention for connection events) and c->data
    // the Box<H> from attach(); it is freed here exactly once, when the handler says Close.
    unsafe {
        let c = (*ev).data as *mut ngx_connection_t;
        let Some(conn) = Conn::from_raw(c) else { return };
        let state = (*c).data as *mut H;
        if state.is_null() {
            return;
        }
        let timedout = (*ev).timedout() != 0;
        (*ev).set_timedout(0);
        let kind = if (*c).close() != 0 {
            Event::Shutdown
        } else {
            match (write, timedout) {
                (false, false) => Event::Read,
                (false, true) => Event::ReadTimeout,
                (true, false) => Event::Write,
                (true, true) => Event::WriteTimeout,
            }
        };
        if (*state).on_event(conn, kind) == Flow::Close {
            (*c).data = ptr::null_mut();
            drop(Box::from_raw(state));
            conn.close();
        }
    }
}

unsafe extern "C" fn on_read<H: Handler>(ev: *mut ngx_event_t) {
    dispatch::<H>(ev, false)
}

unsafe extern "C" fn on_write<H: Handler>(ev: *mut ngx_event_t) {
    dispatch::<H>(ev, true)
}

impl Conn {
    /// SO_KEEPALIVE on the client socket (`so_keepalive on` at server level).
    pub fn set_keepalive(self) -> bool {
        self.set_int_option(nginx_sys::SOL_SOCKET, nginx_sys::SO_KEEPALIVE, 1)
    }

    /// TCP_NODELAY on a TCP socket; true also where it does not apply (unix-domain sockets).
    pub fn set_nodelay(self) -> bool {
        self.peer_addr().is_none() || self.set_int_option(nginx_sys::IPPROTO_TCP, nginx_sys::TCP_NODELAY, 1)
    }

    fn set_int_option(self, level: u32, name: u32, value: i32) -> bool {
        // SAFETY: setsockopt on the connection's own socket with an int option.
        unsafe {
            nginx_sys::setsockopt(
                (*self.c()).fd,
                level as i32,
                name as i32,
                &value as *const i32 as *const c_void,
                std::mem::size_of::<i32>() as u32,
            ) == 0
        }
    }
}

/// Opens an outgoing TCP connection (a relay) as a `Conn` with its own pool, log, address and
/// address text, so it is driven and closed like an accepted one. True when connected at once;
/// otherwise the first write event tells (a failed connect shows up as a send/recv error).
pub fn connect(addr: &super::upstream::PeerAddr, log: Log) -> Result<(Conn, bool), String> {
    use super::upstream::ConnectError;
    use nginx_sys::ngx_str_t;
    let (ss, socklen) = super::upstream::peer_sockaddr(addr).ok_or_else(|| format!("bad address {addr}"))?;
    let text = addr.to_string();
    // SAFETY: the pool is new and ours; everything nginx keeps pointers to (log, sockaddr, name)
    // is allocated in it, so it lives as long as the connection, which `Conn::close` frees
    // before destroying the pool. `log` is valid now (Log's contract) and copied by value
    // without its handler and data, which point into another connection.
    unsafe {
        let pool = nginx_sys::ngx_create_pool(4096, log.raw());
        if pool.is_null() {
            return Err("out of memory".into());
        }
        let fail = move |why: String| {
            nginx_sys::ngx_destroy_pool(pool);
            Err(why)
        };
        let own_log = nginx_sys::ngx_pcalloc(pool, std::mem::size_of::<ngx_log_t>()) as *mut ngx_log_t;
        let sa = nginx_sys::ngx_pcalloc(pool, socklen as usize) as *mut u8;
        let name = nginx_sys::ngx_pcalloc(pool, std::mem::size_of::<ngx_str_t>()) as *mut ngx_str_t;
        let name_data = nginx_sys::ngx_pcalloc(pool, text.len()) as *mut u8;
        if own_log.is_null() || sa.is_null() || name.is_null() || name_data.is_null() {
            return fail("out of memory".into());
        }
        ptr::write(own_log, ptr::read(log.raw()));
        (*own_log).handler = None;
        (*own_log).data = ptr::null_mut();
        (*own_log).action = ptr::null_mut();
        (*pool).log = own_log;
        ptr::copy_nonoverlapping(ptr::addr_of!(ss) as *const u8, sa, socklen as usize);
        ptr::copy_nonoverlapping(text.as_ptr(), name_data, text.len());
        *name = ngx_str_t { len: text.len(), data: name_data };

        let (c, connected) = match super::upstream::connect_peer(sa.cast(), socklen, name, own_log) {
            Ok(r) => r,
            Err(ConnectError::Refused(err)) => {
                return fail(format!("connect() to {text} failed: {}", super::upstream::strerror(err)))
            }
            Err(ConnectError::NoConnection) => return fail(format!("no connection to {text} (see the error log)")),
        };
        let Some(conn) = Conn::from_raw(c) else { return fail("no connection".into()) };
        let c = conn.c();
        (*c).pool = pool;
        (*c).sockaddr = sa.cast();
        (*c).socklen = socklen;
        (*c).addr_text = *name;
        // Its log lines carry its own connection number ("*N").
        (*own_log).connection = (*c).number;
        Ok((conn, connected))
    }
}
