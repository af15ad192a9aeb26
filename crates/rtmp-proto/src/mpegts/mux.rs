//! MPEG-TS packetisation (ISO/IEC 13818-1): PAT and PMT sections with their CRC, PES headers with
//! PTS/DTS, and the 188-byte packets that carry them with continuity counters, PCR and stuffing.

use super::{PAT_PID, PMT_PID, PROGRAM_NUMBER, SYNC_BYTE, TIMESTAMP_MASK, TS_PACKET_SIZE};

/// Payload bytes after the 4-byte packet header.
const PACKET_PAYLOAD: usize = TS_PACKET_SIZE - 4;
/// A PES header as we write it: start code, stream id, length, two flag bytes, header length,
/// PTS and DTS.
const PES_HEADER_MAX: usize = 19;
/// PES_packet_length counts the bytes after itself: the flag bytes, header length and timestamps
/// (at most 13 of them) plus the data; audio PES must fit.
pub const MAX_BOUNDED_PES_DATA: usize = 0xFFFF - 13;

/// adaptation_field flags.
const AF_RANDOM_ACCESS: u8 = 0x40;
const AF_PCR: u8 = 0x10;

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 0x8000_0000 != 0 { (c << 1) ^ 0x04C1_1DB7 } else { c << 1 };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32/MPEG-2 (polynomial 0x04C11DB7, initial value all ones, no reflection, no final xor): the
/// CRC_32 of PSI sections. Over a whole section including its CRC the result is 0.
pub fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xFFFF_FFFF, |crc: u32, &b| {
        let idx = usize::from((crc >> 24) as u8 ^ b);
        (crc << 8) ^ CRC_TABLE.get(idx).copied().unwrap_or(0)
    })
}

/// One elementary stream as the PMT lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PmtStream {
    pub stream_type: u8,
    pub pid: u16,
}

/// Appends the CRC to a section whose section_length field already counts it.
fn seal(mut section: Vec<u8>) -> Vec<u8> {
    let crc = crc32_mpeg2(&section);
    section.extend_from_slice(&crc.to_be_bytes());
    section
}

/// The program association section: one program, `PROGRAM_NUMBER`, whose PMT is on `PMT_PID`.
pub fn pat_section() -> Vec<u8> {
    let [pn_hi, pn_lo] = PROGRAM_NUMBER.to_be_bytes();
    let [pmt_hi, pmt_lo] = PMT_PID.to_be_bytes();
    // table_id 0, section_syntax_indicator, section_length 13, transport_stream_id 1, version 0,
    // current_next_indicator, section 0 of 0.
    seal(vec![0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, pn_hi, pn_lo, 0xE0 | pmt_hi, pmt_lo])
}

/// The program map section of our program; `streams` in PID order as they should be listed.
pub fn pmt_section(pcr_pid: u16, streams: &[PmtStream]) -> Vec<u8> {
    // Nine bytes after section_length, five per stream, four of CRC; our PMTs list two streams.
    let section_length = 9 + 5 * streams.len().min(2) + 4;
    let [pn_hi, pn_lo] = PROGRAM_NUMBER.to_be_bytes();
    let [pcr_hi, pcr_lo] = pcr_pid.to_be_bytes();
    let mut s = vec![
        0x02,
        0xB0,
        section_length as u8,
        pn_hi,
        pn_lo,
        0xC1,
        0x00,
        0x00,
        0xE0 | (pcr_hi & 0x1F),
        pcr_lo,
        0xF0,
        0x00,
    ];
    for es in streams.iter().take(2) {
        let [pid_hi, pid_lo] = es.pid.to_be_bytes();
        s.extend_from_slice(&[es.stream_type, 0xE0 | (pid_hi & 0x1F), pid_lo, 0xF0, 0x00]);
    }
    seal(s)
}

/// One PES packet to write. Timestamps are 90 kHz ticks; they are cut to 33 bits when written.
#[derive(Debug, Clone, Copy)]
pub struct Pes<'a> {
    pub pid: u16,
    pub stream_id: u8,
    pub pts: u64,
    pub dts: u64,
    /// Program clock reference (27 MHz base in 90 kHz ticks, extension 0) for the first packet.
    pub pcr: Option<u64>,
    /// random_access_indicator on the first packet: a keyframe (or an audio frame) starts here.
    pub random_access: bool,
    /// Write PES_packet_length (audio); unbounded (0) otherwise, which only video may use.
    pub bounded: bool,
    pub data: &'a [u8],
}

