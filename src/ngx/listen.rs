//! Listening sockets for `listen` directives: parsed with nginx's URL parser, grouped per port
//! like ngx_stream (a wildcard socket serves the specific addresses without `bind`).

use std::ffi::c_void;

use nginx_sys::{ngx_connection_t, ngx_str_t, ngx_url_t};

use super::conf::{str_bytes, Conf};
use super::conn::Conn;
use super::module::CtxRef;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeepAlive {
    pub on: bool,
    pub idle: i32,
    pub intvl: i32,
    pub cnt: i32,
}

/// One `listen` directive.
#[derive(Clone, Debug)]
pub struct ListenOpt {
    pub sockaddr: Vec<u8>,
    pub addr_text: String,
    pub family: i32,
    pub port: u16,
    pub wildcard: bool,
    pub bind: bool,
    pub ipv6only: bool,
    pub reuseport: bool,
    pub backlog: i32,
    pub rcvbuf: i32,
    pub sndbuf: i32,
    pub keepalive: Option<KeepAlive>,
    pub server: CtxRef,
}

/// The servers reachable through one listening socket.
pub struct ListenServers {
    pub default: CtxRef,
    pub by_addr: Vec<(Vec<u8>, CtxRef)>,
}

impl ListenServers {
    /// The server for a connection: by its local address when the socket serves several.
    pub fn find(&self, conn: Conn) -> CtxRef {
        if self.by_addr.is_empty() {
            return self.default;
        }
        match conn.local_sockaddr() {
            Some(local) => self
                .by_addr
                .iter()
                .find(|(a, _)| same_addr(a, &local))
                .map_or(self.default, |(_, s)| *s),
            None => self.default,
        }
    }
}

/// Compares address and port of two sockaddrs of the same family.
fn same_addr(a: &[u8], b: &[u8]) -> bool {
    // SAFETY: both are complete sockaddrs copied from nginx; ngx_cmp_sockaddr reads their lengths.
    unsafe {
        nginx_sys::ngx_cmp_sockaddr(
            a.as_ptr() as *mut _,
            a.len() as u32,
            b.as_ptr() as *mut _,
            b.len() as u32,
            1,
        ) == 0
    }
}

/// Parses the address part of `listen` (`1935`, `addr:port`, `[::]:port`, `unix:/path`).
pub fn parse_addr(cf: &Conf, text: &[u8]) -> Result<ListenOpt, String> {
    let mut owned = text.to_vec();
    // SAFETY: ngx_url_t is plain data, zeroed as nginx does; ngx_parse_url reads `url` and writes
    // the rest, allocating from the conf pool.
    unsafe {
        let mut u: ngx_url_t = std::mem::zeroed();
        u.url = ngx_str_t { len: owned.len(), data: owned.as_mut_ptr() };
        u.set_listen(1);
        u.default_port = 1935;
        if nginx_sys::ngx_parse_url(cf.pool(), &mut u) != 0 {
            let err = if u.err.is_null() {
                "invalid address".to_string()
            } else {
                std::ffi::CStr::from_ptr(u.err).to_string_lossy().into_owned()
            };
            return Err(format!("{} in \"{}\" of the \"listen\" directive", err, String::from_utf8_lossy(text)));
        }
        let sa = std::slice::from_raw_parts(&u.sockaddr as *const _ as *const u8, u.socklen as usize).to_vec();
        let family = (*(&u.sockaddr as *const _ as *const nginx_sys::sockaddr)).sa_family as i32;
        let mut buf = [0u8; 256];
        let n = nginx_sys::ngx_sock_ntop(&u.sockaddr as *const _ as *mut _, u.socklen, buf.as_mut_ptr(), buf.len(), 1);
        Ok(ListenOpt {
            sockaddr: sa,
            addr_text: String::from_utf8_lossy(&buf[..n.min(buf.len())]).into_owned(),
            family,
            port: u.port,
            wildcard: u.wildcard() != 0,
            bind: false,
            ipv6only: true,
            reuseport: false,
            backlog: 511,
            rcvbuf: -1,
            sndbuf: -1,
            keepalive: None,
            server: CtxRef::from_raw(std::ptr::null_mut()),
        })
    }
}

