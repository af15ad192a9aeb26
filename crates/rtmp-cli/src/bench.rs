//! `rtmp bench`: many players (and optionally the publisher feeding them) on one mio event loop,
//! measuring connect success, time to first frame and how far players lag behind the live edge.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use rtmp_proto::flv::{audio_tag_info, video_tag_info};
use rtmp_proto::message::msg_type;
use serde::Serialize;

use crate::conn::{resolve, Conn, ConnError, ConnEvent, Role, Stage};
use crate::publish::{Source, MAX_BACKLOG};
use crate::stats::{percentile, Histogram};
use crate::url::RtmpUrl;
use crate::CliError;

const PUBLISH_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Lag histogram range; anything later is clamped into the last bucket (max stays exact).
const LAG_LIMIT_MS: usize = 120_000;
/// Connect attempts the loop starts per iteration at most, so reads keep being served while ramping.
const CONNECT_BATCH: usize = 256;

pub struct BenchArgs<'a> {
    pub url: &'a str,
    pub players: usize,
    pub publish_file: Option<&'a Path>,
    pub publisher_url: Option<&'a str>,
    pub duration: f64,
    /// New players per second; 0 starts them all at once.
    pub ramp: f64,
}

#[derive(Default)]
struct Player {
    conn: Option<Conn>,
    started_at: Option<Instant>,
    playing: bool,
    first_frame_ms: Option<u64>,
    frames: u64,
    video: u64,
    audio: u64,
    /// Wire bytes, updated when the connection ends or the bench does.
    bytes: u64,
    failed: bool,
    dropped: bool,
    /// Has been within `LIVE_EDGE_MS` of the live edge: the join burst (a server's GOP cache)
    /// is over, and lag samples count from here.
    live: bool,
}

/// How close to the newest timestamp a frame must be for its player to count as live.
const LIVE_EDGE_MS: u64 = 500;

