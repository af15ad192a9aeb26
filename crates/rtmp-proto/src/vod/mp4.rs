//! MP4 (ISO BMFF / QuickTime) files for VOD: the `moov` box read whole (wherever it is), the
//! first H.264/HEVC video track and the first AAC/MP3 audio track (or those [`Tracks`] names)
//! turned into sample tables, then samples read one by one and wrapped as FLV tag bodies.
//!
//! Timing: decode times come from `stts`, composition offsets from `ctts`; the first edit of
//! `elst` shifts a track (its media time starts the play, an empty edit delays it). When that
//! leaves a decode time below zero (B-frames), every track is moved up by the same amount so the
//! first message is at 0 and audio and video stay in step.

use bytes::Bytes;

use super::{
    encode_metadata, read_exact, secs, video_payload, Source, TagKind, Tracks, VideoPacket,
    VodError, VodTag,
};
use super::{CODEC_AVC, CODEC_HEVC};
use crate::amf0::Amf0Value;
use crate::codec::{aac, avc, hevc, mp3};

/// The largest `moov` read.
pub const MAX_MOOV: u64 = 64 << 20;
/// Samples per track.
pub const MAX_SAMPLES: u64 = 20_000_000;
/// Top-level boxes looked at before giving up on finding `moov`.
const MAX_TOP_BOXES: usize = 10_000;
/// A sample must fit an RTMP message (24-bit length) with its tag header.
const MAX_SAMPLE: u32 = 0xFF_FFFF - 16;

/// A box in a buffer: its type and body.
struct Mp4Box<'a> {
    kind: [u8; 4],
    body: &'a [u8],
}

/// The boxes in `b`, one after the other.
struct Boxes<'a> {
    b: &'a [u8],
}

impl<'a> Iterator for Boxes<'a> {
    type Item = Result<Mp4Box<'a>, VodError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.b.is_empty() {
            return None;
        }
        let r = split_box(self.b);
        match r {
            Ok((bx, rest)) => {
                self.b = rest;
                Some(Ok(bx))
            }
            Err(e) => {
                self.b = &[];
                Some(Err(e))
            }
        }
    }
}

fn split_box(b: &[u8]) -> Result<(Mp4Box<'_>, &[u8]), VodError> {
    let [s0, s1, s2, s3, k0, k1, k2, k3, rest @ ..] = b else {
        return Err(VodError::Invalid("box header runs past its parent"));
    };
    let kind = [*k0, *k1, *k2, *k3];
    let size = u64::from(u32::from_be_bytes([*s0, *s1, *s2, *s3]));
    let (header, size) = match size {
        0 => (8, b.len() as u64),
        1 => {
            let large = rest
                .get(..8)
                .ok_or(VodError::Invalid("box header runs past its parent"))?;
            let mut l = [0u8; 8];
            l.copy_from_slice(large);
            (16, u64::from_be_bytes(l))
        }
        s => (8, s),
    };
    if size < header || size > b.len() as u64 {
        return Err(VodError::Invalid("box size out of its parent"));
    }
    let size = size as usize;
    let body = b
        .get(header as usize..size)
        .ok_or(VodError::Invalid("box size"))?;
    let rest = b.get(size..).unwrap_or_default();
    Ok((Mp4Box { kind, body }, rest))
}

fn boxes(b: &[u8]) -> Boxes<'_> {
    Boxes { b }
}

/// The first child of type `kind`.
fn child<'a>(b: &'a [u8], kind: &[u8; 4]) -> Result<Option<&'a [u8]>, VodError> {
    for bx in boxes(b) {
        let bx = bx?;
        if &bx.kind == kind {
            return Ok(Some(bx.body));
        }
    }
    Ok(None)
}

/// Big-endian fields of a box body.
struct Rd<'a> {
    b: &'a [u8],
}

