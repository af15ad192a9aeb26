//! DASH directives with nginx-rtmp-module's names and defaults (and the sergey-dryabzhinsky
//! fork's clock directives), merged rtmp → server → application.

use crate::ngx::conf::{merge, Conf, Keyword, Kw, Msec};
use crate::ngx::module::Merge;

/// `dash_clock_compensation` (the fork's): how players learn the server's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clock {
    Off,
    Ntp,
    HttpHead,
    HttpIso,
}
impl Keyword for Clock {
    const WORDS: &'static [(&'static str, Self)] =
        &[("off", Clock::Off), ("ntp", Clock::Ntp), ("http_head", Clock::HttpHead), ("http_iso", Clock::HttpIso)];
}

#[derive(Default)]
pub struct DashAppConf {
    pub dash: Option<bool>,
    pub path: Option<String>,
    pub fragment: Option<Msec>,
    pub playlist_length: Option<Msec>,
    pub nested: Option<bool>,
    pub cleanup: Option<bool>,
    pub clock: Option<Kw<Clock>>,
    pub clock_uri: Option<String>,
}

impl DashAppConf {
    pub fn dash(&self) -> bool {
        self.dash.unwrap_or(false)
    }
    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or("")
    }
    pub fn fragment_ms(&self) -> u64 {
        self.fragment.map_or(5000, |m| m.0.max(100))
    }
    pub fn playlist_length_ms(&self) -> u64 {
        self.playlist_length.map_or(30_000, |m| m.0).max(self.fragment_ms())
    }
    pub fn nested(&self) -> bool {
        self.nested.unwrap_or(false)
    }
    pub fn cleanup(&self) -> bool {
        self.cleanup.unwrap_or(true)
    }
    pub fn clock(&self) -> Clock {
        self.clock.map_or(Clock::Off, |k| k.0)
    }
}

impl Merge for DashAppConf {
    fn merge(&mut self, prev: &Self, cf: &Conf) -> Result<(), String> {
        merge(&mut self.dash, &prev.dash);
        merge(&mut self.path, &prev.path);
        merge(&mut self.fragment, &prev.fragment);
        merge(&mut self.playlist_length, &prev.playlist_length);
        merge(&mut self.nested, &prev.nested);
        merge(&mut self.cleanup, &prev.cleanup);
        merge(&mut self.clock, &prev.clock);
        merge(&mut self.clock_uri, &prev.clock_uri);
        // Resolved against the prefix, created at start (owned by the worker user) when missing;
        // `dash on` without a path is refused once all applications are known.
        if let Some(p) = self.path.clone().filter(|p| !p.is_empty()) {
            self.path = Some(cf.directory(&p)?);
        }
        if matches!(self.clock(), Clock::HttpHead | Clock::HttpIso) && self.clock_uri.as_deref().unwrap_or("").is_empty() {
            return Err("\"dash_clock_compensation\" needs \"dash_clock_helper_uri\"".into());
        }
        Ok(())
    }
}
