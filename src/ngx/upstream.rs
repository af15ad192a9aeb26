//! Outgoing TCP connections (the HTTP client of notify callbacks): a non-blocking connect through
//! nginx, raw send/recv reporting the exact errno, per-step timers, events routed to a safe callback.
//!
//! An `UpConn` owns its nginx connection: dropping it closes the socket, also from inside its own
//! event callback. Sockets still open when the worker exits are closed by `exit_process`, so a
//! call waiting for an answer never shows up as nginx's "open socket left" alert.

use std::cell::{Cell, RefCell};
use std::mem;
use std::net::SocketAddr;
use std::ptr;

use nginx_sys::{ngx_connection_t, ngx_cycle_t, ngx_event_t, ngx_log_t, ngx_msec_t, ngx_peer_connection_t, ngx_str_t};

use super::log::Log;

/// What happened on an outgoing connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum UpEvent {
    Read,
    Write,
    ReadTimeout,
    WriteTimeout,
    /// nginx closes every connection (worker_shutdown_timeout expired).
    Shutdown,
}

/// Outcome of a non-blocking send or recv.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Io {
    Done(usize),
    Again,
    /// The peer closed its side (recv only).
    Eof,
    /// errno of the failed call.
    Error(i32),
}

/// Why `connect` gave no connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectError {
    /// connect() itself failed at once (errno): the next address may do better.
    Refused(i32),
    /// No socket or no free connection; nginx logged why.
    NoConnection,
}

type Callback = Box<dyn FnMut(UpEvent)>;

struct Inner {
    /// Null once closed.
    c: Cell<*mut ngx_connection_t>,
    /// The connection's own log: the caller's log without its context handler, whose data may
    /// live in a client connection that closes before this one.
    log: ngx_log_t,
    cb: RefCell<Option<Callback>>,
    running: Cell<bool>,
    /// The `UpConn` was dropped by its own callback: free after the callback returns.
    orphaned: Cell<bool>,
}

thread_local! {
    /// Connections open in this worker, closed at exit.
    static OPEN: RefCell<Vec<*mut Inner>> = const { RefCell::new(Vec::new()) };
}

pub struct UpConn {
    inner: *mut Inner,
}

impl UpConn {
    /// Starts a non-blocking connect to `addr`; true when already connected. `log` is copied.
    pub fn connect(addr: &SocketAddr, log: Log) -> Result<(UpConn, bool), ConnectError> {
        // SAFETY: the caller's log is valid now (Log's contract); it is copied by value, dropping
        // the handler and data that point into its connection.
        let mut own_log: ngx_log_t = unsafe { ptr::read(log.raw()) };
        own_log.handler = None;
        own_log.data = ptr::null_mut();
        own_log.action = ptr::null_mut();
        let inner = Box::into_raw(Box::new(Inner {
            c: Cell::new(ptr::null_mut()),
            log: own_log,
            cb: RefCell::new(None),
            running: Cell::new(false),
            orphaned: Cell::new(false),
        }));
        let conn = UpConn { inner };
        let (mut sa, socklen) = sockaddr(addr);
        let mut name_text = addr.to_string().into_bytes();
        let mut name = ngx_str_t { len: name_text.len(), data: name_text.as_mut_ptr() };
        // SAFETY: sa and name live across ngx_event_connect_peer, which only reads them
        // (nginx keeps neither). inner's log is boxed, so the connection's log pointer stays valid
        // until the connection is closed, which happens before the box is freed.
        unsafe {
            let (c, connected) =
                connect_peer(ptr::addr_of_mut!(sa).cast(), socklen, &mut name, ptr::addr_of_mut!((*inner).log))?;
            (*c).data = inner.cast();
            (*(*c).read).handler = Some(on_read);
            (*(*c).write).handler = Some(on_write);
            (*inner).c.set(c);
            let _ = OPEN.try_with(|o| o.try_borrow_mut().map(|mut o| o.push(inner)));
            Ok((conn, connected))
        }
    }

    fn inner(&self) -> &Inner {
        // SAFETY: inner lives until this UpConn is dropped (or its callback returns).
        unsafe { &*self.inner }
    }

    fn c(&self) -> Option<*mut ngx_connection_t> {
        let c = self.inner().c.get();
        (!c.is_null()).then_some(c)
    }

