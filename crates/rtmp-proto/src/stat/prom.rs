//! Prometheus text exposition (format 0.0.4) of the merged stat snapshot, so no sidecar has to
//! scrape one worker's XML: base units, `_total` counters, labels `server`, `application`, `stream`.

use std::fmt::Write;

use super::model::{Application, Global, Server, Stream, Worker};

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = write!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }
    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }
    fn single(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, "", value);
    }
}

type StreamRef<'a> = (&'a Server, &'a Application, &'a Stream);

fn stream_labels((srv, app, s): StreamRef) -> String {
    format!(
        "server=\"{}\",application=\"{}\",stream=\"{}\"",
        srv.index,
        escape_label(&app.name),
        escape_label(&s.name)
    )
}

/// Per-stream families: name, type, help, value.
type StreamFamily = (&'static str, &'static str, &'static str, fn(&Stream) -> f64);

const STREAM_FAMILIES: &[StreamFamily] = &[
    (
        "nginx_rtmp_stream_received_bytes_total",
        "counter",
        "Bytes received for the stream.",
        |s| s.bytes_in as f64,
    ),
    (
        "nginx_rtmp_stream_sent_bytes_total",
        "counter",
        "Bytes sent to the stream's players.",
        |s| s.bytes_out as f64,
    ),
    (
        "nginx_rtmp_stream_receive_bits_per_second",
        "gauge",
        "Incoming bitrate over the last 10 s window.",
        |s| s.bw_in as f64,
    ),
    (
        "nginx_rtmp_stream_send_bits_per_second",
        "gauge",
        "Outgoing bitrate over the last 10 s window.",
        |s| s.bw_out as f64,
    ),
    (
        "nginx_rtmp_stream_audio_bits_per_second",
        "gauge",
        "Incoming audio bitrate.",
        |s| s.bw_audio as f64,
    ),
    (
        "nginx_rtmp_stream_video_bits_per_second",
        "gauge",
        "Incoming video bitrate.",
        |s| s.bw_video as f64,
    ),
    (
        "nginx_rtmp_stream_clients",
        "gauge",
        "Publisher and players of the stream.",
        |s| s.clients.len() as f64,
    ),
    (
        "nginx_rtmp_stream_publishing",
        "gauge",
        "1 if the stream has a publisher.",
        |s| u8::from(s.publishing).into(),
    ),
    (
        "nginx_rtmp_stream_uptime_seconds",
        "gauge",
        "Seconds since the stream was created.",
        |s| s.time_ms as f64 / 1000.0,
    ),
];

pub fn render_prometheus(g: &Global, w: &Worker) -> String {
    let mut o = Out(String::with_capacity(4096));
    let streams: Vec<StreamRef> = w
        .servers
        .iter()
        .flat_map(|srv| srv.applications.iter().map(move |app| (srv, app)))
        .flat_map(|(srv, app)| app.streams.iter().map(move |s| (srv, app, s)))
        .collect();
    let clients = || streams.iter().flat_map(|(_, _, s)| s.clients.iter());

    o.family("nginx_rtmp_info", "gauge", "nginx and module versions.");
    let info = format!(
        "nginx_version=\"{}\",version=\"{}\"",
        escape_label(&g.nginx_version),
        env!("CARGO_PKG_VERSION")
    );
    o.sample("nginx_rtmp_info", &info, 1);
    o.single(
        "nginx_rtmp_uptime_seconds",
        "gauge",
        "Seconds since the configuration was loaded.",
        g.uptime_s,
    );
    o.single(
        "nginx_rtmp_connections_accepted_total",
        "counter",
        "RTMP connections accepted.",
        w.naccepted,
    );
    o.single(
        "nginx_rtmp_received_bytes_total",
        "counter",
        "Bytes received from RTMP clients.",
        w.bytes_in,
    );
    o.single(
        "nginx_rtmp_sent_bytes_total",
        "counter",
        "Bytes sent to RTMP clients.",
        w.bytes_out,
    );
    o.single(
        "nginx_rtmp_receive_bits_per_second",
        "gauge",
        "Incoming bitrate over the last 10 s window.",
        w.bw_in,
    );
    o.single(
        "nginx_rtmp_send_bits_per_second",
        "gauge",
        "Outgoing bitrate over the last 10 s window.",
        w.bw_out,
    );
    let publishing = streams.iter().filter(|(_, _, s)| s.publishing).count();
    o.single(
        "nginx_rtmp_streams",
        "gauge",
        "Streams with a publisher.",
        publishing,
    );
    o.single(
        "nginx_rtmp_clients",
        "gauge",
        "Connected publishers and players.",
        clients().count(),
    );
    o.single(
        "nginx_rtmp_publishers",
        "gauge",
        "Connected publishers.",
        clients().filter(|c| c.publishing).count(),
    );

    if streams.is_empty() {
        return o.0;
    }
    let labels: Vec<String> = streams.iter().map(|&r| stream_labels(r)).collect();
    for &(name, kind, help, value) in STREAM_FAMILIES {
        o.family(name, kind, help);
        for (r, l) in streams.iter().zip(&labels) {
            o.sample(name, l, value(r.2));
        }
    }
    let with_video: Vec<_> = streams
        .iter()
        .zip(&labels)
        .filter_map(|(r, l)| Some((r.2.meta.as_ref()?.video.as_ref()?, l)))
        .collect();
    if !with_video.is_empty() {
        let name = "nginx_rtmp_stream_video_info";
        o.family(name, "gauge", "Video codec facts of the published stream.");
        for (v, l) in with_video {
            let l = format!(
                "{l},codec=\"{}\",profile=\"{}\",width=\"{}\",height=\"{}\"",
                escape_label(&v.codec),
                escape_label(&v.profile),
                v.width,
                v.height
            );
            o.sample(name, &l, 1);
        }
    }
    o.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stat::model::tests::{sample_global, sample_worker};
    use std::collections::HashMap;

    /// Checks the exposition rules we rely on and returns sample → value (key: `name{labels}`).
    fn check(text: &str) -> HashMap<String, f64> {
        let mut types: HashMap<String, String> = HashMap::new();
        let mut done: Vec<String> = Vec::new();
        let mut current: Option<String> = None;
        let mut samples = HashMap::new();
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# ") {
                let mut parts = rest.splitn(3, ' ');
                let (kw, name) = (parts.next().unwrap(), parts.next().unwrap().to_string());
                let arg = parts.next().unwrap();
                match kw {
                    "HELP" => assert!(
                        !types.contains_key(&name),
                        "HELP after TYPE or twice: {name}"
                    ),
                    "TYPE" => {
                        assert!(["counter", "gauge"].contains(&arg));
                        assert!(
                            types.insert(name.clone(), arg.into()).is_none(),
                            "two TYPE for {name}"
                        );
                        if let Some(prev) = current.replace(name) {
                            done.push(prev);
                        }
                    }
                    _ => panic!("bad comment {line}"),
                }
                continue;
            }
            let (key, value) = line.rsplit_once(' ').expect("name value");
            let value: f64 = value.parse().expect("numeric value");
            let name = key.split('{').next().unwrap();
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            );
            assert_eq!(
                current.as_deref(),
                Some(name),
                "sample outside its family: {line}"
            );
            assert!(!done.contains(&name.to_string()));
            if types[name] == "counter" {
                assert!(name.ends_with("_total"));
            }
            if let Some(labels) = key.strip_prefix(name).filter(|l| !l.is_empty()) {
                let inner = labels
                    .strip_prefix('{')
                    .and_then(|l| l.strip_suffix('}'))
                    .expect("braces");
                check_labels(inner);
            }
            assert!(
                samples.insert(key.to_string(), value).is_none(),
                "duplicate {key}"
            );
        }
        samples
    }

    /// `k="v",k="v"` with escapes \\ \" \n only.
    fn check_labels(mut s: &str) {
        loop {
            let eq = s.find("=\"").expect("label=");
            assert!(s[..eq]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_'));
            let mut chars = s[eq + 2..].char_indices();
            let end = loop {
                match chars.next().expect("unterminated value") {
                    (_, '\\') => assert!(matches!(chars.next(), Some((_, '\\' | '"' | 'n')))),
                    (i, '"') => break eq + 2 + i,
                    (_, '\n') => panic!("raw newline"),
                    _ => {}
                }
            };
            s = &s[end + 1..];
            if s.is_empty() {
                return;
            }
            s = s.strip_prefix(',').expect("comma between labels");
        }
    }

    #[test]
    fn exposition_is_well_formed() {
        let mut w = sample_worker();
        w.servers[0].applications[0].streams[1].name = "we\\ird\"\nname".into();
        let text = render_prometheus(&sample_global(), &w);
        let s = check(&text);
        let l = "server=\"0\",application=\"live\",stream=\"cam\\\"1\\\"\"";
        assert_eq!(s["nginx_rtmp_uptime_seconds"], 3600.0);
        assert_eq!(s["nginx_rtmp_received_bytes_total"], 8_100_000.0);
        assert_eq!(s["nginx_rtmp_streams"], 1.0);
        assert_eq!(s["nginx_rtmp_clients"], 2.0);
        assert_eq!(s["nginx_rtmp_publishers"], 1.0);
        assert_eq!(
            s[&format!("nginx_rtmp_stream_received_bytes_total{{{l}}}")],
            8_000_000.0
        );
        assert_eq!(s[&format!("nginx_rtmp_stream_clients{{{l}}}")], 2.0);
        assert_eq!(s[&format!("nginx_rtmp_stream_publishing{{{l}}}")], 1.0);
        assert_eq!(s[&format!("nginx_rtmp_stream_uptime_seconds{{{l}}}")], 65.0);
        let weird = "server=\"0\",application=\"live\",stream=\"we\\\\ird\\\"\\nname\"";
        assert_eq!(s[&format!("nginx_rtmp_stream_publishing{{{weird}}}")], 0.0);
        assert_eq!(
            s[&format!("nginx_rtmp_stream_video_info{{{l},codec=\"H264\",profile=\"High\",width=\"1280\",height=\"720\"}}")],
            1.0
        );
        assert_eq!(text.matches("nginx_rtmp_stream_video_info{").count(), 1);
        assert!(text.contains(&format!(
            "nginx_rtmp_info{{nginx_version=\"1.26.2\",version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
    }

    #[test]
    fn empty_worker() {
        let s = check(&render_prometheus(&Global::default(), &Worker::default()));
        assert_eq!(s["nginx_rtmp_clients"], 0.0);
        assert!(!s.keys().any(|k| k.starts_with("nginx_rtmp_stream_")));
    }
}
