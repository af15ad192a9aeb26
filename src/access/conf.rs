//! `allow` / `deny` at rtmp, server and application level. As in nginx-rtmp-module, a level's
//! own rules come first and its parent's follow (each level adds to what it inherits).

use crate::ngx::conf::{Conf, Directive};
use crate::ngx::files::conf_position;
use crate::ngx::module::Merge;

use super::rules::Rule;

#[derive(Default)]
pub struct AccessAppConf {
    /// In order: this level's rules, then the enclosing levels'.
    pub rules: Vec<Rule>,
}

impl Merge for AccessAppConf {
    fn merge(&mut self, prev: &Self, _cf: &Conf) -> Result<(), String> {
        self.rules.extend(prev.rules.iter().cloned());
        Ok(())
    }
}

#[derive(Default)]
pub struct AccessSrvConf;
impl Merge for AccessSrvConf {}

fn add_rule(cf: &Conf, conf: &mut AccessAppConf, deny: bool) -> Result<(), String> {
    let raw = cf.args();
    let args: Vec<String> = raw.iter().map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let name = if deny { "deny" } else { "allow" };
    let (rule, low_bits) =
        Rule::parse(deny, &args, &conf_position(cf)).map_err(|e| format!("{e} in \"{name}\" directive"))?;
    if low_bits {
        cf.warn(&format!("low address bits of {} are meaningless", args.last().copied().unwrap_or_default()));
    }
    conf.rules.push(rule);
    Ok(())
}

pub struct Allow;
impl Directive<AccessAppConf> for Allow {
    fn set(cf: &Conf, conf: &mut AccessAppConf) -> Result<(), String> {
        add_rule(cf, conf, false)
    }
}

pub struct Deny;
impl Directive<AccessAppConf> for Deny {
    fn set(cf: &Conf, conf: &mut AccessAppConf) -> Result<(), String> {
        add_rule(cf, conf, true)
    }
}
