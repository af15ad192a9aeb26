//! Argument substitution as nginx-rtmp-module's `ngx_rtmp_eval`: `$name` (letters only),
//! `${name}`, `\x` escapes, unknown variables empty; and its redirection arguments (`>file`,
//! `2>>file`, `<file`, `2>&1`), which are applied to the child instead of being passed.

/// Substitutes the variables of `input` with `var` (None: empty).
pub fn eval(input: &str, var: &dyn Fn(&str) -> Option<String>) -> String {
    enum State {
        Normal,
        Escape,
        /// Collecting a `$name`, from byte offset `start`.
        Name(usize),
        /// Inside `${…}` from `start`.
        Braced(usize),
    }
    let mut out = String::with_capacity(input.len());
    let mut state = State::Normal;
    let put = |out: &mut String, name: &str| {
        if let Some(v) = var(name) {
            out.push_str(&v);
        }
    };
    for (i, c) in input.char_indices() {
        match state {
            State::Braced(start) => {
                if c == '}' {
                    put(&mut out, &input[start..i]);
                    state = State::Normal;
                }
                continue;
            }
            State::Name(start) => {
                if c == '{' && start == i {
                    state = State::Braced(i + 1);
                    continue;
                }
                if c.is_ascii_alphabetic() {
                    continue;
                }
                put(&mut out, &input[start..i]);
                state = State::Normal;
            }
            State::Escape => {
                out.push(c);
                state = State::Normal;
                continue;
            }
            State::Normal => {}
        }
        match c {
            '$' => state = State::Name(i + 1),
            '\\' => state = State::Escape,
            _ => out.push(c),
        }
    }
    if let State::Name(start) = state {
        put(&mut out, &input[start..]);
    }
    out
}

/// Where a redirection takes a descriptor from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `>file` (truncate), `>>file` (append) or `<file` (read).
    File { path: String, append: bool, read: bool },
    /// `N>&M`: a copy of descriptor M.
    Fd(i32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub fd: i32,
    pub source: Source,
}

/// `None` when `arg` is an ordinary argument; `Some(Err)` for a malformed redirection (the C
/// module drops those too).
pub fn redirect(arg: &str) -> Option<Result<Redirect, String>> {
    let digits = arg.bytes().take_while(u8::is_ascii_digit).count();
    let (num, rest) = arg.split_at(digits);
    let op = rest.chars().next()?;
    if op != '>' && op != '<' {
        return None;
    }
    let fd = if num.is_empty() {
        Ok(if op == '>' { 1 } else { 0 })
    } else {
        num.parse::<i32>().map_err(|_| format!("bad descriptor in \"{arg}\""))
    };
    Some(fd.and_then(|fd| {
        let mut rest = &rest[1..];
        let mut append = false;
        if op == '>' {
            if let Some(r) = rest.strip_prefix('>') {
                append = true;
                rest = r;
            }
        }
        let source = if let Some(from) = rest.strip_prefix('&') {
            Source::Fd(from.parse().map_err(|_| format!("bad descriptor in \"{arg}\""))?)
        } else if rest.is_empty() {
            return Err(format!("no file in \"{arg}\""));
        } else {
            Source::File { path: rest.to_string(), append, read: op == '<' }
        };
        Ok(Redirect { fd, source })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(n: &str) -> Option<String> {
        match n {
            "name" => Some("cam1".into()),
            "app" => Some("live".into()),
            _ => None,
        }
    }

    #[test]
    fn substitution_follows_the_c_module() {
        assert_eq!(eval("rtmp://h/out/$name", &vars), "rtmp://h/out/cam1");
        assert_eq!(eval("$name_hi", &vars), "cam1_hi");
        assert_eq!(eval("$name2", &vars), "cam12");
        assert_eq!(eval("${name}x", &vars), "cam1x");
        assert_eq!(eval("$app/$name", &vars), "live/cam1");
        assert_eq!(eval("$app$name", &vars), "livecam1");
        assert_eq!(eval("a\\$name", &vars), "a$name");
        assert_eq!(eval("$unknown-", &vars), "-");
        assert_eq!(eval("cost $5", &vars), "cost 5");
        assert_eq!(eval("x${name", &vars), "x");
        assert_eq!(eval("é$name", &vars), "écam1");
    }

    #[test]
    fn redirections() {
        assert_eq!(redirect("ffmpeg"), None);
        assert_eq!(redirect("-i"), None);
        assert_eq!(redirect("123"), None);
        let r = |fd, path: &str, append, read| {
            Some(Ok(Redirect { fd, source: Source::File { path: path.into(), append, read } }))
        };
        assert_eq!(redirect(">/tmp/o"), r(1, "/tmp/o", false, false));
        assert_eq!(redirect("2>>/tmp/e"), r(2, "/tmp/e", true, false));
        assert_eq!(redirect("</dev/zero"), r(0, "/dev/zero", false, true));
        assert_eq!(redirect("2>&1"), Some(Ok(Redirect { fd: 2, source: Source::Fd(1) })));
        assert!(matches!(redirect("2>&x"), Some(Err(_))));
        assert!(matches!(redirect(">"), Some(Err(_))));
    }
}