    /// Routes the connection's events to `cb` from now on.
    pub fn set_handler(&self, cb: impl FnMut(UpEvent) + 'static) {
        if let Ok(mut slot) = self.inner().cb.try_borrow_mut() {
            *slot = Some(Box::new(cb));
        }
    }

    /// The connection's log (valid while this UpConn lives).
    pub fn log(&self) -> Log {
        // SAFETY: the log is in the boxed Inner, alive as long as self.
        unsafe { Log::from_raw(ptr::addr_of!((*self.inner).log) as *mut ngx_log_t) }
    }

    /// The error of an asynchronous connect (SO_ERROR), 0 when it succeeded.
    pub fn socket_error(&self) -> i32 {
        let Some(c) = self.c() else { return nginx_sys::EBADF as i32 };
        let mut err: i32 = 0;
        let mut len = mem::size_of::<i32>() as nginx_sys::socklen_t;
        // SAFETY: getsockopt on the connection's own socket into a local int.
        let rc = unsafe {
            nginx_sys::getsockopt(
                (*c).fd,
                nginx_sys::SOL_SOCKET as i32,
                nginx_sys::SO_ERROR as i32,
                ptr::addr_of_mut!(err).cast(),
                &mut len,
            )
        };
        if rc == -1 {
            return nginx_sys::ngx_socket_errno();
        }
        err
    }

    pub fn send(&self, data: &[u8]) -> Io {
        let Some(c) = self.c() else { return Io::Error(nginx_sys::EBADF as i32) };
        loop {
            // SAFETY: send() reads data.len() bytes from a live slice on the connection's socket.
            let n =
                unsafe { nginx_sys::send((*c).fd, data.as_ptr().cast(), data.len(), nginx_sys::MSG_NOSIGNAL as i32) };
            if n >= 0 {
                return Io::Done(n as usize);
            }
            let err = nginx_sys::ngx_socket_errno();
            if err == nginx_sys::EINTR as i32 {
                continue;
            }
            // SAFETY: live connection.
            unsafe {
                if err == nginx_sys::EAGAIN as i32 {
                    (*(*c).write).set_ready(0);
                    return Io::Again;
                }
                (*(*c).write).set_error(1);
            }
            return Io::Error(err);
        }
    }

