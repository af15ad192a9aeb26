//! `rtmp bench`: many players (and optionally the publishers feeding them) on one mio event loop,
//! measuring connect success, time to first frame and how far players lag behind the live edge.
//! `--streams K` spreads the players round-robin over K streams, each with its own in-process
//! publisher; `--churn SECS` makes every player reconnect after a random lifetime around SECS.
//! An `http://` URL makes the players HTTP-FLV ones (a `GET` each, the body read as FLV).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fmt::Display;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;
use std::time::{Duration, Instant};

use mio::{Events, Poll, Token};
use rtmp_proto::flv::{audio_tag_info, video_tag_info};
use rtmp_proto::message::{msg_type, RawMessage};
use serde::Serialize;

use crate::conn::{resolve, ClientSocket, Conn, ConnError, ConnEvent, Role};
use crate::player_conn::{PlayUrl, PlayerConn};
use crate::publish::{Media, Source, MAX_BACKLOG};
use crate::stats::{percentile, Histogram};
use rtmp_proto::url::RtmpUrl;
use crate::CliError;

const PUBLISH_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Lag histogram range; anything later is clamped into the last bucket (max stays exact).
const LAG_LIMIT_MS: usize = 120_000;
/// Per-message gaps are counted per millisecond up to this (longer ones keep their exact max).
const GAP_LIMIT_MS: usize = 10_000;
/// Connect attempts the loop starts per iteration at most, so reads keep being served while ramping.
const CONNECT_BATCH: usize = 256;

pub struct BenchArgs<'a> {
    /// `rtmp://…` for RTMP players, `http://…` for HTTP-FLV ones.
    pub url: &'a str,
    pub players: usize,
    pub publish_file: Option<&'a Path>,
    pub publisher_url: Option<&'a str>,
    pub duration: f64,
    /// New players per second; 0 starts them all at once.
    pub ramp: f64,
    /// Streams (and, with `publish_file`, publishers): names get `_0`..`_K-1` when K > 1.
    pub streams: usize,
    /// Mean player lifetime in seconds before it disconnects and plays again (None: never).
    pub churn: Option<f64>,
    /// Players leave their sockets' options at the OS defaults (no TCP_NODELAY).
    pub plain_sockets: bool,
    /// 1: every player parses; K > 1: only players 0, K, 2K… do, the others drain (`Drain`).
    pub sample: usize,
    /// Lag, gaps and quiet times count only from this long after the last player started
    /// (the steady state, without the join storm); None: from the start.
    pub settle: Option<f64>,
}

/// How often draining players read their sockets.
const DRAIN_EVERY: Duration = Duration::from_millis(100);
/// A draining player is held to the publisher's byte count from this long after its first
/// frame on (the join burst of a GOP cache is over by then).
const DRAIN_SETTLE: Duration = Duration::from_secs(2);
/// Most bytes one read discards (nothing is copied: the buffer is never written).
const DRAIN_READ: usize = 1 << 20;

/// A player that only counts bytes: after its first frame it leaves the event loop and every
/// `DRAIN_EVERY` discards what its socket holds with `MSG_TRUNC` (the kernel frees the data
/// without copying it), so thousands of them cost the client little. It cannot see frames: it
/// is checked by how many bytes it got against what its publisher sent meanwhile.
struct Drain {
    bytes: u64,
    since: Instant,
    /// After `DRAIN_SETTLE`: its byte count and its publisher's payload bytes sent at that time.
    mark: Option<(u64, u64)>,
    /// The last read that got bytes, and the longest time between two such reads (µs).
    last_data: Instant,
    max_quiet_us: u64,
}

