//! `flv_live on;` in an http location: HTTP-FLV and WebSocket-FLV players of live streams. A
//! request becomes a virtual RTMP player, so the application's hooks (access, notify, limits,
//! log, relays) run as for an RTMP `play`, and the live module sends it FLV tags.

mod play;

use std::ptr::{addr_of, addr_of_mut};

use nginx_sys::{ngx_command_t, ngx_http_module_t, ngx_module_t};

use crate::ngx::conf::{directive, merge, Conf, ConfValue, Directive};
use crate::ngx::http::{http_module_ctx, set_content_handler, HttpModule, HTTP_LOC_CONF, LOC_CONF_OFFSET};
use crate::ngx::module::Merge;

pub struct FlvLiveModule;

#[derive(Default)]
pub struct FlvLocConf {
    pub flv_live: Option<bool>,
}

impl Merge for FlvLocConf {
    fn merge(&mut self, prev: &Self, _cf: &Conf) -> Result<(), String> {
        merge(&mut self.flv_live, &prev.flv_live);
        Ok(())
    }
}

impl HttpModule for FlvLiveModule {
    type LocConf = FlvLocConf;
    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_flv_live_module) }
    }
}

/// `flv_live on|off`: the location answers with live streams.
struct FlvLive;

impl Directive<FlvLocConf> for FlvLive {
    fn set(cf: &Conf, conf: &mut FlvLocConf) -> Result<(), String> {
        if conf.flv_live.is_some() {
            return Err("\"flv_live\" directive is duplicate".into());
        }
        let on = bool::parse(&cf.args()).map_err(|e| {
            format!("invalid value in \"flv_live\" directive, {}", e.to_string_lossy().trim_start_matches("invalid value, "))
        })?;
        conf.flv_live = Some(on);
        if on {
            set_content_handler::<play::FlvContent>(cf);
        }
        Ok(())
    }
}

static FLV_CTX: ngx_http_module_t = http_module_ctx::<FlvLiveModule>();

static mut FLV_COMMANDS: [ngx_command_t; 2] = [
    directive::<FlvLive, FlvLocConf>(c"flv_live", HTTP_LOC_CONF | nginx_sys::NGX_CONF_FLAG, LOC_CONF_OFFSET),
    ngx_command_t::empty(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_flv_live_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(FLV_CTX) as *mut _,
    commands: addr_of_mut!(FLV_COMMANDS) as *mut _,
    type_: crate::ngx::http::NGX_HTTP_MODULE as _,
    ..ngx_module_t::default()
};
