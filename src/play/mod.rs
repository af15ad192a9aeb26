//! `play`: video on demand, nginx-rtmp-module's `play DIR|http://URL ...`. A play whose name is
//! an FLV or MP4 file in a play directory is sent from the file (read by `rtmp_proto::vod`); a
//! name found in no directory is fetched from the `http://` entries and played while it
//! downloads (`remote`).

pub mod conf;
mod handlers;
mod names;
mod remote;
mod source;

use std::ptr::{addr_of, addr_of_mut};

use nginx_sys::{ngx_command_t, ngx_module_t};

use crate::core::hooks_mut;
use crate::ngx::conf::{directive, Conf};
use crate::ngx::module::{
    NoConf, RtmpModule, RtmpModuleCtx, NGX_RTMP_RS_MODULE, RTMP_APP_CONF, RTMP_APP_CONF_OFFSET,
    RTMP_MAIN_CONF, RTMP_SRV_CONF,
};
pub use conf::PlayAppConf;

pub struct PlayModule;

impl RtmpModule for PlayModule {
    type MainConf = NoConf;
    type SrvConf = NoConf;
    type AppConf = PlayAppConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_play_module) }
    }

    fn postconfiguration(cf: &Conf) -> Result<(), String> {
        let h = hooks_mut(cf);
        h.play.push(handlers::play);
        h.play_unhandled.push(handlers::play_unhandled);
        h.seek.push(handlers::seek);
        h.pause.push(handlers::pause);
        h.close_stream.push(handlers::close_stream);
        h.disconnect.push(handlers::disconnect);
        Ok(())
    }
}

static PLAY_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<PlayModule>();

const TAKE1: u32 = nginx_sys::NGX_CONF_TAKE1;
const MORE1: u32 = nginx_sys::NGX_CONF_1MORE;
const RSA: u32 = RTMP_MAIN_CONF | RTMP_SRV_CONF | RTMP_APP_CONF;
const OFF: usize = RTMP_APP_CONF_OFFSET;

static mut PLAY_COMMANDS: [ngx_command_t; 4] = [
    directive::<conf::Play, PlayAppConf>(c"play", RSA | MORE1, OFF),
    directive::<conf::PlayPath<false>, PlayAppConf>(c"play_temp_path", RSA | TAKE1, OFF),
    directive::<conf::PlayPath<true>, PlayAppConf>(c"play_local_path", RSA | TAKE1, OFF),
    ngx_command_t::empty(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_play_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(PLAY_CTX) as *mut _,
    commands: addr_of_mut!(PLAY_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    ..ngx_module_t::default()
};
