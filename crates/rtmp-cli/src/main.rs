//! `rtmp`: a command-line RTMP client (publish, play, probe, bench) on the rtmp-proto core, for
//! testing the module by hand and under load.

mod bench;
mod conn;
mod flvconn;
mod flvplay;
mod mux;
mod play;
mod player_conn;
mod probe;
mod publish;
mod stats;
mod synth;

use rtmp_proto::url;
use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "rtmp",
    version,
    about = "RTMP client: publish, play, probe and load-test a server"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
    /// Announce Enhanced RTMP support for these video FourCCs in connect (e.g. hvc1,av01);
    /// without it the server treats the client as a legacy one.
    #[arg(long, global = true, value_delimiter = ',')]
    fourcc: Vec<String>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Publish an FLV file as a live stream, paced at real time.
    Publish {
        /// rtmp://host[:port]/app/name
        url: String,
        /// The FLV file to publish; without it a synthetic stream (filler H.264 + AAC of the
        /// given bitrate, frame rate and GOP, for load tests).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Synthetic stream: video bitrate in kbit/s (audio adds 128).
        #[arg(long, default_value_t = 2000, conflicts_with = "file")]
        bitrate: u64,
        /// Synthetic stream: frames per second.
        #[arg(long, default_value_t = 30, conflicts_with = "file")]
        fps: u64,
        /// Synthetic stream: frames per GOP (keyframe interval).
        #[arg(long, default_value_t = 60, conflicts_with = "file")]
        gop: u64,
        /// Start over at the end of the file (timestamps keep growing); a synthetic stream
        /// always loops.
        #[arg(long = "loop")]
        looping: bool,
        /// Send as fast as the socket takes it instead of at real time.
        #[arg(long)]
        fast: bool,
    },
    /// Play a stream, printing per-second stats; exit 1 if no media arrived.
    Play {
        url: String,
        /// Stop after this many seconds (default: until the stream ends).
        #[arg(long)]
        duration: Option<f64>,
        /// Save the stream as FLV.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Stop when no media arrived for this many seconds.
        #[arg(long, default_value_t = 10.0)]
        idle_timeout: f64,
    },
    /// Play an HTTP-FLV (http://) or WebSocket-FLV (ws://) stream and report status, headers,
    /// FLV header flags, tag counts and time to first tag; exit 2 on a non-2xx status.
    FlvPlay {
        /// http://host[:port]/path?query or ws://host[:port]/path?query
        url: String,
        /// Stop after this many seconds.
        #[arg(long, default_value_t = 5.0)]
        duration: f64,
        #[arg(long)]
        json: bool,
        /// Extra request header, NAME:VALUE (repeatable).
        #[arg(long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
    },
    /// Report codecs, sequence headers, metadata and time to first frame.
    Probe {
        url: String,
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 10.0)]
        timeout: f64,
    },
    /// Wrap a raw HEVC stream (Annex B, e.g. from `ffmpeg -c:v libx265 -f hevc`) into FLV.
    MuxHevc {
        input: PathBuf,
        output: PathBuf,
        #[arg(long, default_value_t = 25.0)]
        fps: f64,
        /// Write the legacy FLV codec id 12 instead of Enhanced RTMP `hvc1`.
        #[arg(long)]
        legacy: bool,
    },
    /// Many players (and optionally a publisher) from one event loop.
    Bench {
        /// The stream the players play: rtmp://… for RTMP players, http://… for HTTP-FLV ones
        /// (e.g. http://host:8080/flv/live/name.flv; --publish-file then needs --publisher-url).
        url: String,
        #[arg(long)]
        players: usize,
        /// Publish this FLV (looped) in the same loop; players start once it is live.
        #[arg(long)]
        publish_file: Option<PathBuf>,
        /// Where to publish (default: the players' URL).
        #[arg(long, requires = "publish_file")]
        publisher_url: Option<String>,
        #[arg(long, default_value_t = 30.0)]
        duration: f64,
        /// New players per second (0: all at once).
        #[arg(long, default_value_t = 500.0)]
        ramp: f64,
        /// Spread the players round-robin over K streams (names suffixed _0.._K-1 when K > 1),
        /// each with its own publisher when publishing.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        streams: u32,
        /// Each player disconnects after a lifetime uniform in [0.5, 1.5] × SECS and plays the
        /// same stream again.
        #[arg(long, value_name = "SECS")]
        churn: Option<f64>,
        /// Players keep their sockets' OS defaults (Nagle on, no TCP_NODELAY), as FFmpeg, OBS
        /// and browsers do; publishers still set TCP_NODELAY.
        #[arg(long)]
        plain_sockets: bool,
        /// Only every K-th player parses what it gets (lag, gaps, frames); the others, once
        /// they got their first frame, read and discard the bytes every 100 ms without copying
        /// them (MSG_TRUNC) and are checked by byte count against what the publisher sent, so
        /// that the client costs little next to the server it measures. Needs --publish-file.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
        sample: u32,
        /// Lag, gaps and draining players' quiet times count only from SECS after the last
        /// player started (the steady state; the join storm is left out). Drops always count.
        #[arg(long, value_name = "SECS")]
        settle: Option<f64>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug)]
