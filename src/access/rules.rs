//! `allow` / `deny` rules as nginx-rtmp-module reads them, and the first-match check; pure
//! functions over `std::net` addresses, tested without nginx.

use std::fmt;
use std::net::IpAddr;

/// What a rule is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Publish,
    Play,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Publish => "publish",
            Action::Play => "play",
        })
    }
}

/// The addresses a rule covers: `all`, an IPv4 or an IPv6 network (a single address is a /32 or
/// /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Net {
    All,
    V4 { addr: u32, prefix: u8 },
    V6 { addr: u128, prefix: u8 },
}

fn mask4(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix.min(32))).unwrap_or(0)
}

fn mask6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix.min(128))).unwrap_or(0)
}

impl Net {
    /// Parses `all`, `addr` or `addr/prefix`. The flag is true when the address had bits set past
    /// the prefix: nginx warns that they are meaningless, and they are cleared.
    pub fn parse(s: &str) -> Result<(Net, bool), String> {
        if s == "all" {
            return Ok((Net::All, false));
        }
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let ip: IpAddr = addr.parse().map_err(|_| format!("invalid address \"{s}\""))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= max && !p.starts_with('+') => n,
                _ => return Err(format!("invalid prefix length in \"{s}\"")),
            },
        };
        Ok(match ip {
            IpAddr::V4(a) => {
                let a = u32::from(a);
                (Net::V4 { addr: a & mask4(prefix), prefix }, a & !mask4(prefix) != 0)
            }
            IpAddr::V6(a) => {
                let a = u128::from(a);
                (Net::V6 { addr: a & mask6(prefix), prefix }, a & !mask6(prefix) != 0)
            }
        })
    }

    /// Does the network hold `ip`? An IPv4-mapped IPv6 peer (`::ffff:10.0.0.1`, a dual-stack
    /// listener) is matched as the IPv4 address it carries, as nginx does.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(a) => a.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (*self, ip) {
            (Net::All, _) => true,
            (Net::V4 { addr, prefix }, IpAddr::V4(a)) => u32::from(a) & mask4(prefix) == addr,
            (Net::V6 { addr, prefix }, IpAddr::V6(a)) => u128::from(a) & mask6(prefix) == addr,
            _ => false,
        }
    }
}

/// One `allow` or `deny` directive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub deny: bool,
    pub publish: bool,
    pub play: bool,
    pub net: Net,
    /// The directive as written (`deny publish all`), for the log line.
    pub text: String,
    /// Where it was written (`/etc/nginx/nginx.conf:12`).
    pub at: String,
}

impl Rule {
    /// Reads `[publish|play] addr|cidr|all`; the flag is nginx's "low address bits" warning.
    pub fn parse(deny: bool, args: &[&str], at: &str) -> Result<(Rule, bool), String> {
        let (publish, play, net) = match args {
            [net] => (true, true, net),
            ["publish", net] => (true, false, net),
            ["play", net] => (false, true, net),
            [what, _] => {
                return Err(format!("unexpected access specified: \"{what}\", it must be \"publish\" or \"play\""))
            }
            _ => return Err("invalid number of arguments".into()),
        };
        let (net, low_bits) = Net::parse(net)?;
        let verb = if deny { "deny" } else { "allow" };
        let text = std::iter::once(verb).chain(args.iter().copied()).collect::<Vec<_>>().join(" ");
        Ok((Rule { deny, publish, play, net, text, at: at.to_string() }, low_bits))
    }

    fn covers(&self, action: Action) -> bool {
        match action {
            Action::Publish => self.publish,
            Action::Play => self.play,
        }
    }
}

/// The first rule, in order, about `action` whose network holds `ip`; none: allowed.
pub fn first_match(rules: &[Rule], ip: IpAddr, action: Action) -> Option<&Rule> {
    rules.iter().find(|r| r.covers(action) && r.net.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(deny: bool, args: &[&str]) -> Rule {
        Rule::parse(deny, args, "test:1").unwrap().0
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_addresses_networks_and_all() {
        assert_eq!(Net::parse("all"), Ok((Net::All, false)));
        assert_eq!(Net::parse("10.0.0.1"), Ok((Net::V4 { addr: 0x0a00_0001, prefix: 32 }, false)));
        assert_eq!(Net::parse("10.0.0.0/8"), Ok((Net::V4 { addr: 0x0a00_0000, prefix: 8 }, false)));
        assert_eq!(Net::parse("10.1.2.3/8"), Ok((Net::V4 { addr: 0x0a00_0000, prefix: 8 }, true)));
        assert_eq!(Net::parse("0.0.0.0/0"), Ok((Net::V4 { addr: 0, prefix: 0 }, false)));
        assert_eq!(Net::parse("::1"), Ok((Net::V6 { addr: 1, prefix: 128 }, false)));
        assert_eq!(Net::parse("2001:db8::/32"), Ok((Net::V6 { addr: 0x2001_0db8 << 96, prefix: 32 }, false)));
        for bad in ["10.0.0.300", "10.0.0.1/33", "::1/129", "10.0.0.1/", "10.0.0.1/+8", "host", "", "1.2.3.4/-1"] {
            assert!(Net::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn matches_by_prefix_and_family() {
        let (n, _) = Net::parse("192.168.0.0/16").unwrap();
        assert!(n.contains(ip("192.168.44.1")));
        assert!(!n.contains(ip("192.169.0.1")));
        assert!(!n.contains(ip("::1")));
        // A dual-stack socket's IPv4 peer matches IPv4 rules, not IPv6 ones.
        assert!(n.contains(ip("::ffff:192.168.1.1")));
        let (v6, _) = Net::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")));
        assert!(!v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let (zero, _) = Net::parse("::/0").unwrap();
        assert!(zero.contains(ip("fe80::1")));
        assert!(Net::All.contains(ip("10.0.0.1")) && Net::All.contains(ip("::1")));
    }

    #[test]
    fn first_matching_rule_for_the_action_wins() {
        let rules = vec![
            rule(false, &["publish", "127.0.0.1"]),
            rule(true, &["publish", "all"]),
            rule(true, &["play", "10.0.0.0/8"]),
            rule(false, &["::1"]),
        ];
        let m = |a: &str, act| first_match(&rules, ip(a), act).map(|r| r.deny);
        assert_eq!(m("127.0.0.1", Action::Publish), Some(false));
        assert_eq!(m("127.0.0.2", Action::Publish), Some(true));
        assert_eq!(m("::1", Action::Publish), Some(true), "deny publish all comes first");
        assert_eq!(m("127.0.0.2", Action::Play), None);
        assert_eq!(m("10.9.9.9", Action::Play), Some(true));
        assert_eq!(m("::1", Action::Play), Some(false));
        assert_eq!(rules[1].text, "deny publish all");
    }

    #[test]
    fn rejects_unknown_actions_and_bad_counts() {
        assert!(Rule::parse(false, &["record", "all"], "x").unwrap_err().contains("\"record\""));
        assert!(Rule::parse(false, &[], "x").is_err());
        assert!(Rule::parse(true, &["publish", "10.0.0.300"], "x").unwrap_err().contains("10.0.0.300"));
        assert!(Rule::parse(true, &["10.0.0.1/8"], "x").unwrap().1, "low bits are reported");
    }
}