/// The 5-byte PTS or DTS field with its 4-bit prefix and marker bits.
pub fn timestamp_field(prefix: u8, ts: u64) -> [u8; 5] {
    let ts = ts & TIMESTAMP_MASK;
    [
        (prefix << 4) | ((ts >> 29) as u8 & 0x0E) | 1,
        (ts >> 22) as u8,
        ((ts >> 14) as u8 & 0xFE) | 1,
        (ts >> 7) as u8,
        ((ts << 1) as u8 & 0xFE) | 1,
    ]
}

/// The PES header: PTS and DTS when they differ, PTS alone when they are equal.
pub fn pes_header(pes: &Pes) -> ([u8; PES_HEADER_MAX], usize) {
    let (pts, dts) = (pes.pts & TIMESTAMP_MASK, pes.dts & TIMESTAMP_MASK);
    let with_dts = pts != dts;
    let header_data_len: usize = if with_dts { 10 } else { 5 };
    let len = 3 + header_data_len + pes.data.len();
    let packet_len = if pes.bounded && len <= 0xFFFF { len as u16 } else { 0 };
    let [len_hi, len_lo] = packet_len.to_be_bytes();
    let mut h = [0u8; PES_HEADER_MAX];
    h[..9].copy_from_slice(&[
        0x00,
        0x00,
        0x01,
        pes.stream_id,
        len_hi,
        len_lo,
        0x80,
        if with_dts { 0xC0 } else { 0x80 },
        header_data_len as u8,
    ]);
    if with_dts {
        h[9..14].copy_from_slice(&timestamp_field(0x3, pts));
        h[14..19].copy_from_slice(&timestamp_field(0x1, dts));
    } else {
        h[9..14].copy_from_slice(&timestamp_field(0x2, pts));
    }
    (h, 9 + header_data_len)
}

/// The 6-byte PCR field: 33-bit base, six reserved bits, 9-bit extension 0.
pub fn pcr_field(pcr: u64) -> [u8; 6] {
    let base = pcr & TIMESTAMP_MASK;
    [(base >> 25) as u8, (base >> 17) as u8, (base >> 9) as u8, (base >> 1) as u8, ((base as u8 & 1) << 7) | 0x7E, 0]
}

/// What goes into a packet's adaptation field besides stuffing.
#[derive(Debug, Clone, Copy, Default)]
struct AfFlags {
    pcr: Option<u64>,
    random_access: bool,
}

impl AfFlags {
    /// Adaptation field bytes (length byte included) these flags need; 0 for none.
    fn len(&self) -> usize {
        match (self.pcr, self.random_access) {
            (Some(_), _) => 8,
            (None, true) => 2,
            (None, false) => 0,
        }
    }
}

/// Writes transport packets, keeping the continuity counter of every PID it has written.
#[derive(Debug, Clone, Default)]
pub struct TsWriter {
    counters: Vec<(u16, u8)>,
}

impl TsWriter {
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter for the next packet of `pid`, advanced.
    fn next_cc(&mut self, pid: u16) -> u8 {
        match self.counters.iter_mut().find(|(p, _)| *p == pid) {
            Some((_, cc)) => {
                *cc = (*cc + 1) & 0x0F;
                *cc
            }
            None => {
                self.counters.push((pid, 0));
                0
            }
        }
    }

    /// One packet carrying `payload` (at most what fits), stuffed to 188 bytes with the adaptation
    /// field. Returns how much of `payload` went in.
    fn packet(&mut self, pid: u16, start: bool, flags: AfFlags, payload: &[&[u8]], out: &mut Vec<u8>) -> usize {
        let need = flags.len();
        let space = PACKET_PAYLOAD - need;
        let available: usize = payload.iter().map(|p| p.len()).sum();
        let take = available.min(space);
        let af_len = need + (space - take);
        let [pid_hi, pid_lo] = pid.to_be_bytes();
        let cc = self.next_cc(pid);
        let af_bit = if af_len > 0 { 0x20 } else { 0 };
        out.extend_from_slice(&[SYNC_BYTE, (u8::from(start) << 6) | (pid_hi & 0x1F), pid_lo, af_bit | 0x10 | cc]);
        if af_len > 0 {
            // adaptation_field_length counts the bytes after itself.
            out.push((af_len - 1) as u8);
            if af_len > 1 {
                let mut f = 0;
                if flags.random_access {
                    f |= AF_RANDOM_ACCESS;
                }
                if flags.pcr.is_some() {
                    f |= AF_PCR;
                }
                out.push(f);
                let mut used = 2;
                if let Some(pcr) = flags.pcr {
                    out.extend_from_slice(&pcr_field(pcr));
                    used += 6;
                }
                out.resize(out.len() + (af_len - used), 0xFF);
            }
        }
        let mut left = take;
        for p in payload {
            let n = p.len().min(left);
            out.extend_from_slice(p.get(..n).unwrap_or_default());
            left -= n;
        }
        take
    }

