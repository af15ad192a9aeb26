//! Record confs: nginx-rtmp-module's `record*` directives (rtmp, server, application and
//! `recorder {}` levels, merged downwards) and the recorder list of an application.

use crate::ngx::conf::{merge, Conf, ConfValue, Directive, Msec, Size};
use crate::ngx::module::{CtxRef, Merge};

use super::RecordModule;

/// `record` flags.
pub const AUDIO: u32 = 1;
pub const VIDEO: u32 = 2;
pub const KEYFRAMES: u32 = 4;
pub const MANUAL: u32 = 8;

/// `record off|all|audio|video|keyframes|manual ...` (combinable; `off` alone is 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RecordFlags(pub u32);

impl ConfValue for RecordFlags {
    fn parse(args: &[&[u8]]) -> Result<Self, &'static std::ffi::CStr> {
        let mut f = 0;
        for a in args {
            f |= match a.to_ascii_lowercase().as_slice() {
                b"off" => 0,
                b"all" => AUDIO | VIDEO,
                b"audio" => AUDIO,
                b"video" => VIDEO,
                b"keyframes" => KEYFRAMES,
                b"manual" => MANUAL,
                _ => return Err(c"invalid value, it must be \"off\", \"all\", \"audio\", \"video\", \"keyframes\" or \"manual\""),
            };
        }
        Ok(RecordFlags(f))
    }
}

#[derive(Default)]
pub struct RecordAppConf {
    pub record: Option<RecordFlags>,
    pub path: Option<String>,
    pub suffix: Option<String>,
    pub unique: Option<bool>,
    pub append: Option<bool>,
    pub lock: Option<bool>,
    pub max_size: Option<Size>,
    pub max_frames: Option<Size>,
    pub interval: Option<Msec>,
    pub notify: Option<bool>,
    /// `recorder NAME { … }` blocks of this application, in order.
    pub recorders: Vec<(String, CtxRef)>,
}

impl RecordAppConf {
    pub fn flags(&self) -> u32 {
        self.record.map_or(0, |f| f.0)
    }
    /// The directory, as nginx resolved it against the prefix.
    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or("")
    }
    pub fn suffix(&self) -> &str {
        self.suffix.as_deref().unwrap_or(".flv")
    }
    pub fn unique(&self) -> bool {
        self.unique.unwrap_or(false)
    }
    pub fn append(&self) -> bool {
        self.append.unwrap_or(false)
    }
    pub fn lock(&self) -> bool {
        self.lock.unwrap_or(false)
    }
    pub fn max_size(&self) -> u64 {
        self.max_size.map_or(0, |s| s.0)
    }
    pub fn max_frames(&self) -> u64 {
        self.max_frames.map_or(0, |s| s.0)
    }
    pub fn interval_ms(&self) -> Option<u64> {
        self.interval.map(|m| m.0)
    }
    pub fn notify(&self) -> bool {
        self.notify.unwrap_or(false)
    }
}

impl Merge for RecordAppConf {
    fn merge(&mut self, prev: &Self, _cf: &Conf) -> Result<(), String> {
        merge(&mut self.record, &prev.record);
        merge(&mut self.path, &prev.path);
        merge(&mut self.suffix, &prev.suffix);
        merge(&mut self.unique, &prev.unique);
        merge(&mut self.append, &prev.append);
        merge(&mut self.lock, &prev.lock);
        merge(&mut self.max_size, &prev.max_size);
        merge(&mut self.max_frames, &prev.max_frames);
        merge(&mut self.interval, &prev.interval);
        merge(&mut self.notify, &prev.notify);
        Ok(())
    }
}

/// `record …`: may be given more than once at a level, the flags add up (as the C module's
/// bitmask slot: `record all; record keyframes;`).
pub struct Record;

impl Directive<RecordAppConf> for Record {
    fn set(cf: &Conf, conf: &mut RecordAppConf) -> Result<(), String> {
        let f = RecordFlags::parse(&cf.args()).map_err(|e| {
            let words: Vec<String> = cf.args().iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            format!("invalid value \"{}\" in \"record\" directive, {}", words.join(" "), e.to_string_lossy().trim_start_matches("invalid value, "))
        })?;
        conf.record = Some(RecordFlags(conf.record.map_or(0, |r| r.0) | f.0));
        if f.0 == MANUAL && conf.record.is_some_and(|r| r.0 == MANUAL) {
            cf.warn("\"record manual\" alone records nothing (as in nginx-rtmp-module): use \"record all manual\"");
        }
        Ok(())
    }
}

/// `record_path DIR`: resolved against nginx's prefix and created at start (owned by the worker
/// user) when missing — the C module silently records nothing into a missing directory.
pub struct RecordPath;

impl Directive<RecordAppConf> for RecordPath {
    fn set(cf: &Conf, conf: &mut RecordAppConf) -> Result<(), String> {
        if conf.path.is_some() {
            return Err("\"record_path\" directive is duplicate".into());
        }
        let args = cf.args();
        let [dir] = args.as_slice() else {
            return Err("invalid number of arguments in \"record_path\" directive".into());
        };
        conf.path = Some(cf.directory(&String::from_utf8_lossy(dir))?);
        Ok(())
    }
}

/// `recorder NAME { … }`: a recorder of its own, inheriting the application's settings.
pub struct RecorderBlock;

impl Directive<RecordAppConf> for RecorderBlock {
    fn set(cf: &Conf, conf: &mut RecordAppConf) -> Result<(), String> {
        let args = cf.args();
        let name = String::from_utf8_lossy(args.first().copied().unwrap_or_default()).into_owned();
        if name.is_empty() || conf.recorders.iter().any(|(n, _)| *n == name) {
            return Err(format!("duplicate or empty recorder name \"{name}\""));
        }
        let ctx = crate::core::conf::nested_app_block(cf)?;
        conf.recorders.push((name, ctx));
        Ok(())
    }
}

/// The recorders of an application: its `recorder` blocks, then its own `record` (named "") when
/// that records anything.
pub fn recorders(app: CtxRef) -> Vec<(String, CtxRef)> {
    let conf = app.app::<RecordModule>();
    let mut out = conf.recorders.clone();
    if conf.flags() != 0 {
        out.push((String::new(), app));
    }
    out
}