struct Publisher {
    conn: Option<Conn>,
    source: Source,
    started: Option<Instant>,
    newest_ts: Option<u32>,
    frames: u64,
    error: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct Percentiles {
    pub p50: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
}

#[derive(Serialize, Debug)]
pub struct PublisherReport {
    pub url: String,
    pub frames_sent: u64,
    pub error: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct BenchReport {
    pub url: String,
    pub duration_s: f64,
    pub players_requested: usize,
    pub players_attempted: usize,
    /// Reached `NetStream.Play.Start`.
    pub players_connected: usize,
    /// Failed before playing.
    pub players_failed: usize,
    /// Lost after playing.
    pub players_dropped: usize,
    /// Still connecting when the bench ended.
    pub players_pending: usize,
    pub players_with_frames: usize,
    /// Got frames but never came within LIVE_EDGE_MS of the live edge: reported, not averaged in.
    pub players_never_live: usize,
    pub failures: BTreeMap<String, usize>,
    pub bytes_received: u64,
    pub frames_received: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
    pub time_to_first_frame_ms: Percentiles,
    pub lag_ms: Percentiles,
    pub lag_samples: u64,
    /// "publisher" (newest timestamp our publisher sent) or "max_ts_seen" (by any player).
    pub lag_reference: &'static str,
    pub publisher: Option<PublisherReport>,
}

struct Bench {
    poll: Poll,
    players: Vec<Player>,
    publisher: Option<Publisher>,
    max_ts_seen: Option<u32>,
    ttff: Vec<u64>,
    lag: Histogram,
    lag_window: Histogram,
    failures: BTreeMap<String, usize>,
    frames_window: u64,
    emfile_warned: bool,
    scratch: Vec<u8>,
}

fn io_err(url: &RtmpUrl, e: std::io::Error) -> CliError {
    CliError::Other(format!("event loop for {url}: {e}"))
}

pub fn run(args: &BenchArgs) -> Result<BenchReport, CliError> {
    let url = RtmpUrl::parse(args.url)?;
    let addr = resolve(&url)?;
    let poll = Poll::new().map_err(|e| io_err(&url, e))?;
    let pub_token = Token(args.players);

    let publisher = match args.publish_file {
        None => None,
        Some(file) => {
            let purl = RtmpUrl::parse(args.publisher_url.unwrap_or(args.url))?;
            let source = Source::load(file, true)?;
            let mut conn = Conn::connect(resolve(&purl)?, &purl, Role::Publish)?;
            conn.register(poll.registry(), pub_token)
                .map_err(|e| io_err(&url, e))?;
            Some((
                purl,
                Publisher {
                    conn: Some(conn),
                    source,
                    started: None,
                    newest_ts: None,
                    frames: 0,
                    error: None,
                },
            ))
        }
    };
    let pub_url = publisher.as_ref().map(|(u, _)| u.to_string());
    let mut b = Bench {
        poll,
        players: (0..args.players).map(|_| Player::default()).collect(),
        publisher: publisher.map(|(_, p)| p),
        max_ts_seen: None,
        ttff: Vec::with_capacity(args.players),
        lag: Histogram::new(LAG_LIMIT_MS),
        lag_window: Histogram::new(LAG_LIMIT_MS),
        failures: BTreeMap::new(),
        frames_window: 0,
        emfile_warned: false,
        scratch: vec![0u8; 256 * 1024],
    };
    let mut events = Events::with_capacity(1024);
    let tty = std::io::stderr().is_terminal();

    // Players start once the publisher is live, so their time to first frame is not ours to wait.
    let begin = Instant::now();
    let mut ramp_start = if b.publisher.is_some() {
        None
    } else {
        Some(begin)
    };
    let mut next_player = 0usize;
    let mut next_tick = begin + Duration::from_secs(1);
    let mut end = ramp_start.map(|s| s + crate::secs(args.duration.max(0.0)));
    let mut last_bytes = 0u64;
    loop {
        let now = Instant::now();
        if end.is_some_and(|e| now >= e) {
            break;
        }
        if ramp_start.is_none() {
            match b.publisher.as_ref() {
                Some(p) if p.started.is_some() => {
                    ramp_start = Some(now);
                    next_tick = now + Duration::from_secs(1);
                    end = Some(now + crate::secs(args.duration.max(0.0)));
                }
                Some(p) if p.error.is_some() || now >= begin + PUBLISH_START_TIMEOUT => {
                    let why = p
                        .error
                        .clone()
                        .unwrap_or_else(|| "timed out waiting for NetStream.Publish.Start".into());
                    return Err(CliError::Other(format!("publisher: {why}")));
                }
                _ => {}
            }
        }
        b.pump_publisher(now);

        // Ramp: how many players should have been started by now.
        let mut next_ramp = None;
        if let Some(rs) = ramp_start {
            let due = if args.ramp > 0.0 {
                let n = (now.saturating_duration_since(rs).as_secs_f64() * args.ramp).floor()
                    as usize
                    + 1;
                n.min(args.players)
            } else {
                args.players
            };
            let mut batch = 0;
            while next_player < due && batch < CONNECT_BATCH {
                b.start_player(next_player, addr, &url);
                next_player += 1;
                batch += 1;
            }
            if next_player < args.players {
                next_ramp = Some(if next_player < due || args.ramp <= 0.0 {
                    now
                } else {
                    rs + crate::secs(next_player as f64 / args.ramp)
                });
            }
        }

        if now >= next_tick && ramp_start.is_some() {
            let bytes = b.total_bytes();
            b.progress(
                now.saturating_duration_since(ramp_start.unwrap_or(begin)),
                next_player,
                bytes - last_bytes,
                tty,
            );
            last_bytes = bytes;
            next_tick += Duration::from_secs(1);
        } else if now >= next_tick {
            next_tick = now + Duration::from_secs(1);
        }

        let pub_due = b.publisher_due();
        let wake = [Some(next_tick), end, next_ramp, pub_due]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(next_tick);
        let timeout = wake.saturating_duration_since(Instant::now());
        match b.poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(&url, e)),
        }
        for ev in events.iter() {
            let t = ev.token();
            if t == pub_token {
                b.publisher_ready();
            } else {
                b.player_ready(t.0);
            }
        }
    }
    if tty {
        eprintln!();
    }
    let duration_s = ramp_start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    Ok(b.report(&url, args, next_player, duration_s, pub_url))
}

