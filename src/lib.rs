//! nginx-rtmp-rs: an RTMP live streaming module for nginx, a drop-in for nginx-rtmp-module's
//! `rtmp {}` configuration. `ngx` holds the unsafe adapter over nginx; `core` the block,
//! listeners and sessions; one folder per feature module.

pub mod core;
pub mod hls;
pub mod live;
pub mod ngx;

use std::ffi::c_char;
use std::ptr::{addr_of, null};

use nginx_sys::ngx_module_t;

/// Module list of this dynamic library, read by nginx's `load_module` (ngx::ngx_modules! handles
/// only one module in ngx 0.5). Order matters: hooks run in module order.
#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_modules: [*const ngx_module_t; 5] = [
    addr_of!(core::ngx_rtmp_rs_module),
    addr_of!(core::ngx_rtmp_rs_core_module),
    // Before live: its publish check must run before live accepts the stream.
    addr_of!(hls::ngx_rtmp_rs_hls_module),
    addr_of!(live::ngx_rtmp_rs_live_module),
    null(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_module_names: [*const c_char; 5] = [
    c"ngx_rtmp_rs_module".as_ptr(),
    c"ngx_rtmp_rs_core_module".as_ptr(),
    c"ngx_rtmp_rs_hls_module".as_ptr(),
    c"ngx_rtmp_rs_live_module".as_ptr(),
    null(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_module_order: [*const c_char; 1] = [null()];
