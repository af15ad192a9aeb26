//! Files from safe code: log files opened through the cycle's `open_files` (nginx opens them at
//! start, as the worker user, and reopens them on `nginx -s reopen`), where the directive being
//! parsed stands (file:line), and nginx's cached log time.

use std::io;
use std::ptr::{self, NonNull};

use nginx_sys::{ngx_open_file_t, ngx_str_t};

use super::conf::{str_bytes, Conf};

/// A log file of the cycle. nginx owns the descriptor: it is read at each write, so a reopen
/// (`nginx -s reopen`, USR1) takes effect at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogFile(NonNull<ngx_open_file_t>);

impl LogFile {
    /// Registers `path` (relative to the prefix, as nginx's own logs) with the cycle; the same
    /// path used twice is one file.
    pub fn open(cf: &Conf, path: &str) -> Result<Self, String> {
        if path.is_empty() || path.contains('\0') {
            return Err(format!("invalid log file name \"{path}\""));
        }
        // SAFETY: the name is copied into the configuration pool with a terminating NUL (nginx
        // open()s name.data and keeps it for the life of the cycle); cf->cycle is the cycle
        // being configured.
        unsafe {
            let len = path.len();
            let data = nginx_sys::ngx_pnalloc(cf.pool(), len + 1) as *mut u8;
            if data.is_null() {
                return Err("out of memory".into());
            }
            ptr::copy_nonoverlapping(path.as_ptr(), data, len);
            *data.add(len) = 0;
            let mut name = ngx_str_t { len, data };
            NonNull::new(nginx_sys::ngx_conf_open_file((*cf.raw()).cycle, &mut name))
                .map(LogFile)
                .ok_or_else(|| format!("cannot open log file \"{path}\""))
        }
    }

    /// The full path nginx opens.
    pub fn name(&self) -> String {
        // SAFETY: the open file lives in the cycle's list for the life of the cycle.
        unsafe { String::from_utf8_lossy(str_bytes(&(*self.0.as_ptr()).name)).into_owned() }
    }

    /// One write(2) of `bytes` (log lines are appended with O_APPEND); returns what was written.
    pub fn write(&self, bytes: &[u8]) -> io::Result<usize> {
        // SAFETY: fd is the descriptor nginx opened for this file (or -1, which write rejects);
        // the buffer is valid for bytes.len().
        let n = unsafe { nginx_sys::write((*self.0.as_ptr()).fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

/// Where the directive being parsed is: `/etc/nginx/nginx.conf:12`.
pub fn conf_position(cf: &Conf) -> String {
    // SAFETY: while parsing, cf->conf_file is the file being read (null only for -g directives).
    unsafe {
        let file = (*cf.raw()).conf_file;
        if file.is_null() {
            return "command line".into();
        }
        format!("{}:{}", String::from_utf8_lossy(str_bytes(&(*file).file.name)), (*file).line)
    }
}

/// The local time as nginx's access logs write it (`25/Nov/2026:09:08:00 +0000`), from the
/// clock nginx caches each event loop iteration.
pub fn http_log_time() -> String {
    // SAFETY: the worker is single-threaded; nginx points this str at one of its static time
    // slots and updates it only in ngx_time_update, between events.
    unsafe {
        let s = ptr::read_volatile(ptr::addr_of!(nginx_sys::ngx_cached_http_log_time));
        String::from_utf8_lossy(str_bytes(&s)).into_owned()
    }
}

/// `strftime` of `fmt` at the local time `secs` (since the epoch); `fmt` itself when it cannot
/// be formatted (a NUL inside, or a result over 1 KiB).
pub fn strftime(fmt: &str, secs: i64) -> String {
    let Ok(cfmt) = std::ffi::CString::new(fmt) else {
        return fmt.to_string();
    };
    let mut buf = [0u8; 1024];
    // SAFETY: localtime_r fills the tm we own; strftime writes at most buf.len() bytes and
    // returns how many (0 on overflow).
    unsafe {
        let t = secs as nginx_sys::time_t;
        let mut tm: nginx_sys::tm = std::mem::zeroed();
        if nginx_sys::localtime_r(&t, &mut tm).is_null() {
            return fmt.to_string();
        }
        let n = nginx_sys::strftime(buf.as_mut_ptr().cast(), buf.len(), cfmt.as_ptr(), &tm);
        if n == 0 && !fmt.is_empty() {
            return fmt.to_string();
        }
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

/// Wall-clock seconds since the epoch, as nginx cached them.
pub fn unix_time() -> i64 {
    // SAFETY: nginx's cached time, updated by the event loop.
    unsafe { (*nginx_sys::ngx_cached_time).sec }
}

/// An exclusive POSIX record lock on the whole file, without waiting (nginx's `ngx_trylock_fd`;
/// the C module's `record_lock` waits for it); false when another process holds it.
pub fn try_lock(f: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor belongs to `f`, open for writing.
    unsafe { nginx_sys::ngx_trylock_fd(f.as_raw_fd()) == 0 }
}
