//! TLS for outgoing connections (`rtmps://` relays) over nginx's OpenSSL layer: a client context
//! made at configuration time, and a handshake with SNI and certificate verification (chain and
//! host name, as nginx's `proxy_ssl_verify`) before the connection's own handler sees any byte.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CString;

use nginx_sys::{ngx_connection_t, ngx_event_handler_pt, ngx_ssl_t, ngx_str_t};

use super::conf::Conf;
use super::conn::Conn;

/// A client TLS context (one per configuration and trust setting).
pub struct TlsClient {
    ssl: *mut ngx_ssl_t,
    verify: bool,
}

/// How a connection's handshake stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Handshake {
    Running,
    Done,
    Failed,
}

struct Pending {
    read: ngx_event_handler_pt,
    write: ngx_event_handler_pt,
    host: String,
    verify: bool,
    state: Handshake,
}

thread_local! {
    /// Connections with TLS, by connection pointer (removed as they close).
    static CONNS: RefCell<HashMap<usize, Pending>> = RefCell::new(HashMap::new());
}

impl TlsClient {
    /// A context for TLS 1.2 and 1.3 that trusts `trusted` (a PEM file of CA certificates), or
    /// the system's CA store when `None`; `verify` off accepts any certificate.
    pub fn new(cf: &Conf, trusted: Option<&str>, verify: bool) -> Result<&'static TlsClient, String> {
        // SAFETY: the ngx_ssl_t lives in the configuration pool, which outlives every connection
        // using it; a pool cleanup frees the SSL_CTX with the configuration (as nginx's proxy
        // module does).
        unsafe {
            let ssl = nginx_sys::ngx_pcalloc(cf.pool(), std::mem::size_of::<ngx_ssl_t>()) as *mut ngx_ssl_t;
            if ssl.is_null() {
                return Err("out of memory".into());
            }
            (*ssl).log = (*cf.raw()).log;
            let protocols = (nginx_sys::NGX_SSL_TLSv1_2 | nginx_sys::NGX_SSL_TLSv1_3) as usize;
            if nginx_sys::ngx_ssl_create(ssl, protocols, std::ptr::null_mut()) != 0 {
                return Err("could not create a TLS context (see the error log)".into());
            }
            let cln = nginx_sys::ngx_pool_cleanup_add(cf.pool(), 0);
            if cln.is_null() {
                nginx_sys::ngx_ssl_cleanup_ctx(ssl.cast());
                return Err("out of memory".into());
            }
            (*cln).handler = Some(nginx_sys::ngx_ssl_cleanup_ctx);
            (*cln).data = ssl.cast();
            match trusted {
                Some(path) => {
                    let mut bytes = path.as_bytes().to_vec();
                    let data = nginx_sys::ngx_pnalloc(cf.pool(), bytes.len()) as *mut u8;
                    if data.is_null() {
                        return Err("out of memory".into());
                    }
                    std::ptr::copy_nonoverlapping(bytes.as_mut_ptr(), data, bytes.len());
                    let mut s = ngx_str_t { len: bytes.len(), data };
                    if nginx_sys::ngx_ssl_trusted_certificate(cf.raw(), ssl, &mut s, 9) != 0 {
                        return Err(format!("cannot load the trusted certificates \"{path}\""));
                    }
                }
                None => {
                    if nginx_sys::SSL_CTX_set_default_verify_paths((*ssl).ctx) != 1 {
                        return Err("cannot load the system's trusted certificates".into());
                    }
                }
            }
            cf.alloc_static(TlsClient { ssl, verify }).ok_or_else(|| "out of memory".to_string())
        }
    }
}

/// Starts TLS on a freshly connected (or connecting) outgoing connection whose handler is
/// attached: the handshake runs first, with SNI for `host` (unless it is an address); then the
/// handler's own read and write events resume. A failed handshake or certificate shows up as a
/// write error to the handler (`writev` answers Error), logged here at info.
pub fn start_client(conn: Conn, tls: &TlsClient, host: &str) -> Result<(), String> {
    let c = conn.raw();
    // SAFETY: c is a live connection whose handlers attach() set; nginx's SSL layer owns
    // c->ssl from here and swaps the handlers during the handshake, we restore ours after.
    unsafe {
        if nginx_sys::ngx_ssl_create_connection(tls.ssl, c, nginx_sys::NGX_SSL_CLIENT as usize) != 0 {
            return Err("could not start TLS (see the error log)".into());
        }
        if host.parse::<std::net::IpAddr>().is_err() {
            if let Ok(name) = CString::new(host) {
                nginx_sys::SSL_ctrl(
                    (*(*c).ssl).connection,
                    nginx_sys::SSL_CTRL_SET_TLSEXT_HOSTNAME as i32,
                    nginx_sys::TLSEXT_NAMETYPE_host_name as i64,
                    name.as_ptr() as *mut std::ffi::c_void,
                );
            }
        }
        let pending = Pending {
            read: (*(*c).read).handler,
            write: (*(*c).write).handler,
            host: host.to_string(),
            verify: tls.verify,
            state: Handshake::Running,
        };
        CONNS.with(|m| m.borrow_mut().insert(c as usize, pending));
        match nginx_sys::ngx_ssl_handshake(c) {
            rc if rc == nginx_sys::NGX_AGAIN as isize => {
                (*(*c).ssl).handler = Some(handshake_done);
                Ok(())
            }
            _ => {
                handshake_done(c);
                Ok(())
            }
        }
    }
}