impl<'a> Rd<'a> {
    fn new(b: &'a [u8]) -> Self {
        Rd { b }
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], VodError> {
        if n > self.b.len() {
            return Err(VodError::Invalid("box shorter than its fields"));
        }
        let (a, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(a)
    }

    fn skip(&mut self, n: usize) -> Result<(), VodError> {
        self.bytes(n).map(|_| ())
    }

    fn u8(&mut self) -> Result<u8, VodError> {
        Ok(self.bytes(1)?.first().copied().unwrap_or(0))
    }

    fn u16(&mut self) -> Result<u16, VodError> {
        let b = self.bytes(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, VodError> {
        let b = self.bytes(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, VodError> {
        Ok((u64::from(self.u32()?) << 32) | u64::from(self.u32()?))
    }

    /// Version and flags of a full box: the version.
    fn version(&mut self) -> Result<u8, VodError> {
        let v = self.u8()?;
        self.skip(3)?;
        Ok(v)
    }

    /// An entry count, checked against the bytes left for `entry` bytes each.
    fn count(&mut self, entry: usize) -> Result<usize, VodError> {
        let n = self.u32()? as usize;
        if n.saturating_mul(entry) > self.b.len() {
            return Err(VodError::Invalid("more entries than the box holds"));
        }
        Ok(n)
    }

    fn rest(&self) -> &'a [u8] {
        self.b
    }
}

/// A fixed-size table: `n` entries of `size` bytes.
#[derive(Clone, Copy, Default)]
struct Table<'a> {
    b: &'a [u8],
    size: usize,
}

impl<'a> Table<'a> {
    fn parse(body: &'a [u8], size: usize) -> Result<(u8, Table<'a>), VodError> {
        let mut r = Rd::new(body);
        let v = r.version()?;
        let n = r.count(size)?;
        let b = r.rest().get(..n * size).ok_or(VodError::Invalid("table"))?;
        Ok((v, Table { b, size }))
    }

    fn len(&self) -> usize {
        self.b.len().checked_div(self.size).unwrap_or(0)
    }

    fn u32(&self, i: usize, field: usize) -> u32 {
        let at = i * self.size + field * 4;
        match self.b.get(at..at + 4) {
            Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
            None => 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Video {
    Avc(Bytes),
    Hevc(Bytes),
}

#[derive(Debug, Clone, PartialEq)]
enum Audio {
    Aac(Bytes),
    /// With its FLV sound byte.
    Mp3(u8),
}

#[derive(Debug, Clone, PartialEq)]
enum Codec {
    Video(Video),
    Audio(Audio),
}

/// What a sample entry of `stsd` says.
struct Entry {
    codec: Codec,
    width: u32,
    height: u32,
    channels: u32,
    rate: u32,
}

/// The MP3 sound byte: format 2, rate index, 16-bit, stereo flag.
fn mp3_sound_byte(rate: u32, channels: u32) -> u8 {
    let rate_index = match rate {
        0..=8000 => 0,
        8001..=11025 => 1,
        11026..=22050 => 2,
        _ => 3,
    };
    0x20 | (rate_index << 2) | 0x02 | u8::from(channels != 1)
}

/// A descriptor of an `esds` (ISO 14496-1): tag and body.
fn descriptor<'a>(r: &mut Rd<'a>) -> Result<(u8, &'a [u8]), VodError> {
    let tag = r.u8()?;
    let mut len = 0usize;
    for _ in 0..4 {
        let b = r.u8()?;
        len = (len << 7) | usize::from(b & 0x7f);
        if b & 0x80 == 0 {
            break;
        }
    }
    let body = r.bytes(len.min(r.rest().len()))?;
    Ok((tag, body))
}

/// The audio codec an `esds` names: AAC with its AudioSpecificConfig, or MP3.
fn esds(body: &[u8], rate: u32, channels: u32) -> Result<Option<Audio>, VodError> {
    let mut r = Rd::new(body);
    r.version()?;
    let (tag, es) = descriptor(&mut r)?;
    if tag != 3 {
        return Ok(None);
    }
    let mut r = Rd::new(es);
    r.skip(2)?;
    let flags = r.u8()?;
    if flags & 0x80 != 0 {
        r.skip(2)?;
    }
    if flags & 0x40 != 0 {
        let n = r.u8()?;
        r.skip(usize::from(n))?;
    }
    if flags & 0x20 != 0 {
        r.skip(2)?;
    }
    let (tag, dc) = descriptor(&mut r)?;
    if tag != 4 {
        return Ok(None);
    }
    let mut r = Rd::new(dc);
    let oti = r.u8()?;
    r.skip(12)?;
    match oti {
        // MPEG-4 audio, MPEG-2 AAC profiles.
        0x40 | 0x66 | 0x67 | 0x68 => {
            while !r.rest().is_empty() {
                let (tag, info) = descriptor(&mut r)?;
                if tag == 5 && aac::parse_config(info).is_ok() {
                    return Ok(Some(Audio::Aac(Bytes::copy_from_slice(info))));
                }
            }
            Ok(None)
        }
        0x69 | 0x6B => Ok(Some(Audio::Mp3(mp3_sound_byte(rate, channels)))),
        _ => Ok(None),
    }
}

/// The first sample entry of `stsd`, when its codec is one RTMP carries.
fn sample_entry(stsd: &[u8], video: bool) -> Result<Option<Entry>, VodError> {
    let mut r = Rd::new(stsd);
    r.version()?;
    r.u32()?;
    let Some(bx) = boxes(r.rest()).next() else {
        return Ok(None);
    };
    let bx = bx?;
    let mut r = Rd::new(bx.body);
    r.skip(8)?;
    if video {
        r.skip(16)?;
        let (width, height) = (u32::from(r.u16()?), u32::from(r.u16()?));
        r.skip(50)?;
        let children = r.rest();
        let (config, wrap): (&[u8; 4], fn(Bytes) -> Video) = match &bx.kind {
            b"avc1" | b"avc3" => (b"avcC", Video::Avc),
            b"hvc1" | b"hev1" => (b"hvcC", Video::Hevc),
            _ => return Ok(None),
        };
        let Some(c) = child(children, config)? else {
            return Ok(None);
        };
        let (w, h) = match wrap(Bytes::new()) {
            Video::Avc(_) => avc::parse_config(c)
                .map(|c| (c.info.width, c.info.height))
                .ok(),
            Video::Hevc(_) => hevc::parse_config(c)
                .map(|c| (c.info.width, c.info.height))
                .ok(),
        }
        .unwrap_or((width, height));
        let codec = Codec::Video(wrap(Bytes::copy_from_slice(c)));
        return Ok(Some(Entry {
            codec,
            width: w,
            height: h,
            channels: 0,
            rate: 0,
        }));
    }
    let qt_version = r.u16()?;
    r.skip(6)?;
    let channels = u32::from(r.u16()?);
    r.skip(6)?;
    let rate = r.u32()? >> 16;
    match qt_version {
        1 => r.skip(16)?,
        2 => r.skip(36)?,
        _ => {}
    }
    let children = r.rest();
    let audio = match &bx.kind {
        b"mp4a" => match child(children, b"esds")? {
            Some(e) => esds(e, rate, channels)?,
            None => None,
        },
        b".mp3" => Some(Audio::Mp3(mp3_sound_byte(rate, channels))),
        _ => None,
    };
    let Some(audio) = audio else { return Ok(None) };
    let (rate, channels) = match &audio {
        Audio::Aac(asc) => match aac::parse_config(asc) {
            Ok(c) => (
                c.ext_sample_rate.unwrap_or(c.sample_rate),
                if c.channels == 0 {
                    channels
                } else {
                    c.channels
                },
            ),
            Err(_) => (rate, channels),
        },
        Audio::Mp3(_) => (rate, channels),
    };
    Ok(Some(Entry {
        codec: Codec::Audio(audio),
        width: 0,
        height: 0,
        channels,
        rate,
    }))
}

/// One sample: where it is, its times (ms, before the file-wide offset) and whether it is sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sample {
    offset: u64,
    dts: i64,
    size: u32,
    cts: i32,
    key: bool,
}

/// A track chosen for play.
#[derive(Debug)]
struct Track {
    codec: Codec,
    samples: Vec<Sample>,
    /// Next sample to send.
    next: usize,
    /// The end of the track's last sample (ms, before the file-wide offset).
    end: i64,
}

fn to_ms(ticks: i128, timescale: u32) -> i64 {
    let ms = (ticks * 1000).div_euclid(i128::from(timescale.max(1)));
    ms.clamp(i128::from(i64::MIN / 4), i128::from(i64::MAX / 4)) as i64
}

/// The parsed boxes of one `trak`.
struct TrakBoxes<'a> {
    handler: [u8; 4],
    timescale: u32,
    elst: Option<&'a [u8]>,
    stbl: &'a [u8],
}

fn trak_boxes(trak: &[u8]) -> Result<Option<TrakBoxes<'_>>, VodError> {
    let Some(mdia) = child(trak, b"mdia")? else {
        return Ok(None);
    };
    let elst = match child(trak, b"edts")? {
        Some(edts) => child(edts, b"elst")?,
        None => None,
    };
    let (Some(mdhd), Some(hdlr), Some(minf)) = (
        child(mdia, b"mdhd")?,
        child(mdia, b"hdlr")?,
        child(mdia, b"minf")?,
    ) else {
        return Ok(None);
    };
    let mut r = Rd::new(mdhd);
    let v = r.version()?;
    r.skip(if v == 1 { 16 } else { 8 })?;
    let timescale = r.u32()?;
    let mut r = Rd::new(hdlr);
    r.version()?;
    r.skip(4)?;
    let h = r.bytes(4)?;
    let handler = [h[0], h[1], h[2], h[3]];
    let Some(stbl) = child(minf, b"stbl")? else {
        return Ok(None);
    };
    if timescale == 0 {
        return Ok(None);
    }
    Ok(Some(TrakBoxes {
        handler,
        timescale,
        elst,
        stbl,
    }))
}

/// The shift of a track by its edit list, in ms: the delay of leading empty edits minus the media
/// time of the first real edit.
fn edit_shift(elst: Option<&[u8]>, movie_timescale: u32, timescale: u32) -> Result<i64, VodError> {
    let Some(elst) = elst else { return Ok(0) };
    let mut r = Rd::new(elst);
    let v = r.version()?;
    let entry = if v == 1 { 20 } else { 12 };
    let n = r.count(entry)?;
    let mut delay: i128 = 0;
    for _ in 0..n {
        let (duration, media_time) = if v == 1 {
            (i128::from(r.u64()?), i128::from(r.u64()? as i64))
        } else {
            (i128::from(r.u32()?), i128::from(r.u32()? as i32))
        };
        r.skip(4)?;
        if media_time == -1 {
            delay += duration;
            continue;
        }
        if media_time < 0 {
            break;
        }
        return Ok(to_ms(delay, movie_timescale).saturating_sub(to_ms(media_time, timescale)));
    }
    Ok(to_ms(delay, movie_timescale))
}

/// The sample table of a track, times in ms shifted by `shift`.
fn samples(
    stbl: &[u8],
    timescale: u32,
    shift: i64,
    file_len: u64,
) -> Result<(Vec<Sample>, i64), VodError> {
    let need = |kind: &[u8; 4]| -> Result<&[u8], VodError> {
        child(stbl, kind)?.ok_or(VodError::Invalid("sample table box missing"))
    };
    // Sizes.
    enum Sizes<'a> {
        Fixed(u32, u64),
        Table(&'a [u8], u8, u64),
    }
    let sizes = match child(stbl, b"stsz")? {
        Some(b) => {
            let mut r = Rd::new(b);
            r.version()?;
            let size = r.u32()?;
            if size == 0 {
                let n = r.count(4)?;
                Sizes::Table(r.rest().get(..n * 4).unwrap_or_default(), 32, n as u64)
            } else {
                let n = u64::from(r.u32()?);
                // Fixed-size samples must fit in the file.
                if n.saturating_mul(u64::from(size)) > file_len {
                    return Err(VodError::Invalid("samples larger than the file"));
                }
                Sizes::Fixed(size, n)
            }
        }
        None => {
            let mut r = Rd::new(need(b"stz2")?);
            r.version()?;
            r.skip(3)?;
            let bits = r.u8()?;
            let n = r.u32()? as usize;
            let bytes = match bits {
                4 => n.div_ceil(2),
                8 => n,
                16 => n.checked_mul(2).ok_or(VodError::Invalid("stz2"))?,
                _ => return Err(VodError::Invalid("stz2 field size")),
            };
            let t = r
                .rest()
                .get(..bytes)
                .ok_or(VodError::Invalid("more entries than the box holds"))?;
            Sizes::Table(t, bits, n as u64)
        }
    };
    let count = match &sizes {
        Sizes::Fixed(_, n) | Sizes::Table(_, _, n) => *n,
    };
    if count > MAX_SAMPLES {
        return Err(VodError::TooBig {
            what: "sample count",
            size: count,
        });
    }
    let size_of = |i: usize| -> u32 {
        match &sizes {
            Sizes::Fixed(s, _) => *s,
            Sizes::Table(t, 4, _) => t
                .get(i / 2)
                .map_or(0, |b| u32::from(if i & 1 == 0 { b >> 4 } else { b & 15 })),
            Sizes::Table(t, 8, _) => t.get(i).map_or(0, |b| u32::from(*b)),
            Sizes::Table(t, 16, _) => t
                .get(i * 2..i * 2 + 2)
                .map_or(0, |b| u32::from(u16::from_be_bytes([b[0], b[1]]))),
            Sizes::Table(t, _, _) => t
                .get(i * 4..i * 4 + 4)
                .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        }
    };
    let (_, stts) = Table::parse(need(b"stts")?, 8)?;
    let (_, stsc) = Table::parse(need(b"stsc")?, 12)?;
    let (co, chunk_offsets) = match child(stbl, b"co64")? {
        Some(b) => (8usize, Table::parse(b, 8)?.1),
        None => (4, Table::parse(need(b"stco")?, 4)?.1),
    };
    let ctts = match child(stbl, b"ctts")? {
        Some(b) => Some(Table::parse(b, 8)?.1),
        None => None,
    };
    let stss = match child(stbl, b"stss")? {
        Some(b) => {
            let (_, t) = Table::parse(b, 4)?;
            let mut v: Vec<u32> = (0..t.len()).map(|i| t.u32(i, 0)).collect();
            v.sort_unstable();
            Some(v)
        }
        None => None,
    };
    let chunk_offset = |c: usize| -> u64 {
        if co == 8 {
            (u64::from(chunk_offsets.u32(c, 0)) << 32) | u64::from(chunk_offsets.u32(c, 1))
        } else {
            u64::from(chunk_offsets.u32(c, 0))
        }
    };

    let count = count as usize;
    let mut out: Vec<Sample> = Vec::with_capacity(count);
    // Cursors: stts run, ctts run, stsc run, stss position.
    let (mut stts_i, mut stts_left) = (0usize, 0u64);
    let (mut ctts_i, mut ctts_left) = (0usize, 0u64);
    let mut stss_i = 0usize;
    let mut dts: u64 = 0;
    let mut last_delta: u64 = 0;
    let mut stsc_i = 0usize;
    'chunks: for c in 0..chunk_offsets.len() {
        // The stsc run this chunk (1-based numbers) is in.
        while stsc_i + 1 < stsc.len() && (stsc.u32(stsc_i + 1, 0) as usize) <= c + 1 {
            stsc_i += 1;
        }
        if stsc.len() == 0 {
            break;
        }
        let per_chunk = stsc.u32(stsc_i, 1);
        let mut offset = chunk_offset(c);
        for _ in 0..per_chunk {
            let i = out.len();
            if i >= count {
                break 'chunks;
            }
            while stts_left == 0 {
                if stts_i >= stts.len() {
                    break 'chunks;
                }
                stts_left = u64::from(stts.u32(stts_i, 0));
                last_delta = u64::from(stts.u32(stts_i, 1));
                stts_i += 1;
            }
            stts_left -= 1;
            let mut cts_ticks: i64 = 0;
            if let Some(ctts) = &ctts {
                while ctts_left == 0 && ctts_i < ctts.len() {
                    ctts_left = u64::from(ctts.u32(ctts_i, 0));
                    ctts_i += 1;
                }
                if ctts_left > 0 {
                    ctts_left -= 1;
                    cts_ticks = i64::from(ctts.u32(ctts_i - 1, 1) as i32);
                }
            }
            let key = match &stss {
                None => true,
                Some(v) => {
                    let n = i as u64 + 1;
                    while v.get(stss_i).is_some_and(|&s| u64::from(s) < n) {
                        stss_i += 1;
                    }
                    v.get(stss_i).is_some_and(|&s| u64::from(s) == n)
                }
            };
            let size = size_of(i);
            let dts_ms = to_ms(i128::from(dts), timescale).saturating_add(shift);
            let pts_ms =
                to_ms(i128::from(dts) + i128::from(cts_ticks), timescale).saturating_add(shift);
            let cts = pts_ms.saturating_sub(dts_ms).clamp(-0x80_0000, 0x7F_FFFF) as i32;
            out.push(Sample {
                offset,
                dts: dts_ms,
                size,
                cts,
                key,
            });
            offset = offset.saturating_add(u64::from(size));
            dts = dts.saturating_add(last_delta);
        }
    }
    let end = to_ms(i128::from(dts), timescale).saturating_add(shift);
    Ok((out, end))
}

/// An MP4 file being played.
#[derive(Debug)]
pub struct Mp4File {
    len: u64,
    video: Option<Track>,
    audio: Option<Track>,
    /// Added to every timestamp so that none is below zero.
    offset: i64,
    width: u32,
    height: u32,
    rate: u32,
    channels: u32,
    enhanced: bool,
    truncated: bool,
    start_ts: u32,
}

/// Where `moov` is: the top-level boxes in turn.
fn find_moov<S: Source + ?Sized>(src: &mut S) -> Result<(u64, u64), VodError> {
    let len = src.len();
    let mut pos = 0u64;
    for _ in 0..MAX_TOP_BOXES {
        if pos >= len {
            break;
        }
        let h = src.read_at(pos, 16)?;
        if h.len() < 8 {
            return Err(VodError::Truncated);
        }
        let size = u64::from(u32::from_be_bytes([h[0], h[1], h[2], h[3]]));
        let kind = [h[4], h[5], h[6], h[7]];
        let (header, size) = match size {
            0 => (8, len - pos),
            1 => {
                let l = h.get(8..16).ok_or(VodError::Truncated)?;
                (
                    16,
                    u64::from_be_bytes([l[0], l[1], l[2], l[3], l[4], l[5], l[6], l[7]]),
                )
            }
            s => (8, s),
        };
        if size < header {
            return Err(VodError::Invalid("top-level box size"));
        }
        match &kind {
            b"moov" => {
                let body = size - header;
                if body > MAX_MOOV {
                    return Err(VodError::TooBig {
                        what: "moov box",
                        size,
                    });
                }
                if pos.saturating_add(size) > len {
                    return Err(VodError::Truncated);
                }
                return Ok((pos + header, body));
            }
            b"moof" | b"mfra" => return Err(VodError::Fragmented),
            _ => {}
        }
        if pos == 0 && !super::MP4_FIRST_BOXES.iter().any(|k| **k == kind) {
            return Err(VodError::NotMp4);
        }
        pos = pos
            .checked_add(size)
            .ok_or(VodError::Invalid("top-level box size"))?;
    }
    Err(if pos >= len {
        VodError::Truncated
    } else {
        VodError::Invalid("no moov box")
    })
}

impl Mp4File {
    /// Reads the `moov` box and builds the sample tables of the first playable tracks.
    pub fn open<S: Source + ?Sized>(src: &mut S) -> Result<Self, VodError> {
        Self::open_tracks(src, Tracks::default())
    }

