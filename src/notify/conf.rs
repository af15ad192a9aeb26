//! Notify directives with nginx-rtmp-module's names and defaults. Every URL is parsed (and its
//! host resolved) when the configuration is read, as arut does; a bad URL fails `nginx -t`.

use std::cell::RefCell;

use crate::netcall::{CallHandle, NotifyUrl};
use crate::ngx::conf::{merge, Conf, Directive, Keyword, Kw, Msec};
use crate::ngx::module::Merge;

/// `notify_method`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}
impl Keyword for Method {
    const WORDS: &'static [(&'static str, Self)] = &[("get", Method::Get), ("post", Method::Post)];
}

/// `notify_format` (ours): arut's form fields, or the same fields as one JSON object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Form,
    Json,
}
impl Keyword for Format {
    const WORDS: &'static [(&'static str, Self)] = &[("form", Format::Form), ("json", Format::Json)];
}

pub type Url = &'static NotifyUrl;

#[derive(Default)]
pub struct NotifyAppConf {
    pub on_connect: Option<Url>,
    pub on_disconnect: Option<Url>,
    pub on_publish: Option<Url>,
    pub on_play: Option<Url>,
    pub on_publish_done: Option<Url>,
    pub on_play_done: Option<Url>,
    pub on_done: Option<Url>,
    pub on_update: Option<Url>,
    pub on_record_done: Option<Url>,
    /// Ours: `call=stream event=start|update|done` for each published stream.
    pub on_stream: Option<Url>,
    /// Ours: `call=meta` with the codec parameters, when they are known and each time they change.
    pub on_meta: Option<Url>,
    pub method: Option<Kw<Method>>,
    pub format: Option<Kw<Format>>,
    pub update_timeout: Option<Msec>,
    pub update_strict: Option<bool>,
    pub relay_redirect: Option<bool>,
}

impl NotifyAppConf {
    pub fn method(&self) -> Method {
        self.method.map_or(Method::Post, |k| k.0)
    }
    pub fn format(&self) -> Format {
        self.format.map_or(Format::Form, |k| k.0)
    }
    pub fn update_timeout_ms(&self) -> u64 {
        self.update_timeout.map_or(30_000, |m| m.0).max(1)
    }
    pub fn update_strict(&self) -> bool {
        self.update_strict.unwrap_or(false)
    }
    pub fn relay_redirect(&self) -> bool {
        self.relay_redirect.unwrap_or(false)
    }
}

impl Merge for NotifyAppConf {
    fn merge(&mut self, prev: &Self, _cf: &Conf) -> Result<(), String> {
        merge(&mut self.on_connect, &prev.on_connect);
        merge(&mut self.on_disconnect, &prev.on_disconnect);
        merge(&mut self.on_publish, &prev.on_publish);
        merge(&mut self.on_play, &prev.on_play);
        merge(&mut self.on_publish_done, &prev.on_publish_done);
        merge(&mut self.on_play_done, &prev.on_play_done);
        merge(&mut self.on_done, &prev.on_done);
        merge(&mut self.on_update, &prev.on_update);
        merge(&mut self.on_record_done, &prev.on_record_done);
        merge(&mut self.on_stream, &prev.on_stream);
        merge(&mut self.on_meta, &prev.on_meta);
        merge(&mut self.method, &prev.method);
        merge(&mut self.format, &prev.format);
        merge(&mut self.update_timeout, &prev.update_timeout);
        merge(&mut self.update_strict, &prev.update_strict);
        merge(&mut self.relay_redirect, &prev.relay_redirect);
        Ok(())
    }
}

/// `on_publish http://host:port/path` and the other callback URLs: the directive's name says
/// which field it sets.
pub struct UrlDirective;
impl Directive<NotifyAppConf> for UrlDirective {
    fn set(cf: &Conf, conf: &mut NotifyAppConf) -> Result<(), String> {
        let name = cf.name();
        let args = cf.args();
        let [arg] = args.as_slice() else {
            return Err(format!("invalid number of arguments in \"{name}\" directive"));
        };
        let text = String::from_utf8_lossy(arg).into_owned();
        let slot = match name.as_str() {
            "on_connect" => &mut conf.on_connect,
            "on_disconnect" => &mut conf.on_disconnect,
            "on_publish" => &mut conf.on_publish,
            "on_play" => &mut conf.on_play,
            "on_publish_done" => &mut conf.on_publish_done,
            "on_play_done" => &mut conf.on_play_done,
            "on_done" => &mut conf.on_done,
            "on_update" => &mut conf.on_update,
            "on_record_done" => &mut conf.on_record_done,
            "on_stream" => &mut conf.on_stream,
            "on_meta" => &mut conf.on_meta,
            _ => return Err(format!("unknown notify directive \"{name}\"")),
        };
        if slot.is_some() {
            return Err(format!("\"{name}\" directive is duplicate"));
        }
        let url =
            NotifyUrl::parse(cf, &text).map_err(|e| format!("invalid URL \"{text}\" in \"{name}\" directive: {e}"))?;
        *slot = Some(cf_static(cf, url)?);
        Ok(())
    }
}

/// Keeps a parsed URL for the life of the configuration.
fn cf_static(cf: &Conf, url: NotifyUrl) -> Result<Url, String> {
    cf.alloc_static(url).ok_or_else(|| "out of memory".to_string())
}

/// Per worker: calls nobody waits for (done events, disconnect), kept until they finish.
#[derive(Default)]
pub struct NotifyMainConf {
    pub detached: RefCell<Vec<(u64, CallHandle)>>,
    pub next_id: std::cell::Cell<u64>,
}