/// Creates nginx listening sockets for all `listen`s of all servers; `accept` runs for each new
/// connection with the servers of its socket.
pub fn create_listening(
    cf: &Conf,
    opts: &[ListenOpt],
    accept: unsafe extern "C" fn(*mut ngx_connection_t),
) -> Result<(), String> {
    for (i, a) in opts.iter().enumerate() {
        if opts[..i].iter().any(|b| b.sockaddr == a.sockaddr || (a.family == b.family && same_addr(&a.sockaddr, &b.sockaddr))) {
            return Err(format!("duplicate \"{}\" address and port pair", a.addr_text));
        }
    }
    let is_unix = |o: &ListenOpt| o.family == nginx_sys::AF_UNIX as i32;
    for o in opts {
        let served_by_wildcard = !is_unix(o)
            && !o.wildcard
            && !o.bind
            && opts.iter().any(|w| w.wildcard && w.family == o.family && w.port == o.port);
        if served_by_wildcard {
            continue;
        }
        let mut servers = ListenServers { default: o.server, by_addr: Vec::new() };
        if o.wildcard {
            servers.by_addr = opts
                .iter()
                .filter(|s| !s.wildcard && !s.bind && s.family == o.family && s.port == o.port)
                .map(|s| (s.sockaddr.clone(), s.server))
                .collect();
        }
        let servers = cf.alloc(servers).ok_or("out of memory")?;
        let mut sa = o.sockaddr.clone();
        // SAFETY: ngx_create_listening copies the sockaddr into the cycle's pool; we then fill the
        // fields ngx_stream sets for its listeners.
        unsafe {
            let ls = nginx_sys::ngx_create_listening(cf.raw(), sa.as_mut_ptr() as *mut _, sa.len() as u32);
            if ls.is_null() {
                return Err("could not create a listening socket".into());
            }
            let ls = &mut *ls;
            ls.set_addr_ntop(1);
            ls.handler = Some(accept);
            ls.pool_size = 4096;
            ls.logp = &mut (*(*cf.raw()).cycle).new_log;
            ls.log.data = &mut ls.addr_text as *mut ngx_str_t as *mut c_void;
            ls.log.handler = Some(nginx_sys::ngx_accept_log_error);
            ls.backlog = o.backlog;
            ls.rcvbuf = o.rcvbuf;
            ls.sndbuf = o.sndbuf;
            ls.set_wildcard(o.wildcard as u32);
            if o.family == nginx_sys::AF_INET6 as i32 {
                ls.set_ipv6only(o.ipv6only as u32);
            }
            ls.set_reuseport(o.reuseport as u32);
            if let Some(k) = &o.keepalive {
                ls.set_keepalive(if k.on { 1 } else { 2 });
                ls.keepidle = k.idle;
                ls.keepintvl = k.intvl;
                ls.keepcnt = k.cnt;
            }
            // reuseport: nginx's event module clones the socket for every worker itself (its
            // init_conf runs after this block); cloning here too gave one worker two sockets.
            ls.servers = servers.cast();
        }
    }
    Ok(())
}

/// The servers of the socket that accepted `conn` (set by create_listening).
pub fn servers_of(conn: Conn) -> Option<&'static ListenServers> {
    let p = conn.listening_servers() as *const ListenServers;
    // SAFETY: every listening we create points `servers` at a ListenServers in the cycle pool.
    unsafe { p.as_ref() }
}

/// Text of an address for messages.
pub fn ngx_str_text(s: &ngx_str_t) -> String {
    // SAFETY: a valid nginx string.
    String::from_utf8_lossy(unsafe { str_bytes(s) }).into_owned()
}

/// What the core module does with a new connection.
pub trait Accept {
    fn accept(conn: Conn, server: CtxRef);
}

/// `ls->handler` for our listeners.
///
/// # Safety
/// Called by nginx's accept with a fresh connection of one of our listening sockets.
pub unsafe extern "C" fn on_accept<A: Accept>(c: *mut ngx_connection_t) {
    let Some(conn) = (unsafe { Conn::from_raw(c) }) else { return };
    unsafe {
        (*(*c).log).connection = (*c).number;
        (*(*c).log).handler = Some(log_context);
        (*(*c).log).data = c.cast();
        (*(*c).log).action = ptr_action();
        // A client's reset or broken pipe is its business: logged at info, as nginx's stream and
        // mail modules (and nginx-rtmp-module) do, not at error.
        (*c).set_log_error(nginx_sys::ngx_connection_log_error_e_NGX_ERROR_INFO);
    }
    match servers_of(conn) {
        Some(s) => A::accept(conn, s.find(conn)),
        None => conn.close_unattached(),
    }
}

fn ptr_action() -> *mut std::ffi::c_char {
    std::ptr::null_mut()
}

/// Appends ", client: ADDR, server: ADDR" to log lines of a connection, as ngx_stream does.
unsafe extern "C" fn log_context(log: *mut nginx_sys::ngx_log_t, buf: *mut u8, len: usize) -> *mut u8 {
    // SAFETY: log->data is the connection (set in on_accept); buf has room for len bytes.
    unsafe {
        let c = (*log).data as *mut ngx_connection_t;
        if c.is_null() {
            return buf;
        }
        let server = if (*c).listening.is_null() { Vec::new() } else { str_bytes(&(*(*c).listening).addr_text).to_vec() };
        let mut text = Vec::with_capacity(64);
        text.extend_from_slice(b", client: ");
        text.extend_from_slice(str_bytes(&(*c).addr_text));
        text.extend_from_slice(b", server: ");
        text.extend_from_slice(&server);
        let n = text.len().min(len);
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf, n);
        buf.add(n)
    }
}