    /// Reads the `moov` box and builds the sample tables of the `tracks` to play.
    pub fn open_tracks<S: Source + ?Sized>(src: &mut S, tracks: Tracks) -> Result<Self, VodError> {
        let len = src.len();
        let (at, size) = find_moov(src)?;
        let size = usize::try_from(size).map_err(|_| VodError::TooBig {
            what: "moov box",
            size,
        })?;
        let moov = read_exact(src, at, size)?;
        if child(&moov, b"mvex")?.is_some() {
            return Err(VodError::Fragmented);
        }
        let mvhd = child(&moov, b"mvhd")?.ok_or(VodError::Invalid("no mvhd"))?;
        let mut r = Rd::new(mvhd);
        let v = r.version()?;
        r.skip(if v == 1 { 16 } else { 8 })?;
        let movie_timescale = r.u32()?;

        let mut f = Mp4File {
            len,
            video: None,
            audio: None,
            offset: 0,
            width: 0,
            height: 0,
            rate: 0,
            channels: 0,
            enhanced: false,
            truncated: false,
            start_ts: 0,
        };
        let mut seen = [0u32; 2];
        for bx in boxes(&moov) {
            let bx = bx?;
            if &bx.kind != b"trak" {
                continue;
            }
            let Some(t) = trak_boxes(bx.body)? else {
                continue;
            };
            let video = match &t.handler {
                b"vide" => true,
                b"soun" => false,
                _ => continue,
            };
            // This track's number among the file's tracks of its kind.
            let nth = &mut seen[usize::from(!video)];
            let (wanted, taken) = if video {
                (tracks.video, f.video.is_some())
            } else {
                (tracks.audio, f.audio.is_some())
            };
            let this = *nth;
            *nth += 1;
            if taken || wanted.is_some_and(|n| n != this) {
                continue;
            }
            let Some(stsd) = child(t.stbl, b"stsd")? else {
                continue;
            };
            let Some(entry) = sample_entry(stsd, video)? else {
                continue;
            };
            let shift = edit_shift(t.elst, movie_timescale, t.timescale)?;
            let (samples, end) = samples(t.stbl, t.timescale, shift, len)?;
            if samples.is_empty() {
                continue;
            }
            let track = Track {
                codec: entry.codec,
                samples,
                next: 0,
                end,
            };
            if video {
                (f.width, f.height) = (entry.width, entry.height);
                f.video = Some(track);
            } else {
                (f.rate, f.channels) = (entry.rate, entry.channels);
                f.audio = Some(track);
            }
        }
        // MP4 writers put 2 channels in every audio sample entry: the first MP3 frame knows.
        if let Some(a) = &mut f.audio {
            if let (Codec::Audio(Audio::Mp3(byte)), Some(s)) = (&mut a.codec, a.samples.first()) {
                let head = match read_exact(src, s.offset, 4) {
                    Err(VodError::Pending) => return Err(VodError::Pending),
                    r => r.ok(),
                };
                if let Some(h) = head.and_then(|h| mp3::parse_header(&h).ok()) {
                    (f.rate, f.channels) = (h.sample_rate, u32::from(h.channels));
                    *byte = mp3_sound_byte(f.rate, f.channels);
                }
            }
        }
        let first = [&f.video, &f.audio]
            .iter()
            .filter_map(|t| t.as_ref()?.samples.first().map(|s| s.dts))
            .min();
        let Some(first) = first else {
            return Err(VodError::NoPlayableTrack);
        };
        f.offset = first.saturating_neg().max(0);
        Ok(f)
    }