impl Bench {
    fn start_player(&mut self, i: usize, addr: std::net::SocketAddr, url: &RtmpUrl) {
        let Some(p) = self.players.get_mut(i) else {
            return;
        };
        p.started_at = Some(Instant::now());
        let result = Conn::connect(addr, url, Role::Play).and_then(|mut c| {
            c.register(self.poll.registry(), Token(i))
                .map(|()| c)
                .map_err(|source| ConnError::Connect { addr, source })
        });
        match result {
            Ok(c) => p.conn = Some(c),
            Err(e) => {
                let label = e.kind_label();
                if label == "EMFILE" && !self.emfile_warned {
                    self.emfile_warned = true;
                    eprintln!("\nplayer {i}: {e}");
                }
                p.failed = true;
                *self.failures.entry(label).or_insert(0) += 1;
            }
        }
    }

    fn player_ready(&mut self, i: usize) {
        let Some(p) = self.players.get_mut(i) else {
            return;
        };
        let Some(conn) = p.conn.as_mut() else { return };
        let result = conn.on_ready(&mut self.scratch);
        let reference = self.publisher.as_ref().map(|pb| pb.newest_ts);
        while let Some(ev) = conn.next_event() {
            match ev {
                ConnEvent::Started => p.playing = true,
                ConnEvent::Status(_) => {}
                ConnEvent::Media(m) => {
                    // Sequence headers are not frames, and servers may stamp them with 0
                    // for late joiners, which would read as a huge lag.
                    if !is_frame(&m) {
                        continue;
                    }
                    p.frames += 1;
                    if m.msg_type == msg_type::VIDEO {
                        p.video += 1;
                    } else {
                        p.audio += 1;
                    }
                    self.frames_window += 1;
                    if p.first_frame_ms.is_none() {
                        let ms = p.started_at.map_or(0, |s| s.elapsed().as_millis() as u64);
                        p.first_frame_ms = Some(ms);
                        self.ttff.push(ms);
                    }
                    let newest = match reference {
                        Some(pub_ts) => pub_ts,
                        None => {
                            let max = self.max_ts_seen.map_or(m.timestamp, |t| t.max(m.timestamp));
                            self.max_ts_seen = Some(max);
                            Some(max)
                        }
                    };
                    if let Some(n) = newest {
                        let lag = u64::from(n.saturating_sub(m.timestamp));
                        p.live |= lag <= LIVE_EDGE_MS;
                        if p.live {
                            self.lag.add(lag);
                            self.lag_window.add(lag);
                        }
                    }
                }
            }
        }
        if let Err(e) = result {
            p.bytes = conn.bytes_received();
            let _ = conn.deregister(self.poll.registry());
            p.conn = None;
            if p.playing || conn_was_active(&e) {
                p.dropped = true;
            } else {
                p.failed = true;
            }
            *self.failures.entry(e.kind_label()).or_insert(0) += 1;
        }
    }

    fn publisher_ready(&mut self) {
        let Some(pb) = self.publisher.as_mut() else {
            return;
        };
        let Some(conn) = pb.conn.as_mut() else { return };
        let result = conn.on_ready(&mut self.scratch);
        while let Some(ev) = conn.next_event() {
            if matches!(ev, ConnEvent::Started) {
                pb.started = Some(Instant::now());
            }
        }
        if let Err(e) = result {
            pb.error = Some(e.to_string());
            let _ = conn.deregister(self.poll.registry());
            pb.conn = None;
            eprintln!("\npublisher: {e}");
        }
    }

