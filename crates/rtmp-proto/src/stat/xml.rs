//! The `rtmp_stat` XML page with arut's element tree, names, order and units, so its stat.xsl
//! and the exporters that scrape it keep working; recorders and relays are our additions.

use std::fmt::Write;

use super::model::{Application, Client, Global, Meta, Stream, Worker};

pub const GLOBAL: u32 = 0x01;
pub const LIVE: u32 = 0x02;
pub const CLIENTS: u32 = 0x04;
pub const PLAY: u32 = 0x08;
pub const RECORD: u32 = 0x10;
pub const ALL: u32 = 0xff;

/// The version stat.xsl and existing scrapers expect from the C module.
pub const NGINX_RTMP_VERSION: &str = "1.1.4";

/// Arguments of `rtmp_stat all|global|live|clients|play|record ...`, OR-ed.
pub fn parse_mask(words: &[&str]) -> Result<u32, String> {
    if words.is_empty() {
        return Err(
            "rtmp_stat needs at least one of all, global, live, clients, play, record".into(),
        );
    }
    words.iter().try_fold(0, |mask, w| {
        let bit = match w.to_ascii_lowercase().as_str() {
            "all" => ALL,
            "global" => GLOBAL,
            "live" => LIVE,
            "clients" => CLIENTS,
            "play" => PLAY,
            "record" => RECORD,
            _ => return Err(format!("invalid rtmp_stat value \"{w}\"")),
        };
        Ok(mask | bit)
    })
}

/// Control characters become spaces (as the C module does), then markup characters are escaped;
/// UTF-8 text is kept.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0'..='\x1f' | '\x7f' => out.push(' '),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Builds the page line by line with the C module's `\r\n` line ends.
struct Page(String);

impl Page {
    fn line(&mut self, s: &str) {
        self.0.push_str(s);
        self.0.push_str("\r\n");
    }
    fn leaf(&mut self, tag: &str, value: impl std::fmt::Display) {
        let _ = write!(self.0, "<{tag}>{value}</{tag}>\r\n");
    }
    fn text(&mut self, tag: &str, value: &str) {
        self.leaf(tag, escape(value));
    }
    fn text_nonempty(&mut self, tag: &str, value: &str) {
        if !value.is_empty() {
            self.text(tag, value);
        }
    }
    fn flag(&mut self, tag: &str, on: bool) {
        if on {
            let _ = write!(self.0, "<{tag}/>\r\n");
        }
    }
}