    pub fn recv(&self, buf: &mut [u8]) -> Io {
        let Some(c) = self.c() else { return Io::Error(nginx_sys::EBADF as i32) };
        loop {
            // SAFETY: recv() writes at most buf.len() bytes into a live slice.
            let n = unsafe { nginx_sys::recv((*c).fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n > 0 {
                return Io::Done(n as usize);
            }
            if n == 0 {
                // SAFETY: live connection.
                unsafe {
                    (*(*c).read).set_ready(0);
                    (*(*c).read).set_eof(1);
                }
                return Io::Eof;
            }
            let err = nginx_sys::ngx_socket_errno();
            if err == nginx_sys::EINTR as i32 {
                continue;
            }
            // SAFETY: live connection.
            unsafe {
                if err == nginx_sys::EAGAIN as i32 {
                    (*(*c).read).set_ready(0);
                    return Io::Again;
                }
                (*(*c).read).set_error(1);
            }
            return Io::Error(err);
        }
    }

    fn event(&self, write: bool) -> Option<*mut ngx_event_t> {
        // SAFETY: live connection.
        self.c().map(|c| unsafe {
            if write {
                (*c).write
            } else {
                (*c).read
            }
        })
    }

    /// Arms (or re-arms) the read or write timer. A cancelable timer does not hold up a graceful
    /// shutdown of the worker.
    pub fn timer(&self, write: bool, ms: u64, cancelable: bool) {
        if let Some(ev) = self.event(write) {
            // SAFETY: the connection's own event.
            unsafe {
                (*ev).set_cancelable(u32::from(cancelable));
                nginx_sys::ngx_add_timer(ev, ms as ngx_msec_t);
            }
        }
    }

    pub fn clear_timer(&self, write: bool) {
        if let Some(ev) = self.event(write) {
            // SAFETY: the connection's own event.
            unsafe {
                if (*ev).timer_set() != 0 {
                    nginx_sys::ngx_del_timer(ev);
                }
            }
        }
    }

    /// Asks for read events again after `recv` said `Again`.
    pub fn want_read(&self) -> bool {
        // SAFETY: the connection's own read event.
        self.event(false).is_some_and(|ev| unsafe { nginx_sys::ngx_handle_read_event(ev, 0) == 0 })
    }

    /// Asks for write events after `send` said `Again`; once everything is sent, stops them
    /// (level-triggered event methods would report writability forever).
    pub fn want_write(&self) -> bool {
        // SAFETY: the connection's own write event.
        self.event(true).is_some_and(|ev| unsafe { nginx_sys::ngx_handle_write_event(ev, 0) == 0 })
    }

    pub fn number(&self) -> u64 {
        // SAFETY: live connection.
        self.c().map_or(0, |c| unsafe { (*c).number })
    }
}

/// `ngx_event_connect_peer` to one address: the new connection, and whether it is connected yet.
///
/// # Safety
/// `sa`, `name` and `log` are valid for the call; `log` must outlive the connection.
pub(super) unsafe fn connect_peer(
    sa: *mut nginx_sys::sockaddr,
    socklen: nginx_sys::socklen_t,
    name: *mut ngx_str_t,
    log: *mut ngx_log_t,
) -> Result<(*mut ngx_connection_t, bool), ConnectError> {
    unsafe {
        let mut pc: ngx_peer_connection_t = mem::zeroed();
        pc.sockaddr = sa;
        pc.socklen = socklen;
        pc.name = name;
        pc.get = Some(nginx_sys::ngx_event_get_peer);
        pc.log = log;
        pc.set_log_error(nginx_sys::ngx_connection_log_error_e_NGX_ERROR_INFO);
        let rc = nginx_sys::ngx_event_connect_peer(&mut pc);
        let err = nginx_sys::ngx_socket_errno();
        let connected = match rc {
            r if r == nginx_sys::NGX_OK as isize => true,
            r if r == nginx_sys::NGX_AGAIN as isize => false,
            r if r == nginx_sys::NGX_DECLINED as isize => return Err(ConnectError::Refused(err)),
            _ => return Err(ConnectError::NoConnection),
        };
        if pc.connection.is_null() {
            return Err(ConnectError::NoConnection);
        }
        Ok((pc.connection, connected))
    }
}

/// Closes the nginx connection of `inner` if still open.
///
/// # Safety
/// `inner` is a live Inner.
unsafe fn close(inner: *mut Inner) {
    unsafe {
        let c = (*inner).c.replace(ptr::null_mut());
        if c.is_null() {
            return;
        }
        (*c).data = ptr::null_mut();
        nginx_sys::ngx_close_connection(c);
    }
    let _ = OPEN.try_with(|o| o.try_borrow_mut().map(|mut o| o.retain(|&p| p != inner)));
}

impl Drop for UpConn {
    fn drop(&mut self) {
        // SAFETY: inner is valid until freed here, or by dispatch when dropped during the callback.
        unsafe {
            close(self.inner);
            if (*self.inner).running.get() {
                (*self.inner).orphaned.set(true);
            } else {
                drop(Box::from_raw(self.inner));
            }
        }
    }
}

fn dispatch(ev: *mut ngx_event_t, write: bool) {
    // SAFETY: ev->data is the connection (nginx's convention) and c->data our Inner, set in
    // connect() and cleared by close(); Inner outlives the callback (orphaned handling below).
    // Nothing touches c or ev after the callback: it may have closed the connection.
    unsafe {
        let c = (*ev).data as *mut ngx_connection_t;
        if c.is_null() {
            return;
        }
        let inner = (*c).data as *mut Inner;
        if inner.is_null() {
            return;
        }
        let timedout = (*ev).timedout() != 0;
        (*ev).set_timedout(0);
        let kind = match ((*c).close() != 0, write, timedout) {
            (true, _, _) => UpEvent::Shutdown,
            (false, false, false) => UpEvent::Read,
            (false, false, true) => UpEvent::ReadTimeout,
            (false, true, false) => UpEvent::Write,
            (false, true, true) => UpEvent::WriteTimeout,
        };
        (*inner).running.set(true);
        if let Ok(mut cb) = (*inner).cb.try_borrow_mut() {
            if let Some(cb) = cb.as_mut() {
                cb(kind);
            }
        }
        (*inner).running.set(false);
        if (*inner).orphaned.get() {
            drop(Box::from_raw(inner));
        }
    }
}

unsafe extern "C" fn on_read(ev: *mut ngx_event_t) {
    dispatch(ev, false)
}

unsafe extern "C" fn on_write(ev: *mut ngx_event_t) {
    dispatch(ev, true)
}

/// `exit_process` of the netcall module: closes the sockets of calls still waiting, before nginx
/// checks for sockets left open. Their owners are never run again (the process ends).
///
/// # Safety
/// Called by nginx in the worker, once, at exit.
pub unsafe extern "C" fn exit_process(_cycle: *mut ngx_cycle_t) {
    let open = OPEN.try_with(|o| o.try_borrow_mut().map(|mut o| mem::take(&mut *o)).unwrap_or_default());
    for inner in open.unwrap_or_default() {
        // SAFETY: every pointer in OPEN is a live Inner with an open connection (close() removes it).
        unsafe { close(inner) };
    }
}

/// Where an outgoing connection goes: an IP address, or a unix socket (a link to another worker).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PeerAddr {
    Inet(SocketAddr),
    Unix(String),
}

impl std::fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PeerAddr::Inet(a) => write!(f, "{a}"),
            PeerAddr::Unix(p) => write!(f, "unix:{p}"),
        }
    }
}

