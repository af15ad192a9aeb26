//! `rtmp_stat`: the stat page (the C module's XML, nginx-http-flv-module's JSON, Prometheus
//! text) of every worker's streams and clients. Each worker publishes a snapshot of its own in
//! shared memory as sessions come and go (and every second for the counters); the worker that
//! takes the request merges them all. The zone outlives reloads: the sessions that old workers
//! keep until they leave are on the new workers' pages.

mod page;
mod snapshot;

use std::ffi::CStr;
use std::ptr::{addr_of, addr_of_mut};

use nginx_sys::{ngx_command_t, ngx_http_module_t, ngx_module_t};

use crate::core::hooks_mut;
use crate::ngx::conf::{directive, merge, Conf, Directive, Keyword, Kw};
use crate::ngx::http::{
    http_module_ctx, set_content_handler, HttpModule, HTTP_LOC_CONF, HTTP_MAIN_CONF, HTTP_SRV_CONF, LOC_CONF_OFFSET,
};
use crate::ngx::module::{exit_process, init_process, Merge, RtmpModule, RtmpModuleCtx, WorkerHooks, NGX_RTMP_RS_MODULE};
use crate::ngx::shm::{process_slots, SlotZone};
use crate::slot;

pub use snapshot::{local_snapshot, mark_dirty};

/// The RTMP side: the shared zone, and hooks that notice sessions coming and going.
pub struct StatModule;

#[derive(Default)]
pub struct StatMainConf {
    pub zone: Option<SlotZone>,
}

impl Merge for StatMainConf {}

/// Bytes of one worker's snapshot at most (some 10 000 clients).
const SLOT_SIZE: usize = 4 << 20;

impl RtmpModule for StatModule {
    type MainConf = StatMainConf;
    type SrvConf = crate::ngx::module::NoConf;
    type AppConf = crate::ngx::module::NoConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_stat_module) }
    }

    fn postconfiguration(cf: &Conf) -> Result<(), String> {
        let h = hooks_mut(cf);
        h.connect.push(|_| snapshot::changed());
        h.published.push(|_, _| snapshot::changed());
        h.play.push(|_, _| snapshot::changed());
        h.close_stream.push(|_, _| snapshot::changed());
        h.disconnect.push(|_| {
            snapshot::changed();
        });
        // Slots taken by pid, for old and new workers (64 × 4 MiB of address space; only the
        // pages written are memory).
        let name: &'static CStr = c"ngx_rtmp_rs_stat";
        let zone = SlotZone::declare_shared(cf, name, process_slots(cf), SLOT_SIZE, Self::module())?;
        crate::ngx::block::current_ctx(cf).main_mut::<StatModule>(cf).zone = Some(zone);
        Ok(())
    }
}

static STAT_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<StatModule>();

static mut STAT_COMMANDS: [ngx_command_t; 1] = [ngx_command_t::empty()];

impl WorkerHooks for StatModule {
    fn init() {
        snapshot::start();
    }
    fn exit() {
        snapshot::stop();
    }
}

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_stat_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(STAT_CTX) as *mut _,
    commands: addr_of_mut!(STAT_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    init_process: Some(init_process::<StatModule>),
    exit_process: Some(exit_process::<StatModule>),
    ..ngx_module_t::default()
};

/// The HTTP side: `rtmp_stat`, `rtmp_stat_stylesheet`, `rtmp_stat_format`.
pub struct StatHttpModule;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Xml,
    Json,
    Prometheus,
}

impl Keyword for Format {
    const WORDS: &'static [(&'static str, Self)] =
        &[("xml", Format::Xml), ("json", Format::Json), ("prometheus", Format::Prometheus)];
}

#[derive(Default)]
pub struct StatLocConf {
    pub mask: Option<u32>,
    pub stylesheet: Option<String>,
    pub format: Option<Kw<Format>>,
}

impl Merge for StatLocConf {
    fn merge(&mut self, prev: &Self, _cf: &Conf) -> Result<(), String> {
        merge(&mut self.mask, &prev.mask);
        merge(&mut self.stylesheet, &prev.stylesheet);
        merge(&mut self.format, &prev.format);
        Ok(())
    }
}

impl HttpModule for StatHttpModule {
    type LocConf = StatLocConf;
    fn module() -> &'static ngx_module_t {
        // SAFETY: as StatModule::module.
        unsafe { &*addr_of!(ngx_rtmp_rs_stat_http_module) }
    }
}

/// `rtmp_stat all|global|live|clients|play|record ...`: this location answers with the page.
struct RtmpStat;

impl Directive<StatLocConf> for RtmpStat {
    fn set(cf: &Conf, conf: &mut StatLocConf) -> Result<(), String> {
        if conf.mask.is_some() {
            return Err("\"rtmp_stat\" directive is duplicate".into());
        }
        let words: Vec<String> = cf.args().iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        let words: Vec<&str> = words.iter().map(String::as_str).collect();
        let mask = rtmp_proto::stat::parse_mask(&words).map_err(|e| format!("\"rtmp_stat\": {e}"))?;
        conf.mask = Some(mask);
        set_content_handler::<page::StatPage>(cf);
        Ok(())
    }
}

const HTTP_ANY: u32 = HTTP_MAIN_CONF | HTTP_SRV_CONF | HTTP_LOC_CONF;

static STAT_HTTP_CTX: ngx_http_module_t = http_module_ctx::<StatHttpModule>();

static mut STAT_HTTP_COMMANDS: [ngx_command_t; 4] = [
    directive::<RtmpStat, StatLocConf>(c"rtmp_stat", HTTP_ANY | nginx_sys::NGX_CONF_1MORE, LOC_CONF_OFFSET),
    slot!(StatLocConf, stylesheet, c"rtmp_stat_stylesheet", HTTP_ANY | nginx_sys::NGX_CONF_TAKE1, LOC_CONF_OFFSET),
    slot!(StatLocConf, format, c"rtmp_stat_format", HTTP_ANY | nginx_sys::NGX_CONF_TAKE1, LOC_CONF_OFFSET),
    ngx_command_t::empty(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_stat_http_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(STAT_HTTP_CTX) as *mut _,
    commands: addr_of_mut!(STAT_HTTP_COMMANDS) as *mut _,
    type_: crate::ngx::http::NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};

