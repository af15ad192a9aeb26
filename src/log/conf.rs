//! `log_format` (formats are global, as in nginx-rtmp-module) and `access_log off|path [format]`
//! per level; a level with neither inherits its parent's, and with none at all the sessions go
//! to nginx's HTTP access log path in the `combined` format, as the C module does.

use std::cell::Cell;
use std::rc::Rc;

use crate::ngx::conf::{merge, Conf, Directive, Msec, Size};
use crate::ngx::files::LogFile;
use crate::ngx::module::Merge;

use super::format::Format;

pub struct LogMainConf {
    /// By name; `combined` is predefined.
    pub formats: Vec<(String, Rc<Format>)>,
}

impl Default for LogMainConf {
    fn default() -> Self {
        LogMainConf { formats: vec![("combined".to_string(), Rc::new(Format::combined()))] }
    }
}

/// One `access_log` target.
pub struct Target {
    pub file: LogFile,
    pub format: Rc<Format>,
    /// When a write last failed (ms), so a full disk logs one error a minute, not one a session.
    pub last_error_ms: Cell<Option<u64>>,
}

#[derive(Default)]
pub struct LogAppConf {
    pub off: bool,
    pub logs: Option<Rc<Vec<Target>>>,
    /// nginx-http-flv-module's `log_interval`: a line every interval while a session plays or
    /// publishes, not only at its end. Accepted so configs written for that fork load; not
    /// implemented yet (`nginx -t` warns), so sessions still log once, at disconnect.
    pub interval: Option<Msec>,
    /// Its `log_size`: the buffer one line is built in (longer lines are cut there). Our lines
    /// have no fixed buffer; accepted with the same warning.
    pub size: Option<Size>,
}

impl Merge for LogAppConf {
    fn merge(&mut self, prev: &Self, cf: &Conf) -> Result<(), String> {
        merge(&mut self.interval, &prev.interval);
        merge(&mut self.size, &prev.size);
        if self.off || self.logs.is_some() {
            return Ok(());
        }
        self.off = prev.off;
        self.logs = prev.logs.clone();
        if self.off || self.logs.is_some() {
            return Ok(());
        }
        let path = nginx_sys::NGX_HTTP_LOG_PATH.to_str().unwrap_or("logs/access.log");
        let target = Target {
            file: LogFile::open(cf, path)?,
            format: Rc::new(Format::combined()),
            last_error_ms: Cell::new(None),
        };
        self.logs = Some(Rc::new(vec![target]));
        Ok(())
    }
}

#[derive(Default)]
pub struct LogSrvConf;
impl Merge for LogSrvConf {}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `access_log off` or `access_log path [format]` (several targets per level are allowed).
pub struct AccessLog;
impl Directive<LogAppConf> for AccessLog {
    fn set(cf: &Conf, conf: &mut LogAppConf) -> Result<(), String> {
        let args: Vec<String> = cf.args().iter().map(|a| text(a)).collect();
        if args.first().map(String::as_str) == Some("off") {
            conf.off = true;
            return Ok(());
        }
        let (path, name) = match args.as_slice() {
            [path] => (path, "combined"),
            [path, name] => (path, name.as_str()),
            _ => return Err("invalid number of arguments in \"access_log\" directive".into()),
        };
        let main = crate::ngx::block::current_ctx(cf).main::<super::LogModule>();
        let format = main
            .formats
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, f)| f.clone())
            .ok_or_else(|| format!("unknown log format \"{name}\" in \"access_log\" directive"))?;
        let target = Target { file: LogFile::open(cf, path)?, format, last_error_ms: Cell::new(None) };
        let logs = conf.logs.get_or_insert_with(|| Rc::new(Vec::new()));
        match Rc::get_mut(logs) {
            Some(v) => v.push(target),
            None => return Err("\"access_log\" cannot be added here".into()),
        }
        Ok(())
    }
}

/// `log_format name 'text with $vars' ...`.
pub struct LogFormat;
impl Directive<LogMainConf> for LogFormat {
    fn set(cf: &Conf, conf: &mut LogMainConf) -> Result<(), String> {
        let args: Vec<String> = cf.args().iter().map(|a| text(a)).collect();
        let Some((name, parts)) = args.split_first() else {
            return Err("invalid number of arguments in \"log_format\" directive".into());
        };
        if conf.formats.iter().any(|(n, _)| n == name) {
            return Err(format!("duplicate \"log_format\" name \"{name}\""));
        }
        let format = Format::parse(parts).map_err(|e| format!("{e} in \"log_format\" directive"))?;
        conf.formats.push((name.clone(), Rc::new(format)));
        Ok(())
    }
}
