//! Where a stream's HLS files go and how playlists name them, as nginx-rtmp-module lays them out
//! (`<name>.m3u8` + `<name>-<id>.ts`, or `<name>/index.m3u8` + `<name>/<id>.ts` with hls_nested).

use std::path::{Path, PathBuf};

use super::conf::HlsAppConf;

/// Percent-encodes what is not safe in a playlist URI (RFC 3986 unreserved and '/' stay).
pub fn uri_escape(s: &str) -> String {
    rtmp_proto::http::percent_encode(s, b"/")
}

#[derive(Debug, Clone)]
pub struct Layout {
    pub name: String,
    /// Directory of the segments (hls_path, or hls_path/<name> when nested).
    pub dir: PathBuf,
    pub playlist: PathBuf,
    key_dir: PathBuf,
    nested: bool,
    base_url: String,
    key_url: String,
    /// Segment file extension: "ts", or "m4s" for fMP4.
    ext: &'static str,
}

impl Layout {
    pub fn new(conf: &HlsAppConf, name: &str) -> Layout {
        let nested = conf.nested();
        let root = conf.path();
        let (dir, playlist, key_dir) = if nested {
            (root.join(name), root.join(name).join("index.m3u8"), conf.key_path().join(name))
        } else {
            (root.clone(), root.join(format!("{name}.m3u8")), conf.key_path())
        };
        Layout {
            name: name.to_string(),
            dir,
            playlist,
            key_dir,
            nested,
            base_url: conf.base_url().to_string(),
            key_url: conf.key_url().to_string(),
            ext: if conf.fmp4() { "m4s" } else { "ts" },
        }
    }

    fn file(&self, id: u64, ext: &str) -> String {
        if self.nested {
            format!("{id}.{ext}")
        } else {
            format!("{}-{id}.{ext}", self.name)
        }
    }

    pub fn segment_path(&self, id: u64) -> PathBuf {
        self.dir.join(self.file(id, self.ext))
    }

    /// fMP4 init segment (EXT-X-MAP) named after the first segment that needs it:
    /// `<name>-init-<id>.mp4`, or `init-<id>.mp4` nested.
    fn init_file(&self, id: u64) -> String {
        if self.nested {
            format!("init-{id}.mp4")
        } else {
            format!("{}-init-{id}.mp4", self.name)
        }
    }

    pub fn init_path(&self, id: u64) -> PathBuf {
        self.dir.join(self.init_file(id))
    }

    pub fn init_uri(&self, id: u64) -> String {
        Self::uri(&self.base_url, self.nested, &self.name, &self.init_file(id))
    }

    pub fn key_dir(&self) -> &Path {
        &self.key_dir
    }

    pub fn key_path(&self, id: u64) -> PathBuf {
        self.key_dir.join(self.file(id, "key"))
    }

    /// A segment's URI in the playlist: relative to it, or under `hls_base_url`.
    pub fn segment_uri(&self, id: u64) -> String {
        Self::uri(&self.base_url, self.nested, &self.name, &self.file(id, self.ext))
    }

    pub fn key_uri(&self, id: u64) -> String {
        Self::uri(&self.key_url, self.nested, &self.name, &self.file(id, "key"))
    }

    fn uri(base: &str, nested: bool, name: &str, file: &str) -> String {
        if nested && !base.is_empty() {
            format!("{base}{}/{}", uri_escape(name), uri_escape(file))
        } else {
            format!("{base}{}", uri_escape(file))
        }
    }

    /// The master playlist of a variant stream `<base><suffix>`: `<hls_path>/<base>.m3u8`.
    pub fn master(conf: &HlsAppConf, base: &str) -> PathBuf {
        conf.path().join(format!("{base}.m3u8"))
    }

    /// A variant's media playlist URI in its master playlist.
    pub fn variant_uri(conf: &HlsAppConf, stream: &str) -> String {
        let file = if conf.nested() { format!("{stream}/index.m3u8") } else { format!("{stream}.m3u8") };
        format!("{}{}", conf.base_url(), uri_escape(&file))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_escape_what_a_playlist_cannot_hold() {
        assert_eq!(uri_escape("cam 1\"#?.ts"), "cam%201%22%23%3F.ts");
        assert_eq!(uri_escape("a/b-c_d~e"), "a/b-c_d~e");
    }
}
