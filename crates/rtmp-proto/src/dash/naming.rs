//! File names of the C module's layout, relative to `dash_path`, and the URLs the MPD uses for
//! them (relative to the MPD's own URL).
//!
//! | layout | MPD | init | segment | MPD's URLs |
//! |---|---|---|---|---|
//! | flat (`dash_nested off`) | `<name>.mpd` | `<name>-init.m4v`, `<name>-init.m4a` | `<name>-<N>.m4v`, `<name>-<N>.m4a` | `<name>-init.m4v`, `<name>-$Number$.m4v` |
//! | nested (`dash_nested on`) | `<name>/index.mpd` | `<name>/init.m4v`, `<name>/init.m4a` | `<name>/<N>.m4v` | `init.m4v`, `$Number$.m4v` |
//!
//! `<N>` is the segment number (not the C module's millisecond timestamp: see
//! [`crate::dash::mpd`] for why `$Number$`). In URLs the name is percent-encoded (everything but
//! RFC 3986 unreserved characters), so a `$` or a space in a stream name cannot break the
//! template; the file names keep the name as it is.

use super::Track;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    /// The stream name (already checked by the glue: no `/`, no `..`).
    pub name: String,
    pub nested: bool,
}

impl Naming {
    pub fn new(name: impl Into<String>, nested: bool) -> Naming {
        Naming { name: name.into(), nested }
    }

    /// The MPD file: `<name>.mpd` or `<name>/index.mpd`.
    pub fn mpd_path(&self) -> String {
        if self.nested {
            format!("{}/index.mpd", self.name)
        } else {
            format!("{}.mpd", self.name)
        }
    }

    /// The directory the files go to, relative to `dash_path` (`""` when flat).
    pub fn dir(&self) -> String {
        if self.nested {
            self.name.clone()
        } else {
            String::new()
        }
    }

    /// An init segment file: `<name>-init.m4v` or `<name>/init.m4v`.
    pub fn init_path(&self, track: Track) -> String {
        if self.nested {
            format!("{}/init.{}", self.name, track.extension())
        } else {
            format!("{}-init.{}", self.name, track.extension())
        }
    }

    /// A media segment file: `<name>-<N>.m4v` or `<name>/<N>.m4v`.
    pub fn segment_path(&self, track: Track, number: u64) -> String {
        if self.nested {
            format!("{}/{number}.{}", self.name, track.extension())
        } else {
            format!("{}-{number}.{}", self.name, track.extension())
        }
    }

    /// `SegmentTemplate@initialization`, relative to the MPD.
    pub fn init_url(&self, track: Track) -> String {
        if self.nested {
            format!("init.{}", track.extension())
        } else {
            format!("{}-init.{}", percent_encode(&self.name), track.extension())
        }
    }

    /// `SegmentTemplate@media`, relative to the MPD.
    pub fn media_template(&self, track: Track) -> String {
        self.segment_url_with(track, "$Number$")
    }

    /// One segment's URL relative to the MPD (the template with the number filled in).
    pub fn segment_url(&self, track: Track, number: u64) -> String {
        self.segment_url_with(track, &number.to_string())
    }

    fn segment_url_with(&self, track: Track, n: &str) -> String {
        if self.nested {
            format!("{n}.{}", track.extension())
        } else {
            format!("{}-{n}.{}", percent_encode(&self.name), track.extension())
        }
    }
}

/// Percent-encodes every byte but RFC 3986 unreserved characters.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat() {
        let n = Naming::new("live", false);
        assert_eq!(n.mpd_path(), "live.mpd");
        assert_eq!(n.dir(), "");
        assert_eq!(n.init_path(Track::Video), "live-init.m4v");
        assert_eq!(n.init_path(Track::Audio), "live-init.m4a");
        assert_eq!(n.segment_path(Track::Video, 7), "live-7.m4v");
        assert_eq!(n.segment_path(Track::Audio, 7), "live-7.m4a");
        assert_eq!(n.init_url(Track::Video), "live-init.m4v");
        assert_eq!(n.media_template(Track::Audio), "live-$Number$.m4a");
        assert_eq!(n.segment_url(Track::Video, 12), "live-12.m4v");
    }

    #[test]
    fn nested() {
        let n = Naming::new("cam 1", true);
        assert_eq!(n.mpd_path(), "cam 1/index.mpd");
        assert_eq!(n.dir(), "cam 1");
        assert_eq!(n.init_path(Track::Video), "cam 1/init.m4v");
        assert_eq!(n.segment_path(Track::Audio, 3), "cam 1/3.m4a");
        assert_eq!(n.init_url(Track::Audio), "init.m4a");
        assert_eq!(n.media_template(Track::Video), "$Number$.m4v");
    }

    #[test]
    fn names_are_encoded_in_urls() {
        let n = Naming::new("a$b c&d", false);
        assert_eq!(n.init_url(Track::Video), "a%24b%20c%26d-init.m4v");
        assert_eq!(n.media_template(Track::Video), "a%24b%20c%26d-$Number$.m4v");
        assert_eq!(n.segment_path(Track::Video, 1), "a$b c&d-1.m4v");
    }
}