/// Discards what `sock` holds (`MSG_TRUNC | MSG_DONTWAIT`): the bytes read, and whether the
/// peer closed.
fn drain_socket(sock: &mio::net::TcpStream, buf: &mut [std::mem::MaybeUninit<u8>]) -> std::io::Result<(u64, bool)> {
    let s = socket2::SockRef::from(sock);
    let mut total = 0u64;
    loop {
        match s.recv_with_flags(buf, libc::MSG_TRUNC | libc::MSG_DONTWAIT) {
            Ok(0) => return Ok((total, true)),
            Ok(n) => {
                total += n as u64;
                if n < buf.len() {
                    return Ok((total, false));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok((total, false)),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// One player slot: a connection at a time, reconnected on churn; counters add up over them.
#[derive(Default)]
struct Player {
    /// Index into the streams (and publishers).
    stream: usize,
    conn: Option<PlayerConn>,
    /// When the current connection attempt began (time to first frame counts from here).
    started_at: Option<Instant>,
    /// The current connection got `NetStream.Play.Start`.
    playing: bool,
    /// Some connection of this slot got `NetStream.Play.Start`.
    ever_played: bool,
    /// Time to first frame of the current connection.
    first_frame_ms: Option<u64>,
    /// HTTP-FLV: the current connection's first body bytes came.
    first_byte_seen: bool,
    ever_got_frames: bool,
    frames: u64,
    video: u64,
    audio: u64,
    /// Wire bytes of the connections already closed (the open one asks its `Conn`).
    bytes: u64,
    failed: bool,
    dropped: bool,
    /// The join burst (a server's GOP cache) is over and lag samples count from here: the
    /// player got a frame at least as new as the publisher's newest when it started playing, or
    /// (without an in-process publisher) one within `LIVE_EDGE_MS` of the newest seen.
    live: bool,
    ever_live: bool,
    /// The publisher's newest timestamp when the server said `Play.Start`.
    join_edge: Option<u32>,
    /// Churn: when the current connection is to end (it waits for its first frame if later).
    die_at: Option<Instant>,
    /// Churn: the player's own xorshift state, so lifetimes are the same from run to run.
    rng: u64,
    gap: Gap,
    drain: Option<Drain>,
}

/// Wall-clock gaps between consecutive audio/video messages a player gets after its first frame.
#[derive(Default)]
struct Gap {
    /// When the current connection's latest audio or video message arrived, from its first frame
    /// on (`None` before it).
    last: Option<Instant>,
    /// The longest gap over all the slot's connections, in microseconds.
    max_us: Option<u64>,
}

impl Gap {
    /// A message arrived at `at`: the gap since the previous one (µs), if any.
    fn note(&mut self, at: Instant) -> Option<u64> {
        let gap = self.last.map(|prev| {
            u64::try_from(at.saturating_duration_since(prev).as_micros()).unwrap_or(u64::MAX)
        });
        if let Some(gap) = gap {
            self.max_us = Some(self.max_us.map_or(gap, |g| g.max(gap)));
        }
        self.last = Some(at);
        gap
    }
}

/// Without an in-process publisher: how close to the newest timestamp seen a frame must be for
/// its player to count as live.
const LIVE_EDGE_MS: u64 = 500;

struct Publisher {
    conn: Option<Conn>,
    feed: Source,
    started: Option<Instant>,
    newest_ts: Option<u32>,
    frames: u64,
    /// Payload bytes of every message sent.
    payload_bytes: u64,
    error: Option<String>,
}

#[derive(Serialize, Debug)]
pub struct Percentiles {
    pub p50: Option<u64>,
    pub p99: Option<u64>,
    pub max: Option<u64>,
}

#[derive(Serialize, Debug)]
pub struct BenchReport {
    pub url: String,
    /// "rtmp" or "http-flv".
    pub player_protocol: &'static str,
    pub duration_s: f64,
    /// Streams the players are spread over (names suffixed `_0`.. when more than one).
    pub streams: usize,
    pub players_requested: usize,
    /// Player slots started (reconnects not counted).
    pub players_attempted: usize,
    /// Reached `NetStream.Play.Start` (on some connection).
    pub players_connected: usize,
    /// Failed before playing (on the first connection or a reconnect).
    pub players_failed: usize,
    /// Lost after playing.
    pub players_dropped: usize,
    /// Still connecting when the bench ended.
    pub players_pending: usize,
    pub players_with_frames: usize,
    /// Got frames but never reached the live edge: reported, not averaged in.
    pub players_never_live: usize,
    /// Churn: mean player lifetime asked for, in seconds.
    pub churn_s: Option<f64>,
    /// Players kept their sockets' OS defaults (no TCP_NODELAY).
    pub plain_sockets: bool,
    /// Churn: connections closed on purpose and opened again.
    pub reconnects: u64,
    pub failures: BTreeMap<String, usize>,
    pub bytes_received: u64,
    pub frames_received: u64,
    pub video_frames: u64,
    pub audio_frames: u64,
    /// Connection start to first frame, over every connection (reconnects included).
    pub time_to_first_frame_ms: Percentiles,
    /// The same in microseconds (loopback setups often take less than a millisecond).
    pub time_to_first_frame_us: Percentiles,
    /// HTTP-FLV players: connection start to the response body's first bytes (checked to be the
    /// `FLV` signature), over every connection, in microseconds; null for RTMP players.
    pub time_to_first_byte_us: Option<Percentiles>,
    pub lag_ms: Percentiles,
    pub lag_samples: u64,
    /// Longest wall-clock gap between consecutive audio/video messages any player got after its
    /// first frame (a stalled server shows here even when lag does not), ms.
    pub gap_max_ms: Option<u64>,
    /// Median and 99th percentile of the players' own longest gaps, ms.
    pub gap_p50_ms: Option<u64>,
    pub gap_p99_ms: Option<u64>,
    /// Players with a gap measured (at least two messages after their first frame).
    pub gap_players: usize,
    /// Every gap between consecutive audio/video messages of every player (not just each
    /// player's longest), ms: p50, p99 and max.
    pub gap_each_ms: Percentiles,
    /// "publisher" (newest timestamp the stream's publisher sent), "max_ts_seen" (by any
    /// player of the stream) or "none" (HTTP-FLV: every response's timestamps start at 0, so
    /// players cannot be compared with the publisher or each other).
    pub lag_reference: &'static str,
    /// In-process publishers (0 without `--publish-file`).
    pub publishers: usize,
    /// Publishers that never started or failed later.
    pub publishers_failed: usize,
    pub publisher_url: Option<String>,
    pub publisher_frames_sent: u64,
    pub publisher_errors: BTreeMap<String, usize>,
    /// `--sample K`: players that drained (counted bytes only) after their first frame.
    pub drain_players: usize,
    /// Draining players held to their publisher's byte count (they drained past the settle
    /// time).
    pub drain_checked: usize,
    /// Of those, the ones whose bytes fell short of what their publisher sent by more than a
    /// second of the stream (dropped frames or a lag that grew): they did not keep up.
    pub drain_behind: usize,
    /// How far each checked player fell short, in ms of the stream (0 when it got all of it).
    pub drain_deficit_ms: Percentiles,
    /// The players' longest time between two reads that got bytes (reads every 100 ms).
    pub drain_quiet_ms: Percentiles,
}

struct Bench {
    poll: Poll,
    addr: SocketAddr,
    /// The players' URL per stream.
    play_urls: Vec<PlayUrl>,
    /// Lag is measured (RTMP players: timestamps are the publisher's).
    lag_applies: bool,
    players: Vec<Player>,
    publishers: Vec<Publisher>,
    /// Per stream, without publishers: the newest timestamp any of its players saw.
    max_ts_seen: Vec<Option<u32>>,
    churn: Option<f64>,
    plain_sockets: bool,
    /// Churn deadlines, soonest first; stale entries (not the player's `die_at`) are skipped.
    deadlines: BinaryHeap<Reverse<(Instant, usize)>>,
    /// Players whose first frame arrived after their deadline: churned after this round of events.
    churn_now: Vec<usize>,
    reconnects: u64,
    /// Time to first frame of every connection, in microseconds.
    ttff_us: Vec<u64>,
    /// HTTP-FLV: time to the body's first bytes of every connection, in microseconds.
    ttfb_us: Vec<u64>,
    lag: Histogram,
    lag_window: Histogram,
    /// Every gap between consecutive audio/video messages, ms (`Gap::note`).
    gaps_each: Histogram,
    failures: BTreeMap<String, usize>,
    frames_window: u64,
    emfile_warned: bool,
    scratch: Vec<u8>,
    sample: usize,
    drain_buf: Vec<std::mem::MaybeUninit<u8>>,
    /// Lag, gaps and quiet times count from here (`BenchArgs::settle`); None: not yet known.
    measure_from: Option<Instant>,
}

fn io_err(url: &dyn Display, e: std::io::Error) -> CliError {
    CliError::Other(format!("event loop for {url}: {e}"))
}

/// Stream `i` of `k`: the name with `_i` appended (before any `?args`) when k > 1.
pub(crate) fn stream_url(base: &RtmpUrl, i: usize, k: usize) -> RtmpUrl {
    let mut u = base.clone();
    if k > 1 {
        u.name = match base.name.split_once('?') {
            Some((name, args)) => format!("{name}_{i}?{args}"),
            None => format!("{}_{i}", base.name),
        };
    }
    u
}

/// xorshift64*; the state must not be 0.
fn next_rand(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// A player's PRNG seed: splitmix64 of its index, never 0.
fn seed(i: usize) -> u64 {
    let mut z = (i as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    (z ^ (z >> 31)).max(1)
}

/// A lifetime uniform in [0.5, 1.5) × `mean` seconds.
fn lifetime(state: &mut u64, mean: f64) -> Duration {
    let u = (next_rand(state) >> 11) as f64 / (1u64 << 53) as f64;
    crate::secs(mean * (0.5 + u))
}

pub fn run(args: &BenchArgs) -> Result<BenchReport, CliError> {
    let url = PlayUrl::parse(args.url)?;
    let addr = url.resolve()?;
    let poll = Poll::new().map_err(|e| io_err(&url, e))?;
    let k = args.streams.max(1);
    let churn = args.churn.filter(|c| *c > 0.0 && c.is_finite());
    let pub_base = args.players;

    let mut publishers = Vec::new();
    let mut pub_url = None;
    if let Some(file) = args.publish_file {
        let purl = match (args.publisher_url, &url) {
            (Some(u), _) => RtmpUrl::parse(u)?,
            (None, PlayUrl::Rtmp(u)) => u.clone(),
            (None, PlayUrl::Flv(_)) => {
                return Err(CliError::Other(
                    "HTTP-FLV players with --publish-file need --publisher-url rtmp://…".into(),
                ))
            }
        };
        let paddr = resolve(&purl)?;
        let media = Rc::new(Media::load(file)?);
        for j in 0..k {
            let mut pb = Publisher {
                conn: None,
                feed: Source::new(Rc::clone(&media), true),
                started: None,
                newest_ts: None,
                frames: 0,
                payload_bytes: 0,
                error: None,
            };
            let u = stream_url(&purl, j, k);
            let result = Conn::connect(paddr, &u, Role::Publish).and_then(|mut c| {
                c.register(poll.registry(), Token(pub_base + j))
                    .map(|()| c)
                    .map_err(|source| ConnError::Connect {
                        addr: paddr,
                        source,
                    })
            });
            match result {
                Ok(c) => pb.conn = Some(c),
                Err(e) => pb.error = Some(e.to_string()),
            }
            publishers.push(pb);
        }
        pub_url = Some(purl.to_string());
    }
    let mut b = Bench {
        poll,
        addr,
        play_urls: (0..k)
            .map(|j| url.stream(j, k))
            .collect::<Result<_, _>>()?,
        lag_applies: matches!(url, PlayUrl::Rtmp(_)),
        players: (0..args.players)
            .map(|i| Player {
                stream: i % k,
                rng: seed(i),
                ..Player::default()
            })
            .collect(),
        publishers,
        max_ts_seen: vec![None; k],
        churn,
        plain_sockets: args.plain_sockets,
        deadlines: BinaryHeap::new(),
        churn_now: Vec::new(),
        reconnects: 0,
        ttff_us: Vec::with_capacity(args.players),
        ttfb_us: Vec::new(),
        lag: Histogram::new(LAG_LIMIT_MS),
        lag_window: Histogram::new(LAG_LIMIT_MS),
        gaps_each: Histogram::new(GAP_LIMIT_MS),
        failures: BTreeMap::new(),
        frames_window: 0,
        emfile_warned: false,
        scratch: vec![0u8; 256 * 1024],
        sample: args.sample.max(1),
        drain_buf: Vec::new(),
        measure_from: None,
    };
    let settle = args.settle.filter(|s| s.is_finite() && *s >= 0.0);
    if settle.is_none() {
        b.measure_from = Some(Instant::now());
    }
    if b.sample > 1 && (b.publishers.is_empty() || b.churn.is_some()) {
        return Err(CliError::Other(
            "--sample needs --publish-file (draining players are checked against the publisher) and no --churn".into(),
        ));
    }
    if b.sample > 1 {
        b.drain_buf = vec![std::mem::MaybeUninit::uninit(); DRAIN_READ];
    }
    let mut next_drain = Instant::now() + DRAIN_EVERY;
    let mut events = Events::with_capacity(1024);
    let tty = std::io::stderr().is_terminal();

    // Players start once the publishers are live, so their time to first frame is not ours to
    // wait.
    let begin = Instant::now();
    let mut ramp_start = if b.publishers.is_empty() {
        Some(begin)
    } else {
        None
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
        if ramp_start.is_none() && b.publishers_settled(now >= begin + PUBLISH_START_TIMEOUT) {
            if !b.publishers.iter().any(|p| p.started.is_some()) {
                let why = b
                    .publishers
                    .iter()
                    .find_map(|p| p.error.clone())
                    .unwrap_or_else(|| "timed out waiting for NetStream.Publish.Start".into());
                return Err(CliError::Other(format!("publisher: {why}")));
            }
            ramp_start = Some(now);
            next_tick = now + Duration::from_secs(1);
            end = Some(now + crate::secs(args.duration.max(0.0)));
        }
        b.pump_publishers(now);

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
                b.start_player(next_player);
                next_player += 1;
                batch += 1;
            }
            if let (None, Some(s), true) = (b.measure_from, settle, next_player >= args.players) {
                b.measure_from = Some(now + crate::secs(s));
            }
            if next_player < args.players {
                next_ramp = Some(if next_player < due || args.ramp <= 0.0 {
                    now
                } else {
                    rs + crate::secs(next_player as f64 / args.ramp)
                });
            }
        }
        b.churn_due(now);

        if now >= next_tick && ramp_start.is_some() {
            let bytes = b.total_bytes();
            b.progress(
                now.saturating_duration_since(ramp_start.unwrap_or(begin)),
                next_player,
                bytes.saturating_sub(last_bytes),
                tty,
            );
            last_bytes = bytes;
            next_tick += Duration::from_secs(1);
        } else if now >= next_tick {
            next_tick = now + Duration::from_secs(1);
        }

        if now >= next_drain {
            b.drain_all(now);
            next_drain = (next_drain + DRAIN_EVERY).max(now);
        }
        let drain_due = (b.sample > 1).then_some(next_drain);
        let pub_due = b.publishers_due();
        let churn_due = b.deadlines.peek().map(|Reverse((t, _))| *t);
        let wake = [Some(next_tick), end, next_ramp, pub_due, churn_due, drain_due]
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
            let t = ev.token().0;
            match t.checked_sub(pub_base) {
                Some(j) => b.publisher_ready(j),
                None => b.player_ready(t),
            }
        }
        let now = Instant::now();
        for i in std::mem::take(&mut b.churn_now) {
            b.churn(i, now);
        }
    }
    if tty {
        eprintln!();
    }
    b.drain_all(Instant::now());
    let duration_s = ramp_start.map_or(0.0, |s| s.elapsed().as_secs_f64());
    Ok(b.report(&url, args, next_player, duration_s, pub_url))
}

impl Bench {
    /// Every publisher started or failed; on `timed_out` the ones still starting fail.
    fn publishers_settled(&mut self, timed_out: bool) -> bool {
        let mut settled = true;
        for pb in &mut self.publishers {
            if pb.started.is_some() || pb.error.is_some() {
                continue;
            }
            if timed_out {
                pb.error = Some("timed out waiting for NetStream.Publish.Start".into());
                if let Some(mut c) = pb.conn.take() {
                    let _ = c.deregister(self.poll.registry());
                }
            } else {
                settled = false;
            }
        }
        settled
    }

    fn start_player(&mut self, i: usize) {
        let Some(p) = self.players.get_mut(i) else {
            return;
        };
        let Some(url) = self.play_urls.get(p.stream) else {
            return;
        };
        let now = Instant::now();
        p.started_at = Some(now);
        p.playing = false;
        p.first_frame_ms = None;
        p.first_byte_seen = false;
        p.live = false;
        p.join_edge = None;
        p.gap.last = None;
        p.die_at = self.churn.map(|mean| now + lifetime(&mut p.rng, mean));
        let addr = self.addr;
        let plain = self.plain_sockets;
        let result = PlayerConn::connect(addr, url, plain).and_then(|mut c| {
            c.register(self.poll.registry(), Token(i))
                .map(|()| c)
                .map_err(|source| ConnError::Connect { addr, source })
        });
        match result {
            Ok(c) => {
                p.conn = Some(c);
                if let Some(t) = p.die_at {
                    self.deadlines.push(Reverse((t, i)));
                }
            }
            Err(e) => {
                let label = e.kind_label();
                if label == "EMFILE" && !self.emfile_warned {
                    self.emfile_warned = true;
                    eprintln!("\nplayer {i}: {e}");
                }
                p.failed = true;
                p.die_at = None;
                *self.failures.entry(label).or_insert(0) += 1;
            }
        }
    }

    /// Churns the players whose deadline has passed (those still waiting for their first frame
    /// go when it arrives).
    fn churn_due(&mut self, now: Instant) {
        while let Some(&Reverse((t, i))) = self.deadlines.peek() {
            if t > now {
                break;
            }
            self.deadlines.pop();
            if self.players.get(i).is_some_and(|p| p.die_at == Some(t)) {
                self.churn(i, now);
            }
        }
    }

    /// Ends player `i`'s connection (deleteStream, close) and plays again, if its lifetime is
    /// over and it got its first frame.
    fn churn(&mut self, i: usize, now: Instant) {
        let Some(p) = self.players.get_mut(i) else {
            return;
        };
        let over = matches!(p.die_at, Some(d) if now >= d);
        if !over || p.failed || p.dropped || p.first_frame_ms.is_none() {
            return;
        }
        if let Some(mut c) = p.conn.take() {
            c.leave();
            p.bytes += c.bytes_received();
            let _ = c.deregister(self.poll.registry());
        }
        self.reconnects += 1;
        self.start_player(i);
    }

    fn player_ready(&mut self, i: usize) {
        let Some(p) = self.players.get_mut(i) else {
            return;
        };
        let Some(conn) = p.conn.as_mut() else { return };
        let result = conn.on_ready(&mut self.scratch);
        let arrived = Instant::now();
        if !p.first_byte_seen {
            if let (Some(at), Some(s)) = (conn.first_byte_at(), p.started_at) {
                p.first_byte_seen = true;
                self.ttfb_us.push(
                    u64::try_from(at.saturating_duration_since(s).as_micros()).unwrap_or(u64::MAX),
                );
            }
        }
        let reference = self.publishers.get(p.stream).map(|pb| pb.newest_ts);
        let counting = self.measure_from.is_some_and(|t| arrived >= t);
        while let Some(ev) = conn.next_event() {
            match ev {
                ConnEvent::Started => {
                    p.playing = true;
                    p.ever_played = true;
                    p.join_edge = reference.flatten();
                }
                ConnEvent::Status(_) => {}
                ConnEvent::Media(m) => {
                    let av = m.msg_type == msg_type::AUDIO || m.msg_type == msg_type::VIDEO;
                    if av && p.first_frame_ms.is_some() {
                        if !counting {
                            p.gap.last = Some(arrived);
                        } else if let Some(us) = p.gap.note(arrived) {
                            self.gaps_each.add(us / 1000);
                        }
                    }
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
                        let now = Instant::now();
                        let us = p.started_at.map_or(0, |s| {
                            u64::try_from(now.saturating_duration_since(s).as_micros())
                                .unwrap_or(u64::MAX)
                        });
                        p.first_frame_ms = Some(us / 1000);
                        p.ever_got_frames = true;
                        p.gap.last = Some(arrived);
                        self.ttff_us.push(us);
                        if p.die_at.is_some_and(|d| now >= d) {
                            self.churn_now.push(i);
                        }
                    }
                    if !self.lag_applies {
                        continue;
                    }
                    let newest = match reference {
                        Some(pub_ts) => pub_ts,
                        None => self.max_ts_seen.get_mut(p.stream).map(|seen| {
                            let max = seen.map_or(m.timestamp, |t| t.max(m.timestamp));
                            *seen = Some(max);
                            max
                        }),
                    };
                    if let Some(n) = newest {
                        let lag = u64::from(n.saturating_sub(m.timestamp));
                        p.live |= match p.join_edge {
                            Some(edge) => m.timestamp >= edge,
                            None => lag <= LIVE_EDGE_MS,
                        };
                        if p.live {
                            p.ever_live = true;
                            if counting {
                                self.lag.add(lag);
                            }
                            self.lag_window.add(lag);
                        }
                    }
                }
            }
        }
        if let Err(e) = result {
            p.bytes += conn.bytes_received();
            let _ = conn.deregister(self.poll.registry());
            p.conn = None;
            p.die_at = None;
            if p.playing || e.was_active() {
                p.dropped = true;
            } else {
                p.failed = true;
            }
            *self.failures.entry(e.kind_label()).or_insert(0) += 1;
        } else if self.sample > 1 && !i.is_multiple_of(self.sample) && p.first_frame_ms.is_some() {
            // From its first frame on this player only counts bytes (`Drain`).
            let _ = conn.deregister(self.poll.registry());
            let now = Instant::now();
            p.drain = Some(Drain { bytes: 0, since: now, mark: None, last_data: now, max_quiet_us: 0 });
        }
    }

    /// Every draining player discards what its socket holds; one that settled gets its mark.
    fn drain_all(&mut self, now: Instant) {
        for p in &mut self.players {
            let (Some(d), Some(conn)) = (p.drain.as_mut(), p.conn.as_mut()) else {
                continue;
            };
            let result = drain_socket(conn.socket(), &mut self.drain_buf);
            match result {
                Ok((n, closed)) => {
                    if n > 0 {
                        if let Some(from) = self.measure_from.filter(|t| now >= *t) {
                            let quiet = now.saturating_duration_since(d.last_data.max(from)).as_micros();
                            d.max_quiet_us = d.max_quiet_us.max(u64::try_from(quiet).unwrap_or(u64::MAX));
                        }
                        d.last_data = now;
                        d.bytes += n;
                    }
                    if d.mark.is_none() && now >= d.since + DRAIN_SETTLE {
                        let sent = self.publishers.get(p.stream).map_or(0, |pb| pb.payload_bytes);
                        d.mark = Some((d.bytes, sent));
                    }
                    if closed {
                        p.dropped = true;
                        *self.failures.entry("closed while draining".into()).or_insert(0) += 1;
                    }
                }
                Err(e) => {
                    p.dropped = true;
                    *self.failures.entry(format!("drain: {}", e.kind())).or_insert(0) += 1;
                }
            }
            if p.dropped {
                p.bytes += conn.bytes_received();
                p.conn = None;
            }
        }
    }

    fn publisher_ready(&mut self, j: usize) {
        let Some(pb) = self.publishers.get_mut(j) else {
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
            eprintln!("\npublisher {j}: {e}");
        }
    }

    /// Sends every tag that is due, as long as the sockets keep up.
    fn pump_publishers(&mut self, now: Instant) {
        for (j, pb) in self.publishers.iter_mut().enumerate() {
            let (Some(start), Some(conn)) = (pb.started, pb.conn.as_mut()) else {
                continue;
            };
            let sid = conn.stream_id();
            let mut result = Ok(());
            while let Some(ts) = pb.feed.next_ts() {
                if start + Duration::from_millis(u64::from(ts)) > now
                    || conn.pending_out_len() > MAX_BACKLOG
                {
                    break;
                }
                let Some((cs, msg)) = pb.feed.take(sid) else {
                    break;
                };
                if msg.msg_type == msg_type::AUDIO || msg.msg_type == msg_type::VIDEO {
                    pb.frames += 1;
                }
                pb.newest_ts = Some(ts);
                pb.payload_bytes += msg.payload.len() as u64;
                result = conn.send_media(cs, &msg);
                if result.is_err() {
                    break;
                }
            }
            if let Err(e) = result {
                pb.error = Some(e.to_string());
                let _ = conn.deregister(self.poll.registry());
                pb.conn = None;
                eprintln!("\npublisher {j}: {e}");
            }
        }
    }

    /// When the next publisher tag is due (a backlogged socket wakes us by itself).
    fn publishers_due(&mut self) -> Option<Instant> {
        let mut due: Option<Instant> = None;
        for pb in &mut self.publishers {
            let (Some(start), Some(conn)) = (pb.started, pb.conn.as_mut()) else {
                continue;
            };
            if conn.pending_out_len() > MAX_BACKLOG {
                continue;
            }
            if let Some(ts) = pb.feed.next_ts() {
                let t = start + Duration::from_millis(u64::from(ts));
                due = Some(due.map_or(t, |d| d.min(t)));
            }
        }
        due
    }

    fn total_bytes(&self) -> u64 {
        self.players
            .iter()
            .map(|p| {
                p.bytes
                    + p.conn.as_ref().map_or(0, PlayerConn::bytes_received)
                    + p.drain.as_ref().map_or(0, |d| d.bytes)
            })
            .sum()
    }

    fn progress(&mut self, elapsed: Duration, attempted: usize, bytes: u64, tty: bool) {
        let up = self
            .players
            .iter()
            .filter(|p| p.conn.as_ref().is_some_and(PlayerConn::is_active))
            .count();
        let connecting = self
            .players
            .iter()
            .filter(|p| p.conn.as_ref().is_some_and(|c| !c.is_active()))
            .count();
        let failed = self.players.iter().filter(|p| p.failed).count();
        let dropped = self.players.iter().filter(|p| p.dropped).count();
        let f = |v: Option<u64>| v.map_or_else(|| "-".into(), |x| x.to_string());
        let mut extra = String::new();
        if self.publishers.len() > 1 {
            let live = self.publishers.iter().filter(|p| p.conn.is_some()).count();
            extra += &format!(", {live}/{} publishers", self.publishers.len());
        }
        if self.churn.is_some() {
            extra += &format!(", {} reconnects", self.reconnects);
        }
        let line = format!(
            "[{:>4}s] players {up} playing, {connecting} connecting, {failed} failed, {dropped} dropped ({attempted}/{} started{extra}) | {:.1} Mbit/s {} fr/s | lag p50 {} p99 {} ms",
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
        url: &PlayUrl,
        args: &BenchArgs,
        attempted: usize,
        duration_s: f64,
        pub_url: Option<String>,
    ) -> BenchReport {
        for p in &mut self.players {
            if let Some(c) = p.conn.as_ref() {
                p.bytes += c.bytes_received();
            }
            p.bytes += p.drain.as_ref().map_or(0, |d| d.bytes);
        }
        let (deficits, quiet) = self.drain_checks(duration_s);
        let pct = |v: &[u64]| Percentiles {
            p50: percentile(v, 50.0),
            p99: percentile(v, 99.0),
            max: v.last().copied(),
        };
        self.ttff_us.sort_unstable();
        self.ttfb_us.sort_unstable();
        let ttff = |p: f64| percentile(&self.ttff_us, p);
        let ps = &self.players;
        // Draining players stop looking at messages after their first frame: gaps and the live
        // edge are the parsing players'.
        let mut gaps: Vec<u64> = ps.iter().filter(|p| p.drain.is_none()).filter_map(|p| p.gap.max_us).collect();
        gaps.sort_unstable();
        let gap_ms = |v: Option<u64>| v.map(|us| us / 1000);
        let mut publisher_errors = BTreeMap::new();
        for e in self.publishers.iter().filter_map(|p| p.error.as_ref()) {
            *publisher_errors.entry(e.clone()).or_insert(0) += 1;
        }
        BenchReport {
            url: url.to_string(),
            player_protocol: url.protocol(),
            duration_s,
            streams: self.play_urls.len(),
            players_requested: args.players,
            players_attempted: attempted,
            players_connected: ps.iter().filter(|p| p.ever_played).count(),
            players_failed: ps.iter().filter(|p| p.failed).count(),
            players_dropped: ps.iter().filter(|p| p.dropped).count(),
            players_pending: ps
                .iter()
                .filter(|p| p.conn.as_ref().is_some_and(|c| !c.is_active()))
                .count(),
            players_with_frames: ps.iter().filter(|p| p.ever_got_frames).count(),
            players_never_live: ps
                .iter()
                .filter(|p| self.lag_applies && p.drain.is_none() && p.ever_got_frames && !p.ever_live)
                .count(),
            churn_s: self.churn,
            plain_sockets: self.plain_sockets,
            reconnects: self.reconnects,
            failures: self.failures.clone(),
            bytes_received: ps.iter().map(|p| p.bytes).sum(),
            frames_received: ps.iter().map(|p| p.frames).sum(),
            video_frames: ps.iter().map(|p| p.video).sum(),
            audio_frames: ps.iter().map(|p| p.audio).sum(),
            time_to_first_frame_ms: Percentiles {
                p50: ttff(50.0).map(|v| v / 1000),
                p99: ttff(99.0).map(|v| v / 1000),
                max: self.ttff_us.last().map(|v| v / 1000),
            },
            time_to_first_frame_us: Percentiles {
                p50: ttff(50.0),
                p99: ttff(99.0),
                max: self.ttff_us.last().copied(),
            },
            time_to_first_byte_us: matches!(url, PlayUrl::Flv(_)).then(|| Percentiles {
                p50: percentile(&self.ttfb_us, 50.0),
                p99: percentile(&self.ttfb_us, 99.0),
                max: self.ttfb_us.last().copied(),
            }),
            lag_ms: Percentiles {
                p50: self.lag.percentile(50.0),
                p99: self.lag.percentile(99.0),
                max: self.lag.max(),
            },
            lag_samples: self.lag.count(),
            gap_max_ms: gap_ms(gaps.last().copied()),
            gap_p50_ms: gap_ms(percentile(&gaps, 50.0)),
            gap_p99_ms: gap_ms(percentile(&gaps, 99.0)),
            gap_players: gaps.len(),
            gap_each_ms: Percentiles {
                p50: self.gaps_each.percentile(50.0),
                p99: self.gaps_each.percentile(99.0),
                max: self.gaps_each.max(),
            },
            lag_reference: if !self.lag_applies {
                "none"
            } else if self.publishers.is_empty() {
                "max_ts_seen"
            } else {
                "publisher"
            },
            publishers: self.publishers.len(),
            publishers_failed: self.publishers.iter().filter(|p| p.error.is_some()).count(),
            publisher_url: pub_url,
            publisher_frames_sent: self.publishers.iter().map(|p| p.frames).sum(),
            publisher_errors,
            drain_players: ps.iter().filter(|p| p.drain.is_some()).count(),
            drain_checked: deficits.len(),
            drain_behind: deficits.iter().filter(|&&ms| ms > DRAIN_BEHIND_MS).count(),
            drain_deficit_ms: pct(&deficits),
            drain_quiet_ms: pct(&quiet),
        }
    }

    /// Draining players' shortfalls against their publishers since their marks, in ms of the
    /// stream (publisher payload bytes over its run time), and their longest quiet times, ms;
    /// both sorted.
    fn drain_checks(&self, duration_s: f64) -> (Vec<u64>, Vec<u64>) {
        let mut deficits = Vec::new();
        let mut quiet = Vec::new();
        for p in &self.players {
            let Some(d) = p.drain.as_ref() else { continue };
            quiet.push(d.max_quiet_us / 1000);
            let (Some((got0, sent0)), Some(pb)) = (d.mark, self.publishers.get(p.stream)) else {
                continue;
            };
            let secs = pb.started.map_or(duration_s, |s| s.elapsed().as_secs_f64());
            let per_ms = pb.payload_bytes as f64 / (secs * 1000.0);
            let short = pb.payload_bytes.saturating_sub(sent0).saturating_sub(d.bytes.saturating_sub(got0));
            deficits.push(if per_ms > 0.0 { (short as f64 / per_ms) as u64 } else { 0 });
        }
        deficits.sort_unstable();
        quiet.sort_unstable();
        (deficits, quiet)
    }
}

/// A draining player that got this much less than its publisher sent (in ms of the stream) did
/// not keep up.
const DRAIN_BEHIND_MS: u64 = 1000;

fn is_frame(m: &RawMessage) -> bool {
    match m.msg_type {
        msg_type::VIDEO => video_tag_info(&m.payload).is_some_and(|i| !i.sequence_header),
        msg_type::AUDIO => audio_tag_info(&m.payload).is_some_and(|i| !i.sequence_header),
        _ => false,
    }
}

pub fn print_text(r: &BenchReport) {
    let f = |v: Option<u64>| v.map_or_else(|| "-".into(), |x| x.to_string());
    println!("url:              {} ({} players)", r.url, r.player_protocol);
    println!("duration:         {:.1} s", r.duration_s);
    if r.streams > 1 {
        println!(
            "streams:          {} (names suffixed _0.._{})",
            r.streams,
            r.streams - 1
        );
    }
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
    if let Some(c) = r.churn_s {
        println!(
            "churn:            {} reconnects (lifetimes {:.2}..{:.2} s)",
            r.reconnects,
            c * 0.5,
            c * 1.5
        );
    }
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
    let t = &r.time_to_first_frame_us;
    let ms = |v: Option<u64>| v.map_or_else(|| "-".into(), |x| format!("{:.1}", x as f64 / 1000.0));
    println!(
        "first frame:      p50 {} ms, p99 {} ms, max {} ms",
        ms(t.p50),
        ms(t.p99),
        ms(t.max)
    );
    if let Some(t) = &r.time_to_first_byte_us {
        println!(
            "first FLV byte:   p50 {} ms, p99 {} ms, max {} ms",
            ms(t.p50),
            ms(t.p99),
            ms(t.max)
        );
    }
    let l = &r.lag_ms;
    println!(
        "lag:              p50 {} ms, p99 {} ms, max {} ms (behind {})",
        f(l.p50),
        f(l.p99),
        f(l.max),
        r.lag_reference
    );
    println!(
        "gap:              max {} ms; players' longest gaps p50 {} ms, p99 {} ms ({} players); \
         every gap p50 {} ms, p99 {} ms",
        f(r.gap_max_ms),
        f(r.gap_p50_ms),
        f(r.gap_p99_ms),
        r.gap_players,
        f(r.gap_each_ms.p50),
        f(r.gap_each_ms.p99)
    );
    if r.drain_players > 0 {
        println!(
            "draining:         {} players, {} checked, {} behind by > {DRAIN_BEHIND_MS} ms; shortfall p50 {} p99 {} max {} ms; longest quiet p99 {} max {} ms",
            r.drain_players,
            r.drain_checked,
            r.drain_behind,
            f(r.drain_deficit_ms.p50),
            f(r.drain_deficit_ms.p99),
            f(r.drain_deficit_ms.max),
            f(r.drain_quiet_ms.p99),
            f(r.drain_quiet_ms.max)
        );
    }
    if r.publishers > 0 {
        println!(
            "publishers:       {} ({} failed), {} frames sent to {}{}",
            r.publishers,
            r.publishers_failed,
            r.publisher_frames_sent,
            r.publisher_url.as_deref().unwrap_or(""),
            if r.publishers > 1 {
                format!(" (_0.._{})", r.publishers - 1)
            } else {
                String::new()
            }
        );
        for (e, n) in &r.publisher_errors {
            println!("  {n:>6} × {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_names() {
        let u = RtmpUrl::parse("rtmp://h/live/s?k=v").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stream_url(&u, 3, 1).name, "s?k=v");
        assert_eq!(stream_url(&u, 3, 4).name, "s_3?k=v");
        let u = RtmpUrl::parse("rtmp://h/live/s").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stream_url(&u, 0, 2).name, "s_0");
    }

    #[test]
    fn gaps_count_from_the_first_frame_and_keep_the_longest() {
        let t0 = Instant::now();
        let mut g = Gap::default();
        g.note(t0);
        assert_eq!(g.max_us, None);
        g.note(t0 + Duration::from_millis(20));
        g.note(t0 + Duration::from_millis(90));
        g.note(t0 + Duration::from_millis(100));
        assert_eq!(g.max_us, Some(70_000));
        // A reconnect starts over: no gap across it, the longest so far stays.
        g.last = None;
        g.note(t0 + Duration::from_secs(5));
        assert_eq!(g.max_us, Some(70_000));
        g.note(t0 + Duration::from_millis(5010));
        assert_eq!(g.max_us, Some(70_000));
    }

    #[test]
    fn draining_counts_bytes_without_reading_them_and_sees_the_close() {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let mut peer = std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
        let (ours, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
        ours.set_nonblocking(true).unwrap_or_else(|e| panic!("{e}"));
        let sock = mio::net::TcpStream::from_std(ours);
        // A small buffer: the reads loop until the socket is empty.
        let mut buf = vec![std::mem::MaybeUninit::uninit(); 1000];
        assert_eq!(drain_socket(&sock, &mut buf).unwrap_or_else(|e| panic!("{e}")), (0, false));
        peer.write_all(&[7u8; 5000]).unwrap_or_else(|e| panic!("{e}"));
        let mut got = 0;
        for _ in 0..100 {
            got += drain_socket(&sock, &mut buf).unwrap_or_else(|e| panic!("{e}")).0;
            if got >= 5000 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(got, 5000);
        drop(peer);
        let mut closed = false;
        for _ in 0..100 {
            let (n, c) = drain_socket(&sock, &mut buf).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(n, 0);
            if c {
                closed = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(closed);
    }

    #[test]
    fn lifetimes_are_deterministic_and_in_range() {
        let draw = |i| {
            let mut s = seed(i);
            (0..1000).map(|_| lifetime(&mut s, 2.0)).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let all = draw(1);
        assert!(all.iter().all(|d| (1.0..3.0).contains(&d.as_secs_f64())));
        let mean = all.iter().map(Duration::as_secs_f64).sum::<f64>() / 1000.0;
        assert!((mean - 2.0).abs() < 0.1, "{mean}");
    }
}
