//! ISO BMFF box writing for CMAF: the init segment (`ftyp` + `moov` of one track, empty sample
//! tables, `mvex`/`trex`) and the chunks (`moof` with one `traf` + `mdat`).

/// `tfhd` flag: sample data offsets are relative to the `moof`.
const TFHD_DEFAULT_BASE_IS_MOOF: u32 = 0x02_0000;
/// `trun` flags.
const TRUN_DATA_OFFSET: u32 = 0x000001;
const TRUN_DURATION: u32 = 0x000100;
const TRUN_SIZE: u32 = 0x000200;
const TRUN_FLAGS: u32 = 0x000400;
const TRUN_CTO: u32 = 0x000800;
/// Sample flags: a sync sample that depends on no other (`sample_depends_on = 2`).
pub const SYNC_SAMPLE_FLAGS: u32 = 0x0200_0000;
/// Sample flags: depends on others (`sample_depends_on = 1`), `sample_is_non_sync_sample`.
pub const NON_SYNC_SAMPLE_FLAGS: u32 = 0x0101_0000;

/// The identity matrix of `mvhd` and `tkhd`.
const MATRIX: [u32; 9] = [0x0001_0000, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000];

/// Appends a box of `kind` whose body `body` writes, its size filled in afterwards.
pub fn put_box(out: &mut Vec<u8>, kind: &[u8; 4], body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(kind);
    body(out);
    // Our boxes stay far below 4 GiB (chunks are bounded by the packager); saturate regardless.
    let size = u32::try_from(out.len() - start).unwrap_or(u32::MAX);
    if let Some(s) = out.get_mut(start..start + 4) {
        s.copy_from_slice(&size.to_be_bytes());
    }
}

/// A full box: version and 24-bit flags first.
pub fn put_full_box(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: impl FnOnce(&mut Vec<u8>),
) {
    put_box(out, kind, |out| {
        out.push(version);
        out.extend_from_slice(&flags.to_be_bytes()[1..]);
        body(out);
    })
}