/// Where the handshake of a TLS connection stands (None: no TLS).
pub fn state(conn: Conn) -> Option<Handshake> {
    // SAFETY: live connection; only connections start_client set up have c->ssl.
    if unsafe { (*conn.raw()).ssl.is_null() } {
        return None;
    }
    CONNS.with(|m| m.borrow().get(&(conn.raw() as usize)).map(|p| p.state))
}

/// The SSL layer failed to write (nginx logged why).
#[derive(Debug)]
pub struct SendError;

/// Sends `bufs` over TLS, coalesced into one record of at most 16 KiB; bytes written, 0 with
/// `again` when nothing could be.
pub fn send(conn: Conn, bufs: &[bytes::Bytes]) -> Result<(usize, bool), SendError> {
    let mut out = Vec::with_capacity(16 * 1024);
    for b in bufs {
        let room = 16 * 1024 - out.len();
        if room == 0 {
            break;
        }
        out.extend_from_slice(&b[..b.len().min(room)]);
    }
    if out.is_empty() {
        return Ok((0, false));
    }
    let c = conn.raw();
    // SAFETY: after the handshake c->send is ngx_ssl_write, which writes at most len bytes.
    let n = unsafe {
        let Some(send) = (*c).send else { return Err(SendError) };
        send(c, out.as_mut_ptr(), out.len())
    };
    match n {
        n if n >= 0 => {
            // SAFETY: live connection.
            unsafe { (*c).sent += n as i64 };
            Ok((n as usize, false))
        }
        n if n == nginx_sys::NGX_AGAIN as isize => Ok((0, true)),
        _ => Err(SendError),
    }
}

/// Before a TLS connection closes: no close_notify exchange (the socket goes now), and the SSL
/// object is freed.
pub fn close(conn: Conn) {
    let c = conn.raw();
    if CONNS.with(|m| m.borrow_mut().remove(&(c as usize))).is_none() {
        return;
    }
    // SAFETY: c->ssl was created by start_client; with both flags set ngx_ssl_shutdown neither
    // writes nor waits, it frees the SSL object and returns.
    unsafe {
        if !(*c).ssl.is_null() {
            (*(*c).ssl).set_no_wait_shutdown(1);
            (*(*c).ssl).set_no_send_shutdown(1);
            nginx_sys::ngx_ssl_shutdown(c);
        }
    }
}

/// nginx's SSL layer is done with the handshake (or gave up): check the certificate, give the
/// events back to the connection's handler and wake it.
unsafe extern "C" fn handshake_done(c: *mut ngx_connection_t) {
    let Some(conn) = (unsafe { Conn::from_raw(c) }) else { return };
    let log = conn.log();
    let outcome = CONNS.with(|m| {
        let mut m = m.borrow_mut();
        let p = m.get_mut(&(c as usize))?;
        // SAFETY: live connection with c->ssl from start_client.
        let ok = unsafe {
            if (*c).ssl.is_null() || (*(*c).ssl).handshaked() == 0 {
                Err("TLS handshake failed".to_string())
            } else if p.verify {
                verify(c, &p.host)
            } else {
                Ok(())
            }
        };
        p.state = if ok.is_ok() { Handshake::Done } else { Handshake::Failed };
        // SAFETY: restoring the handlers attach() had set.
        unsafe {
            (*(*c).read).handler = p.read;
            (*(*c).write).handler = p.write;
        }
        Some(ok)
    });
    match outcome {
        Some(Ok(())) => crate::log_debug!(log, "tls: handshake done"),
        Some(Err(e)) => crate::log_info!(log, "tls: {}", e),
        None => return,
    }
    // The handler flushes what it queued meanwhile (or meets the failure) and reads on.
    conn.post_write();
    conn.post_read();
}

/// The server's certificate: a trusted chain, and made out to `host`.
unsafe fn verify(c: *mut ngx_connection_t, host: &str) -> Result<(), String> {
    // SAFETY: the handshake is done; the SSL object lives until close().
    unsafe {
        let rc = nginx_sys::SSL_get_verify_result((*(*c).ssl).connection);
        if rc != 0 {
            let why = std::ffi::CStr::from_ptr(nginx_sys::X509_verify_cert_error_string(rc)).to_string_lossy().into_owned();
            return Err(format!("the server's certificate is not trusted: {why} ({rc})"));
        }
        let mut name = host.as_bytes().to_vec();
        let mut s = ngx_str_t { len: name.len(), data: name.as_mut_ptr() };
        if nginx_sys::ngx_ssl_check_host(c, &mut s) != 0 {
            return Err(format!("the server's certificate is not for \"{host}\""));
        }
    }
    Ok(())
}