    /// A PSI section in as many packets as it needs, the rest of the last one filled with 0xFF
    /// (sections are padded that way, not with adaptation-field stuffing).
    fn section(&mut self, pid: u16, section: &[u8], out: &mut Vec<u8>) {
        let [pid_hi, pid_lo] = pid.to_be_bytes();
        let mut rest = section;
        let mut start = true;
        loop {
            let at = out.len();
            let cc = self.next_cc(pid);
            out.extend_from_slice(&[SYNC_BYTE, (u8::from(start) << 6) | (pid_hi & 0x1F), pid_lo, 0x10 | cc]);
            if start {
                // pointer_field: the section starts right after it.
                out.push(0);
            }
            let n = rest.len().min(at + TS_PACKET_SIZE - out.len());
            out.extend_from_slice(rest.get(..n).unwrap_or_default());
            rest = rest.get(n..).unwrap_or_default();
            out.resize(at + TS_PACKET_SIZE, 0xFF);
            if rest.is_empty() {
                return;
            }
            start = false;
        }
    }

    /// The PAT, one packet.
    pub fn write_pat(&mut self, out: &mut Vec<u8>) {
        self.section(PAT_PID, &pat_section(), out);
    }

    /// The PMT, one packet.
    pub fn write_pmt(&mut self, pcr_pid: u16, streams: &[PmtStream], out: &mut Vec<u8>) {
        self.section(PMT_PID, &pmt_section(pcr_pid, streams), out);
    }