fn u16be(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn u32be(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

fn u64be(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// The codec-specific part of an init segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleEntry {
    /// `avc1` + `avcC` (the AVCDecoderConfigurationRecord).
    Avc {
        record: Vec<u8>,
        width: u16,
        height: u16,
    },
    /// `hvc1` + `hvcC` (the HEVCDecoderConfigurationRecord, parameter-set arrays complete).
    Hevc {
        record: Vec<u8>,
        width: u16,
        height: u16,
    },
    /// `mp4a` + `esds` (the AudioSpecificConfig).
    Aac {
        asc: Vec<u8>,
        sample_rate: u32,
        channels: u16,
    },
}

impl SampleEntry {
    fn is_video(&self) -> bool {
        !matches!(self, SampleEntry::Aac { .. })
    }

    fn dimensions(&self) -> (u16, u16) {
        match self {
            SampleEntry::Avc { width, height, .. } | SampleEntry::Hevc { width, height, .. } => {
                (*width, *height)
            }
            SampleEntry::Aac { .. } => (0, 0),
        }
    }
}

/// `ftyp` + `moov` for one track.
pub fn init_segment(track_id: u32, timescale: u32, entry: &SampleEntry) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    put_box(&mut out, b"ftyp", |o| {
        o.extend_from_slice(b"iso6");
        u32be(o, 0);
        for brand in [b"iso6", b"cmfc", b"cmf2", b"isom", b"mp41", b"dash"] {
            o.extend_from_slice(brand);
        }
    });
    put_box(&mut out, b"moov", |o| {
        put_full_box(o, b"mvhd", 0, 0, |o| {
            u32be(o, 0); // creation_time
            u32be(o, 0); // modification_time
            u32be(o, 1000); // timescale
            u32be(o, 0); // duration
            u32be(o, 0x0001_0000); // rate 1.0
            u16be(o, 0x0100); // volume 1.0
            o.extend_from_slice(&[0; 10]);
            MATRIX.iter().for_each(|m| u32be(o, *m));
            o.extend_from_slice(&[0; 24]); // pre_defined
            u32be(o, track_id.saturating_add(1)); // next_track_ID
        });
        put_box(o, b"trak", |o| trak(o, track_id, timescale, entry));
        put_box(o, b"mvex", |o| {
            put_full_box(o, b"trex", 0, 0, |o| {
                u32be(o, track_id);
                u32be(o, 1); // default_sample_description_index
                u32be(o, 0); // default_sample_duration
                u32be(o, 0); // default_sample_size
                u32be(o, 0); // default_sample_flags
            });
        });
    });
    out
}

fn trak(o: &mut Vec<u8>, track_id: u32, timescale: u32, entry: &SampleEntry) {
    let video = entry.is_video();
    let (width, height) = entry.dimensions();
    // Enabled, in movie, in preview.
    put_full_box(o, b"tkhd", 0, 0x000007, |o| {
        u32be(o, 0); // creation_time
        u32be(o, 0); // modification_time
        u32be(o, track_id);
        u32be(o, 0); // reserved
        u32be(o, 0); // duration
        o.extend_from_slice(&[0; 8]);
        u16be(o, 0); // layer
        u16be(o, 0); // alternate_group
        u16be(o, if video { 0 } else { 0x0100 }); // volume
        u16be(o, 0);
        MATRIX.iter().for_each(|m| u32be(o, *m));
        u32be(o, u32::from(width) << 16);
        u32be(o, u32::from(height) << 16);
    });
    put_box(o, b"mdia", |o| {
        put_full_box(o, b"mdhd", 0, 0, |o| {
            u32be(o, 0);
            u32be(o, 0);
            u32be(o, timescale);
            u32be(o, 0); // duration
            u16be(o, 0x55C4); // language "und"
            u16be(o, 0);
        });
        put_full_box(o, b"hdlr", 0, 0, |o| {
            u32be(o, 0); // pre_defined
            o.extend_from_slice(if video { b"vide" } else { b"soun" });
            o.extend_from_slice(&[0; 12]);
            o.extend_from_slice(if video {
                b"VideoHandler\0"
            } else {
                b"SoundHandler\0"
            });
        });
        put_box(o, b"minf", |o| {
            if video {
                put_full_box(o, b"vmhd", 0, 1, |o| o.extend_from_slice(&[0; 8]));
            } else {
                put_full_box(o, b"smhd", 0, 0, |o| o.extend_from_slice(&[0; 4]));
            }
            put_box(o, b"dinf", |o| {
                put_full_box(o, b"dref", 0, 0, |o| {
                    u32be(o, 1);
                    // Self-contained: the data is in this file.
                    put_full_box(o, b"url ", 0, 1, |_| {});
                });
            });
            put_box(o, b"stbl", |o| {
                put_full_box(o, b"stsd", 0, 0, |o| {
                    u32be(o, 1);
                    sample_entry(o, entry);
                });
                put_full_box(o, b"stts", 0, 0, |o| u32be(o, 0));
                put_full_box(o, b"stsc", 0, 0, |o| u32be(o, 0));
                put_full_box(o, b"stsz", 0, 0, |o| {
                    u32be(o, 0);
                    u32be(o, 0);
                });
                put_full_box(o, b"stco", 0, 0, |o| u32be(o, 0));
            });
        });
    });
}

fn visual_entry(
    o: &mut Vec<u8>,
    kind: &[u8; 4],
    width: u16,
    height: u16,
    config_kind: &[u8; 4],
    record: &[u8],
) {
    put_box(o, kind, |o| {
        o.extend_from_slice(&[0; 6]);
        u16be(o, 1); // data_reference_index
        o.extend_from_slice(&[0; 16]); // pre_defined, reserved, pre_defined[3]
        u16be(o, width);
        u16be(o, height);
        u32be(o, 0x0048_0000); // 72 dpi
        u32be(o, 0x0048_0000);
        u32be(o, 0);
        u16be(o, 1); // frame_count
        o.extend_from_slice(&[0; 32]); // compressorname
        u16be(o, 0x0018); // depth
        u16be(o, 0xFFFF); // pre_defined -1
        put_box(o, config_kind, |o| o.extend_from_slice(record));
    });
}

fn sample_entry(o: &mut Vec<u8>, entry: &SampleEntry) {
    match entry {
        SampleEntry::Avc {
            record,
            width,
            height,
        } => visual_entry(o, b"avc1", *width, *height, b"avcC", record),
        SampleEntry::Hevc {
            record,
            width,
            height,
        } => visual_entry(o, b"hvc1", *width, *height, b"hvcC", record),
        SampleEntry::Aac {
            asc,
            sample_rate,
            channels,
        } => put_box(o, b"mp4a", |o| {
            o.extend_from_slice(&[0; 6]);
            u16be(o, 1); // data_reference_index
            o.extend_from_slice(&[0; 8]);
            u16be(o, *channels);
            u16be(o, 16); // samplesize
            u32be(o, 0); // pre_defined, reserved
                         // 16.16 fixed point; rates above 65535 Hz do not fit (the esds says the truth).
            let rate = if *sample_rate <= 0xFFFF {
                *sample_rate
            } else {
                0
            };
            u32be(o, rate << 16);
            put_full_box(o, b"esds", 0, 0, |o| esds(o, asc));
        }),
    }
}

/// An MPEG-4 descriptor: tag, expandable size, body.
fn descriptor(o: &mut Vec<u8>, tag: u8, body: &[u8]) {
    o.push(tag);
    let len = u32::try_from(body.len())
        .unwrap_or(0x0FFF_FFFF)
        .min(0x0FFF_FFFF);
    // Always four size bytes: simple, and what many muxers write.
    o.extend_from_slice(&[
        0x80 | ((len >> 21) & 0x7F) as u8,
        0x80 | ((len >> 14) & 0x7F) as u8,
        0x80 | ((len >> 7) & 0x7F) as u8,
        (len & 0x7F) as u8,
    ]);
    o.extend_from_slice(body.get(..len as usize).unwrap_or(body));
}

fn esds(o: &mut Vec<u8>, asc: &[u8]) {
    let mut dsi = Vec::new();
    descriptor(&mut dsi, 0x05, asc);
    let mut dcd = vec![
        0x40, // objectTypeIndication: MPEG-4 Audio
        0x15, // streamType audio (5) << 2 | upStream 0 | reserved 1
        0, 0, 0, // bufferSizeDB
    ];
    dcd.extend_from_slice(&[0; 8]); // maxBitrate, avgBitrate: unknown
    dcd.extend_from_slice(&dsi);
    let mut es = vec![0, 0, 0]; // ES_ID 0, flags 0
    descriptor(&mut es, 0x04, &dcd);
    descriptor(&mut es, 0x06, &[0x02]); // SLConfigDescriptor: predefined MP4
    descriptor(o, 0x03, &es);
}

/// The HEVCDecoderConfigurationRecord for an `hvc1` sample entry: every parameter-set array marked
/// complete (`array_completeness = 1`: all parameter sets are here, none only in band). A record
/// too short to walk is returned as it is.
pub fn hvcc_for_hvc1(record: &[u8]) -> Vec<u8> {
    let mut r = record.to_vec();
    let Some(&arrays) = r.get(22) else { return r };
    let mut at = 23usize;
    for _ in 0..arrays {
        let Some(b) = r.get_mut(at) else { break };
        *b |= 0x80;
        let Some(&[n0, n1]) = r
            .get(at + 1..at + 3)
            .and_then(|s| <&[u8; 2]>::try_from(s).ok())
        else {
            break;
        };
        at += 3;
        for _ in 0..u16::from_be_bytes([n0, n1]) {
            let Some(&[l0, l1]) = r.get(at..at + 2).and_then(|s| <&[u8; 2]>::try_from(s).ok())
            else {
                return r;
            };
            at += 2 + usize::from(u16::from_be_bytes([l0, l1]));
        }
    }
    r
}

/// One sample of a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FragSample {
    pub duration: u32,
    pub size: u32,
    pub sync: bool,
    /// Composition time offset (PTS - DTS) in the track's timescale.
    pub cto: i32,
}

