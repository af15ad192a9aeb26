//! Relays: a stream of this server pulled from, or pushed to, another RTMP server over an
//! outgoing connection of the worker. The connection is a core session in the client role whose
//! local side publishes (pull) or plays (push) like any client, so live, HLS and the rest serve
//! it unchanged. Started today by notify redirects to `rtmp://` URLs.

mod handlers;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ptr::{addr_of, addr_of_mut};
use std::rc::Weak;

use nginx_sys::{ngx_command_t, ngx_module_t};

use crate::core::hooks_mut;
use crate::core::peer::Peer;
use crate::ngx::conf::Conf;
use crate::ngx::module::{RtmpModule, RtmpModuleCtx, NGX_RTMP_RS_MODULE};

/// A pull under way: its connection and the redirected players (connection, stream id) that use it.
pub struct Pull {
    peer: Weak<Peer>,
    players: Vec<(Weak<Peer>, u32)>,
}

#[derive(Default)]
pub struct RelayMainConf {
    /// Pulls of this worker by (application, local stream name): one per stream.
    pulls: RefCell<HashMap<(usize, String), Pull>>,
}


pub struct RelayModule;

impl RtmpModule for RelayModule {
    type MainConf = RelayMainConf;
    type SrvConf = crate::ngx::module::NoConf;
    type AppConf = crate::ngx::module::NoConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_relay_module) }
    }

    fn postconfiguration(cf: &Conf) -> Result<(), String> {
        let h = hooks_mut(cf);
        h.published.push(handlers::published);
        h.play.push(handlers::play);
        h.outgoing.push(handlers::outgoing);
        h.reply.push(handlers::reply);
        h.media.push(handlers::media);
        h.close_stream.push(handlers::close_stream);
        h.disconnect.push(handlers::disconnect);
        Ok(())
    }
}

static RELAY_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<RelayModule>();

static mut RELAY_COMMANDS: [ngx_command_t; 1] = [ngx_command_t::empty()];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_relay_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(RELAY_CTX) as *mut _,
    commands: addr_of_mut!(RELAY_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    ..ngx_module_t::default()
};