    fn ts(&self, dts: i64) -> u32 {
        dts.saturating_add(self.offset)
            .clamp(0, i64::from(u32::MAX)) as u32
    }

    pub fn duration_ms(&self) -> Option<u64> {
        let end = [&self.video, &self.audio]
            .iter()
            .filter_map(|t| t.as_ref().map(|t| t.end))
            .max()?;
        Some(u64::from(self.ts(end)))
    }

    fn video_codec(&self) -> Option<&Video> {
        match &self.video.as_ref()?.codec {
            Codec::Video(v) => Some(v),
            Codec::Audio(_) => None,
        }
    }

    fn audio_codec(&self) -> Option<&Audio> {
        match &self.audio.as_ref()?.codec {
            Codec::Audio(a) => Some(a),
            Codec::Video(_) => None,
        }
    }

    /// onMetaData from the tracks.
    pub fn metadata(&self) -> Bytes {
        let num = |v: f64| Amf0Value::Number(v);
        let mut p: Vec<(String, Amf0Value)> = Vec::new();
        if let Some(d) = self.duration_ms() {
            p.push(("duration".into(), secs(d)));
        }
        if let Some(v) = self.video_codec() {
            p.push(("width".into(), num(f64::from(self.width))));
            p.push(("height".into(), num(f64::from(self.height))));
            let id = match v {
                Video::Avc(_) => f64::from(CODEC_AVC),
                Video::Hevc(_) if self.enhanced => f64::from(u32::from_be_bytes(*b"hvc1")),
                Video::Hevc(_) => f64::from(CODEC_HEVC),
            };
            p.push(("videocodecid".into(), num(id)));
            if let (Some(t), Some(d)) = (&self.video, self.duration_ms()) {
                if d > 0 {
                    let fps = (t.samples.len() as f64 * 1000.0 / d as f64 * 100.0).round() / 100.0;
                    p.push(("framerate".into(), num(fps)));
                }
            }
        }
        if let Some(a) = self.audio_codec() {
            let id = match a {
                Audio::Aac(_) => 10.0,
                Audio::Mp3(_) => 2.0,
            };
            p.push(("audiocodecid".into(), num(id)));
            p.push(("audiosamplerate".into(), num(f64::from(self.rate))));
            p.push(("audiochannels".into(), num(f64::from(self.channels))));
            p.push(("stereo".into(), Amf0Value::Boolean(self.channels >= 2)));
        }
        p.push(("filesize".into(), num(self.len as f64)));
        p.push(("canSeekToEnd".into(), Amf0Value::Boolean(true)));
        encode_metadata(p)
    }