/// `moof` + `mdat` of one chunk. `video`: per-sample flags and signed composition offsets
/// (`trun` version 1); audio samples are all sync (the `trex` default) and have no offsets.
pub fn chunk(
    sequence: u32,
    track_id: u32,
    base_dts: u64,
    video: bool,
    samples: &[FragSample],
    data: &[&[u8]],
) -> Vec<u8> {
    let payload: usize = data.iter().map(|d| d.len()).sum();
    let per_sample = if video { 16 } else { 8 };
    let mut out = Vec::with_capacity(128 + samples.len() * per_sample + payload);
    let trun_flags = TRUN_DATA_OFFSET
        | TRUN_DURATION
        | TRUN_SIZE
        | if video { TRUN_FLAGS | TRUN_CTO } else { 0 };
    let mut offset_at = None;
    put_box(&mut out, b"moof", |o| {
        put_full_box(o, b"mfhd", 0, 0, |o| u32be(o, sequence));
        put_box(o, b"traf", |o| {
            put_full_box(o, b"tfhd", 0, TFHD_DEFAULT_BASE_IS_MOOF, |o| {
                u32be(o, track_id)
            });
            put_full_box(o, b"tfdt", 1, 0, |o| u64be(o, base_dts));
            put_full_box(o, b"trun", u8::from(video), trun_flags, |o| {
                u32be(o, u32::try_from(samples.len()).unwrap_or(u32::MAX));
                offset_at = Some(o.len());
                u32be(o, 0); // data_offset, filled below
                for s in samples {
                    u32be(o, s.duration);
                    u32be(o, s.size);
                    if video {
                        u32be(
                            o,
                            if s.sync {
                                SYNC_SAMPLE_FLAGS
                            } else {
                                NON_SYNC_SAMPLE_FLAGS
                            },
                        );
                        o.extend_from_slice(&s.cto.to_be_bytes());
                    }
                }
            });
        });
    });
    // The first sample starts right after the mdat header.
    let data_offset = u32::try_from(out.len() + 8).unwrap_or(u32::MAX);
    if let Some(s) = offset_at.and_then(|at| out.get_mut(at..at + 4)) {
        s.copy_from_slice(&data_offset.to_be_bytes());
    }
    put_box(&mut out, b"mdat", |o| {
        data.iter().for_each(|d| o.extend_from_slice(d))
    });
    out
}
