//! A standalone nginx timer owned by safe code: a callback that runs on expiry and may ask to run
//! again. Cancelable, so a pending timer never holds up a graceful worker shutdown.

use std::cell::{Cell, RefCell};
use std::mem;

use nginx_sys::{ngx_event_t, ngx_msec_t};

use super::log::Log;

/// What the callback wants next.
pub enum Again {
    Stop,
    /// Run again after this many milliseconds.
    After(u64),
}

type Callback = Box<dyn FnMut() -> Again>;

struct Inner {
    ev: ngx_event_t,
    cb: RefCell<Callback>,
    running: Cell<bool>,
    /// The owning `Timer` was dropped by its own callback: free after the callback returns.
    orphaned: Cell<bool>,
}

pub struct Timer {
    inner: *mut Inner,
}

impl Timer {
    pub fn new(cb: impl FnMut() -> Again + 'static) -> Timer {
        let log = Log::cycle();
        let inner = Box::into_raw(Box::new(Inner {
            // SAFETY: ngx_event_t is a plain C struct; all-zero is its initial state in nginx too.
            ev: unsafe { mem::zeroed() },
            cb: RefCell::new(Box::new(cb)),
            running: Cell::new(false),
            orphaned: Cell::new(false),
        }));
        // SAFETY: inner was just allocated and stays valid until Drop (or the callback's end).
        unsafe {
            (*inner).ev.data = inner.cast();
            (*inner).ev.handler = Some(on_timer);
            (*inner).ev.log = log.raw();
            (*inner).ev.set_cancelable(1);
        }
        Timer { inner }
    }

    /// Arms (or re-arms) the timer.
    pub fn arm(&self, ms: u64) {
        // SAFETY: inner is valid while self exists.
        unsafe { nginx_sys::ngx_add_timer(&mut (*self.inner).ev, ms as ngx_msec_t) }
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        // SAFETY: inner is valid until freed here or, when dropped from inside its own callback,
        // by on_timer once the callback returns.
        unsafe {
            let ev = &mut (*self.inner).ev;
            if ev.timer_set() != 0 {
                nginx_sys::ngx_del_timer(ev);
            }
            if (*self.inner).running.get() {
                (*self.inner).orphaned.set(true);
            } else {
                drop(Box::from_raw(self.inner));
            }
        }
    }
}

unsafe extern "C" fn on_timer(ev: *mut ngx_event_t) {
    // SAFETY: ev->data is the Inner this event is embedded in (set in Timer::new); it is freed
    // only by Drop while not running, or below when orphaned during the callback.
    unsafe {
        let inner = (*ev).data as *mut Inner;
        (*ev).set_timedout(0);
        (*inner).running.set(true);
        let again = match (*inner).cb.try_borrow_mut() {
            Ok(mut cb) => cb(),
            Err(_) => Again::Stop,
        };
        (*inner).running.set(false);
        if (*inner).orphaned.get() {
            drop(Box::from_raw(inner));
            return;
        }
        if let Again::After(ms) = again {
            nginx_sys::ngx_add_timer(ev, ms as ngx_msec_t);
        }
    }
}