    pub fn headers(&self, enhanced: bool) -> Vec<VodTag> {
        let mut out = Vec::new();
        let ts = self.start_ts;
        match self.video_codec() {
            Some(Video::Avc(c)) => out.push(VodTag {
                kind: TagKind::Video,
                ts,
                data: video_payload(CODEC_AVC, false, VideoPacket::SequenceStart, c),
                key: true,
            }),
            Some(Video::Hevc(c)) => out.push(VodTag {
                kind: TagKind::Video,
                ts,
                data: video_payload(CODEC_HEVC, enhanced, VideoPacket::SequenceStart, c),
                key: true,
            }),
            None => {}
        }
        if let Some(Audio::Aac(asc)) = self.audio_codec() {
            let mut d = Vec::with_capacity(asc.len() + 2);
            d.extend_from_slice(&[0xAF, 0x00]);
            d.extend_from_slice(asc);
            out.push(VodTag {
                kind: TagKind::Audio,
                ts,
                data: Bytes::from(d),
                key: false,
            });
        }
        out
    }

    /// HEVC goes out in Enhanced RTMP form when on, else with the legacy codec id 12.
    pub fn set_enhanced(&mut self, on: bool) {
        self.enhanced = on;
    }

    pub fn truncated(&self) -> bool {
        self.truncated
    }