pub enum CliError {
    Url(url::UrlError),
    Conn(conn::ConnError),
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    Flv {
        path: PathBuf,
        source: rtmp_proto::flv::FlvError,
    },
    Other(String),
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Url(e) => write!(f, "{e}"),
            CliError::Conn(e) => write!(f, "{e}"),
            CliError::File { path, source } => write!(f, "{}: {source}", path.display()),
            CliError::Flv { path, source } => write!(f, "{}: {source}", path.display()),
            CliError::Other(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for CliError {}

impl From<url::UrlError> for CliError {
    fn from(e: url::UrlError) -> Self {
        CliError::Url(e)
    }
}

impl From<conn::ConnError> for CliError {
    fn from(e: conn::ConnError) -> Self {
        CliError::Conn(e)
    }
}

fn run(cli: Cli) -> Result<ExitCode, CliError> {
    let ok_if = |b: bool| {
        if b {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    };
    let fourcc = &cli.fourcc;
    match cli.cmd {
        Cmd::Publish {
            url,
            file,
            bitrate,
            fps,
            gop,
            looping,
            fast,
        } => {
            publish::run(&publish::PublishArgs {
                url: &url,
                file: file.as_deref(),
                synthetic: synth::Synthetic { video_kbps: bitrate, fps, gop },
                looping: looping || file.is_none(),
                fast,
                fourcc,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Play {
            url,
            duration,
            out,
            idle_timeout,
        } => {
            let got = play::run(&play::PlayArgs {
                url: &url,
                duration,
                out: out.as_deref(),
                idle_timeout,
                fourcc,
            })?;
            Ok(ok_if(got))
        }
        Cmd::MuxHevc { input, output, fps, legacy } => {
            let form = if legacy { mux::Form::Legacy } else { mux::Form::Enhanced };
            let frames = mux::run(&input, &output, fps, form)?;
            eprintln!("{}: {frames} frames", output.display());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::FlvPlay { url, duration, json, headers } => {
            let code = flvplay::run(&flvplay::FlvPlayArgs { url: &url, duration, json, headers: &headers })?;
            Ok(ExitCode::from(code))
        }
        Cmd::Probe { url, json, timeout } => Ok(ok_if(probe::run(&url, timeout, json, fourcc)?)),
        Cmd::Bench {
            url,
            players,
            publish_file,
            publisher_url,
            duration,
            ramp,
            streams,
            churn,
            plain_sockets,
            sample,
            settle,
            json,
        } => {
            let report = bench::run(&bench::BenchArgs {
                url: &url,
                players,
                publish_file: publish_file.as_deref(),
                publisher_url: publisher_url.as_deref(),
                duration,
                ramp,
                streams: usize::try_from(streams).unwrap_or(1),
                churn,
                plain_sockets,
                sample: usize::try_from(sample).unwrap_or(1),
                settle,
            })?;
            if json {
                let s = serde_json::to_string_pretty(&report)
                    .map_err(|e| CliError::Other(e.to_string()))?;
                println!("{s}");
            } else {
                bench::print_text(&report);
            }
            Ok(ok_if(report.players_with_frames > 0))
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rtmp: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Seconds from the command line as a Duration: negative and NaN give zero, and huge values are
/// capped (about 30 years) so deadlines computed from them cannot overflow.
pub fn secs(v: f64) -> std::time::Duration {
    const CAP: f64 = 1e9;
    let v = if v.is_nan() { 0.0 } else { v.clamp(0.0, CAP) };
    std::time::Duration::from_secs_f64(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secs_never_panics() {
        assert_eq!(secs(1.5).as_millis(), 1500);
        assert_eq!(secs(-3.0), std::time::Duration::ZERO);
        assert_eq!(secs(f64::NAN), std::time::Duration::ZERO);
        assert_eq!(secs(f64::INFINITY).as_secs(), 1_000_000_000);
        let _ = std::time::Instant::now() + secs(f64::MAX);
    }
}
