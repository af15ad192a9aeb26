//! The stat page as JSON in nginx-http-flv-module's layout (`rtmp_stat_format json`), built as a
//! serde_json value so strings are JSON-escaped and arrays always have their commas.

use serde_json::{json, Map, Value};

use super::model::{Application, Client, Global, Meta, Stream, Worker};
use super::xml::{CLIENTS, LIVE, RECORD};

/// The version field winshining's dashboards read.
pub const NGINX_HTTP_FLV_VERSION: &str = "1.2.14";

pub fn render_json(g: &Global, w: &Worker, mask: u32) -> String {
    let servers: Vec<Value> = w
        .servers
        .iter()
        .map(|s| {
            json!({
                "port": s.port,
                "server_index": s.index,
                "applications": s.applications.iter().map(|a| application(a, mask)).collect::<Vec<_>>(),
            })
        })
        .collect();
    let page = json!({ "http-flv": {
        "nginx_version": g.nginx_version,
        "nginx_http_flv_version": NGINX_HTTP_FLV_VERSION,
        "compiler": g.compiler,
        "built": g.built,
        "pid": w.pid,
        "uptime": g.uptime_s,
        "naccepted": w.naccepted,
        "bw_in": w.bw_in,
        "bytes_in": w.bytes_in,
        "bw_out": w.bw_out,
        "bytes_out": w.bytes_out,
        "servers": servers,
    }});
    page.to_string()
}

fn application(a: &Application, mask: u32) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(a.name));
    if a.live && mask & LIVE != 0 {
        let streams: Vec<Value> = a.streams.iter().map(|s| stream(s, mask)).collect();
        let nclients: usize = a.streams.iter().map(|s| s.clients.len()).sum();
        m.insert(
            "live".into(),
            json!({ "streams": streams, "nclients": nclients }),
        );
    }
    if mask & RECORD != 0 {
        let lists: Vec<Value> = a
            .recorders
            .iter()
            .map(
                |r| json!({ "id": r.id, "path": r.path, "recording": r.recording, "file": r.file }),
            )
            .collect();
        m.insert(
            "recorders".into(),
            json!({ "count": lists.len(), "lists": lists }),
        );
    }
    if mask & LIVE != 0 && !a.relays.is_empty() {
        let relays: Vec<Value> = a
            .relays
            .iter()
            .map(|r| json!({ "kind": r.kind, "url": r.url, "stream": r.stream, "connected": r.connected }))
            .collect();
        m.insert("relays".into(), Value::Array(relays));
    }
    Value::Object(m)
}

fn stream(s: &Stream, mask: u32) -> Value {
    let mut m = Map::new();
    m.insert("name".into(), json!(s.name));
    m.insert("time".into(), json!(s.time_ms));
    m.insert("bw_in".into(), json!(s.bw_in));
    m.insert("bytes_in".into(), json!(s.bytes_in));
    m.insert("bw_out".into(), json!(s.bw_out));
    m.insert("bytes_out".into(), json!(s.bytes_out));
    m.insert("bw_audio".into(), json!(s.bw_audio));
    m.insert("bw_video".into(), json!(s.bw_video));
    if mask & CLIENTS != 0 {
        m.insert("clients".into(), s.clients.iter().map(client).collect());
    }
    if let Some(meta) = &s.meta {
        m.insert("meta".into(), meta_value(meta));
    }
    m.insert("nclients".into(), json!(s.clients.len()));
    m.insert("publishing".into(), json!(s.publishing));
    m.insert("active".into(), json!(s.active));
    Value::Object(m)
}

fn client(c: &Client) -> Value {
    json!({
        "id": c.id,
        "address": c.address,
        "time": c.time_ms,
        "flashver": c.flashver,
        "dropped": c.dropped,
        "avsync": c.avsync,
        "timestamp": c.timestamp,
        "publishing": c.publishing,
        "active": c.active,
    })
}

fn meta_value(meta: &Meta) -> Value {
    let mut m = Map::new();
    if let Some(v) = &meta.video {
        // One decimal, as on the XML page (3.1, not 3.0999999).
        let level = (v.level * 10.0).round() / 10.0;
        m.insert(
            "video".into(),
            json!({
                "width": v.width, "height": v.height, "frame_rate": v.frame_rate, "codec": v.codec,
                "profile": v.profile, "compat": v.compat, "level": level,
            }),
        );
    }
    if let Some(a) = &meta.audio {
        m.insert(
            "audio".into(),
            json!({ "codec": a.codec, "profile": a.profile, "channels": a.channels,
                    "sample_rate": a.sample_rate }),
        );
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stat::model::tests::{sample_global, sample_worker};
    use crate::stat::xml::ALL;

    #[test]
    fn layout_parses_back() {
        let text = render_json(&sample_global(), &sample_worker(), ALL);
        let v: Value = serde_json::from_str(&text).unwrap();
        let root = &v["http-flv"];
        assert_eq!(root["nginx_version"], "1.26.2");
        assert_eq!(root["nginx_http_flv_version"], "1.2.14");
        assert_eq!(root["pid"], 4242);
        assert_eq!(root["uptime"], 3600);
        assert_eq!(root["bytes_in"], 8_100_000);
        let srv = &root["servers"][0];
        assert_eq!(srv["port"], 1935);
        assert_eq!(srv["server_index"], 0);
        let app = &srv["applications"][0];
        assert_eq!(app["name"], "live");
        let streams = app["live"]["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 2);
        let s = &streams[0];
        assert_eq!(s["name"], "cam\"1\"");
        assert_eq!(s["time"], 65_000);
        assert_eq!(s["bw_video"], 862_000);
        assert_eq!(s["nclients"], 2);
        assert_eq!(s["publishing"], true);
        assert_eq!(s["meta"]["video"]["level"], 3.1);
        assert_eq!(s["meta"]["video"]["profile"], "High");
        assert_eq!(s["meta"]["audio"]["sample_rate"], 44100);
        let c = &s["clients"];
        assert_eq!(c[0]["avsync"], -12);
        assert_eq!(c[0]["publishing"], true);
        assert_eq!(c[1]["avsync"], Value::Null);
        assert_eq!(c[1]["active"], true);
        assert_eq!(streams[1]["publishing"], false);
        assert!(streams[1].get("meta").is_none());
        assert_eq!(app["live"]["nclients"], 2);
        assert_eq!(app["recorders"]["count"], 1);
        assert_eq!(app["recorders"]["lists"][0]["recording"], true);
        assert_eq!(app["relays"][0]["connected"], true);
    }

    #[test]
    fn mask_and_control_characters() {
        let mut w = sample_worker();
        w.servers[0].applications[0].streams[0].name = "a\u{1}\n</b>".into();
        let v: Value = serde_json::from_str(&render_json(&sample_global(), &w, LIVE)).unwrap();
        let app = &v["http-flv"]["servers"][0]["applications"][0];
        assert_eq!(app["live"]["streams"][0]["name"], "a\u{1}\n</b>");
        assert!(app["live"]["streams"][0].get("clients").is_none());
        assert!(app.get("recorders").is_none());
    }
}
