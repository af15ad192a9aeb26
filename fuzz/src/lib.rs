//! The fuzz targets' bodies: each target in `fuzz_targets/` is one call into `checks`. The replay
//! test in `crates/rtmp-proto/tests/fuzz_corpus.rs` includes the same file, so the checked-in corpus
//! runs through exactly these checks under `cargo test`.

#[path = "checks.rs"]
pub mod checks;
