//! The HTTP client of notify callbacks: `call()` runs a request on nginx's connections and timers
//! without ever blocking the worker; `netcall_timeout` and `netcall_buffer` bound each call.
//!
//! Callback hosts are resolved while the configuration loads (`NotifyUrl::parse`), as nginx does
//! for static upstreams, so no resolver is needed at run time. Plain HTTP only.

mod call;
mod url;

use std::ptr::{addr_of, addr_of_mut};

use nginx_sys::{ngx_command_t, ngx_module_t};

use crate::ngx::conf::{merge, Conf, Msec, Size};
use crate::ngx::module::{
    CtxRef, Merge, RtmpModule, RtmpModuleCtx, NGX_RTMP_RS_MODULE, RTMP_APP_CONF, RTMP_APP_CONF_OFFSET, RTMP_MAIN_CONF,
    RTMP_SRV_CONF,
};
use crate::slot;

pub use call::{call, CallError, CallHandle, CallOptions};
pub use rtmp_proto::http::{Method, Response};
pub use url::NotifyUrl;
/// URL splitting and configuration-time resolution, for other modules' plain HTTP fetches.
pub mod http_url {
    pub use super::url::{resolve, split, Parts};
}

pub struct NetcallModule;

impl RtmpModule for NetcallModule {
    type MainConf = NetcallMainConf;
    type SrvConf = NetcallSrvConf;
    type AppConf = NetcallAppConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_netcall_module) }
    }
}

#[derive(Default)]
pub struct NetcallMainConf;

#[derive(Default)]
pub struct NetcallSrvConf;
impl Merge for NetcallSrvConf {}

/// nginx-rtmp-module sets these at rtmp{} and server{} level; application level works too.
#[derive(Default)]
pub struct NetcallAppConf {
    pub timeout: Option<Msec>,
    pub buffer: Option<Size>,
}

impl NetcallAppConf {
    /// `netcall_timeout`: inactivity limit of each step of a call (default 10s).
    pub fn timeout_ms(&self) -> u64 {
        self.timeout.map_or(10_000, |m| m.0)
    }
    /// `netcall_buffer`: the most response bytes read, head included. Default 64k:
    /// nginx-rtmp-module read answers of any length in 1024-byte buffers, so web apps that
    /// answer with a page keep working.
    pub fn max_response(&self) -> usize {
        self.buffer.map_or(64 * 1024, |s| usize::try_from(s.0).unwrap_or(usize::MAX))
    }
}

impl Merge for NetcallAppConf {
    fn merge(&mut self, prev: &Self, _cf: &Conf) -> Result<(), String> {
        merge(&mut self.timeout, &prev.timeout);
        merge(&mut self.buffer, &prev.buffer);
        Ok(())
    }
}

/// (`netcall_timeout` in ms, `netcall_buffer` in bytes) of a server or application level.
pub fn limits(ctx: CtxRef) -> (u64, usize) {
    let c = ctx.app::<NetcallModule>();
    (c.timeout_ms(), c.max_response())
}

static NETCALL_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<NetcallModule>();

const TAKE1: u32 = nginx_sys::NGX_CONF_TAKE1;
const RSA: u32 = RTMP_MAIN_CONF | RTMP_SRV_CONF | RTMP_APP_CONF;
const OFF: usize = RTMP_APP_CONF_OFFSET;

static mut NETCALL_COMMANDS: [ngx_command_t; 3] = [
    slot!(NetcallAppConf, timeout, c"netcall_timeout", RSA | TAKE1, OFF),
    slot!(NetcallAppConf, buffer, c"netcall_buffer", RSA | TAKE1, OFF),
    ngx_command_t::empty(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_netcall_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(NETCALL_CTX) as *mut _,
    commands: addr_of_mut!(NETCALL_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    // Calls still waiting for an answer when the worker exits are closed quietly.
    exit_process: Some(crate::ngx::upstream::exit_process),
    ..ngx_module_t::default()
};
