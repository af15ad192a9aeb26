//! `record`: nginx-rtmp-module's recorders (`record`, `record_*`, `recorder {}`), writing FLV
//! files that play from their first byte and carry a seekable index once closed; a refused
//! publish records nothing, a write error closes the file once, names never leave `record_path`.

pub mod conf;
mod handlers;

use std::ptr::{addr_of, addr_of_mut};

use nginx_sys::{ngx_command_t, ngx_module_t};

use crate::core::hooks_mut;
use crate::ngx::conf::{directive, Conf};
use crate::ngx::module::{
    NoConf, RtmpModule, RtmpModuleCtx, NGX_RTMP_RS_MODULE, RTMP_APP_CONF, RTMP_APP_CONF_OFFSET,
    RTMP_MAIN_CONF, RTMP_SRV_CONF,
};
use crate::slot;
pub use conf::RecordAppConf;

/// Whether application `app` has a recorder named `rec` ("" for its own `record`), for the
/// control API.
pub fn has_recorder(app: crate::ngx::module::CtxRef, rec: &str) -> bool {
    conf::recorders(app).iter().any(|(n, _)| n == rec)
}

pub struct RecordModule;

impl RtmpModule for RecordModule {
    type MainConf = NoConf;
    type SrvConf = NoConf;
    type AppConf = RecordAppConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_record_module) }
    }

    fn postconfiguration(cf: &Conf) -> Result<(), String> {
        let h = hooks_mut(cf);
        h.published.push(handlers::published);
        h.media.push(handlers::media);
        h.close_stream.push(handlers::close_stream);
        h.disconnect.push(handlers::disconnect);
        h.record_control.push(|s, rec, start| {
            let _ = handlers::control(s, rec, start);
        });
        Ok(())
    }
}

static RECORD_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<RecordModule>();

const TAKE1: u32 = nginx_sys::NGX_CONF_TAKE1;
const FLAG: u32 = nginx_sys::NGX_CONF_FLAG;
const MORE1: u32 = nginx_sys::NGX_CONF_1MORE;
const RSA: u32 = RTMP_MAIN_CONF | RTMP_SRV_CONF | RTMP_APP_CONF;
const OFF: usize = RTMP_APP_CONF_OFFSET;

static mut RECORD_COMMANDS: [ngx_command_t; 12] = [
    directive::<conf::Record, RecordAppConf>(c"record", RSA | MORE1, OFF),
    directive::<conf::RecordPath, RecordAppConf>(c"record_path", RSA | TAKE1, OFF),
    slot!(RecordAppConf, suffix, c"record_suffix", RSA | TAKE1, OFF),
    slot!(RecordAppConf, unique, c"record_unique", RSA | FLAG, OFF),
    slot!(RecordAppConf, append, c"record_append", RSA | FLAG, OFF),
    slot!(RecordAppConf, lock, c"record_lock", RSA | FLAG, OFF),
    slot!(
        RecordAppConf,
        max_size,
        c"record_max_size",
        RSA | TAKE1,
        OFF
    ),
    slot!(
        RecordAppConf,
        max_frames,
        c"record_max_frames",
        RSA | TAKE1,
        OFF
    ),
    slot!(
        RecordAppConf,
        interval,
        c"record_interval",
        RSA | TAKE1,
        OFF
    ),
    slot!(RecordAppConf, notify, c"record_notify", RSA | FLAG, OFF),
    directive::<conf::RecorderBlock, RecordAppConf>(
        c"recorder",
        RTMP_APP_CONF | nginx_sys::NGX_CONF_BLOCK | TAKE1,
        OFF,
    ),
    ngx_command_t::empty(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_record_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(RECORD_CTX) as *mut _,
    commands: addr_of_mut!(RECORD_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    ..ngx_module_t::default()
};
