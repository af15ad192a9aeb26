//! The exec module's hooks: a publish that was accepted runs `exec_publish` and starts the
//! `exec_push` children, a play runs `exec_play` and joins its stream's `exec_pull` children; the
//! stream's end runs the done commands and stops them. A recorder's closed file runs
//! `exec_record_done`.

use std::path::Path;

use crate::core::hooks::{PlayReq, PublishReq, RecordDone, Step};
use crate::core::session::Session;

use super::children::{self, Kind, Prepared};
use super::conf::{Event, ExecAppConf, ExecLine};
use super::ExecModule;

/// One publish or play of the session.
struct Entry {
    stream_id: u32,
    publishing: bool,
    name: String,
    args: String,
    push: Vec<u64>,
    pull: Option<(usize, String)>,
}

#[derive(Default)]
struct ExecCtx {
    entries: Vec<Entry>,
}

fn conf(s: &Session) -> Option<&'static ExecAppConf> {
    s.app_ctx.map(|a| a.app::<ExecModule>()).filter(|c| !c.is_empty())
}

fn ctx(s: &mut Session) -> &mut ExecCtx {
    if s.ext.get::<ExecCtx>().is_none() {
        s.ext.insert(ExecCtx::default());
    }
    s.ext.get_mut::<ExecCtx>().expect("inserted above")
}

/// The variables of a session's commands, by name.
struct Vars(Vec<(&'static str, String)>);

impl Vars {
    /// `$app $flashver $swfurl $tcurl $pageurl $addr`, then `$name $args` and the record ones
    /// (empty outside exec_record_done).
    fn of(s: &Session, name: &str, args: &str) -> Vars {
        let mut v = Vars(vec![
            ("app", s.info.app.clone()),
            ("flashver", s.info.flashver.clone()),
            ("swfurl", s.info.swf_url.clone()),
            ("tcurl", s.info.tc_url.clone()),
            ("pageurl", s.info.page_url.clone()),
            ("addr", s.conn.peer_addr().map(|a| a.to_string()).unwrap_or_default()),
            ("name", name.to_string()),
            ("args", args.to_string()),
        ]);
        for k in ["path", "filename", "basename", "dirname", "recorder"] {
            v.0.push((k, String::new()));
        }
        v
    }
    fn set(&mut self, k: &'static str, val: String) {
        if let Some(slot) = self.0.iter_mut().find(|(n, _)| *n == k) {
            slot.1 = val;
        }
    }
    fn get(&self, k: &str) -> Option<String> {
        self.0.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    }
}

fn prepare(ev: Event, s: &Session, name: &str, line: &ExecLine, vars: &Vars) -> Prepared {
    let what = format!("{} {}/{}", ev.directive(), s.info.app, name);
    Prepared::new(what, &line.cmd, &line.args, Some(&|k| vars.get(k)))
}

fn run_once(ev: Event, s: &Session, conf: &ExecAppConf, name: &str, vars: &Vars) {
    for line in conf.lines(ev).iter().filter(|l| l.matches(name)) {
        children::run_once(prepare(ev, s, name, line, vars));
    }
}

fn respawn_and_signal(s: &Session, conf: &ExecAppConf) -> (Option<u64>, i32) {
    let main = s.srv_ctx.main::<ExecModule>();
    (conf.respawn().then(|| main.respawn_ms()), main.kill_signal())
}

pub fn published(s: &mut Session, req: &PublishReq) -> Step {
    let Some(conf) = conf(s) else {
        return Step::Continue;
    };
    let vars = Vars::of(s, &req.name, &req.args);
    run_once(Event::Publish, s, conf, &req.name, &vars);
    let (respawn, sig) = respawn_and_signal(s, conf);
    let push = conf
        .push
        .iter()
        .filter(|l| l.matches(&req.name))
        .map(|l| children::start(Kind::Push, prepare(Event::Push, s, &req.name, l, &vars), respawn, sig))
        .collect();
    let entry = Entry {
        stream_id: req.stream_id,
        publishing: true,
        name: req.name.clone(),
        args: req.args.clone(),
        push,
        pull: None,
    };
    ctx(s).entries.push(entry);
    Step::Continue
}

pub fn play(s: &mut Session, req: &PlayReq) -> Step {
    let Some(conf) = conf(s) else {
        return Step::Continue;
    };
    let vars = Vars::of(s, &req.name, &req.args);
    run_once(Event::Play, s, conf, &req.name, &vars);
    let mut pull = None;
    if conf.pull.iter().any(|l| l.matches(&req.name)) {
        let key = (s.app_ctx.map_or(0, |a| a.id()), req.name.clone());
        let (respawn, sig) = respawn_and_signal(s, conf);
        // exec_pull knows only `$name` and `$app` (its children serve every player).
        let pvars = Vars(vec![("name", req.name.clone()), ("app", s.info.app.clone())]);
        children::pull_join(key.clone(), || {
            conf.pull
                .iter()
                .filter(|l| l.matches(&req.name))
                .map(|l| (prepare(Event::Pull, s, &req.name, l, &pvars), respawn, sig))
                .collect()
        });
        pull = Some(key);
    }
    let entry = Entry {
        stream_id: req.stream_id,
        publishing: false,
        name: req.name.clone(),
        args: req.args.clone(),
        push: Vec::new(),
        pull,
    };
    ctx(s).entries.push(entry);
    Step::Continue
}

fn finish(s: &Session, e: Entry) {
    for id in e.push {
        children::stop(id);
    }
    if let Some(key) = &e.pull {
        children::pull_leave(key);
    }
    let Some(conf) = conf(s) else { return };
    let ev = if e.publishing { Event::PublishDone } else { Event::PlayDone };
    let vars = Vars::of(s, &e.name, &e.args);
    run_once(ev, s, conf, &e.name, &vars);
}

fn take_entries(s: &mut Session, stream_id: Option<u32>) -> Vec<Entry> {
    let Some(c) = s.ext.get_mut::<ExecCtx>() else {
        return Vec::new();
    };
    let (done, keep) = std::mem::take(&mut c.entries).into_iter().partition(|e| match stream_id {
        Some(id) => e.stream_id == id,
        None => true,
    });
    c.entries = keep;
    done
}

pub fn close_stream(s: &mut Session, stream_id: u32) -> Step {
    for e in take_entries(s, Some(stream_id)) {
        finish(s, e);
    }
    Step::Continue
}

pub fn disconnect(s: &mut Session) {
    for e in take_entries(s, None) {
        finish(s, e);
    }
}

/// The lines come from the recorder's own level (a `recorder {}` block inherits the application's).
pub fn record_done(s: &mut Session, done: &RecordDone) {
    let conf = done.conf.app::<ExecModule>();
    if conf.record_done.is_empty() {
        return;
    }
    let mut vars = Vars::of(s, &done.name, &done.args);
    let p = Path::new(&done.path);
    let text = |o: Option<&std::ffi::OsStr>| o.map(|x| x.to_string_lossy().into_owned()).unwrap_or_default();
    vars.set("path", done.path.clone());
    vars.set("filename", text(p.file_name()));
    vars.set("basename", text(p.file_stem()));
    vars.set("dirname", p.parent().map(|d| d.to_string_lossy().into_owned()).unwrap_or_default());
    vars.set("recorder", done.recorder.clone());
    run_once(Event::RecordDone, s, conf, &done.name, &vars);
}
