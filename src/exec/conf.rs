//! Exec directives with nginx-rtmp-module's syntax and defaults: command lines per event, the
//! `name=` filters of `exec_options on`, `respawn`, and the global `respawn_timeout` and
//! `exec_kill_signal`.

use std::ffi::CStr;

use crate::ngx::conf::{merge, Conf, ConfValue, Directive, Msec};
use crate::ngx::module::{app_conf_mut, Merge};
use crate::ngx::process::SIGNALS;

use super::ExecModule;

/// One configured command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecLine {
    pub cmd: String,
    /// Arguments before substitution; redirections (`2>>file`) included.
    pub args: Vec<String>,
    /// `name=` values (with `exec_options on`): the line runs only for these stream names.
    pub names: Vec<String>,
}

impl ExecLine {
    /// Whether the line runs for stream `name`. Every `name=` value counts (the C module compares
    /// only the first one).
    pub fn matches(&self, name: &str) -> bool {
        self.names.is_empty() || self.names.iter().any(|n| n == name)
    }

    fn parse(cf: &Conf, options: bool) -> Result<ExecLine, String> {
        let args = cf.args();
        let Some((cmd, rest)) = args.split_first() else {
            return Err(format!("invalid number of arguments in \"{}\" directive", cf.name()));
        };
        let mut line = ExecLine { cmd: text(cmd), args: Vec::new(), names: Vec::new() };
        for a in rest {
            match a.strip_prefix(b"name=") {
                Some(n) if options => line.names.push(text(n)),
                _ => line.args.push(text(a)),
            }
        }
        Ok(line)
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The events an application runs programs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    Push,
    Pull,
    Publish,
    PublishDone,
    Play,
    PlayDone,
    RecordDone,
}

impl Event {
    pub fn directive(self) -> &'static str {
        match self {
            Event::Push => "exec_push",
            Event::Pull => "exec_pull",
            Event::Publish => "exec_publish",
            Event::PublishDone => "exec_publish_done",
            Event::Play => "exec_play",
            Event::PlayDone => "exec_play_done",
            Event::RecordDone => "exec_record_done",
        }
    }
}

#[derive(Default)]
pub struct ExecAppConf {
    pub push: Vec<ExecLine>,
    pub pull: Vec<ExecLine>,
    pub publish: Vec<ExecLine>,
    pub publish_done: Vec<ExecLine>,
    pub play: Vec<ExecLine>,
    pub play_done: Vec<ExecLine>,
    pub record_done: Vec<ExecLine>,
    pub respawn: Option<bool>,
    /// Read while the lines of the same level are parsed (as in the C module): it is not
    /// inherited, and it must come before the lines it applies to.
    pub options: Option<bool>,
}

impl ExecAppConf {
    pub fn lines(&self, ev: Event) -> &[ExecLine] {
        match ev {
            Event::Push => &self.push,
            Event::Pull => &self.pull,
            Event::Publish => &self.publish,
            Event::PublishDone => &self.publish_done,
            Event::Play => &self.play,
            Event::PlayDone => &self.play_done,
            Event::RecordDone => &self.record_done,
        }
    }
    fn lines_mut(&mut self, ev: Event) -> &mut Vec<ExecLine> {
        match ev {
            Event::Push => &mut self.push,
            Event::Pull => &mut self.pull,
            Event::Publish => &mut self.publish,
            Event::PublishDone => &mut self.publish_done,
            Event::Play => &mut self.play,
            Event::PlayDone => &mut self.play_done,
            Event::RecordDone => &mut self.record_done,
        }
    }
    pub fn respawn(&self) -> bool {
        self.respawn.unwrap_or(true)
    }
    pub fn is_empty(&self) -> bool {
        EVENTS.iter().all(|e| self.lines(*e).is_empty())
    }
}

/// Every event an exec line can be for.
const EVENTS: [Event; 7] = [
    Event::Push,
    Event::Pull,
    Event::Publish,
    Event::PublishDone,
    Event::Play,
    Event::PlayDone,
    Event::RecordDone,
];

impl Merge for ExecAppConf {
    /// The level's own lines first, then the parent's (as the C module).
    fn merge(&mut self, prev: &Self, _cf: &Conf) -> Result<(), String> {
        for ev in EVENTS {
            let inherited = prev.lines(ev).to_vec();
            self.lines_mut(ev).extend(inherited);
        }
        merge(&mut self.respawn, &prev.respawn);
        Ok(())
    }
}

/// Global settings and the `exec_static` lines (wherever they are written).
#[derive(Default)]
pub struct ExecMainConf {
    pub statics: Vec<ExecLine>,
    pub respawn_timeout: Option<Msec>,
    pub kill_signal: Option<Signal>,
    /// Some exec line exists somewhere: workers then reap their own children.
    pub used: bool,
}

impl ExecMainConf {
    pub fn respawn_ms(&self) -> u64 {
        self.respawn_timeout.map_or(5000, |m| m.0)
    }
    pub fn kill_signal(&self) -> i32 {
        self.kill_signal.map_or(nginx_sys::SIGKILL as i32, |s| s.0)
    }
}

/// `exec_kill_signal`: a number or a signal name (case-insensitive, without "SIG").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signal(pub i32);

impl ConfValue for Signal {
    fn parse(args: &[&[u8]]) -> Result<Self, &'static CStr> {
        let [v] = args else {
            return Err(c"invalid number of arguments");
        };
        let v = String::from_utf8_lossy(v);
        if let Ok(n) = v.parse::<i32>() {
            return if (1..=64).contains(&n) { Ok(Signal(n)) } else { Err(c"invalid value") };
        }
        let name = v.strip_prefix("SIG").or_else(|| v.strip_prefix("sig")).unwrap_or(&v);
        SIGNALS
            .iter()
            .find(|(s, _)| s.eq_ignore_ascii_case(name))
            .map(|(_, n)| Signal(*n as i32))
            .ok_or(c"invalid value")
    }
}

/// `exec`, `exec_push`, `exec_pull`, `exec_publish`, …: the directive's name says the event.
pub struct ExecDirective;

impl Directive<ExecAppConf> for ExecDirective {
    fn set(cf: &Conf, conf: &mut ExecAppConf) -> Result<(), String> {
        let ev = match cf.name().as_str() {
            "exec" | "exec_push" => Event::Push,
            "exec_pull" => Event::Pull,
            "exec_publish" => Event::Publish,
            "exec_publish_done" => Event::PublishDone,
            "exec_play" => Event::Play,
            "exec_play_done" => Event::PlayDone,
            "exec_record_done" => Event::RecordDone,
            other => return Err(format!("unknown exec directive \"{other}\"")),
        };
        let line = ExecLine::parse(cf, conf.options == Some(true))?;
        conf.lines_mut(ev).push(line);
        crate::ngx::block::current_ctx(cf).main_mut::<ExecModule>(cf).used = true;
        Ok(())
    }
}

/// `exec_static`: one global list, whatever level the line is written at.
pub struct ExecStatic;

impl Directive<ExecMainConf> for ExecStatic {
    fn set(cf: &Conf, conf: &mut ExecMainConf) -> Result<(), String> {
        let level = app_conf_mut::<ExecModule>(crate::ngx::block::current_ctx(cf), cf);
        let line = ExecLine::parse(cf, level.options == Some(true))?;
        conf.statics.push(line);
        conf.used = true;
        Ok(())
    }
}