/// A unix listening socket opened by a worker for itself (links between workers): bound at
/// `path` (an old file there is replaced), mode 0600, accepted with nginx's own accept handler,
/// then `accept` runs for each connection with `server`. It stays out of the cycle's listening
/// sockets: nginx neither hands it to the accept mutex nor closes it when a reload shuts the
/// worker down, so the new workers can still pull the streams this one serves until it exits.
pub fn listen_unix_now(path: &str, server: CtxRef, accept: unsafe extern "C" fn(*mut ngx_connection_t)) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let (ss, socklen) = super::upstream::sockaddr_un(path).ok_or_else(|| format!("\"{path}\": path too long"))?;
    let _ = std::fs::remove_file(path);
    let err = |what: &str| format!("{what} \"{path}\" failed: {}", std::io::Error::last_os_error());
    // SAFETY: plain socket calls on a descriptor we own; on any failure it is closed. The
    // listening entry and its text live in the cycle pool (as long as the worker); the
    // connection nginx hands out is set up the way ngx_event_process_init sets up listeners.
    unsafe {
        let cycle = nginx_sys::ngx_cycle as *mut nginx_sys::ngx_cycle_t;
        let fd = nginx_sys::socket(
            nginx_sys::AF_UNIX as i32,
            (nginx_sys::__socket_type_SOCK_STREAM | nginx_sys::__socket_type_SOCK_NONBLOCK | nginx_sys::__socket_type_SOCK_CLOEXEC) as i32,
            0,
        );
        if fd < 0 {
            return Err(err("socket()"));
        }
        let fail = |msg: String| {
            nginx_sys::close(fd);
            Err(msg)
        };
        let arg = nginx_sys::__CONST_SOCKADDR_ARG { __sockaddr__: std::ptr::addr_of!(ss).cast() };
        if nginx_sys::bind(fd, arg, socklen) != 0 {
            return fail(err("bind()"));
        }
        let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        if nginx_sys::listen(fd, 511) != 0 {
            return fail(err("listen()"));
        }
        let pool = (*cycle).pool;
        let sa = nginx_sys::ngx_pcalloc(pool, socklen as usize) as *mut u8;
        let text = format!("unix:{path}");
        let text_data = nginx_sys::ngx_pcalloc(pool, text.len()) as *mut u8;
        let servers = nginx_sys::ngx_pcalloc(pool, std::mem::size_of::<ListenServers>()) as *mut ListenServers;
        let ls = nginx_sys::ngx_pcalloc(pool, std::mem::size_of::<nginx_sys::ngx_listening_t>()) as *mut nginx_sys::ngx_listening_t;
        if sa.is_null() || text_data.is_null() || servers.is_null() || ls.is_null() {
            return fail("out of memory".into());
        }
        std::ptr::copy_nonoverlapping(std::ptr::addr_of!(ss) as *const u8, sa, socklen as usize);
        std::ptr::copy_nonoverlapping(text.as_ptr(), text_data, text.len());
        std::ptr::write(servers, ListenServers { default: server, by_addr: Vec::new() });
        let l = &mut *ls;
        l.fd = fd;
        l.sockaddr = sa.cast();
        l.socklen = socklen;
        l.addr_text = ngx_str_t { len: text.len(), data: text_data };
        l.type_ = nginx_sys::__socket_type_SOCK_STREAM as i32;
        l.backlog = 511;
        l.handler = Some(accept);
        l.pool_size = 4096;
        l.logp = (*cycle).log;
        l.log = *(*cycle).log;
        l.log.data = &mut l.addr_text as *mut ngx_str_t as *mut c_void;
        l.log.handler = Some(nginx_sys::ngx_accept_log_error);
        l.servers = servers.cast();
        l.set_reuseport(1);
        l.set_listen(1);
        l.set_open(1);
        l.worker = nginx_sys::ngx_worker;
        let c = nginx_sys::ngx_get_connection(fd, (*cycle).log);
        if c.is_null() {
            return fail("no free connection for the listening socket".into());
        }
        (*c).type_ = nginx_sys::__socket_type_SOCK_STREAM as i32;
        (*c).log = &mut l.log;
        (*c).listening = ls;
        l.connection = c;
        let rev = (*c).read;
        (*rev).log = (*c).log;
        (*rev).set_accept(1);
        (*rev).handler = Some(nginx_sys::ngx_event_accept);
        // nginx's NGX_READ_EVENT, level-triggered as for its own listeners: EPOLLIN|EPOLLRDHUP
        // under epoll, POLLIN otherwise.
        let read_event = if nginx_sys::ngx_event_flags & nginx_sys::NGX_USE_EPOLL_EVENT as usize != 0 { 0x2001 } else { 1 };
        let add = nginx_sys::ngx_event_actions.add.ok_or("no event method")?;
        if add(rev, read_event, 0) != nginx_sys::NGX_OK as isize {
            return Err(err("adding the accept event of"));
        }
    }
    Ok(())
}
