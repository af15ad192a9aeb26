//! `hls_low_latency` and `hls_part` (application level, merged rtmp → server → application), and
//! `rtmp_hls` (an http location that serves Low-Latency HLS).

use crate::ngx::conf::{merge, Conf, ConfValue, Directive, Msec};
use crate::ngx::module::Merge;

/// The part duration when `hls_part` is not set.
pub const DEFAULT_PART_MS: u64 = 200;
/// Parts shorter than this would make more playlist requests than media.
pub const MIN_PART_MS: u64 = 50;

#[derive(Default)]
pub struct LlAppConf {
    pub low_latency: Option<bool>,
    pub part: Option<Msec>,
}

impl LlAppConf {
    pub fn on(&self) -> bool {
        self.low_latency.unwrap_or(false)
    }
    pub fn part_ms(&self) -> u64 {
        self.part.map_or(DEFAULT_PART_MS, |m| m.0)
    }
}

impl Merge for LlAppConf {
    fn merge(&mut self, prev: &Self, _cf: &Conf) -> Result<(), String> {
        merge(&mut self.low_latency, &prev.low_latency);
        merge(&mut self.part, &prev.part);
        Ok(())
    }
}

/// `hls_part <time>`: checked where it is written.
pub struct PartDirective;

impl Directive<LlAppConf> for PartDirective {
    fn set(cf: &Conf, conf: &mut LlAppConf) -> Result<(), String> {
        if conf.part.is_some() {
            return Err("\"hls_part\" directive is duplicate".into());
        }
        let v = Msec::parse(&cf.args())
            .map_err(|e| format!("{} in \"hls_part\" directive", e.to_string_lossy()))?;
        if v.0 < MIN_PART_MS {
            return Err(format!("\"hls_part\" must be at least {MIN_PART_MS}ms"));
        }
        conf.part = Some(v);
        Ok(())
    }
}

/// The http location's conf: `rtmp_hls` was given.
#[derive(Default)]
pub struct LlLocConf {
    pub serve: Option<bool>,
}

impl Merge for LlLocConf {
    fn merge(&mut self, _prev: &Self, _cf: &Conf) -> Result<(), String> {
        // A content handler belongs to its own location only (nested locations do not inherit it).
        Ok(())
    }
}
