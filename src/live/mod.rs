//! `live on`: one publisher per stream name and application, any number of players, chunk bytes
//! encoded once per message and shared by every player.

mod conf;
mod encodings;
mod gop;
mod handlers;
mod meta;
mod stream;
pub mod view;

use std::ptr::{addr_of, addr_of_mut};

use nginx_sys::{ngx_command_t, ngx_module_t};

use crate::core::hooks_mut;
use crate::ngx::conf::Conf;
use crate::ngx::module::{
    RtmpModule, RtmpModuleCtx, NGX_RTMP_RS_MODULE, RTMP_APP_CONF, RTMP_APP_CONF_OFFSET, RTMP_MAIN_CONF,
    RTMP_MAIN_CONF_OFFSET, RTMP_SRV_CONF,
};
use crate::slot;
pub use conf::{LiveAppConf, LiveMainConf, Meta};

pub struct LiveModule;

impl RtmpModule for LiveModule {
    type MainConf = LiveMainConf;
    type SrvConf = conf::LiveSrvConf;
    type AppConf = LiveAppConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_live_module) }
    }

    fn postconfiguration(cf: &Conf) -> Result<(), String> {
        // Links between workers publish and play like clients.
        for internal in [false, true] {
            let h = if internal { crate::core::internal_hooks_mut(cf) } else { hooks_mut(cf) };
            h.publish.push(handlers::publish);
            h.play.push(handlers::play);
            h.media.push(handlers::media);
            h.close_stream.push(handlers::close_stream);
            h.pause.push(handlers::pause);
            h.receive.push(handlers::receive);
            h.disconnect.push(handlers::disconnect);
        }
        Ok(())
    }
}

static LIVE_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<LiveModule>();

const TAKE1: u32 = nginx_sys::NGX_CONF_TAKE1;
const FLAG: u32 = nginx_sys::NGX_CONF_FLAG;
const RSA: u32 = RTMP_MAIN_CONF | RTMP_SRV_CONF | RTMP_APP_CONF;
const OFF: usize = RTMP_APP_CONF_OFFSET;

static mut LIVE_COMMANDS: [ngx_command_t; 21] = [
    slot!(LiveAppConf, live, c"live", RSA | FLAG, OFF),
    slot!(LiveAppConf, meta, c"meta", RSA | TAKE1, OFF),
    slot!(LiveAppConf, stream_buckets, c"stream_buckets", RSA | TAKE1, OFF),
    // nginx-rtmp-module parses `buffer` but never uses it; so do we.
    slot!(LiveAppConf, buffer, c"buffer", RSA | TAKE1, OFF),
    // `sync` re-sends an absolute timestamp once a player drifted after drops; every message we
    // send carries its absolute timestamp (chunk header type 0), so players cannot drift.
    slot!(LiveAppConf, sync, c"sync", RSA | TAKE1, OFF),
    slot!(LiveAppConf, interleave, c"interleave", RSA | FLAG, OFF),
    slot!(LiveAppConf, wait_key, c"wait_key", RSA | FLAG, OFF),
    slot!(LiveAppConf, wait_video, c"wait_video", RSA | FLAG, OFF),
    slot!(LiveAppConf, publish_notify, c"publish_notify", RSA | FLAG, OFF),
    slot!(LiveAppConf, play_restart, c"play_restart", RSA | FLAG, OFF),
    slot!(LiveAppConf, idle_streams, c"idle_streams", RSA | FLAG, OFF),
    slot!(LiveAppConf, drop_idle_publisher, c"drop_idle_publisher", RSA | TAKE1, OFF),
    slot!(LiveAppConf, publish_takeover, c"publish_takeover", RSA | FLAG, OFF),
    // Names as nginx-http-flv-module has them, so its configs carry over.
    slot!(LiveAppConf, gop_cache, c"gop_cache", RSA | FLAG, OFF),
    slot!(LiveAppConf, gop_max_frame_count, c"gop_max_frame_count", RSA | TAKE1, OFF),
    slot!(LiveAppConf, gop_max_video_count, c"gop_max_video_count", RSA | TAKE1, OFF),
    slot!(LiveAppConf, gop_max_audio_count, c"gop_max_audio_count", RSA | TAKE1, OFF),
    slot!(LiveAppConf, gop_max_size, c"gop_max_size", RSA | TAKE1, OFF),
    slot!(LiveAppConf, write_merge, c"write_merge", RSA | TAKE1, OFF),
    // One budget per worker, so only at the rtmp level.
    slot!(LiveMainConf, gop_cache_budget, c"gop_cache_budget", RTMP_MAIN_CONF | TAKE1, RTMP_MAIN_CONF_OFFSET),
    ngx_command_t::empty(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_live_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(LIVE_CTX) as *mut _,
    commands: addr_of_mut!(LIVE_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    ..ngx_module_t::default()
};
