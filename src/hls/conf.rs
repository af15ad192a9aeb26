//! HLS directives with nginx-rtmp-module's names and defaults, and the per-worker state of the
//! module (who writes which playlist, files waiting for deletion).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::rc::Rc;

use rtmp_proto::mpegts::{MediaInfo, SegmenterConf};

use crate::ngx::conf::{merge, Conf, Directive, Keyword, Kw, Msec, Size};
use crate::ngx::module::Merge;

use super::cleanup::Cleanup;

/// `hls_fragment_naming`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Naming {
    Sequential,
    Timestamp,
    System,
}
impl Keyword for Naming {
    const WORDS: &'static [(&'static str, Self)] =
        &[("sequential", Naming::Sequential), ("timestamp", Naming::Timestamp), ("system", Naming::System)];
}

/// `hls_fragment_slicing`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slicing {
    Plain,
    Aligned,
}
impl Keyword for Slicing {
    const WORDS: &'static [(&'static str, Self)] = &[("plain", Slicing::Plain), ("aligned", Slicing::Aligned)];
}

/// `hls_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HlsType {
    Live,
    Event,
}
impl Keyword for HlsType {
    const WORDS: &'static [(&'static str, Self)] = &[("live", HlsType::Live), ("event", HlsType::Event)];
}

/// `hls_fragment_type`: MPEG-TS segments (the C module's only kind) or fragmented MP4 (CMAF).
/// fMP4 cuts by `hls_fragment`/`hls_max_fragment` at keyframes like MPEG-TS; the MPEG-TS muxer's
/// own settings (`hls_sync`, `hls_muxdelay`, `hls_max_audio_delay`, `hls_audio_buffer_size`,
/// `hls_fragment_slicing aligned`) do not apply to it. `hls_keys` encrypts fMP4 segments whole
/// (AES-128), init segments stay clear (see `fmp4.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FragmentType {
    Mpegts,
    Fmp4,
}
impl Keyword for FragmentType {
    const WORDS: &'static [(&'static str, Self)] = &[("mpegts", FragmentType::Mpegts), ("fmp4", FragmentType::Fmp4)];
}

/// `hls_variant _low BANDWIDTH=320000 …`: streams named `<base>_low` are one variant of `<base>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Variant {
    pub suffix: String,
    pub params: Vec<String>,
}

pub struct VariantDirective;
impl Directive<HlsAppConf> for VariantDirective {
    fn set(cf: &Conf, conf: &mut HlsAppConf) -> Result<(), String> {
        let args = cf.args();
        let Some((suffix, params)) = args.split_first() else {
            return Err("invalid number of arguments in \"hls_variant\" directive".into());
        };
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let suffix = text(suffix);
        if suffix.is_empty() || suffix.contains(['/', '\\', '\0']) {
            return Err(format!("invalid suffix \"{suffix}\" in \"hls_variant\" directive"));
        }
        let params: Vec<String> = params.iter().map(|p| text(p)).collect();
        if let Some(bad) = params.iter().find(|p| !p.contains('=') || p.contains(['\n', '\r'])) {
            return Err(format!("invalid parameter \"{bad}\" in \"hls_variant\" directive, it must be NAME=VALUE"));
        }
        conf.variants.get_or_insert_with(Vec::new).push(Variant { suffix, params });
        Ok(())
    }
}

#[derive(Default)]
pub struct HlsAppConf {
    pub hls: Option<bool>,
    pub path: Option<String>,
    pub fragment: Option<Msec>,
    pub max_fragment: Option<Msec>,
    pub playlist_length: Option<Msec>,
    pub sync: Option<Msec>,
    pub muxdelay: Option<Msec>,
    pub continuous: Option<bool>,
    pub nested: Option<bool>,
    pub base_url: Option<String>,
    pub cleanup: Option<bool>,
    pub naming: Option<Kw<Naming>>,
    pub granularity: Option<u64>,
    pub slicing: Option<Kw<Slicing>>,
    pub kind: Option<Kw<HlsType>>,
    pub max_audio_delay: Option<Msec>,
    pub audio_buffer_size: Option<Size>,
    pub keys: Option<bool>,
    pub key_path: Option<String>,
    pub key_url: Option<String>,
    pub fragments_per_key: Option<u64>,
    pub variants: Option<Vec<Variant>>,
    pub fragment_type: Option<Kw<FragmentType>>,
}