    #[allow(clippy::should_implement_trait)]
    pub fn next<S: Source + ?Sized>(&mut self, src: &mut S) -> Result<Option<VodTag>, VodError> {
        loop {
            let v = self.video.as_ref().and_then(|t| t.samples.get(t.next));
            let a = self.audio.as_ref().and_then(|t| t.samples.get(t.next));
            let (is_video, s) = match (v, a) {
                (Some(v), Some(a)) if a.dts < v.dts => (false, *a),
                (Some(v), _) => (true, *v),
                (None, Some(a)) => (false, *a),
                (None, None) => return Ok(None),
            };
            let track = if is_video {
                &mut self.video
            } else {
                &mut self.audio
            };
            if s.size == 0 || s.size > MAX_SAMPLE {
                if let Some(t) = track {
                    t.next += 1;
                }
                continue;
            }
            if s.offset.saturating_add(u64::from(s.size)) > self.len {
                self.truncated = true;
                return Ok(None);
            }
            let data = read_exact(src, s.offset, s.size as usize)?;
            let codec = match track {
                Some(t) => {
                    t.next += 1;
                    t.codec.clone()
                }
                None => return Ok(None),
            };
            let ts = self.ts(s.dts);
            let tag = match codec {
                Codec::Video(v) => {
                    let packet = VideoPacket::Frame {
                        key: s.key,
                        cts: s.cts,
                    };
                    let id = if matches!(v, Video::Avc(_)) {
                        CODEC_AVC
                    } else {
                        CODEC_HEVC
                    };
                    VodTag {
                        kind: TagKind::Video,
                        ts,
                        data: video_payload(id, self.enhanced, packet, &data),
                        key: s.key,
                    }
                }
                Codec::Audio(a) => {
                    let mut d = Vec::with_capacity(data.len() + 2);
                    match a {
                        Audio::Aac(_) => d.extend_from_slice(&[0xAF, 0x01]),
                        Audio::Mp3(b) => d.push(b),
                    }
                    d.extend_from_slice(&data);
                    VodTag {
                        kind: TagKind::Audio,
                        ts,
                        data: Bytes::from(d),
                        key: false,
                    }
                }
            };
            return Ok(Some(tag));
        }
    }

