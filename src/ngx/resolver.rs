//! Host names looked up without blocking, with nginx's own resolver (the `resolver` directive):
//! the answer comes later on the event loop, or at once from nginx's cache.

use std::ffi::c_void;
use std::net::IpAddr;

use nginx_sys::{ngx_resolver_ctx_t, ngx_resolver_t, ngx_str_t};

use super::conf::Conf;

pub struct Resolver(*mut ngx_resolver_t);

type Callback = Box<dyn FnOnce(Result<Vec<IpAddr>, String>)>;

/// What a lookup keeps until its answer: the name nginx reads, and who waits.
struct Lookup {
    _name: Vec<u8>,
    cb: Callback,
}

impl Resolver {
    /// `resolver ADDRESS ... [valid=TIME] [ipv6=on|off]` with nginx's own parser.
    pub fn create(cf: &Conf, args: &[&[u8]]) -> Result<&'static Resolver, String> {
        // SAFETY: ngx_resolver_create copies what it keeps; the strings only need to live for
        // the call. The resolver lives in the configuration pool (freed with it by nginx).
        let r = unsafe {
            let mut names: Vec<ngx_str_t> =
                args.iter().map(|a| ngx_str_t { len: a.len(), data: a.as_ptr() as *mut u8 }).collect();
            nginx_sys::ngx_resolver_create(cf.raw(), names.as_mut_ptr(), names.len())
        };
        if r.is_null() {
            return Err(String::new());
        }
        cf.alloc_static(Resolver(r)).ok_or_else(|| "out of memory".to_string())
    }

    /// Looks `host` up; `cb` gets its addresses (or why not), maybe before this returns.
    pub fn resolve(&self, host: &str, timeout_ms: u64, cb: impl FnOnce(Result<Vec<IpAddr>, String>) + 'static) {
        // SAFETY: the context is nginx's; `data` owns the Lookup (with the name nginx reads)
        // until on_resolved takes it back, which nginx calls exactly once after NGX_OK.
        unsafe {
            let ctx = nginx_sys::ngx_resolve_start(self.0, std::ptr::null_mut());
            if ctx.is_null() || ctx as isize == -1 {
                return cb(Err("the resolver could not start a lookup".into()));
            }
            let mut name = host.as_bytes().to_vec();
            (*ctx).name = ngx_str_t { len: name.len(), data: name.as_mut_ptr() };
            let lookup = Box::new(Lookup { _name: name, cb: Box::new(cb) });
            (*ctx).handler = Some(on_resolved);
            (*ctx).timeout = timeout_ms as nginx_sys::ngx_msec_t;
            (*ctx).data = Box::into_raw(lookup).cast();
            if nginx_sys::ngx_resolve_name(ctx) != nginx_sys::NGX_OK as isize {
                // nginx freed the context; the lookup is ours again.
                let lookup = Box::from_raw((*ctx).data as *mut Lookup);
                (lookup.cb)(Err("the resolver failed (see the error log)".into()));
            }
        }
    }
}

unsafe extern "C" fn on_resolved(ctx: *mut ngx_resolver_ctx_t) {
    // SAFETY: nginx calls this once per lookup with the context resolve() set up.
    let (lookup, result) = unsafe {
        let lookup = Box::from_raw((*ctx).data as *mut Lookup);
        let result = if (*ctx).state != 0 {
            let why = std::ffi::CStr::from_ptr(nginx_sys::ngx_resolver_strerror((*ctx).state));
            Err(why.to_string_lossy().into_owned())
        } else {
            let mut out = Vec::new();
            for i in 0..(*ctx).naddrs {
                let a = &*(*ctx).addrs.add(i);
                if let Some(ip) = ip_of(a.sockaddr.cast()) {
                    out.push(ip);
                }
            }
            Ok(out)
        };
        nginx_sys::ngx_resolve_name_done(ctx);
        (lookup, result)
    };
    (lookup.cb)(result);
}

/// The IP of an IPv4 or IPv6 socket address.
unsafe fn ip_of(sa: *const c_void) -> Option<IpAddr> {
    // SAFETY: sa points at a sockaddr whose family says its layout.
    unsafe {
        let family = (*(sa as *const nginx_sys::sockaddr)).sa_family as u32;
        if family == nginx_sys::AF_INET {
            let sin = &*(sa as *const nginx_sys::sockaddr_in);
            Some(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()))
        } else if family == nginx_sys::AF_INET6 {
            let sin6 = &*(sa as *const nginx_sys::sockaddr_in6);
            Some(IpAddr::from(sin6.sin6_addr.__in6_u.__u6_addr8))
        } else {
            None
        }
    }
}
