//! `hls_cleanup`: files that left a playlist are deleted only after a grace period (their
//! duration plus the playlist's), so a player never gets a 404 for a segment it was just told
//! about. One timer per worker while anything waits.

use std::cell::{Cell, RefCell};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::log_info;
use crate::ngx::log::Log;
use crate::ngx::now_ms;
use crate::ngx::timer::{Again, Timer};

const PERIOD_MS: u64 = 1_000;

#[derive(Default)]
pub struct Cleanup {
    pending: Rc<RefCell<Vec<(u64, PathBuf)>>>,
    timer: RefCell<Option<Timer>>,
    armed: Rc<Cell<bool>>,
}

impl Cleanup {
    /// Deletes `path` once `after_ms` have passed.
    pub fn schedule(&self, path: PathBuf, after_ms: u64) {
        let deadline = now_ms().saturating_add(after_ms);
        self.pending.borrow_mut().push((deadline, path));
        let mut timer = self.timer.borrow_mut();
        if timer.is_none() {
            let pending = Rc::downgrade(&self.pending);
            let armed = self.armed.clone();
            *timer = Some(Timer::new(move || {
                let Some(pending) = pending.upgrade() else { return Again::Stop };
                let Ok(mut list) = pending.try_borrow_mut() else { return Again::After(PERIOD_MS) };
                let now = now_ms();
                list.retain(|(at, path)| {
                    if *at > now {
                        return true;
                    }
                    if let Err(e) = std::fs::remove_file(path) {
                        if e.kind() != std::io::ErrorKind::NotFound {
                            log_info!(Log::cycle(), "hls: cleanup: cannot delete \"{}\": {}", path.display(), e);
                        }
                    }
                    false
                });
                if list.is_empty() {
                    armed.set(false);
                    return Again::Stop;
                }
                Again::After(PERIOD_MS)
            }));
        }
        if !self.armed.get() {
            if let Some(t) = timer.as_ref() {
                t.arm(PERIOD_MS);
                self.armed.set(true);
            }
        }
    }

    /// A file in use again (a republish continuing its playlist) must stay.
    pub fn cancel(&self, path: &Path) {
        self.pending.borrow_mut().retain(|(_, p)| p != path);
    }
}