    /// Positions at the video keyframe at or before `ms` (the first one when `ms` is before it),
    /// audio at its first frame from there; audio only: the audio frame at or before `ms`.
    pub fn seek<S: Source + ?Sized>(&mut self, _src: &mut S, ms: u32) -> Result<u32, VodError> {
        let target = i64::from(ms) - self.offset;
        self.truncated = false;
        let start = if let Some(v) = &mut self.video {
            let at_or_before = v.samples.partition_point(|s| s.dts <= target);
            let key = v
                .samples
                .get(..at_or_before)
                .unwrap_or_default()
                .iter()
                .rposition(|s| s.key)
                .or_else(|| v.samples.iter().position(|s| s.key));
            v.next = key.unwrap_or(0);
            v.samples.get(v.next).map_or(0, |s| s.dts)
        } else if let Some(a) = &mut self.audio {
            a.next = a
                .samples
                .partition_point(|s| s.dts <= target)
                .saturating_sub(1);
            a.samples.get(a.next).map_or(0, |s| s.dts)
        } else {
            0
        };
        if let (Some(a), true) = (&mut self.audio, self.video.is_some()) {
            a.next = a.samples.partition_point(|s| s.dts < start);
        }
        self.start_ts = self.ts(start);
        Ok(self.start_ts)
    }
}
