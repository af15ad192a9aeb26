//! `hls on`: live HLS (MPEG-TS segments, or fMP4 ones with `hls_fragment_type fmp4`, and M3U8 playlists) written to `hls_path` while a stream
//! is published, with nginx-rtmp-module's directives; nginx's own HTTP side serves the files.

mod cleanup;
mod conf;
mod fmp4;
mod handlers;
mod names;
mod writer;

use std::ptr::{addr_of, addr_of_mut};

use nginx_sys::{ngx_command_t, ngx_module_t};

use crate::core::{hooks_mut, CoreModule};
use crate::ngx::conf::{directive, Conf};
use crate::ngx::module::{
    RtmpModule, RtmpModuleCtx, NGX_RTMP_RS_MODULE, RTMP_APP_CONF, RTMP_APP_CONF_OFFSET, RTMP_MAIN_CONF, RTMP_SRV_CONF,
};
use crate::slot;
pub use conf::{HlsAppConf, HlsMainConf};
/// For Low-Latency HLS (`llhls`), which muxes its parts the same way.
pub use fmp4::{append_renumbered, merge_inits};
/// Deletes files later (llhls uses it for the files of ended streams).
pub use cleanup::Cleanup;

pub struct HlsModule;

impl RtmpModule for HlsModule {
    type MainConf = HlsMainConf;
    type SrvConf = conf::HlsSrvConf;
    type AppConf = HlsAppConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_hls_module) }
    }

    fn postconfiguration(cf: &Conf) -> Result<(), String> {
        let main = crate::ngx::block::current_ctx(cf).main::<CoreModule>();
        for srv in &main.servers {
            for (name, app) in &srv.srv::<CoreModule>().applications {
                let c = app.app::<HlsModule>();
                if c.hls() && c.path.as_deref().unwrap_or_default().is_empty() {
                    return Err(format!("\"hls\" is on in application \"{name}\" but \"hls_path\" is not set"));
                }
            }
        }
        let h = hooks_mut(cf);
        h.publish.push(handlers::publish);
        h.published.push(handlers::published);
        h.media.push(crate::core::output::feed::<writer::HlsWriter>);
        h.close_stream.push(crate::core::output::close_stream::<writer::HlsWriter>);
        h.disconnect.push(crate::core::output::disconnect::<writer::HlsWriter>);
        Ok(())
    }
}

static HLS_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<HlsModule>();

const TAKE1: u32 = nginx_sys::NGX_CONF_TAKE1;
const FLAG: u32 = nginx_sys::NGX_CONF_FLAG;
const MORE1: u32 = nginx_sys::NGX_CONF_1MORE;
const RSA: u32 = RTMP_MAIN_CONF | RTMP_SRV_CONF | RTMP_APP_CONF;
const OFF: usize = RTMP_APP_CONF_OFFSET;

static mut HLS_COMMANDS: [ngx_command_t; 24] = [
    slot!(HlsAppConf, hls, c"hls", RSA | FLAG, OFF),
    slot!(HlsAppConf, path, c"hls_path", RSA | TAKE1, OFF),
    slot!(HlsAppConf, fragment, c"hls_fragment", RSA | TAKE1, OFF),
    slot!(HlsAppConf, max_fragment, c"hls_max_fragment", RSA | TAKE1, OFF),
    slot!(HlsAppConf, playlist_length, c"hls_playlist_length", RSA | TAKE1, OFF),
    slot!(HlsAppConf, sync, c"hls_sync", RSA | TAKE1, OFF),
    slot!(HlsAppConf, muxdelay, c"hls_muxdelay", RSA | TAKE1, OFF),
    slot!(HlsAppConf, continuous, c"hls_continuous", RSA | FLAG, OFF),
    slot!(HlsAppConf, nested, c"hls_nested", RSA | FLAG, OFF),
    slot!(HlsAppConf, base_url, c"hls_base_url", RSA | TAKE1, OFF),
    slot!(HlsAppConf, cleanup, c"hls_cleanup", RSA | FLAG, OFF),
    slot!(HlsAppConf, naming, c"hls_fragment_naming", RSA | TAKE1, OFF),
    slot!(HlsAppConf, granularity, c"hls_fragment_naming_granularity", RSA | TAKE1, OFF),
    slot!(HlsAppConf, slicing, c"hls_fragment_slicing", RSA | TAKE1, OFF),
    slot!(HlsAppConf, kind, c"hls_type", RSA | TAKE1, OFF),
    slot!(HlsAppConf, max_audio_delay, c"hls_max_audio_delay", RSA | TAKE1, OFF),
    slot!(HlsAppConf, audio_buffer_size, c"hls_audio_buffer_size", RSA | TAKE1, OFF),
    slot!(HlsAppConf, keys, c"hls_keys", RSA | FLAG, OFF),
    slot!(HlsAppConf, key_path, c"hls_key_path", RSA | TAKE1, OFF),
    slot!(HlsAppConf, key_url, c"hls_key_url", RSA | TAKE1, OFF),
    slot!(HlsAppConf, fragments_per_key, c"hls_fragments_per_key", RSA | TAKE1, OFF),
    slot!(HlsAppConf, fragment_type, c"hls_fragment_type", RSA | TAKE1, OFF),
    directive::<conf::VariantDirective, HlsAppConf>(c"hls_variant", RSA | MORE1, OFF),
    ngx_command_t::empty(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_hls_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(HLS_CTX) as *mut _,
    commands: addr_of_mut!(HLS_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    ..ngx_module_t::default()
};
