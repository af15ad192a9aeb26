//! Relays: a stream of this server pulled from, or pushed to, another RTMP server over an
//! outgoing connection of the worker. The connection is a core session in the client role whose
//! local side publishes (pull) or plays (push) like any client, so live, HLS and the rest serve
//! it unchanged. Started by `push` / `pull` (static or on demand), by notify redirects to
//! `rtmp://` URLs, and between workers: a worker whose player asks for a stream another worker
//! publishes pulls it from that worker over its link socket (`core::link`).

pub mod conf;
mod directory;
mod handlers;
mod outgoing;

use std::cell::RefCell;
use std::collections::HashMap;
use std::ptr::{addr_of, addr_of_mut};
use std::rc::Weak;

use nginx_sys::{ngx_command_t, ngx_module_t};

use crate::core::hooks_mut;
use crate::core::peer::Peer;
use crate::ngx::conf::{directive, Conf};
use crate::ngx::module::{
    exit_process, init_process, RtmpModule, RtmpModuleCtx, WorkerHooks, NGX_RTMP_RS_MODULE, RTMP_APP_CONF,
    RTMP_APP_CONF_OFFSET, RTMP_MAIN_CONF, RTMP_SRV_CONF,
};
use crate::ngx::shm::SlotZone;
use crate::ngx::timer::Timer;
use crate::slot;
use conf::RelayAppConf;
use outgoing::Spec;

/// A pull under way (or waiting to reconnect): its connection and the players that use it.
pub struct Pull {
    /// Tells this pull from a later one of the same name.
    id: u64,
    spec: Spec,
    peer: Weak<Peer>,
    /// Players (connection, stream id) waiting for or watching the pulled stream.
    players: Vec<(Weak<Peer>, u32)>,
    /// Runs without players (`pull … static`): reconnects for as long as the worker runs.
    is_static: bool,
    /// It published once: a later loss reconnects instead of failing its players.
    started_once: bool,
    timer: Option<Timer>,
}

#[derive(Default)]
pub struct RelayMainConf {
    /// Pulls of this worker by (application, local stream name): one per stream.
    pulls: RefCell<HashMap<(usize, String), Pull>>,
    /// Who publishes what, for all workers (and those of the previous configuration).
    directory: Option<SlotZone>,
}

pub struct RelayModule;

impl RtmpModule for RelayModule {
    type MainConf = RelayMainConf;
    type SrvConf = crate::ngx::module::NoConf;
    type AppConf = RelayAppConf;

    fn module() -> &'static ngx_module_t {
        // SAFETY: nginx writes ctx_index/index only while loading configuration.
        unsafe { &*addr_of!(ngx_rtmp_rs_relay_module) }
    }

    fn postconfiguration(cf: &Conf) -> Result<(), String> {
        let h = hooks_mut(cf);
        h.publish.push(handlers::publish);
        h.published.push(handlers::published);
        h.play.push(handlers::play);
        h.close_stream.push(handlers::close_stream);
        h.disconnect.push(handlers::disconnect);
        // The relay's own sessions, links between workers included.
        for internal in [false, true] {
            let h = if internal { crate::core::internal_hooks_mut(cf) } else { hooks_mut(cf) };
            h.outgoing.push(outgoing::outgoing);
            h.reply.push(outgoing::reply);
            h.media.push(outgoing::media);
            h.disconnect.push(outgoing::disconnect);
        }
        // Room for the workers of two configurations (a reload: the old ones serve their
        // publishers until they leave, and the new ones pull from them).
        let workers = cf.worker_processes().unwrap_or(0).max(crate::ngx::ncpu()).clamp(1, 256);
        let slots = 2 * workers + 2;
        let zone = SlotZone::declare_shared(cf, c"ngx_rtmp_rs_streams", slots, directory::SLOT_SIZE, Self::module())?;
        crate::ngx::block::current_ctx(cf).main_mut::<RelayModule>(cf).directory = Some(zone);
        Ok(())
    }
}

impl WorkerHooks for RelayModule {
    fn init() {
        handlers::start_static_pulls();
    }
    fn exit() {
        if let Some(srv) = crate::core::running_servers().first() {
            directory::clear(*srv);
        }
    }
}

static RELAY_CTX: RtmpModuleCtx = RtmpModuleCtx::of::<RelayModule>();

const TAKE1: u32 = nginx_sys::NGX_CONF_TAKE1;
const FLAG: u32 = nginx_sys::NGX_CONF_FLAG;
const MORE1: u32 = nginx_sys::NGX_CONF_1MORE;
const RS: u32 = RTMP_MAIN_CONF | RTMP_SRV_CONF;
const RSA: u32 = RTMP_MAIN_CONF | RTMP_SRV_CONF | RTMP_APP_CONF;
const OFF: usize = RTMP_APP_CONF_OFFSET;

static mut RELAY_COMMANDS: [ngx_command_t; 10] = [
    directive::<conf::PushPull, RelayAppConf>(c"push", RTMP_APP_CONF | MORE1, OFF),
    directive::<conf::PushPull, RelayAppConf>(c"pull", RTMP_APP_CONF | MORE1, OFF),
    slot!(RelayAppConf, push_reconnect, c"push_reconnect", RSA | TAKE1, OFF),
    slot!(RelayAppConf, pull_reconnect, c"pull_reconnect", RSA | TAKE1, OFF),
    slot!(RelayAppConf, session_relay, c"session_relay", RSA | FLAG, OFF),
    slot!(RelayAppConf, relay_buffer, c"relay_buffer", RS | TAKE1, OFF),
    slot!(RelayAppConf, ssl_trusted_certificate, c"rtmp_relay_ssl_trusted_certificate", RSA | TAKE1, OFF),
    directive::<conf::ResolverDirective, RelayAppConf>(c"resolver", RSA | MORE1, OFF),
    slot!(RelayAppConf, resolver_timeout, c"resolver_timeout", RSA | TAKE1, OFF),
    ngx_command_t::empty(),
];

#[no_mangle]
#[allow(non_upper_case_globals)]
pub static mut ngx_rtmp_rs_relay_module: ngx_module_t = ngx_module_t {
    ctx: addr_of!(RELAY_CTX) as *mut _,
    commands: addr_of_mut!(RELAY_COMMANDS) as *mut _,
    type_: NGX_RTMP_RS_MODULE,
    init_process: Some(init_process::<RelayModule>),
    exit_process: Some(exit_process::<RelayModule>),
    ..ngx_module_t::default()
};
