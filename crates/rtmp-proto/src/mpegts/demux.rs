//! A small, strict MPEG-TS reader for tests and tools: it follows the PAT and PMT, checks sync bytes,
//! section CRCs, stuffing and continuity counters per PID, and reassembles PES packets with their
//! PTS, DTS, PCR and random access flag. Anything it does not expect is an error, not a guess.

use std::fmt;

use super::mux::crc32_mpeg2;
use super::{PAT_PID, SYNC_BYTE, TS_PACKET_SIZE};

const NULL_PID: u16 = 0x1FFF;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemuxError {
    /// The input is not a whole number of 188-byte packets (this many bytes are left over).
    PartialPacket(usize),
    /// Packet number `packet` does not start with 0x47.
    NoSync {
        packet: usize,
    },
    TransportError {
        pid: u16,
    },
    Scrambled {
        pid: u16,
    },
    /// A continuity counter skipped or repeated.
    Continuity {
        pid: u16,
        expected: u8,
        got: u8,
    },
    BadAdaptationField {
        pid: u16,
    },
    BadSection {
        pid: u16,
        what: &'static str,
    },
    Crc {
        pid: u16,
    },
    BadPes {
        pid: u16,
        what: &'static str,
    },
    /// Payload on a PID that neither the PAT nor the PMT announced.
    UnknownPid(u16),
}

impl fmt::Display for DemuxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DemuxError::PartialPacket(n) => write!(f, "{n} bytes after the last whole TS packet"),
            DemuxError::NoSync { packet } => write!(f, "TS packet {packet} has no sync byte"),
            DemuxError::TransportError { pid } => {
                write!(f, "PID {pid:#x}: transport_error_indicator set")
            }
            DemuxError::Scrambled { pid } => write!(f, "PID {pid:#x}: scrambled packet"),
            DemuxError::Continuity { pid, expected, got } => {
                write!(f, "PID {pid:#x}: continuity counter {got}, expected {expected}")
            }
            DemuxError::BadAdaptationField { pid } => {
                write!(f, "PID {pid:#x}: malformed adaptation field")
            }
            DemuxError::BadSection { pid, what } => {
                write!(f, "PID {pid:#x}: bad PSI section: {what}")
            }
            DemuxError::Crc { pid } => write!(f, "PID {pid:#x}: section CRC mismatch"),
            DemuxError::BadPes { pid, what } => write!(f, "PID {pid:#x}: bad PES: {what}"),
            DemuxError::UnknownPid(pid) => write!(f, "payload on unannounced PID {pid:#x}"),
        }
    }
}

impl std::error::Error for DemuxError {}

/// One elementary stream of the PMT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EsInfo {
    pub stream_type: u8,
    pub pid: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemuxedPes {
    pub pid: u16,
    pub stream_id: u8,
    /// 90 kHz, 33 bits.
    pub pts: Option<u64>,
    /// Only when the header carries a DTS apart from the PTS; see `decode_ts`.
    pub dts: Option<u64>,
    /// The PCR of the packet the PES starts in.
    pub pcr: Option<u64>,
    pub random_access: bool,
    /// The elementary stream bytes.
    pub data: Vec<u8>,
}

