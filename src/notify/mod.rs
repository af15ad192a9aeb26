//! Notify: nginx-rtmp-module's HTTP callbacks (`on_connect`, `on_publish`, `on_play`, the done
//! events, `on_update`, `on_disconnect`) over the non-blocking client of `netcall`; ours beside
//! them: `on_stream` (start/update/done of a published stream) and `on_meta` (codec parameters).

mod conf;
mod fields;
mod handlers;
mod meta;

use std::ptr::{addr_of, addr_of_mut};

use nginx_sys::{ngx_command_t, ngx_module_t};

use crate::core::hooks_mut;
use crate::ngx::conf::{directive, Conf};
use crate::ngx::module::{
    RtmpModule, RtmpModuleCtx, NGX_RTMP_RS_MODULE, RTMP_APP_CONF, RTMP_APP_CONF_OFFSET, RTMP_MAIN_CONF, RTMP_SRV_CONF,
};
use crate::slot;
pub use conf::{NotifyAppConf, NotifyMainConf};

pub struct NotifyModule;

#[derive(Default)]
pub struct NotifySrvConf;
impl crate::ngx::module::Merge for NotifySrvConf {}

impl RtmpModule for NotifyModule {
    type MainConf = NotifyMainConf;
    type SrvConf = NotifySrvConf;
    type AppConf = NotifyAppConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_notify_module) }
    }

    fn postconfiguration(cf: &Conf) -> Result<(), String> {
        let h = hooks_mut(cf);
        h.connect.push(handlers::connect);
        h.publish.push(handlers::publish);
        h.published.push(handlers::published);
        h.play.push(handlers::play);
        h.media.push(handlers::media);
        h.close_stream.push(handlers::close_stream);
        h.disconnect.push(handlers::disconnect);
        h.record_done.push(handlers::record_done);
        Ok(())
    }
}

static NOTIFY_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<NotifyModule>();

const TAKE1: u32 = nginx_sys::NGX_CONF_TAKE1;
const FLAG: u32 = nginx_sys::NGX_CONF_FLAG;
const RSA: u32 = RTMP_MAIN_CONF | RTMP_SRV_CONF | RTMP_APP_CONF;
const OFF: usize = RTMP_APP_CONF_OFFSET;

const fn url(name: &'static std::ffi::CStr) -> ngx_command_t {
    directive::<conf::UrlDirective, NotifyAppConf>(name, RSA | TAKE1, OFF)
}

static mut NOTIFY_COMMANDS: [ngx_command_t; 17] = [
    url(c"on_connect"),
    url(c"on_disconnect"),
    url(c"on_publish"),
    url(c"on_play"),
    url(c"on_publish_done"),
    url(c"on_play_done"),
    url(c"on_done"),
    url(c"on_update"),
    url(c"on_record_done"),
    url(c"on_stream"),
    url(c"on_meta"),
    slot!(NotifyAppConf, method, c"notify_method", RSA | TAKE1, OFF),
    slot!(NotifyAppConf, format, c"notify_format", RSA | TAKE1, OFF),
    slot!(NotifyAppConf, update_timeout, c"notify_update_timeout", RSA | TAKE1, OFF),
    slot!(NotifyAppConf, update_strict, c"notify_update_strict", RSA | FLAG, OFF),
    slot!(NotifyAppConf, relay_redirect, c"notify_relay_redirect", RSA | FLAG, OFF),
    ngx_command_t::empty(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_notify_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(NOTIFY_CTX) as *mut _,
    commands: addr_of_mut!(NOTIFY_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    ..ngx_module_t::default()
};
