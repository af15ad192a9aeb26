//! The DASH module's hooks: a publish that live accepted starts a writer for the stream, its
//! audio and video feed it, closing the stream or the connection finishes it; with
//! `dash_cleanup` its files go once players can no longer ask for them.

use std::path::PathBuf;

use crate::core::hooks::{PublishReq, Step};
use crate::core::output::{self, StreamWriter};
use crate::core::session::Session;
use crate::ngx::now_ms;
use crate::ngx::timer::{Again, Timer};
use crate::{log_error, log_info};

use super::conf::DashAppConf;
use super::writer::DashWriter;
use super::DashModule;

/// The writer and what its cleanup needs.
pub struct DashCtx {
    writer: DashWriter,
    generation: u64,
    keep_ms: u64,
    cleanup: bool,
}

fn app_conf(s: &Session) -> Option<&'static DashAppConf> {
    s.app_ctx.map(|a| a.app::<DashModule>()).filter(|c| c.dash())
}

/// Before live: a name that cannot be a file name is refused before anything is written.
pub fn publish(s: &mut Session, req: &PublishReq) -> Step {
    if app_conf(s).is_none() {
        return Step::Continue;
    }
    output::refuse_file_name(s, req, "dash")
}

/// After live accepted the publish.
pub fn published(s: &mut Session, req: &PublishReq) -> Step {
    let Some(conf) = app_conf(s) else { return Step::Continue };
    output::end::<DashCtx>(s, None);
    match DashWriter::start(conf, &req.name, s.log) {
        Ok(writer) => {
            let main = s.srv_ctx.main::<DashModule>();
            let generation = main.next_generation(writer.mpd_path());
            log_info!(s.log, "dash: \"{}\" writes \"{}\"", req.name, writer.mpd_path().display());
            let keep_ms = conf.playlist_length_ms() + 2 * conf.fragment_ms();
            output::keep(s, req.stream_id, DashCtx { writer, generation, keep_ms, cleanup: conf.cleanup() });
        }
        Err(e) => log_error!(s.log, "dash: \"{}\": {}; no DASH for this stream", req.name, e),
    }
    Step::Continue
}

impl StreamWriter for DashCtx {
    fn audio(&mut self, timestamp: u32, body: &[u8]) {
        self.writer.audio(timestamp, body)
    }
    fn video(&mut self, timestamp: u32, body: &[u8]) {
        self.writer.video(timestamp, body)
    }
    fn finish(mut self, s: &mut Session) {
        self.writer.finish();
        if self.cleanup {
            let main = s.srv_ctx.main::<DashModule>();
            main.schedule(self.writer.mpd_path(), self.generation, self.writer.files(), self.keep_ms);
        }
    }
}

/// Files of ended streams, deleted once players can no longer ask for them, unless the stream
/// was published again meanwhile (then only its old segments go).
#[derive(Default)]
pub struct Cleanup {
    pending: std::rc::Rc<std::cell::RefCell<Vec<Pending>>>,
    timer: std::cell::RefCell<Option<Timer>>,
}

struct Pending {
    at: u64,
    mpd: PathBuf,
    generation: u64,
    files: Vec<PathBuf>,
}

impl super::DashMainConf {
    fn next_generation(&self, mpd: PathBuf) -> u64 {
        let mut g = self.generations.borrow_mut();
        let n = g.get(&mpd).map_or(1, |n| n + 1);
        g.insert(mpd, n);
        n
    }

    fn schedule(&'static self, mpd: PathBuf, generation: u64, files: Vec<PathBuf>, after_ms: u64) {
        self.cleanup.pending.borrow_mut().push(Pending { at: now_ms() + after_ms, mpd, generation, files });
        let mut timer = self.cleanup.timer.borrow_mut();
        if timer.is_some() {
            return;
        }
        let t = Timer::new(move || {
            let now = now_ms();
            let Ok(mut list) = self.cleanup.pending.try_borrow_mut() else { return Again::After(1000) };
            let generations = self.generations.borrow();
            list.retain(|p| {
                if p.at > now {
                    return true;
                }
                let republished = generations.get(&p.mpd).is_some_and(|g| *g != p.generation);
                for f in &p.files {
                    // A new publish of the name owns its MPD and init segments now.
                    let shared = *f == p.mpd || f.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.contains("init."));
                    if republished && shared {
                        continue;
                    }
                    let _ = std::fs::remove_file(f);
                }
                false
            });
            if list.is_empty() {
                Again::Stop
            } else {
                Again::After(1000)
            }
        });
        t.arm(after_ms.max(1));
        *timer = Some(t);
    }
}
