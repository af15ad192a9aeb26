//! Exposes the nginx build's feature and OS lists (from nginx-sys's `links = "nginx"` metadata) as
//! `ngx_feature` / `ngx_os` cfgs, so code that depends on how nginx was configured (reuseport,
//! IPv6, …) is compiled only when the nginx we load into has it.

fn main() {
    for (cfg, var) in [("ngx_feature", "DEP_NGINX_FEATURES"), ("ngx_os", "DEP_NGINX_OS")] {
        println!("cargo::rerun-if-env-changed={var}");
        let check = std::env::var(format!("{var}_CHECK")).unwrap_or_default();
        if !check.is_empty() {
            println!("cargo::rustc-check-cfg=cfg({cfg}, values({check}))");
        }
        for value in std::env::var(var).unwrap_or_default().split(',').filter(|v| !v.is_empty()) {
            println!("cargo::rustc-cfg={cfg}=\"{value}\"");
        }
    }
    if let Ok(version) = std::env::var("DEP_NGINX_VERSION") {
        println!("cargo::rustc-env=NGX_RTMP_RS_NGINX_VERSION={version}");
    }
}