pub fn render_xml(g: &Global, w: &Worker, stylesheet: Option<&str>, mask: u32) -> String {
    let mut p = Page(String::with_capacity(4096));
    p.line(r#"<?xml version="1.0" encoding="utf-8" ?>"#);
    if let Some(href) = stylesheet {
        p.line(&format!(
            r#"<?xml-stylesheet type="text/xsl" href="{}" ?>"#,
            escape(href)
        ));
    }
    p.line("<rtmp>");
    p.text("nginx_version", &g.nginx_version);
    p.leaf("nginx_rtmp_version", NGINX_RTMP_VERSION);
    p.text_nonempty("compiler", &g.compiler);
    p.text("built", &g.built);
    p.leaf("pid", w.pid);
    p.leaf("uptime", g.uptime_s);
    p.leaf("naccepted", w.naccepted);
    p.leaf("bw_in", w.bw_in);
    p.leaf("bytes_in", w.bytes_in);
    p.leaf("bw_out", w.bw_out);
    p.leaf("bytes_out", w.bytes_out);
    for srv in &w.servers {
        p.line("<server>");
        for app in &srv.applications {
            application(&mut p, app, mask);
        }
        p.line("</server>");
    }
    p.line("</rtmp>");
    p.0
}

fn application(p: &mut Page, app: &Application, mask: u32) {
    p.line("<application>");
    p.text("name", &app.name);
    if app.live && mask & LIVE != 0 {
        p.line("<live>");
        for s in &app.streams {
            stream(p, s, mask);
        }
        p.leaf(
            "nclients",
            app.streams.iter().map(|s| s.clients.len()).sum::<usize>(),
        );
        p.line("</live>");
    }
    if mask & RECORD != 0 && !app.recorders.is_empty() {
        p.line("<recorders>");
        for r in &app.recorders {
            p.line("<recorder>");
            p.text("id", &r.id);
            p.text("path", &r.path);
            p.flag("recording", r.recording);
            p.text("file", &r.file);
            p.line("</recorder>");
        }
        p.line("</recorders>");
    }
    if mask & LIVE != 0 && !app.relays.is_empty() {
        p.line("<relays>");
        for r in &app.relays {
            p.line("<relay>");
            p.text("kind", &r.kind);
            p.text("url", &r.url);
            p.text("stream", &r.stream);
            p.flag("connected", r.connected);
            p.line("</relay>");
        }
        p.line("</relays>");
    }
    p.line("</application>");
}

fn stream(p: &mut Page, s: &Stream, mask: u32) {
    p.line("<stream>");
    p.text("name", &s.name);
    p.leaf("time", s.time_ms);
    p.leaf("bw_in", s.bw_in);
    p.leaf("bytes_in", s.bytes_in);
    p.leaf("bw_out", s.bw_out);
    p.leaf("bytes_out", s.bytes_out);
    p.leaf("bw_audio", s.bw_audio);
    p.leaf("bw_video", s.bw_video);
    if mask & CLIENTS != 0 {
        s.clients.iter().for_each(|c| client(p, c));
    }
    if let Some(m) = &s.meta {
        meta(p, m);
    }
    p.leaf("nclients", s.clients.len());
    p.flag("publishing", s.publishing);
    p.flag("active", s.active);
    p.line("</stream>");
}

fn client(p: &mut Page, c: &Client) {
    p.line("<client>");
    p.leaf("id", c.id);
    p.text("address", &c.address);
    p.leaf("time", c.time_ms);
    p.text_nonempty("flashver", &c.flashver);
    p.text_nonempty("pageurl", &c.pageurl);
    p.text_nonempty("swfurl", &c.swfurl);
    p.leaf("dropped", c.dropped);
    match c.avsync {
        Some(v) => p.leaf("avsync", v),
        None => p.leaf("avsync", ""),
    }
    p.leaf("timestamp", c.timestamp);
    p.flag("publishing", c.publishing);
    p.flag("active", c.active);
    p.line("</client>");
}

fn meta(p: &mut Page, m: &Meta) {
    p.line("<meta>");
    if let Some(v) = &m.video {
        p.line("<video>");
        p.leaf("width", v.width);
        p.leaf("height", v.height);
        p.leaf("frame_rate", v.frame_rate);
        p.text_nonempty("codec", &v.codec);
        p.text_nonempty("profile", &v.profile);
        // As in the C module, compat and level are known only once an AVC config was parsed.
        if v.level > 0.0 {
            p.leaf("compat", v.compat);
            p.leaf("level", format_args!("{:.1}", v.level));
        }
        p.line("</video>");
    }
    if let Some(a) = &m.audio {
        p.line("<audio>");
        p.text_nonempty("codec", &a.codec);
        p.text_nonempty("profile", &a.profile);
        if a.channels != 0 {
            p.leaf("channels", a.channels);
        }
        if a.sample_rate != 0 {
            p.leaf("sample_rate", a.sample_rate);
        }
        p.line("</audio>");
    }
    p.line("</meta>");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stat::model::tests::{sample_global, sample_worker};

    /// Just enough XML to check well-formedness and walk paths: elements, text, self-closing tags,
    /// the prolog's processing instructions, and the five predefined entities plus `&#NN;`.
    #[derive(Debug, Default)]
    struct Node {
        name: String,
        text: String,
        children: Vec<Node>,
    }

    impl Node {
        fn all<'a>(&'a self, path: &str) -> Vec<&'a Node> {
            let mut cur = vec![self];
            for step in path.split('/') {
                cur = cur
                    .iter()
                    .flat_map(|n| n.children.iter().filter(|c| c.name == step))
                    .collect();
            }
            cur
        }
        fn text_at(&self, path: &str) -> String {
            let found = self.all(path);
            assert_eq!(found.len(), 1, "{path}: {} matches", found.len());
            found[0].text.clone()
        }
    }

    fn unescape(s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('&') {
            out.push_str(&rest[..i]);
            let end = rest[i..].find(';').expect("unterminated entity") + i;
            let ent = &rest[i + 1..end];
            out.push(match ent {
                "amp" => '&',
                "lt" => '<',
                "gt" => '>',
                "quot" => '"',
                "apos" => '\'',
                _ => {
                    let n = ent
                        .strip_prefix('#')
                        .expect("unknown entity")
                        .parse::<u32>()
                        .unwrap();
                    char::from_u32(n).unwrap()
                }
            });
            rest = &rest[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn parse(doc: &str) -> Node {
        let mut stack = vec![Node::default()];
        let mut rest = doc;
        while !rest.is_empty() {
            let lt = rest.find('<').unwrap_or(rest.len());
            let text = &rest[..lt];
            assert!(!text.contains('>'), "stray > in {text:?}");
            stack.last_mut().unwrap().text.push_str(&unescape(text));
            rest = &rest[lt..];
            if rest.is_empty() {
                break;
            }
            let gt = rest.find('>').expect("unterminated tag");
            let tag = &rest[1..gt];
            rest = &rest[gt + 1..];
            if tag.starts_with('?') {
                assert!(tag.ends_with('?') && stack.len() == 1, "bad PI {tag}");
            } else if let Some(name) = tag.strip_prefix('/') {
                let node = stack.pop().unwrap();
                assert_eq!(node.name, name, "mismatched close tag");
                stack.last_mut().unwrap().children.push(node);
            } else if let Some(name) = tag.strip_suffix('/') {
                let node = Node {
                    name: name.into(),
                    ..Node::default()
                };
                stack.last_mut().unwrap().children.push(node);
            } else {
                assert!(
                    tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                    "bad tag {tag}"
                );
                stack.push(Node {
                    name: tag.into(),
                    ..Node::default()
                });
            }
        }
        assert_eq!(stack.len(), 1, "unclosed elements");
        let doc = stack.pop().unwrap();
        assert_eq!(doc.children.len(), 1, "one root");
        assert!(doc.text.trim().is_empty());
        doc
    }

    #[test]
    fn masks() {
        assert_eq!(parse_mask(&["all"]), Ok(0xff));
        assert_eq!(parse_mask(&["live", "clients"]), Ok(LIVE | CLIENTS));
        assert_eq!(
            parse_mask(&["record", "play", "global"]),
            Ok(RECORD | PLAY | GLOBAL)
        );
        assert!(parse_mask(&["bogus"]).is_err());
        assert!(parse_mask(&[]).is_err());
    }

    #[test]
    fn escaping() {
        assert_eq!(
            escape("a\x01b\x7fc<&>\"'é"),
            "a b c&lt;&amp;&gt;&quot;&#39;é"
        );
    }

    #[test]
    fn full_page_has_what_stat_xsl_reads() {
        let xml = render_xml(&sample_global(), &sample_worker(), Some("/stat.xsl"), ALL);
        assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\" ?>\r\n"));
        assert!(xml.contains("<?xml-stylesheet type=\"text/xsl\" href=\"/stat.xsl\" ?>\r\n"));
        assert!(xml.ends_with("</rtmp>\r\n"));
        assert!(!xml.replace("\r\n", "").contains('\n'), "bare LF");
        let doc = parse(&xml);
        let rtmp = &doc.all("rtmp")[0];
        for tag in [
            "nginx_version",
            "nginx_rtmp_version",
            "compiler",
            "built",
            "pid",
            "uptime",
        ] {
            rtmp.text_at(tag);
        }
        for tag in ["naccepted", "bw_in", "bw_out", "bytes_in", "bytes_out"] {
            rtmp.text_at(tag).parse::<u64>().unwrap();
        }
        assert_eq!(rtmp.text_at("nginx_rtmp_version"), "1.1.4");
        assert_eq!(rtmp.text_at("pid"), "4242");
        assert_eq!(rtmp.text_at("uptime"), "3600");
        let top: Vec<_> = rtmp.children.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            top,
            [
                "nginx_version",
                "nginx_rtmp_version",
                "compiler",
                "built",
                "pid",
                "uptime",
                "naccepted",
                "bw_in",
                "bytes_in",
                "bw_out",
                "bytes_out",
                "server"
            ]
        );

        let app = &rtmp.all("server/application")[0];
        assert_eq!(app.text_at("name"), "live");
        let streams = app.all("live/stream");
        assert_eq!(streams.len(), 2);
        let s = streams[0];
        assert_eq!(s.text_at("name"), "cam\"1\"");
        for tag in [
            "time",
            "bw_in",
            "bw_out",
            "bw_audio",
            "bw_video",
            "bytes_in",
            "bytes_out",
            "nclients",
        ] {
            s.text_at(tag).parse::<u64>().unwrap();
        }
        assert_eq!(s.text_at("nclients"), "2");
        assert_eq!(s.all("publishing").len(), 1);
        assert_eq!(s.all("active").len(), 1);
        for tag in ["width", "height", "frame_rate", "codec", "profile", "level"] {
            s.text_at(&format!("meta/video/{tag}"));
        }
        assert_eq!(s.text_at("meta/video/level"), "3.1");
        assert_eq!(s.text_at("meta/video/frame_rate"), "30");
        for tag in ["codec", "profile", "channels", "sample_rate"] {
            s.text_at(&format!("meta/audio/{tag}"));
        }
        let clients = s.all("client");
        assert_eq!(clients.len(), 2);
        for tag in [
            "id",
            "address",
            "flashver",
            "dropped",
            "timestamp",
            "avsync",
            "time",
        ] {
            clients[0].text_at(tag);
        }
        assert_eq!(clients[0].text_at("avsync"), "-12");
        assert_eq!(clients[1].text_at("avsync"), "");
        assert_eq!(clients[1].text_at("pageurl"), "http://example/?a=1&b=<2>");
        assert_eq!(clients[0].all("publishing").len(), 1);
        assert_eq!(clients[1].all("publishing").len(), 0);
        assert_eq!(clients[1].all("active").len(), 1);
        assert!(clients[1].all("swfurl").is_empty());

        let idle = streams[1];
        assert!(idle.all("meta").is_empty() && idle.all("publishing").is_empty());
        assert_eq!(app.text_at("live/nclients"), "2");
        assert_eq!(app.text_at("recorders/recorder/file"), "/tmp/rec/cam-1.flv");
        assert_eq!(app.all("recorders/recorder/recording").len(), 1);
        assert_eq!(app.text_at("relays/relay/kind"), "push");
        assert_eq!(app.all("relays/relay/connected").len(), 1);
    }

    #[test]
    fn masks_select_sections() {
        let (g, w) = (sample_global(), sample_worker());
        let live_only = parse(&render_xml(&g, &w, None, LIVE));
        assert_eq!(
            live_only.all("rtmp/server/application/live/stream").len(),
            2
        );
        assert!(live_only
            .all("rtmp/server/application/live/stream/client")
            .is_empty());
        assert!(live_only
            .all("rtmp/server/application/recorders")
            .is_empty());
        let global = render_xml(
            &Global {
                compiler: String::new(),
                ..g
            },
            &w,
            None,
            GLOBAL,
        );
        assert!(!global.contains("stylesheet") && !global.contains("<compiler>"));
        let global = parse(&global);
        assert!(global.all("rtmp/server/application/live").is_empty());
        assert_eq!(global.all("rtmp/server/application/name").len(), 1);
    }

    #[test]
    fn control_bytes_stay_well_formed() {
        let mut w = sample_worker();
        w.servers[0].applications[0].streams[0].name = "a\0b\x1b</name>&".into();
        let doc = parse(&render_xml(&sample_global(), &w, None, ALL));
        assert_eq!(
            doc.all("rtmp/server/application/live/stream")[0].text_at("name"),
            "a b </name>&"
        );
    }
}