    /// Sends every tag that is due, as long as the socket keeps up.
    fn pump_publisher(&mut self, now: Instant) {
        let Some(pb) = self.publisher.as_mut() else {
            return;
        };
        let (Some(start), Some(conn)) = (pb.started, pb.conn.as_mut()) else {
            return;
        };
        let sid = conn.stream_id();
        let mut result = Ok(());
        while let Some(ts) = pb.source.next_ts() {
            if start + Duration::from_millis(u64::from(ts)) > now
                || conn.pending_out_len() > MAX_BACKLOG
            {
                break;
            }
            let Some((cs, msg)) = pb.source.take(sid) else {
                break;
            };
            if msg.msg_type == msg_type::AUDIO || msg.msg_type == msg_type::VIDEO {
                pb.frames += 1;
            }
            pb.newest_ts = Some(ts);
            result = conn.send_media(cs, &msg);
            if result.is_err() {
                break;
            }
        }
        if let Err(e) = result {
            pb.error = Some(e.to_string());
            let _ = conn.deregister(self.poll.registry());
            pb.conn = None;
            eprintln!("\npublisher: {e}");
        }
    }

    /// When the publisher's next tag is due (a backlogged socket wakes us by itself).
    fn publisher_due(&mut self) -> Option<Instant> {
        let pb = self.publisher.as_mut()?;
        let start = pb.started?;
        let conn = pb.conn.as_mut()?;
        if conn.pending_out_len() > MAX_BACKLOG {
            return None;
        }
        pb.source
            .next_ts()
            .map(|ts| start + Duration::from_millis(u64::from(ts)))
    }

    fn total_bytes(&self) -> u64 {
        self.players
            .iter()
            .map(|p| p.conn.as_ref().map_or(p.bytes, Conn::bytes_received))
            .sum()
    }

