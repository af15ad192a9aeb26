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
            ls.servers = servers.cast();
            if o.reuseport && nginx_sys::ngx_clone_listening((*cf.raw()).cycle, ls) != 0 {
                return Err("could not clone the listening socket for reuseport".into());
            }
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
