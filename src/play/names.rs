//! Play names to file names, by nginx-rtmp-module's rules: `mp4:a` and `a.mp4` are `a.mp4`,
//! `a.flv` and `a` are `a.flv`. Names never leave the play directories: no `..` segment, no
//! absolute name, no NUL. (A symlink inside a play directory is followed, as the C module does:
//! whoever can write there can serve anything anyway.)

/// The path of the file `name` stands for, relative to a play directory.
pub fn file_name(name: &str) -> Result<String, &'static str> {
    let (base, suffix) = match name.get(..4) {
        Some(p) if p.eq_ignore_ascii_case("mp4:") => (name.get(4..).unwrap_or_default(), ".mp4"),
        _ if ends_with_ci(name, ".mp4") => (name, ".mp4"),
        _ => (name, ".flv"),
    };
    if base.is_empty() {
        return Err("empty name");
    }
    if base.contains('\0') {
        return Err("NUL in name");
    }
    if base.starts_with('/') || base.starts_with('\\') {
        return Err("absolute name");
    }
    if base.split(['/', '\\']).any(|seg| seg == "..") {
        return Err("\"..\" in name");
    }
    if ends_with_ci(base, suffix) {
        Ok(base.to_string())
    } else {
        Ok(format!("{base}{suffix}"))
    }
}

fn ends_with_ci(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::file_name;

    #[test]
    fn c_module_rules() {
        assert_eq!(file_name("a").as_deref(), Ok("a.flv"));
        assert_eq!(file_name("a.flv").as_deref(), Ok("a.flv"));
        assert_eq!(file_name("a.FLV").as_deref(), Ok("a.FLV"));
        assert_eq!(file_name("a.mp4").as_deref(), Ok("a.mp4"));
        assert_eq!(file_name("mp4:a").as_deref(), Ok("a.mp4"));
        assert_eq!(file_name("MP4:a.mp4").as_deref(), Ok("a.mp4"));
        assert_eq!(file_name("mp4:dir/a").as_deref(), Ok("dir/a.mp4"));
    }

    #[test]
    fn escapes_refused() {
        for n in [
            "../x",
            "mp4:../x",
            "a/../../x",
            "/etc/passwd",
            "mp4:/x",
            "..",
            "mp4:",
            "a\0b",
            "..\\x",
        ] {
            assert!(file_name(n).is_err(), "{n:?}");
        }
        assert!(file_name("..a").is_ok());
    }
}
