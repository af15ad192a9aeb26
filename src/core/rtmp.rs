//! `rtmp { }`: the lifecycle of nginx's own blocks — create confs, preconfiguration, parse,
//! init main, merge server and application levels, postconfiguration, then listening sockets.

use crate::ngx::block::{self, Level, RootBlock};
use crate::ngx::conf::Conf;
use crate::ngx::listen;
use crate::ngx::module::CtxRef;

use super::session::SessionStarter;
use super::CoreModule;

pub struct RtmpBlock;

impl RootBlock for RtmpBlock {
    fn parse(cf: &Conf) -> Result<CtxRef, String> {
        let main = block::new_ctx(cf, Level::Main, None)?;
        block::preconfiguration(cf)?;
        block::parse_block(cf, main, Level::Main)?;
        block::init_main(cf, main)?;

        let servers = main.main::<CoreModule>().servers.clone();
        let mut listens = Vec::new();
        for srv in servers {
            block::merge(cf, main, srv, true)?;
            let srv_conf = srv.srv_mut::<CoreModule>(cf);
            for (_, app) in &srv_conf.applications {
                block::merge(cf, srv, *app, false)?;
                for nested in app.app::<CoreModule>().nested.clone() {
                    block::merge(cf, *app, nested, false)?;
                }
            }
            for l in &srv_conf.listens {
                let mut l = l.clone();
                l.server = srv;
                listens.push(l);
            }
        }
        block::postconfiguration(cf, main)?;
        listen::create_listening(cf, &listens, listen::on_accept::<SessionStarter>)?;
        Ok(main)
    }
}