impl HlsAppConf {
    pub fn hls(&self) -> bool {
        self.hls.unwrap_or(false)
    }
    pub fn path(&self) -> PathBuf {
        PathBuf::from(self.path.as_deref().unwrap_or_default())
    }
    pub fn fragment_ms(&self) -> u64 {
        self.fragment.map_or(5_000, |m| m.0).max(1)
    }
    pub fn max_fragment_ms(&self) -> u64 {
        self.max_fragment.map_or(self.fragment_ms().saturating_mul(10), |m| m.0).max(self.fragment_ms())
    }
    pub fn playlist_length_ms(&self) -> u64 {
        self.playlist_length.map_or(30_000, |m| m.0)
    }
    pub fn continuous(&self) -> bool {
        self.continuous.unwrap_or(true)
    }
    pub fn nested(&self) -> bool {
        self.nested.unwrap_or(false)
    }
    pub fn base_url(&self) -> &str {
        self.base_url.as_deref().unwrap_or_default()
    }
    pub fn cleanup(&self) -> bool {
        self.cleanup.unwrap_or(true)
    }
    pub fn naming(&self) -> Naming {
        self.naming.map_or(Naming::Sequential, |k| k.0)
    }
    pub fn granularity(&self) -> u64 {
        self.granularity.unwrap_or(0)
    }
    pub fn event(&self) -> bool {
        self.kind.is_some_and(|k| k.0 == HlsType::Event)
    }
    pub fn keys(&self) -> bool {
        self.keys.unwrap_or(false)
    }
    /// Where key files go: `hls_key_path`, else next to the segments.
    pub fn key_path(&self) -> PathBuf {
        match self.key_path.as_deref() {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => self.path(),
        }
    }
    pub fn key_url(&self) -> &str {
        self.key_url.as_deref().unwrap_or_default()
    }
    /// Segments per key; 0: one key for the whole publish.
    pub fn fragments_per_key(&self) -> u64 {
        self.fragments_per_key.unwrap_or(0)
    }
    /// `hls_fragment_type fmp4`.
    pub fn fmp4(&self) -> bool {
        self.fragment_type.is_some_and(|k| k.0 == FragmentType::Fmp4)
    }
    pub fn variants(&self) -> &[Variant] {
        self.variants.as_deref().unwrap_or_default()
    }
    pub fn segmenter(&self) -> SegmenterConf {
        SegmenterConf {
            fragment_ms: self.fragment_ms(),
            max_fragment_ms: self.max_fragment_ms(),
            aligned: self.slicing.is_some_and(|k| k.0 == Slicing::Aligned),
            sync_ms: self.sync.map_or(2, |m| m.0),
            muxdelay_ms: self.muxdelay.map_or(700, |m| m.0),
            max_audio_delay_ms: self.max_audio_delay.map_or(300, |m| m.0),
            audio_buffer_size: self.audio_buffer_size.map_or(1 << 20, |s| usize::try_from(s.0).unwrap_or(usize::MAX)),
        }
    }
}

impl Merge for HlsAppConf {
    fn merge(&mut self, prev: &Self, cf: &Conf) -> Result<(), String> {
        merge(&mut self.hls, &prev.hls);
        merge(&mut self.path, &prev.path);
        merge(&mut self.fragment, &prev.fragment);
        merge(&mut self.max_fragment, &prev.max_fragment);
        merge(&mut self.playlist_length, &prev.playlist_length);
        merge(&mut self.sync, &prev.sync);
        merge(&mut self.muxdelay, &prev.muxdelay);
        merge(&mut self.continuous, &prev.continuous);
        merge(&mut self.nested, &prev.nested);
        merge(&mut self.base_url, &prev.base_url);
        merge(&mut self.cleanup, &prev.cleanup);
        merge(&mut self.naming, &prev.naming);
        merge(&mut self.granularity, &prev.granularity);
        merge(&mut self.slicing, &prev.slicing);
        merge(&mut self.kind, &prev.kind);
        merge(&mut self.max_audio_delay, &prev.max_audio_delay);
        merge(&mut self.audio_buffer_size, &prev.audio_buffer_size);
        merge(&mut self.keys, &prev.keys);
        merge(&mut self.key_path, &prev.key_path);
        merge(&mut self.key_url, &prev.key_url);
        merge(&mut self.fragments_per_key, &prev.fragments_per_key);
        merge(&mut self.variants, &prev.variants);
        merge(&mut self.fragment_type, &prev.fragment_type);
        // Resolved at every level that has them; `hls on` without a path is refused once all
        // applications are known (postconfiguration), as a server may set the path later.
        if let Some(p) = self.path.clone().filter(|p| !p.is_empty()) {
            self.path = Some(cf.directory(&p)?);
        }
        if let Some(k) = self.key_path.clone().filter(|p| !p.is_empty()) {
            self.key_path = Some(cf.directory(&k)?);
        }
        Ok(())
    }
}

#[derive(Default)]
pub struct HlsSrvConf;
impl Merge for HlsSrvConf {}

/// Per worker (one per cycle).
#[derive(Default)]
pub struct HlsMainConf {
    /// Playlist path → the writer allowed to write it (a takeover revokes the older one).
    pub owners: RefCell<HashMap<PathBuf, Rc<Cell<bool>>>>,
    /// What each variant stream last said about its media, for master playlists.
    pub variant_info: RefCell<HashMap<PathBuf, (MediaInfo, u64)>>,
    pub cleanup: Cleanup,
}