    /// A whole PES in packets: PCR and random access on the first, stuffing on the last.
    pub fn write_pes(&mut self, pes: &Pes, out: &mut Vec<u8>) {
        let (header, header_len) = pes_header(pes);
        let mut rest: [&[u8]; 2] = [header.get(..header_len).unwrap_or_default(), pes.data];
        let mut flags = AfFlags { pcr: pes.pcr, random_access: pes.random_access };
        let mut start = true;
        loop {
            let used = self.packet(pes.pid, start, flags, &rest, out);
            let [h, d] = rest;
            let from_header = used.min(h.len());
            rest = [h.get(from_header..).unwrap_or_default(), d.get(used - from_header..).unwrap_or_default()];
            if rest.iter().all(|r| r.is_empty()) {
                return;
            }
            start = false;
            flags = AfFlags::default();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mpegts::demux::{DemuxEvent, Demuxer};
    use crate::mpegts::{AUDIO_PID, VIDEO_PID};

    #[test]
    fn crc_of_ffmpegs_pat() {
        // The PAT FFmpeg writes for program 1 with its PMT on 0x1000, CRC included.
        let ffmpeg = [0x00, 0xB0, 0x0D, 0x00, 0x01, 0xC1, 0x00, 0x00, 0x00, 0x01, 0xF0, 0x00, 0x2A, 0xB1, 0x04, 0xB2];
        assert_eq!(crc32_mpeg2(&ffmpeg[..12]), 0x2AB1_04B2);
        assert_eq!(crc32_mpeg2(&ffmpeg), 0);
        assert_eq!(pat_section(), ffmpeg);
        // The check value of CRC-32/MPEG-2.
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_E6E7);
    }

    #[test]
    fn pat_and_pmt_packets() {
        let mut w = TsWriter::new();
        let mut out = Vec::new();
        w.write_pat(&mut out);
        assert_eq!(out.len(), 188);
        assert_eq!(out[..5], [0x47, 0x40, 0x00, 0x10, 0x00]);
        assert_eq!(out[5..21], pat_section()[..]);
        assert!(out[21..].iter().all(|&b| b == 0xFF));
        let streams =
            [PmtStream { stream_type: 0x1B, pid: VIDEO_PID }, PmtStream { stream_type: 0x0F, pid: AUDIO_PID }];
        out.clear();
        w.write_pmt(VIDEO_PID, &streams, &mut out);
        let pmt = pmt_section(VIDEO_PID, &streams);
        assert_eq!(
            pmt[..22],
            [
                0x02, 0xB0, 0x17, 0x00, 0x01, 0xC1, 0x00, 0x00, 0xE1, 0x00, 0xF0, 0x00, 0x1B, 0xE1, 0x00, 0xF0, 0x00,
                0x0F, 0xE1, 0x01, 0xF0, 0x00
            ]
        );
        assert_eq!(crc32_mpeg2(&pmt), 0);
        assert_eq!(out[..5], [0x47, 0x50, 0x00, 0x10, 0x00]);
        // Counters advance per PID.
        out.clear();
        w.write_pat(&mut out);
        assert_eq!(out[3], 0x11);
    }

    #[test]
    fn timestamps_encode_like_the_standard() {
        // 0x1_2345_6789 (33 bits): prefix, bits 32..30, marker; 29..15, marker; 14..0, marker.
        let ts: u64 = 0x1_2345_6789;
        let f = timestamp_field(0x2, ts);
        let back = (u64::from(f[0] & 0x0E) << 29)
            | (u64::from(f[1]) << 22)
            | (u64::from(f[2] >> 1) << 15)
            | (u64::from(f[3]) << 7)
            | u64::from(f[4] >> 1);
        assert_eq!(back, ts);
        assert_eq!(f[0] & 0xF1, 0x21);
        assert_eq!((f[2] & 1, f[4] & 1), (1, 1));
        // Wraps at 33 bits.
        assert_eq!(timestamp_field(0x2, (1 << 33) + 5), timestamp_field(0x2, 5));
    }

    #[test]
    fn pes_headers() {
        let data = [1u8, 2, 3];
        let pes = Pes {
            pid: VIDEO_PID,
            stream_id: 0xE0,
            pts: 9000 + 3600,
            dts: 9000,
            pcr: None,
            random_access: false,
            bounded: false,
            data: &data,
        };
        let (h, n) = pes_header(&pes);
        assert_eq!(n, 19);
        assert_eq!(h[..9], [0, 0, 1, 0xE0, 0, 0, 0x80, 0xC0, 10]);
        assert_eq!(h[9..14], timestamp_field(3, 12600));
        assert_eq!(h[14..19], timestamp_field(1, 9000));
        let (h, n) = pes_header(&Pes { pts: 9000, stream_id: 0xC0, bounded: true, ..pes });
        assert_eq!(n, 14);
        // Length: 3 flag/length bytes, 5 of PTS, 3 of data.
        assert_eq!(h[..9], [0, 0, 1, 0xC0, 0, 11, 0x80, 0x80, 5]);
        assert_eq!(h[9..14], timestamp_field(2, 9000));
    }

    #[test]
    fn pcr_field_layout() {
        let f = pcr_field(0x1_FFFF_FFFF);
        assert_eq!(f, [0xFF, 0xFF, 0xFF, 0xFF, 0xFE, 0x00]);
        assert_eq!(pcr_field(1), [0, 0, 0, 0, 0xFE, 0]);
        assert_eq!(pcr_field(2), [0, 0, 0, 1, 0x7E, 0]);
    }

    #[test]
    fn every_size_fills_whole_packets_and_reads_back() {
        let mut w = TsWriter::new();
        let mut out = Vec::new();
        w.write_pat(&mut out);
        let streams =
            [PmtStream { stream_type: 0x1B, pid: VIDEO_PID }, PmtStream { stream_type: 0x0F, pid: AUDIO_PID }];
        w.write_pmt(VIDEO_PID, &streams, &mut out);
        let sizes: Vec<usize> = (0..400).chain([1000, 65_000, 65_522, 65_523, 70_000]).collect();
        for &n in &sizes {
            let data: Vec<u8> = (0..n).map(|i| (i * 7) as u8).collect();
            let video = n % 2 == 0;
            let pes = Pes {
                pid: if video { VIDEO_PID } else { AUDIO_PID },
                stream_id: if video { 0xE0 } else { 0xC0 },
                pts: 1000 + n as u64,
                dts: 1000,
                pcr: video.then_some(900),
                random_access: n % 3 == 0,
                bounded: !video,
                data: &data,
            };
            w.write_pes(&pes, &mut out);
        }
        assert_eq!(out.len() % 188, 0);
        assert!(out.chunks(188).all(|p| p[0] == 0x47));
        let mut d = Demuxer::new();
        let mut events = d.push(&out).unwrap();
        events.extend(d.finish().unwrap());
        // Unbounded (video) PES come out when the next one starts: order by PTS, unique here.
        let mut pes: Vec<_> = events
            .into_iter()
            .filter_map(|e| match e {
                DemuxEvent::Pes(p) => Some(p),
                _ => None,
            })
            .collect();
        pes.sort_by_key(|p| p.pts);
        assert_eq!(pes.len(), sizes.len());
        for (p, &n) in pes.iter().zip(&sizes) {
            assert_eq!(p.data.len(), n);
            assert_eq!(p.pts, Some(1000 + n as u64));
            assert_eq!(p.random_access, n % 3 == 0);
            assert_eq!(p.pcr, (n % 2 == 0).then_some(900));
            if n != 0 {
                assert_eq!(p.dts, Some(1000));
            }
        }
    }
}
