//! `dash on`: live MPEG-DASH (a dynamic MPD by the DASH-IF live rules, CMAF segments per track)
//! written to `dash_path` while a stream is published, with nginx-rtmp-module's directives;
//! nginx's own HTTP side serves the files. The packaging and the MPD are sans-IO in
//! `rtmp_proto::cmaf` and `rtmp_proto::dash`.

mod conf;
mod handlers;
mod writer;

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::PathBuf;
use std::ptr::{addr_of, addr_of_mut};

use nginx_sys::{ngx_command_t, ngx_module_t};

use crate::core::{hooks_mut, CoreModule};
use crate::ngx::conf::Conf;
use crate::ngx::module::{
    NoConf, RtmpModule, RtmpModuleCtx, NGX_RTMP_RS_MODULE, RTMP_APP_CONF, RTMP_APP_CONF_OFFSET, RTMP_MAIN_CONF, RTMP_SRV_CONF,
};
use crate::slot;
use conf::DashAppConf;

/// Per worker: which publish owns each MPD now, and files waiting for deletion.
#[derive(Default)]
pub struct DashMainConf {
    generations: RefCell<HashMap<PathBuf, u64>>,
    cleanup: handlers::Cleanup,
}

pub struct DashModule;

impl RtmpModule for DashModule {
    type MainConf = DashMainConf;
    type SrvConf = NoConf;
    type AppConf = DashAppConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_dash_module) }
    }

    fn postconfiguration(cf: &Conf) -> Result<(), String> {
        let main = crate::ngx::block::current_ctx(cf).main::<CoreModule>();
        for srv in &main.servers {
            for (name, app) in &srv.srv::<CoreModule>().applications {
                let c = app.app::<DashModule>();
                if c.dash() && c.path().is_empty() {
                    return Err(format!("\"dash\" is on in application \"{name}\" but \"dash_path\" is not set"));
                }
                if c.dash() && c.clock() == conf::Clock::Ntp {
                    cf.warn(&format!("application \"{name}\": \"dash_clock_compensation ntp\" is not supported by dash.js; the MPD carries the server's time instead"));
                }
            }
        }
        let h = hooks_mut(cf);
        h.publish.push(handlers::publish);
        h.published.push(handlers::published);
        h.media.push(crate::core::output::feed::<handlers::DashCtx>);
        h.close_stream.push(crate::core::output::close_stream::<handlers::DashCtx>);
        h.disconnect.push(crate::core::output::disconnect::<handlers::DashCtx>);
        Ok(())
    }
}

static DASH_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<DashModule>();

const TAKE1: u32 = nginx_sys::NGX_CONF_TAKE1;
const FLAG: u32 = nginx_sys::NGX_CONF_FLAG;
const RSA: u32 = RTMP_MAIN_CONF | RTMP_SRV_CONF | RTMP_APP_CONF;
const OFF: usize = RTMP_APP_CONF_OFFSET;

static mut DASH_COMMANDS: [ngx_command_t; 9] = [
    slot!(DashAppConf, dash, c"dash", RSA | FLAG, OFF),
    slot!(DashAppConf, path, c"dash_path", RSA | TAKE1, OFF),
    slot!(DashAppConf, fragment, c"dash_fragment", RSA | TAKE1, OFF),
    slot!(DashAppConf, playlist_length, c"dash_playlist_length", RSA | TAKE1, OFF),
    slot!(DashAppConf, nested, c"dash_nested", RSA | FLAG, OFF),
    slot!(DashAppConf, cleanup, c"dash_cleanup", RSA | FLAG, OFF),
    slot!(DashAppConf, clock, c"dash_clock_compensation", RSA | TAKE1, OFF),
    slot!(DashAppConf, clock_uri, c"dash_clock_helper_uri", RSA | TAKE1, OFF),
    ngx_command_t::empty(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_dash_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(DASH_CTX) as *mut _,
    commands: addr_of_mut!(DASH_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    ..ngx_module_t::default()
};
