//! `hls_low_latency on; hls_part 200ms;`: Low-Latency HLS (RFC 8216bis) beside the HLS files of
//! `hls on`: fMP4 parts of `hls_part` made from the stream as it arrives, and an HTTP handler
//! (`location /ll/ { rtmp_hls; }`) that serves the playlist with blocking reload, delta updates,
//! preload hints and rendition reports, from the state every worker shares. The static HLS files
//! stay as they are (their playlist never advertises blocking reload). The playlist state and its
//! rules are sans-IO in `rtmp_proto::hls::ll`; the parts come from `rtmp_proto::cmaf`.

mod conf;
mod handlers;
mod http;
mod mux;
mod writer;
mod zone;

use std::ptr::{addr_of, addr_of_mut};

use nginx_sys::{ngx_command_t, ngx_http_module_t, ngx_module_t};

use crate::core::{hooks_mut, CoreModule};
use crate::hls::HlsModule;
use crate::ngx::conf::{directive, Conf, Directive};
use crate::ngx::http::{http_module_ctx, set_content_handler, HttpModule, HTTP_LOC_CONF, LOC_CONF_OFFSET};
use crate::ngx::module::{
    exit_process, init_process, Merge, RtmpModule, RtmpModuleCtx, WorkerHooks, NGX_RTMP_RS_MODULE, RTMP_APP_CONF,
    RTMP_APP_CONF_OFFSET, RTMP_MAIN_CONF, RTMP_SRV_CONF,
};
use crate::ngx::shm::SlotZone;
use crate::slot;
use conf::{LlAppConf, LlLocConf};

#[derive(Default)]
pub struct LlMainConf {
    /// Declared when some application has `hls_low_latency on`.
    zone: Option<SlotZone>,
    /// The files of ended streams, deleted once players can no longer ask for them.
    cleanup: crate::hls::Cleanup,
}

impl Merge for LlMainConf {}

pub struct LlModule;

impl RtmpModule for LlModule {
    type MainConf = LlMainConf;
    type SrvConf = crate::ngx::module::NoConf;
    type AppConf = LlAppConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_llhls_module) }
    }

    fn postconfiguration(cf: &Conf) -> Result<(), String> {
        let ctx = crate::ngx::block::current_ctx(cf);
        let mut any = false;
        for srv in &ctx.main::<CoreModule>().servers {
            for (name, app) in &srv.srv::<CoreModule>().applications {
                let (ll, hls) = (app.app::<LlModule>(), app.app::<HlsModule>());
                if !ll.on() {
                    continue;
                }
                if !hls.hls() {
                    return Err(format!("\"hls_low_latency\" is on in application \"{name}\" but \"hls\" is off"));
                }
                if ll.part_ms() * 2 > hls.fragment_ms() {
                    return Err(format!(
                        "\"hls_part\" ({} ms) must be at most half of \"hls_fragment\" ({} ms) in application \"{name}\"",
                        ll.part_ms(),
                        hls.fragment_ms()
                    ));
                }
                any = true;
            }
        }
        if any {
            let zone = SlotZone::declare_shared(cf, c"ngx_rtmp_rs_llhls", zone::SLOTS, zone::SLOT_SIZE, Self::module())?;
            ctx.main_mut::<LlModule>(cf).zone = Some(zone);
        }
        let h = hooks_mut(cf);
        h.published.push(handlers::published);
        h.media.push(crate::core::output::feed::<writer::LlWriter>);
        h.close_stream.push(crate::core::output::close_stream::<writer::LlWriter>);
        h.disconnect.push(crate::core::output::disconnect::<writer::LlWriter>);
        Ok(())
    }
}

impl WorkerHooks for LlModule {
    fn init() {}
    fn exit() {
        zone::release_all();
    }
}

static LL_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<LlModule>();

const RSA: u32 = RTMP_MAIN_CONF | RTMP_SRV_CONF | RTMP_APP_CONF;

static mut LL_COMMANDS: [ngx_command_t; 3] = [
    slot!(LlAppConf, low_latency, c"hls_low_latency", RSA | nginx_sys::NGX_CONF_FLAG, RTMP_APP_CONF_OFFSET),
    directive::<conf::PartDirective, LlAppConf>(c"hls_part", RSA | nginx_sys::NGX_CONF_TAKE1, RTMP_APP_CONF_OFFSET),
    ngx_command_t::empty(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_llhls_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(LL_CTX) as *mut _,
    commands: addr_of_mut!(LL_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    init_process: Some(init_process::<LlModule>),
    exit_process: Some(exit_process::<LlModule>),
    ..ngx_module_t::default()
};

/// The HTTP side: `rtmp_hls;` makes a location serve Low-Latency HLS.
pub struct LlHttpModule;

impl HttpModule for LlHttpModule {
    type LocConf = LlLocConf;
    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_llhls_http_module) }
    }
}

struct RtmpHls;

impl Directive<LlLocConf> for RtmpHls {
    fn set(cf: &Conf, conf: &mut LlLocConf) -> Result<(), String> {
        if conf.serve.is_some() {
            return Err("\"rtmp_hls\" directive is duplicate".into());
        }
        conf.serve = Some(true);
        set_content_handler::<http::LlContent>(cf);
        Ok(())
    }
}

static LL_HTTP_CTX: ngx_http_module_t = http_module_ctx::<LlHttpModule>();

static mut LL_HTTP_COMMANDS: [ngx_command_t; 2] = [
    directive::<RtmpHls, LlLocConf>(c"rtmp_hls", HTTP_LOC_CONF | nginx_sys::NGX_CONF_NOARGS, LOC_CONF_OFFSET),
    ngx_command_t::empty(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_llhls_http_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(LL_HTTP_CTX) as *mut _,
    commands: addr_of_mut!(LL_HTTP_COMMANDS) as *mut _,
    type_: crate::ngx::http::NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};
