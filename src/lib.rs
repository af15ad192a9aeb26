//! nginx-rtmp-rs: an RTMP live streaming module for nginx, a drop-in for nginx-rtmp-module's
//! `rtmp {}` configuration. `ngx` holds the unsafe adapter over nginx; `core` the block,
//! listeners and sessions; one folder per feature module.

pub mod access;
pub mod control;
pub mod core;
pub mod dash;
pub mod exec;
pub mod hls;
pub mod httpflv;
pub mod limit;
pub mod live;
pub mod llhls;
pub mod log;
pub mod netcall;
pub mod ngx;
pub mod notify;
pub mod play;
pub mod record;
pub mod relay;
pub mod stat;

use std::ffi::c_char;
use std::ptr::{addr_of, null};

use nginx_sys::ngx_module_t;

/// Module list of this dynamic library, read by nginx's `load_module` (ngx::ngx_modules! handles
/// only one module in ngx 0.5). Order matters: hooks run in module order.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_modules: [*const ngx_module_t; 23] = [
    addr_of!(core::ngx_rtmp_rs_module),
    addr_of!(core::ngx_rtmp_rs_core_module),
    // Top-level rtmp_auto_push* / rtmp_socket_dir; each worker's link socket.
    addr_of!(core::link::ngx_rtmp_rs_workers_module),
    // No hooks: the HTTP client (netcall_* directives) that notify callbacks use.
    addr_of!(netcall::ngx_rtmp_rs_netcall_module),
    // First: it notes publish/play before anyone refuses them (refused requests are logged too).
    addr_of!(log::ngx_rtmp_rs_log_module),
    addr_of!(limit::ngx_rtmp_rs_limit_module),
    // Before hls and live: a denied client must never reach them.
    addr_of!(access::ngx_rtmp_rs_access_module),
    // Before hls and live: a callback may refuse or rename the stream first.
    addr_of!(notify::ngx_rtmp_rs_notify_module),
    // After notify (whose redirects it acts on), before hls and live (which serve what it pulls).
    addr_of!(relay::ngx_rtmp_rs_relay_module),
    // Before live: its publish check must run before live accepts the stream.
    addr_of!(hls::ngx_rtmp_rs_hls_module),
    // Beside hls: the same place in the chains (name check before live, output after it).
    addr_of!(dash::ngx_rtmp_rs_dash_module),
    // After hls (whose name check and directives it relies on): Low-Latency HLS parts.
    addr_of!(llhls::ngx_rtmp_rs_llhls_module),
    // After the modules that may refuse a publish (access, notify, hls): a refused publish never
    // records or runs a program. Before live, which ends the publish chain.
    addr_of!(record::ngx_rtmp_rs_record_module),
    addr_of!(exec::ngx_rtmp_rs_exec_module),
    // Before live (which ends the play chain): notes sessions coming and going for stat pages.
    addr_of!(stat::ngx_rtmp_rs_stat_module),
    // VOD, right before live: a name that is a file in a play directory is played from it; any
    // other goes on to live.
    addr_of!(play::ngx_rtmp_rs_play_module),
    addr_of!(live::ngx_rtmp_rs_live_module),
    // The HTTP side: HTTP-FLV players of live streams.
    addr_of!(httpflv::ngx_rtmp_rs_flv_live_module),
    addr_of!(stat::ngx_rtmp_rs_stat_http_module),
    addr_of!(llhls::ngx_rtmp_rs_llhls_http_module),
    // No hooks: the shared board of the control API, and its HTTP side.
    addr_of!(control::ngx_rtmp_rs_control_module),
    addr_of!(control::ngx_rtmp_rs_control_http_module),
    null(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_module_names: [*const c_char; 23] = [
    c"ngx_rtmp_rs_module".as_ptr(),
    c"ngx_rtmp_rs_core_module".as_ptr(),
    c"ngx_rtmp_rs_workers_module".as_ptr(),
    c"ngx_rtmp_rs_netcall_module".as_ptr(),
    c"ngx_rtmp_rs_log_module".as_ptr(),
    c"ngx_rtmp_rs_limit_module".as_ptr(),
    c"ngx_rtmp_rs_access_module".as_ptr(),
    c"ngx_rtmp_rs_notify_module".as_ptr(),
    c"ngx_rtmp_rs_relay_module".as_ptr(),
    c"ngx_rtmp_rs_hls_module".as_ptr(),
    c"ngx_rtmp_rs_dash_module".as_ptr(),
    c"ngx_rtmp_rs_llhls_module".as_ptr(),
    c"ngx_rtmp_rs_record_module".as_ptr(),
    c"ngx_rtmp_rs_exec_module".as_ptr(),
    c"ngx_rtmp_rs_stat_module".as_ptr(),
    c"ngx_rtmp_rs_play_module".as_ptr(),
    c"ngx_rtmp_rs_live_module".as_ptr(),
    c"ngx_rtmp_rs_flv_live_module".as_ptr(),
    c"ngx_rtmp_rs_stat_http_module".as_ptr(),
    c"ngx_rtmp_rs_llhls_http_module".as_ptr(),
    c"ngx_rtmp_rs_control_module".as_ptr(),
    c"ngx_rtmp_rs_control_http_module".as_ptr(),
    null(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_module_order: [*const c_char; 1] = [null()];
