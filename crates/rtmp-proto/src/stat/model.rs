//! What one worker knows about its sessions, in a form every worker can serialize to shared memory
//! and the answering worker can merge into one view.

use serde::{Deserialize, Serialize};

/// Facts about the nginx binary and master, printed once at the top of the page.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Global {
    pub nginx_version: String,
    pub compiler: String,
    pub built: String,
    pub pid: u32,
    pub uptime_s: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Worker {
    pub pid: u32,
    pub naccepted: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Bits per second.
    pub bw_in: u64,
    pub bw_out: u64,
    pub servers: Vec<Server>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Server {
    pub index: usize,
    /// First listen port, 0 if none.
    pub port: u16,
    pub applications: Vec<Application>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Application {
    pub name: String,
    /// `live on` in this application.
    pub live: bool,
    pub streams: Vec<Stream>,
    pub recorders: Vec<Recorder>,
    pub relays: Vec<Relay>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Stream {
    pub name: String,
    /// Milliseconds since the stream was created.
    pub time_ms: u64,
    pub bw_in: u64,
    pub bytes_in: u64,
    pub bw_out: u64,
    pub bytes_out: u64,
    pub bw_audio: u64,
    pub bw_video: u64,
    pub clients: Vec<Client>,
    pub meta: Option<Meta>,
    pub publishing: bool,
    pub active: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Client {
    /// nginx connection number.
    pub id: u64,
    /// Peer IP without port.
    pub address: String,
    /// Milliseconds since the session started.
    pub time_ms: u64,
    pub flashver: String,
    pub pageurl: String,
    pub swfurl: String,
    pub dropped: u64,
    /// Audio minus video timestamp; None when not measured (interleave on).
    pub avsync: Option<i64>,
    /// Current stream time, ms.
    pub timestamp: u64,
    pub publishing: bool,
    pub active: bool,
    /// "rtmp", "http-flv", "ws-flv" or "relay".
    pub protocol: String,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Meta {
    pub video: Option<VideoMeta>,
    pub audio: Option<AudioMeta>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct VideoMeta {
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    pub codec: String,
    pub profile: String,
    pub compat: u32,
    /// e.g. 3.1
    pub level: f64,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct AudioMeta {
    pub codec: String,
    pub profile: String,
    pub channels: u32,
    pub sample_rate: u32,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Recorder {
    pub id: String,
    pub path: String,
    pub recording: bool,
    pub file: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(default)]
pub struct Relay {
    /// "push" or "pull".
    pub kind: String,
    pub url: String,
    pub stream: String,
    pub connected: bool,
}

/// One view of all workers. Every worker has the same servers and applications (same config), but
/// a stream lives in several workers when its players are spread over them. The result's pid is 0.
pub fn merge(workers: &[Worker]) -> Worker {
    let mut out = Worker::default();
    for w in workers {
        out.naccepted += w.naccepted;
        out.bytes_in += w.bytes_in;
        out.bytes_out += w.bytes_out;
        out.bw_in += w.bw_in;
        out.bw_out += w.bw_out;
        for s in &w.servers {
            let pos = out.servers.iter().position(|o| o.index == s.index);
            let srv = match pos {
                Some(i) => &mut out.servers[i],
                None => {
                    out.servers.push(Server {
                        index: s.index,
                        ..Server::default()
                    });
                    out.servers.last_mut().expect("just pushed")
                }
            };
            if srv.port == 0 {
                srv.port = s.port;
            }
            for a in &s.applications {
                merge_app(&mut srv.applications, a);
            }
        }
    }
    out
}

fn merge_app(apps: &mut Vec<Application>, a: &Application) {
    let Some(app) = apps.iter_mut().find(|o| o.name == a.name) else {
        apps.push(Application {
            streams: Vec::new(),
            recorders: Vec::new(),
            ..a.clone()
        });
        let app = apps.last_mut().expect("just pushed");
        a.streams
            .iter()
            .for_each(|s| merge_stream(&mut app.streams, s));
        a.recorders
            .iter()
            .for_each(|r| merge_recorder(&mut app.recorders, r));
        return;
    };
    app.live |= a.live;
    a.streams
        .iter()
        .for_each(|s| merge_stream(&mut app.streams, s));
    a.recorders
        .iter()
        .for_each(|r| merge_recorder(&mut app.recorders, r));
    // Each relay connection belongs to exactly one worker.
    app.relays.extend(a.relays.iter().cloned());
}

fn merge_stream(streams: &mut Vec<Stream>, s: &Stream) {
    let Some(m) = streams.iter_mut().find(|o| o.name == s.name) else {
        streams.push(s.clone());
        return;
    };
    m.time_ms = m.time_ms.max(s.time_ms);
    m.bw_in += s.bw_in;
    m.bytes_in += s.bytes_in;
    m.bw_out += s.bw_out;
    m.bytes_out += s.bytes_out;
    m.bw_audio += s.bw_audio;
    m.bw_video += s.bw_video;
    m.clients.extend(s.clients.iter().cloned());
    // The publishing worker parsed the codec headers; other workers may only have a copy or none.
    if (s.publishing && !m.publishing && s.meta.is_some()) || m.meta.is_none() {
        m.meta = s.meta.clone().or(m.meta.take());
    }
    m.publishing |= s.publishing;
    m.active |= s.active;
}

/// Recorders are configuration, present in every worker: one entry per id, recording if any worker
/// is writing, with that worker's file.
fn merge_recorder(recs: &mut Vec<Recorder>, r: &Recorder) {
    let Some(m) = recs.iter_mut().find(|o| o.id == r.id) else {
        recs.push(r.clone());
        return;
    };
    if r.recording && !m.recording {
        m.recording = true;
        m.file = r.file.clone();
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A realistic worker: one live app with a publisher and a player, and an idle stream.
    pub(crate) fn sample_worker() -> Worker {
        let publisher = Client {
            id: 7,
            address: "192.0.2.10".into(),
            time_ms: 65_000,
            flashver: "FMLE/3.0 (compatible; FMSc/1.0)".into(),
            swfurl: "rtmp://example/live".into(),
            avsync: Some(-12),
            timestamp: 64_900,
            publishing: true,
            active: true,
            protocol: "rtmp".into(),
            bytes_in: 8_000_000,
            ..Client::default()
        };
        let player = Client {
            id: 9,
            address: "198.51.100.4".into(),
            time_ms: 30_000,
            flashver: "LNX 9,0,124,2".into(),
            pageurl: "http://example/?a=1&b=<2>".into(),
            dropped: 3,
            timestamp: 64_800,
            active: true,
            protocol: "http-flv".into(),
            bytes_out: 4_000_000,
            ..Client::default()
        };
        let meta = Meta {
            video: Some(VideoMeta {
                width: 1280,
                height: 720,
                frame_rate: 30.0,
                codec: "H264".into(),
                profile: "High".into(),
                compat: 0,
                level: 3.1,
            }),
            audio: Some(AudioMeta {
                codec: "AAC".into(),
                profile: "LC".into(),
                channels: 2,
                sample_rate: 44100,
            }),
        };
        Worker {
            pid: 4242,
            naccepted: 5,
            bytes_in: 8_100_000,
            bytes_out: 4_050_000,
            bw_in: 1_000_000,
            bw_out: 500_000,
            servers: vec![Server {
                index: 0,
                port: 1935,
                applications: vec![Application {
                    name: "live".into(),
                    live: true,
                    streams: vec![
                        Stream {
                            name: "cam\"1\"".into(),
                            time_ms: 65_000,
                            bw_in: 990_000,
                            bytes_in: 8_000_000,
                            bw_out: 495_000,
                            bytes_out: 4_000_000,
                            bw_audio: 128_000,
                            bw_video: 862_000,
                            clients: vec![publisher, player],
                            meta: Some(meta),
                            publishing: true,
                            active: true,
                        },
                        Stream {
                            name: "idle".into(),
                            time_ms: 1_000,
                            ..Stream::default()
                        },
                    ],
                    recorders: vec![Recorder {
                        id: "all".into(),
                        path: "/tmp/rec".into(),
                        recording: true,
                        file: "/tmp/rec/cam-1.flv".into(),
                    }],
                    relays: vec![Relay {
                        kind: "push".into(),
                        url: "rtmp://backup/live".into(),
                        stream: "cam\"1\"".into(),
                        connected: true,
                    }],
                }],
            }],
        }
    }

    pub(crate) fn sample_global() -> Global {
        Global {
            nginx_version: "1.26.2".into(),
            compiler: "gcc 12.2.0 (Debian 12.2.0-14)".into(),
            built: "Dec  6 2026 17:08:00".into(),
            pid: 4000,
            uptime_s: 3600,
        }
    }

    #[test]
    fn json_roundtrip_and_defaults() {
        let w = sample_worker();
        let text = serde_json::to_string(&w).unwrap();
        assert_eq!(serde_json::from_str::<Worker>(&text).unwrap(), w);
        let partial: Worker =
            serde_json::from_str(r#"{"pid":3,"servers":[{"applications":[{"name":"a"}]}]}"#)
                .unwrap();
        assert_eq!(partial.pid, 3);
        assert_eq!(partial.servers[0].applications[0].name, "a");
        assert!(partial.servers[0].applications[0].streams.is_empty());
    }

    #[test]
    fn merge_two_workers() {
        let a = sample_worker();
        // Worker b: the same stream with one more player and no meta, plus a stream only it has.
        let mut b = sample_worker();
        b.pid = 4243;
        let app = &mut b.servers[0].applications[0];
        let s = &mut app.streams[0];
        s.publishing = false;
        s.meta = None;
        s.time_ms = 70_000;
        s.clients = vec![Client {
            id: 11,
            active: true,
            ..Client::default()
        }];
        app.streams[1].name = "other".into();
        app.recorders[0].recording = false;
        app.relays[0].url = "rtmp://other/live".into();
        // b lists a server a has not got; order must follow first appearance.
        b.servers.insert(
            0,
            Server {
                index: 1,
                port: 1936,
                applications: vec![],
            },
        );

        let m = merge(&[a.clone(), b]);
        assert_eq!(m.pid, 0);
        assert_eq!(m.naccepted, 10);
        assert_eq!(m.bytes_in, 16_200_000);
        assert_eq!(
            m.servers.iter().map(|s| s.index).collect::<Vec<_>>(),
            [0, 1]
        );
        assert_eq!(m.servers[1].port, 1936);
        let app = &m.servers[0].applications[0];
        let names: Vec<_> = app.streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["cam\"1\"", "idle", "other"]);
        let s = &app.streams[0];
        assert_eq!(
            s.clients.iter().map(|c| c.id).collect::<Vec<_>>(),
            [7, 9, 11]
        );
        assert_eq!(s.bytes_in, 16_000_000);
        assert_eq!(s.time_ms, 70_000);
        assert!(s.publishing && s.active);
        assert_eq!(s.meta, a.servers[0].applications[0].streams[0].meta);
        assert_eq!(app.recorders.len(), 1);
        assert!(app.recorders[0].recording);
        assert_eq!(app.relays.len(), 2);
    }

    #[test]
    fn merge_prefers_publisher_meta() {
        let mut a = sample_worker();
        let b = sample_worker();
        let s = &mut a.servers[0].applications[0].streams[0];
        s.publishing = false;
        s.meta.as_mut().unwrap().video.as_mut().unwrap().width = 1;
        let m = merge(&[a, b.clone()]);
        assert_eq!(
            m.servers[0].applications[0].streams[0].meta,
            b.servers[0].applications[0].streams[0].meta
        );
    }
}
