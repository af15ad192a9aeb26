//! The stat page: a per-worker snapshot (`model`) that workers share and merge, and its three
//! renderings — arut's XML (for stat.xsl), nginx-http-flv-module's JSON, and Prometheus text.

pub mod bw;
pub mod json;
pub mod model;
pub mod prom;
pub mod xml;

pub use bw::Bandwidth;
pub use json::render_json;
pub use model::{
    merge, Application, AudioMeta, Client, Global, Meta, Recorder, Relay, Server, Stream,
    VideoMeta, Worker,
};
pub use prom::render_prometheus;
pub use xml::{parse_mask, render_xml, ALL, CLIENTS, GLOBAL, LIVE, PLAY, RECORD};