    fn progress(&mut self, elapsed: Duration, attempted: usize, bytes: u64, tty: bool) {
        let up = self
            .players
            .iter()
            .filter(|p| p.conn.as_ref().is_some_and(|c| c.stage() == Stage::Active))
            .count();
        let connecting = self
            .players
            .iter()
            .filter(|p| p.conn.as_ref().is_some_and(|c| c.stage() != Stage::Active))
            .count();
        let failed = self.players.iter().filter(|p| p.failed).count();
        let dropped = self.players.iter().filter(|p| p.dropped).count();
        let f = |v: Option<u64>| v.map_or_else(|| "-".into(), |x| x.to_string());
        let line = format!(
            "[{:>4}s] players {up} playing, {connecting} connecting, {failed} failed, {dropped} dropped ({attempted}/{} started) | {:.1} Mbit/s {} fr/s | lag p50 {} p99 {} ms",
            elapsed.as_secs(),
            self.players.len(),
            bytes as f64 * 8.0 / 1e6,
            self.frames_window,
            f(self.lag_window.percentile(50.0)),
            f(self.lag_window.percentile(99.0)),
        );
        if tty {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
        self.frames_window = 0;
        self.lag_window = Histogram::new(LAG_LIMIT_MS);
    }

    fn report(
        &mut self,
        url: &RtmpUrl,
        args: &BenchArgs,
        attempted: usize,
        duration_s: f64,
        pub_url: Option<String>,
    ) -> BenchReport {
        for p in &mut self.players {
            if let Some(c) = p.conn.as_ref() {
                p.bytes = c.bytes_received();
            }
        }
        self.ttff.sort_unstable();
        let ps = &self.players;
        BenchReport {
            url: url.to_string(),
            duration_s,
            players_requested: args.players,
            players_attempted: attempted,
            players_connected: ps.iter().filter(|p| p.playing).count(),
            players_failed: ps.iter().filter(|p| p.failed).count(),
            players_dropped: ps.iter().filter(|p| p.dropped).count(),
            players_pending: ps
                .iter()
                .filter(|p| p.conn.as_ref().is_some_and(|c| c.stage() != Stage::Active))
                .count(),
            players_with_frames: ps.iter().filter(|p| p.first_frame_ms.is_some()).count(),
            players_never_live: ps.iter().filter(|p| p.first_frame_ms.is_some() && !p.live).count(),
            failures: self.failures.clone(),
            bytes_received: ps.iter().map(|p| p.bytes).sum(),
            frames_received: ps.iter().map(|p| p.frames).sum(),
            video_frames: ps.iter().map(|p| p.video).sum(),
            audio_frames: ps.iter().map(|p| p.audio).sum(),
            time_to_first_frame_ms: Percentiles {
                p50: percentile(&self.ttff, 50.0),
                p99: percentile(&self.ttff, 99.0),
                max: self.ttff.last().copied(),
            },
            lag_ms: Percentiles {
                p50: self.lag.percentile(50.0),
                p99: self.lag.percentile(99.0),
                max: self.lag.max(),
            },
            lag_samples: self.lag.count(),
            lag_reference: if self.publisher.is_some() {
                "publisher"
            } else {
                "max_ts_seen"
            },
            publisher: self.publisher.as_ref().map(|pb| PublisherReport {
                url: pub_url.unwrap_or_default(),
                frames_sent: pb.frames,
                error: pb.error.clone(),
            }),
        }
    }
}

fn is_frame(m: &rtmp_proto::RawMessage) -> bool {
    match m.msg_type {
        msg_type::VIDEO => video_tag_info(&m.payload).is_some_and(|i| !i.sequence_header),
        msg_type::AUDIO => audio_tag_info(&m.payload).is_some_and(|i| !i.sequence_header),
        _ => false,
    }
}

fn conn_was_active(e: &ConnError) -> bool {
    matches!(
        e,
        ConnError::Closed {
            stage: Stage::Active
        }
    )
}

pub fn print_text(r: &BenchReport) {
    let f = |v: Option<u64>| v.map_or_else(|| "-".into(), |x| x.to_string());
    println!("url:              {}", r.url);
    println!("duration:         {:.1} s", r.duration_s);
    println!(
        "players:          {} requested, {} started, {} connected, {} failed, {} dropped, {} still connecting, {} got frames, {} never reached the live edge",
        r.players_requested,
        r.players_attempted,
        r.players_connected,
        r.players_failed,
        r.players_dropped,
        r.players_pending,
        r.players_with_frames,
        r.players_never_live
    );
    for (label, n) in &r.failures {
        println!("  {n:>6} × {label}");
    }
    println!(
        "received:         {:.1} MB, {} frames ({} video, {} audio), {:.0} kbit/s per player",
        r.bytes_received as f64 / 1e6,
        r.frames_received,
        r.video_frames,
        r.audio_frames,
        if r.players_connected > 0 && r.duration_s > 0.0 {
            r.bytes_received as f64 * 8.0 / 1000.0 / r.duration_s / r.players_connected as f64
        } else {
            0.0
        }
    );
    let t = &r.time_to_first_frame_ms;
    println!(
        "first frame:      p50 {} ms, p99 {} ms, max {} ms",
        f(t.p50),
        f(t.p99),
        f(t.max)
    );
    let l = &r.lag_ms;
    println!(
        "lag:              p50 {} ms, p99 {} ms, max {} ms (behind {})",
        f(l.p50),
        f(l.p99),
        f(l.max),
        r.lag_reference
    );
    if let Some(p) = &r.publisher {
        println!(
            "publisher:        {} frames sent to {}{}",
            p.frames_sent,
            p.url,
            p.error
                .as_ref()
                .map(|e| format!(", error: {e}"))
                .unwrap_or_default()
        );
    }
}
