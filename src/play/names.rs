//! Play names to file names, by nginx-rtmp-module's rules: `mp4:a` and `a.mp4` are `a.mp4`,
//! `a.flv` and `a` are `a.flv`, and a name may go down into subdirectories (`sub/a`,
//! `mp4:sub/a.mp4`, or FFmpeg's `rtmp://host/vod/sub/a.flv`: app instance `sub`, name `a`).
//!
//! Names never leave the play directories: every segment between slashes must be a plain
//! name, so no absolute name, no empty, `.` or `..` segment, no backslash, no NUL. Segments that
//! start with a dot (`.hidden/a`, `.a.flv`) are refused too (the C module serves them): a dot
//! marks what is not meant to be served (`.git`, `.thumbnails`, rsync's partial
//! `.a.flv.XXXXXX` while a file is being copied in). A symlink inside a play directory is
//! followed, as the C module does: only names are policed, and whoever can write there can
//! serve anything anyway.

/// The path of the file that `name` stands for, relative to a play directory (or a remote
/// entry's prefix), under `instance` (the connect's app after the application, may be empty).
pub fn file_name(instance: &str, name: &str) -> Result<String, &'static str> {
    let (base, suffix) = match name.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("mp4:") => (name.get(4..).unwrap_or_default(), ".mp4"),
        _ if ends_with_ci(name, ".mp4") => (name, ".mp4"),
        _ => (name, ".flv"),
    };
    check_path(base)?;
    let mut path = String::with_capacity(instance.len() + base.len() + suffix.len() + 1);
    if !instance.is_empty() {
        check_path(instance)?;
        path.push_str(instance);
        path.push('/');
    }
    path.push_str(base);
    if !ends_with_ci(base, suffix) {
        path.push_str(suffix);
    }
    Ok(path)
}

/// A relative path of plain segments, or why not.
fn check_path(p: &str) -> Result<(), &'static str> {
    if p.is_empty() {
        return Err("empty name");
    }
    if p.contains('\0') {
        return Err("NUL in name");
    }
    if p.contains('\\') {
        return Err("backslash in name");
    }
    if p.starts_with('/') {
        return Err("absolute name");
    }
    for seg in p.split('/') {
        if seg.is_empty() {
            return Err("empty segment in name");
        }
        if seg == ".." {
            return Err("\"..\" in name");
        }
        if seg.starts_with('.') {
            return Err("a segment of the name starts with a dot");
        }
    }
    Ok(())
}

fn ends_with_ci(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::file_name;

    fn f(name: &str) -> Result<String, &'static str> {
        file_name("", name)
    }

    #[test]
    fn c_module_rules() {
        assert_eq!(f("a").as_deref(), Ok("a.flv"));
        assert_eq!(f("a.flv").as_deref(), Ok("a.flv"));
        assert_eq!(f("a.FLV").as_deref(), Ok("a.FLV"));
        assert_eq!(f("a.mp4").as_deref(), Ok("a.mp4"));
        assert_eq!(f("mp4:a").as_deref(), Ok("a.mp4"));
        assert_eq!(f("MP4:a.mp4").as_deref(), Ok("a.mp4"));
        assert_eq!(f("a..b").as_deref(), Ok("a..b.flv"));
        assert_eq!(f("a b").as_deref(), Ok("a b.flv"));
    }

    #[test]
    fn subdirectories() {
        assert_eq!(f("mp4:dir/a").as_deref(), Ok("dir/a.mp4"));
        assert_eq!(f("sub/dir/a").as_deref(), Ok("sub/dir/a.flv"));
        assert_eq!(f("sub/a.flv").as_deref(), Ok("sub/a.flv"));
        assert_eq!(f("sub/a.mp4").as_deref(), Ok("sub/a.mp4"));
        assert_eq!(f("mp4:sub/a.mp4").as_deref(), Ok("sub/a.mp4"));
        // FFmpeg's rtmp://host/vod/sub/a.flv and rtmp://host/vod/sub/dir/a.mp4.
        assert_eq!(file_name("sub", "a").as_deref(), Ok("sub/a.flv"));
        assert_eq!(file_name("sub", "mp4:dir/a.mp4").as_deref(), Ok("sub/dir/a.mp4"));
        assert_eq!(file_name("a/b", "c").as_deref(), Ok("a/b/c.flv"));
    }

    #[test]
    fn escapes_refused() {
        for n in [
            "../x",
            "mp4:../x",
            "a/../../x",
            "sub/../../etc/passwd",
            "sub/..",
            "/etc/passwd",
            "mp4:/x",
            "mp4://x",
            "..",
            ".",
            "./x",
            "a/./b",
            "mp4:",
            "",
            "a\0b",
            "..\\x",
            "a\\b",
            "sub//x",
            "sub/",
            "mp4:sub/",
            ".hidden/x",
            "sub/.hidden",
            "sub/.x.flv",
            ".x",
            "..a",
            "mp4:.x",
        ] {
            assert!(f(n).is_err(), "{n:?}");
        }
        for instance in ["..", "../x", "/x", "a//b", ".git", "a\\b", "a\0"] {
            assert!(file_name(instance, "a").is_err(), "{instance:?}");
        }
    }
}
