//! The stat location's answer: every worker's snapshot merged, rendered as configured.

use nginx_sys::ngx_int_t;
use rtmp_proto::stat::{self, Global};

use crate::ngx::http::{Content, Request};

use super::{snapshot, Format, StatHttpModule};

pub struct StatPage;

impl Content for StatPage {
    fn handle(r: Request) -> ngx_int_t {
        if !r.is_get() && !r.is_head() {
            return r.status(405);
        }
        let conf = r.loc_conf::<StatHttpModule>();
        let mut workers = vec![snapshot::publish()];
        workers.extend(snapshot::others());
        let mut all = stat::merge(&workers);
        all.pid = std::process::id();
        let g = Global {
            nginx_version: nginx_sys::NGINX_VERSION.to_string_lossy().into_owned(),
            compiler: nginx_sys::NGX_COMPILER.to_string_lossy().trim().to_string(),
            built: concat!("nginx-rtmp-rs ", env!("CARGO_PKG_VERSION")).into(),
            pid: std::process::id(),
            uptime_s: snapshot::uptime_s(),
        };
        let mask = conf.mask.unwrap_or(stat::ALL);
        let (ct, body) = match conf.format.map_or(Format::Xml, |f| f.0) {
            Format::Xml => ("text/xml", stat::render_xml(&g, &all, conf.stylesheet.as_deref(), mask)),
            Format::Json => ("application/json", stat::render_json(&g, &all, mask)),
            Format::Prometheus => ("text/plain; version=0.0.4; charset=utf-8", stat::render_prometheus(&g, &all)),
        };
        r.respond(200, Some(ct), body.as_bytes())
    }
}
