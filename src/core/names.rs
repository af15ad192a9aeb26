//! Which stream names the core takes, and which may become file names (HLS, DASH): the core
//! refuses '\\', NUL, "." and ".." for every stream and '/' in published names; writers of
//! files refuse a little more.

/// Longest stream name the core takes.
const MAX_STREAM_NAME: usize = 512;

/// Whether the core takes `name` (without its `?args`) for a publish, or for a play when `play`.
/// Published names become keys and file names (record, HLS, DASH): no separator at all. A play
/// may name a file in a subdirectory of a VOD directory (`sub/a.flv`, `mp4:sub/a.mp4`): '/'
/// between segments, none of them empty, "." or "..", so no module ever sees a name that climbs
/// or starts at the root; the play module refuses more for files (`play::names`).
pub fn stream_name_ok(name: &str, play: bool) -> bool {
    if name.is_empty() || name.len() > MAX_STREAM_NAME || name.contains(['\\', '\0']) {
        return false;
    }
    if !play && name.contains('/') {
        return false;
    }
    name.split('/').all(|seg| !seg.is_empty() && seg != "." && seg != "..")
}

/// Longest stream name written to disk (file names stay under NAME_MAX with suffixes).
const MAX_NAME: usize = 200;

/// Why a stream name cannot be used for files; `None` when it can.
pub fn file_name_refusal(name: &str) -> Option<&'static str> {
    if name.len() > MAX_NAME {
        Some("longer than 200 bytes")
    } else if name.starts_with('.') {
        Some("starts with a dot")
    } else if name.contains(['/', '\\', '\0']) || name.chars().any(char::is_control) {
        Some("has a path separator or a control character")
    } else {
        None
    }
}

/// Writes `data` to `path` through a temporary file (`path` + ".<pid>.tmp": workers writing the
/// same file, like a master playlist, never share one) and a rename, so readers (nginx serving
/// players) see the old file or the new one, never a part.
pub fn write_atomic(path: &std::path::Path, data: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    let tmp = std::path::PathBuf::from(tmp);
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

/// `path` + ".tmp".
pub fn tmp_name(path: &std::path::Path) -> std::path::PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    std::path::PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::{file_name_refusal, stream_name_ok};

    #[test]
    fn stream_names() {
        for ok in ["cam1", "a b", ".x", "..x", "mp4:a.mp4"] {
            assert!(stream_name_ok(ok, false), "{ok:?}");
            assert!(stream_name_ok(ok, true), "{ok:?}");
        }
        for play_only in ["sub/a", "mp4:sub/a.mp4", "a/b/c.flv", "mp4:/x", ".hidden/x"] {
            assert!(!stream_name_ok(play_only, false), "{play_only:?}");
            assert!(stream_name_ok(play_only, true), "{play_only:?}");
        }
        let long = "x".repeat(513);
        for bad in [
            "", ".", "..", "/etc/passwd", "sub//x", "sub/", "sub/../../etc/passwd", "../x", "a/./b",
            "a\\b", "a\0b", long.as_str(),
        ] {
            assert!(!stream_name_ok(bad, false), "{bad:?}");
            assert!(!stream_name_ok(bad, true), "{bad:?}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(file_name_refusal("cam1"), None);
        assert_eq!(file_name_refusal("a b..c"), None);
        assert!(file_name_refusal(".hidden").is_some());
        assert!(file_name_refusal("a\nb").is_some());
        assert!(file_name_refusal("a/b").is_some());
        assert!(file_name_refusal(&"x".repeat(201)).is_some());
    }
}