/// A unix socket address in C form; None when the path does not fit.
pub(super) fn sockaddr_un(path: &str) -> Option<(nginx_sys::sockaddr_storage, nginx_sys::socklen_t)> {
    // SAFETY: as in sockaddr(); sockaddr_un fits in sockaddr_storage.
    unsafe {
        let mut ss: nginx_sys::sockaddr_storage = mem::zeroed();
        let sun = ptr::addr_of_mut!(ss) as *mut nginx_sys::sockaddr_un;
        let room = (*sun).sun_path.len();
        if path.is_empty() || path.len() >= room || path.as_bytes().contains(&0) {
            return None;
        }
        (*sun).sun_family = nginx_sys::AF_UNIX as nginx_sys::sa_family_t;
        for (i, b) in path.bytes().enumerate() {
            (*sun).sun_path[i] = b as std::ffi::c_char;
        }
        let len = mem::offset_of!(nginx_sys::sockaddr_un, sun_path) + path.len() + 1;
        Some((ss, len as nginx_sys::socklen_t))
    }
}

/// Any peer address in C form.
pub(super) fn peer_sockaddr(addr: &PeerAddr) -> Option<(nginx_sys::sockaddr_storage, nginx_sys::socklen_t)> {
    match addr {
        PeerAddr::Inet(a) => Some(sockaddr(a)),
        PeerAddr::Unix(p) => sockaddr_un(p),
    }
}

/// A socket address in C form.
pub(super) fn sockaddr(addr: &SocketAddr) -> (nginx_sys::sockaddr_storage, nginx_sys::socklen_t) {
    // SAFETY: sockaddr_storage is plain data, zero is a valid value; it is large and aligned
    // enough for both address families written into it.
    unsafe {
        let mut ss: nginx_sys::sockaddr_storage = mem::zeroed();
        let len = match addr {
            SocketAddr::V4(a) => {
                let sin = ptr::addr_of_mut!(ss) as *mut nginx_sys::sockaddr_in;
                (*sin).sin_family = nginx_sys::AF_INET as nginx_sys::sa_family_t;
                (*sin).sin_port = a.port().to_be();
                (*sin).sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
                mem::size_of::<nginx_sys::sockaddr_in>()
            }
            SocketAddr::V6(a) => {
                let sin6 = ptr::addr_of_mut!(ss) as *mut nginx_sys::sockaddr_in6;
                (*sin6).sin6_family = nginx_sys::AF_INET6 as nginx_sys::sa_family_t;
                (*sin6).sin6_port = a.port().to_be();
                (*sin6).sin6_flowinfo = a.flowinfo().to_be();
                (*sin6).sin6_addr.__in6_u.__u6_addr8 = a.ip().octets();
                (*sin6).sin6_scope_id = a.scope_id();
                mem::size_of::<nginx_sys::sockaddr_in6>()
            }
        };
        (ss, len as nginx_sys::socklen_t)
    }
}

/// errno as text: "Connection refused".
pub fn strerror(err: i32) -> String {
    let s = std::io::Error::from_raw_os_error(err).to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}
