//! Which stream names may become file names (HLS, DASH): the core already refuses '/', '\\',
//! NUL, "." and ".." for every stream; writers of files refuse a little more.

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
    use super::file_name_refusal;

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
