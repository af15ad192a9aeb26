//! nginx's error log from safe code: a `Log` handle and `log_*!` macros that format only when the
//! level is enabled.

use std::fmt;
use std::mem::MaybeUninit;

use nginx_sys::{ngx_log_t, ngx_uint_t};

pub use nginx_sys::{NGX_LOG_ALERT, NGX_LOG_DEBUG, NGX_LOG_ERR, NGX_LOG_INFO, NGX_LOG_NOTICE, NGX_LOG_WARN};

#[derive(Clone, Copy)]
pub struct Log(*mut ngx_log_t);

impl Log {
    /// # Safety
    /// `log` is a valid nginx log for as long as this handle is used.
    pub unsafe fn from_raw(log: *mut ngx_log_t) -> Self {
        Log(log)
    }
    /// The running cycle's log: valid for the whole life of the worker.
    pub fn cycle() -> Self {
        // SAFETY: ngx_cycle is set before any module code runs and outlives every event.
        Log(unsafe { (*nginx_sys::ngx_cycle).log })
    }
    pub fn raw(self) -> *mut ngx_log_t {
        self.0
    }
    pub fn enabled(self, level: u32) -> bool {
        if level == NGX_LOG_DEBUG {
            return ngx::log::DEBUG && unsafe { (*self.0).log_level } > NGX_LOG_DEBUG as ngx_uint_t;
        }
        // SAFETY: valid log (constructor contract).
        level as ngx_uint_t <= unsafe { (*self.0).log_level }
    }
    pub fn write(self, level: u32, args: fmt::Arguments) {
        if !self.enabled(level) {
            return;
        }
        let mut buf = [const { MaybeUninit::<u8>::uninit() }; ngx::log::LOG_BUFFER_SIZE];
        let msg = ngx::log::write_fmt(&mut buf, args);
        // SAFETY: valid log; msg is initialized by write_fmt.
        unsafe {
            if level == NGX_LOG_DEBUG {
                ngx::log::log_debug(self.0, 0, msg);
            } else {
                ngx::log::log_error(level as ngx_uint_t, self.0, 0, msg);
            }
        }
    }
}

#[macro_export]
macro_rules! log_error { ($log:expr, $($a:tt)+) => { $log.write($crate::ngx::log::NGX_LOG_ERR, format_args!($($a)+)) } }
#[macro_export]
macro_rules! log_warn { ($log:expr, $($a:tt)+) => { $log.write($crate::ngx::log::NGX_LOG_WARN, format_args!($($a)+)) } }
#[macro_export]
macro_rules! log_info { ($log:expr, $($a:tt)+) => { $log.write($crate::ngx::log::NGX_LOG_INFO, format_args!($($a)+)) } }
#[macro_export]
macro_rules! log_debug { ($log:expr, $($a:tt)+) => { $log.write($crate::ngx::log::NGX_LOG_DEBUG, format_args!($($a)+)) } }
