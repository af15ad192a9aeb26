//! The adapter over nginx-sys: every `unsafe` of the module lives in this folder, so the feature
//! modules (core, live, …) are safe Rust working on typed confs, sessions and connection handles.

pub mod block;
pub mod conf;
pub mod conn;
pub mod files;
pub mod http;
pub mod http_head;
pub mod listen;
pub mod log;
pub mod module;
pub mod process;
pub mod resolver;
pub mod shm;
pub mod timer;
pub mod tls;
pub mod upstream;

pub use nginx_sys as sys;

/// nginx's cached clock in milliseconds (updated once per event loop iteration).
pub fn now_ms() -> u64 {
    // SAFETY: a plain global written only by the event loop of this (single-threaded) worker.
    unsafe { nginx_sys::ngx_current_msec as u64 }
}

/// This worker's number (0 for the first worker, and in single-process mode).
pub fn worker_number() -> usize {
    // SAFETY: set by nginx before init_process, constant afterwards.
    unsafe { nginx_sys::ngx_worker }
}

/// CPUs nginx counted at start.
pub fn ncpu() -> usize {
    // SAFETY: set by nginx before configuration, constant afterwards.
    usize::try_from(unsafe { nginx_sys::ngx_ncpu }).unwrap_or(1).max(1)
}