impl DemuxedPes {
    /// The decoding time: the DTS, or the PTS when the header has no separate DTS.
    pub fn decode_ts(&self) -> Option<u64> {
        self.dts.or(self.pts)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DemuxEvent {
    Pat {
        pmt_pid: u16,
    },
    Pmt {
        pcr_pid: u16,
        streams: Vec<EsInfo>,
    },
    /// A PCR in a packet that starts no PES.
    Pcr {
        pid: u16,
        pcr: u64,
    },
    Pes(DemuxedPes),
}

/// A PES being collected from the packets of one PID.
#[derive(Debug)]
struct Assembly {
    pid: u16,
    pcr: Option<u64>,
    random_access: bool,
    bytes: Vec<u8>,
}

impl Assembly {
    /// The whole PES length from PES_packet_length, once its header is in; None when unbounded.
    fn expected_len(&self) -> Option<usize> {
        match self.bytes.get(4..6) {
            Some(&[hi, lo]) if (hi, lo) != (0, 0) => Some(6 + usize::from(u16::from_be_bytes([hi, lo]))),
            _ => None,
        }
    }
}

/// What the adaptation field of a packet says.
#[derive(Debug, Default)]
struct Adaptation {
    discontinuity: bool,
    random_access: bool,
    pcr: Option<u64>,
}

/// Reads transport packets; keep one per stream (continuity counters carry over from packet to
/// packet, so segments of one stream may be fed one after another).
#[derive(Debug, Default)]
pub struct Demuxer {
    pmt_pid: Option<u16>,
    streams: Vec<EsInfo>,
    counters: Vec<(u16, u8)>,
    assembling: Vec<Assembly>,
    packets: usize,
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    match b.get(at..at.checked_add(2)?) {
        Some(&[hi, lo]) => Some(u16::from_be_bytes([hi, lo])),
        _ => None,
    }
}

/// A 5-byte PTS or DTS with the given 4-bit prefix; None when prefix or marker bits are wrong.
pub fn parse_timestamp(b: &[u8], prefix: u8) -> Option<u64> {
    let &[b0, b1, b2, b3, b4] = b else {
        return None;
    };
    if b0 >> 4 != prefix || b0 & 1 != 1 || b2 & 1 != 1 || b4 & 1 != 1 {
        return None;
    }
    Some(
        (u64::from(b0 & 0x0E) << 29)
            | (u64::from(b1) << 22)
            | (u64::from(b2 >> 1) << 15)
            | (u64::from(b3) << 7)
            | u64::from(b4 >> 1),
    )
}

impl Demuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The elementary streams of the last PMT.
    pub fn streams(&self) -> &[EsInfo] {
        &self.streams
    }

    /// Reads whole packets; a PES is reported once its last packet is in (bounded PES) or the next
    /// PES of its PID starts (unbounded video PES; `finish` reports the last ones).
    pub fn push(&mut self, ts: &[u8]) -> Result<Vec<DemuxEvent>, DemuxError> {
        let rest = ts.len() % TS_PACKET_SIZE;
        if rest != 0 {
            return Err(DemuxError::PartialPacket(rest));
        }
        let mut out = Vec::new();
        for p in ts.chunks_exact(TS_PACKET_SIZE) {
            self.packet(p, &mut out)?;
            self.packets += 1;
        }
        Ok(out)
    }

    /// Reports the PES packets still open; a bounded one that is not complete is an error.
    pub fn finish(&mut self) -> Result<Vec<DemuxEvent>, DemuxError> {
        let mut out = Vec::new();
        for a in std::mem::take(&mut self.assembling) {
            if a.expected_len().is_some() {
                return Err(DemuxError::BadPes { pid: a.pid, what: "truncated at the end of the stream" });
            }
            out.push(DemuxEvent::Pes(parse_pes(a)?));
        }
        Ok(out)
    }

    fn packet(&mut self, p: &[u8], out: &mut Vec<DemuxEvent>) -> Result<(), DemuxError> {
        let &[sync, b1, b2, b3, ..] = p else {
            return Err(DemuxError::PartialPacket(p.len()));
        };
        if sync != SYNC_BYTE {
            return Err(DemuxError::NoSync { packet: self.packets });
        }
        let pid = (u16::from(b1 & 0x1F) << 8) | u16::from(b2);
        if b1 & 0x80 != 0 {
            return Err(DemuxError::TransportError { pid });
        }
        if pid == NULL_PID {
            return Ok(());
        }
        if b3 >> 6 != 0 {
            return Err(DemuxError::Scrambled { pid });
        }
        let start = b1 & 0x40 != 0;
        let control = (b3 >> 4) & 3;
        let cc = b3 & 0x0F;
        let (has_af, has_payload) = (control & 2 != 0, control & 1 != 0);
        if control == 0 {
            return Err(DemuxError::BadAdaptationField { pid });
        }
        let mut payload_at = 4;
        let mut af = Adaptation::default();
        if has_af {
            let len = usize::from(*p.get(4).ok_or(DemuxError::BadAdaptationField { pid })?);
            // Without payload the field fills the packet; with payload it leaves at least a byte.
            let max = if has_payload { 182 } else { 183 };
            if len > max || (!has_payload && len != 183) {
                return Err(DemuxError::BadAdaptationField { pid });
            }
            af = adaptation(p.get(5..5 + len).ok_or(DemuxError::BadAdaptationField { pid })?)
                .ok_or(DemuxError::BadAdaptationField { pid })?;
            payload_at = 5 + len;
        }
        if has_payload {
            self.check_continuity(pid, cc, af.discontinuity)?;
        }
        let payload = if has_payload { p.get(payload_at..).unwrap_or_default() } else { &[] };
        if pid == PAT_PID {
            return self.pat(pid, start, payload, out);
        }
        if Some(pid) == self.pmt_pid {
            return self.pmt(pid, start, payload, out);
        }
        if !self.streams.iter().any(|s| s.pid == pid) {
            if !has_payload {
                if let Some(pcr) = af.pcr {
                    out.push(DemuxEvent::Pcr { pid, pcr });
                }
                return Ok(());
            }
            return Err(DemuxError::UnknownPid(pid));
        }
        if start {
            if let Some(i) = self.assembling.iter().position(|a| a.pid == pid) {
                let a = self.assembling.swap_remove(i);
                if a.expected_len().is_some() {
                    return Err(DemuxError::BadPes { pid, what: "cut short by the next PES" });
                }
                out.push(DemuxEvent::Pes(parse_pes(a)?));
            }
            self.assembling.push(Assembly {
                pid,
                pcr: af.pcr,
                random_access: af.random_access,
                bytes: payload.to_vec(),
            });
        } else {
            if let Some(pcr) = af.pcr {
                out.push(DemuxEvent::Pcr { pid, pcr });
            }
            if payload.is_empty() {
                return Ok(());
            }
            let a = self
                .assembling
                .iter_mut()
                .find(|a| a.pid == pid)
                .ok_or(DemuxError::BadPes { pid, what: "payload without a PES start" })?;
            a.bytes.extend_from_slice(payload);
        }
        if let Some(i) = self.assembling.iter().position(|a| a.pid == pid) {
            let done = match self.assembling.get(i).and_then(|a| a.expected_len().map(|n| (n, a.bytes.len()))) {
                Some((want, have)) if have > want => {
                    return Err(DemuxError::BadPes { pid, what: "longer than its length" })
                }
                Some((want, have)) => want == have,
                None => false,
            };
            if done {
                out.push(DemuxEvent::Pes(parse_pes(self.assembling.swap_remove(i))?));
            }
        }
        Ok(())
    }

    fn check_continuity(&mut self, pid: u16, cc: u8, discontinuity: bool) -> Result<(), DemuxError> {
        match self.counters.iter_mut().find(|(p, _)| *p == pid) {
            Some((_, last)) => {
                let expected = (*last + 1) & 0x0F;
                if cc != expected && !discontinuity {
                    return Err(DemuxError::Continuity { pid, expected, got: cc });
                }
                *last = cc;
            }
            None => self.counters.push((pid, cc)),
        }
        Ok(())
    }

    fn pat(&mut self, pid: u16, start: bool, payload: &[u8], out: &mut Vec<DemuxEvent>) -> Result<(), DemuxError> {
        let body = section(pid, start, payload, 0x00)?;
        // Programs: number and PID, four bytes each; program 0 names the network PID.
        let mut pmt = None;
        for entry in body.chunks(4) {
            let &[n_hi, n_lo, p_hi, p_lo] = entry else {
                return Err(DemuxError::BadSection { pid, what: "PAT entry cut short" });
            };
            if (n_hi, n_lo) != (0, 0) && pmt.is_none() {
                pmt = Some((u16::from(p_hi & 0x1F) << 8) | u16::from(p_lo));
            }
        }
        let pmt_pid = pmt.ok_or(DemuxError::BadSection { pid, what: "PAT without a program" })?;
        self.pmt_pid = Some(pmt_pid);
        out.push(DemuxEvent::Pat { pmt_pid });
        Ok(())
    }

    fn pmt(&mut self, pid: u16, start: bool, payload: &[u8], out: &mut Vec<DemuxEvent>) -> Result<(), DemuxError> {
        let body = section(pid, start, payload, 0x02)?;
        let bad = |what| DemuxError::BadSection { pid, what };
        let pcr_pid = be16(body, 0).ok_or(bad("PMT too short"))? & 0x1FFF;
        let info_len = usize::from(be16(body, 2).ok_or(bad("PMT too short"))? & 0x0FFF);
        let mut rest = body.get(4 + info_len..).ok_or(bad("program_info_length"))?;
        let mut streams = Vec::new();
        while !rest.is_empty() {
            let &[stream_type, p_hi, p_lo, l_hi, l_lo, ..] = rest else {
                return Err(bad("PMT entry cut short"));
            };
            let es_info = usize::from(u16::from_be_bytes([l_hi & 0x0F, l_lo]));
            streams.push(EsInfo { stream_type, pid: (u16::from(p_hi & 0x1F) << 8) | u16::from(p_lo) });
            rest = rest.get(5 + es_info..).ok_or(bad("ES_info_length"))?;
        }
        // A stream the new PMT drops ends here.
        self.assembling.retain(|a| streams.iter().any(|s| s.pid == a.pid));
        self.streams.clone_from(&streams);
        out.push(DemuxEvent::Pmt { pcr_pid, streams });
        Ok(())
    }
}

/// The adaptation field after its length byte.
fn adaptation(b: &[u8]) -> Option<Adaptation> {
    let Some((&flags, rest)) = b.split_first() else {
        return Some(Adaptation::default());
    };
    let mut a = Adaptation { discontinuity: flags & 0x80 != 0, random_access: flags & 0x40 != 0, pcr: None };
    let mut rest = rest;
    if flags & 0x10 != 0 {
        let &[p0, p1, p2, p3, p4, p5, ..] = rest else {
            return None;
        };
        let base = (u64::from(u32::from_be_bytes([p0, p1, p2, p3])) << 1) | u64::from(p4 >> 7);
        // The reserved bits are ones; our muxer writes extension 0.
        if p4 & 0x7E != 0x7E || (p4 & 1, p5) != (0, 0) {
            return None;
        }
        a.pcr = Some(base);
        rest = rest.get(6..)?;
    }
    // OPCR, splicing, private data and extensions are not ours: then the stuffing is not checked.
    if flags & 0x0F == 0 && rest.iter().any(|&b| b != 0xFF) {
        return None;
    }
    Some(a)
}

/// The body of a single-packet PSI section (after the five bytes of the long header, before the
/// CRC), its CRC checked, the padding after it all 0xFF.
fn section(pid: u16, start: bool, payload: &[u8], table_id: u8) -> Result<&[u8], DemuxError> {
    let bad = |what| DemuxError::BadSection { pid, what };
    if !start {
        return Err(bad("section continues over packets"));
    }
    let (&pointer, rest) = payload.split_first().ok_or(bad("empty"))?;
    let s = rest.get(usize::from(pointer)..).ok_or(bad("pointer_field"))?;
    let &[id, l_hi, l_lo, ..] = s else {
        return Err(bad("too short"));
    };
    if id != table_id {
        return Err(bad("unexpected table_id"));
    }
    if l_hi & 0xC0 != 0x80 {
        return Err(bad("section_syntax_indicator"));
    }
    let len = usize::from(u16::from_be_bytes([l_hi & 0x0F, l_lo]));
    let whole = s.get(..3 + len).ok_or(bad("longer than its packet"))?;
    if len < 9 {
        return Err(bad("section_length"));
    }
    if crc32_mpeg2(whole) != 0 {
        return Err(DemuxError::Crc { pid });
    }
    if s.get(3 + len..).unwrap_or_default().iter().any(|&b| b != 0xFF) {
        return Err(bad("padding after the section"));
    }
    // table id extension, version / current_next, section numbers.
    let &[_, _, _, _, _, vc, number, last, ..] = whole else {
        return Err(bad("too short"));
    };
    if vc & 1 == 0 || (number, last) != (0, 0) {
        return Err(bad("not a single, current section"));
    }
    whole.get(8..3 + len - 4).ok_or(bad("section_length"))
}

/// Splits a complete PES into header fields and data.
fn parse_pes(a: Assembly) -> Result<DemuxedPes, DemuxError> {
    let pid = a.pid;
    let bad = |what| DemuxError::BadPes { pid, what };
    let b = &a.bytes;
    let &[0, 0, 1, stream_id, _, _, flags0, flags1, header_len, ..] = b.as_slice() else {
        return Err(bad("no start code or header"));
    };
    if !(0xC0..=0xEF).contains(&stream_id) {
        return Err(bad("not an audio or video stream id"));
    }
    if flags0 & 0xC0 != 0x80 {
        return Err(bad("marker bits"));
    }
    let header = b.get(9..9 + usize::from(header_len)).ok_or(bad("header longer than the PES"))?;
    let (pts, dts) = match flags1 >> 6 {
        0 => (None, None),
        2 => (Some(parse_timestamp(header.get(..5).unwrap_or_default(), 2).ok_or(bad("PTS"))?), None),
        3 => (
            Some(parse_timestamp(header.get(..5).unwrap_or_default(), 3).ok_or(bad("PTS"))?),
            Some(parse_timestamp(header.get(5..10).unwrap_or_default(), 1).ok_or(bad("DTS"))?),
        ),
        _ => return Err(bad("DTS without PTS")),
    };
    let data = b.get(9 + usize::from(header_len)..).unwrap_or_default().to_vec();
    Ok(DemuxedPes { pid, stream_id, pts, dts, pcr: a.pcr, random_access: a.random_access, data })
}

/// Demuxes a whole stream (or segment), open PES packets included.
pub fn demux_all(ts: &[u8]) -> Result<Vec<DemuxEvent>, DemuxError> {
    let mut d = Demuxer::new();
    let mut events = d.push(ts)?;
    events.extend(d.finish()?);
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpegts::mux::{Pes, PmtStream, TsWriter};
    use crate::mpegts::{AUDIO_PID, VIDEO_PID};
    use proptest::prelude::*;

    fn stream() -> Vec<u8> {
        let mut w = TsWriter::new();
        let mut out = Vec::new();
        w.write_pat(&mut out);
        let streams =
            [PmtStream { stream_type: 0x1B, pid: VIDEO_PID }, PmtStream { stream_type: 0x0F, pid: AUDIO_PID }];
        w.write_pmt(VIDEO_PID, &streams, &mut out);
        let video = vec![0xAB; 1000];
        let audio = vec![0xCD; 300];
        for i in 0..3u64 {
            let pes = Pes {
                pid: VIDEO_PID,
                stream_id: 0xE0,
                pts: 3600 * i + 7200,
                dts: 3600 * i,
                pcr: Some(3600 * i),
                random_access: i == 0,
                bounded: false,
                data: &video,
            };
            w.write_pes(&pes, &mut out);
            let pes = Pes {
                pid: AUDIO_PID,
                stream_id: 0xC0,
                pts: 3600 * i,
                dts: 3600 * i,
                pcr: None,
                random_access: false,
                bounded: true,
                data: &audio,
            };
            w.write_pes(&pes, &mut out);
        }
        out
    }

    #[test]
    fn reads_back_what_the_muxer_writes() {
        let events = demux_all(&stream()).unwrap();
        assert_eq!(events[0], DemuxEvent::Pat { pmt_pid: 0x1000 });
        assert_eq!(
            events[1],
            DemuxEvent::Pmt {
                pcr_pid: VIDEO_PID,
                streams: vec![
                    EsInfo { stream_type: 0x1B, pid: VIDEO_PID },
                    EsInfo { stream_type: 0x0F, pid: AUDIO_PID }
                ]
            }
        );
        let pes: Vec<&DemuxedPes> = events
            .iter()
            .filter_map(|e| match e {
                DemuxEvent::Pes(p) => Some(p),
                _ => None,
            })
            .collect();
        assert_eq!(pes.len(), 6);
        let video: Vec<_> = pes.iter().filter(|p| p.pid == VIDEO_PID).collect();
        assert_eq!(video.iter().map(|p| p.dts).collect::<Vec<_>>(), [Some(0), Some(3600), Some(7200)]);
        assert_eq!(video[1].pts, Some(10800));
        assert_eq!(video[2].pcr, Some(7200));
        assert!(video[0].random_access && !video[1].random_access);
        assert!(pes.iter().all(|p| p.data.len() == if p.pid == VIDEO_PID { 1000 } else { 300 }));
    }

    #[test]
    fn strict_about_counters_crc_and_sync() {
        let s = stream();
        // Drop the fourth packet (inside the first video PES): the video counter skips.
        let mut gap = s.clone();
        gap.drain(3 * 188..4 * 188);
        assert!(matches!(demux_all(&gap), Err(DemuxError::Continuity { pid: VIDEO_PID, .. })));
        // A duplicated packet repeats the counter.
        let mut dup = s.clone();
        let p: Vec<u8> = s[2 * 188..3 * 188].to_vec();
        dup.splice(3 * 188..3 * 188, p);
        assert!(matches!(demux_all(&dup), Err(DemuxError::Continuity { .. })));
        let mut crc = s.clone();
        crc[10] ^= 1;
        assert_eq!(demux_all(&crc), Err(DemuxError::Crc { pid: 0 }));
        let mut sync = s.clone();
        sync[188] = 0x48;
        assert_eq!(demux_all(&sync), Err(DemuxError::NoSync { packet: 1 }));
        assert_eq!(demux_all(&s[..100]), Err(DemuxError::PartialPacket(100)));
        // Video before any PMT.
        assert_eq!(demux_all(&s[2 * 188..]), Err(DemuxError::UnknownPid(VIDEO_PID)));
        // A bounded audio PES cut short.
        let cut = &s[..s.len() - 188];
        assert!(matches!(demux_all(cut), Err(DemuxError::BadPes { pid: AUDIO_PID, .. })));
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp(&crate::mpegts::mux::timestamp_field(2, 0x1_FFFF_FFFF), 2), Some(0x1_FFFF_FFFF));
        assert_eq!(parse_timestamp(&crate::mpegts::mux::timestamp_field(2, 5), 3), None);
        assert_eq!(parse_timestamp(&[0x21, 0, 0, 0, 0], 2), None);
    }

    proptest! {
        #[test]
        fn never_panics_on_garbage(
            b in prop::collection::vec(any::<u8>(), 0..1200),
            flips in prop::collection::vec((0usize..2000, any::<u8>()), 0..8),
        ) {
            let _ = demux_all(&b);
            let mut s = stream();
            for (i, v) in flips {
                let n = s.len();
                s[i % n] = v;
            }
            let _ = demux_all(&s);
        }
    }
}
