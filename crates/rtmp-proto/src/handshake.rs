//! The RTMP handshake (C0 C1 C2 / S0 S1 S2) for both ends, without I/O: the plain echo handshake and
//! the Flash "digest" variant that FFmpeg, librtmp/OBS and Flash speak (FFmpeg checks our S2 when it plays).

use std::fmt;

use bytes::{Buf, BufMut, BytesMut};
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Length of C1, C2, S1 and S2.
pub const HANDSHAKE_SIZE: usize = 1536;
/// The only C0/S0 version we speak; 6, 8 and 9 announce RTMPE (encrypted), which we do not.
pub const RTMP_VERSION: u8 = 3;

const DIGEST_LEN: usize = 32;
/// The part of S2/C2 that the digest-handshake signature covers; the signature fills the rest.
const SIGNED_LEN: usize = HANDSHAKE_SIZE - DIGEST_LEN;
/// The version we put in a digest S1. FFmpeg only looks for our digest when the first byte is >= 3.
const SERVER_VERSION: [u8; 4] = [0x04, 0x05, 0x00, 0x01];
/// The Flash Player version FFmpeg announces; any nonzero value selects the digest handshake.
const CLIENT_VERSION: [u8; 4] = [9, 0, 124, 2];

const KEY_TAIL: [u8; 32] = [
    0xF0, 0xEE, 0xC2, 0x4A, 0x80, 0x68, 0xBE, 0xE8, 0x2E, 0x00, 0xD0, 0xD1, 0x02, 0x9E, 0x7E, 0x57,
    0x6E, 0xEC, 0x5D, 0x2D, 0x29, 0x80, 0x6F, 0xAB, 0x93, 0xB8, 0xE6, 0x36, 0xCF, 0xEB, 0x31, 0xAE,
];
const PLAYER_TEXT: &[u8; 30] = b"Genuine Adobe Flash Player 001";
const SERVER_TEXT: &[u8; 36] = b"Genuine Adobe Flash Media Server 001";

const fn join_key<const N: usize>(text: &[u8], tail: &[u8; 32]) -> [u8; N] {
    let mut key = [0u8; N];
    let mut i = 0;
    while i < text.len() {
        key[i] = text[i];
        i += 1;
    }
    let mut j = 0;
    while j < tail.len() {
        key[text.len() + j] = tail[j];
        j += 1;
    }
    key
}

/// Digests inside C1 are keyed with the text part only; the full key signs the S2/C2 answers.
const PLAYER_KEY: [u8; 62] = join_key::<62>(PLAYER_TEXT, &KEY_TAIL);
const SERVER_KEY: [u8; 68] = join_key::<68>(SERVER_TEXT, &KEY_TAIL);
const PLAYER_KEY_OPEN: &[u8] = PLAYER_TEXT;
const SERVER_KEY_OPEN: &[u8] = SERVER_TEXT;

/// The two places a digest can live. Clients pick one; a server looks in both, scheme 1 first as
/// nginx-rtmp-module and FFmpeg do, and answers in the scheme the client used.
const SCHEME_BASES: [usize; 2] = [772, 8];

type Block = [u8; HANDSHAKE_SIZE];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// C0/S0 carried a version other than 3 (6, 8 and 9 are RTMPE).
    BadVersion(u8),
    /// `ClientHandshake::process` was called before `start`.
    NotStarted,
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::BadVersion(v @ (6 | 8 | 9)) => {
                write!(f, "RTMPE (encrypted RTMP, version {v}) is not supported")
            }
            HandshakeError::BadVersion(v) => write!(f, "unsupported RTMP version {v}"),
            HandshakeError::NotStarted => f.write_str("client handshake not started"),
        }
    }
}

impl std::error::Error for HandshakeError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeState {
    InProgress,
    Done,
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; DIGEST_LEN] {
    // HMAC takes keys of any length, so this never fails; the fallback only keeps the code panic-free.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return [0; DIGEST_LEN];
    };
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Where a scheme puts its digest: four bytes at `base` choose the offset within the next 728.
fn digest_offset(block: &Block, base: usize) -> usize {
    let sum: usize = block.iter().skip(base).take(4).map(|&b| usize::from(b)).sum();
    sum % 728 + base + 4
}

/// HMAC of the whole block with the 32 digest bytes at `offset` left out.
fn block_digest(block: &Block, offset: usize, key: &[u8]) -> [u8; DIGEST_LEN] {
    let (head, rest) = block.split_at(offset.min(HANDSHAKE_SIZE));
    let tail = rest.get(DIGEST_LEN..).unwrap_or(&[]);
    hmac_sha256(key, &[head, tail])
}

fn digest_at(block: &Block, offset: usize) -> &[u8] {
    block.get(offset..offset + DIGEST_LEN).unwrap_or(&[])
}

/// Looks for a valid digest; returns (scheme base, digest offset).
fn find_digest(block: &Block, key: &[u8]) -> Option<(usize, usize)> {
    SCHEME_BASES.iter().find_map(|&base| {
        let offset = digest_offset(block, base);
        (block_digest(block, offset, key)[..] == *digest_at(block, offset)).then_some((base, offset))
    })
}

/// Signs `block` in place with a digest at the scheme `base`; returns the digest offset.
fn write_digest(block: &mut Block, base: usize, key: &[u8]) -> usize {
    let offset = digest_offset(block, base);
    let digest = block_digest(block, offset, key);
    if let Some(slot) = block.get_mut(offset..offset + DIGEST_LEN) {
        slot.copy_from_slice(&digest);
    }
    offset
}

/// An S2/C2 answering a digest: random bytes signed with a key derived from the peer's digest.
fn signed_answer(full_key: &[u8], peer_digest: &[u8]) -> Block {
    let mut block = [0u8; HANDSHAKE_SIZE];
    rand::thread_rng().fill_bytes(&mut block);
    let (body, sig) = block.split_at_mut(SIGNED_LEN);
    let key = hmac_sha256(full_key, &[peer_digest]);
    sig.copy_from_slice(&hmac_sha256(&key, &[body]));
    block
}

fn signature_ok(block: &Block, full_key: &[u8], peer_digest: &[u8]) -> bool {
    let (body, sig) = block.split_at(SIGNED_LEN);
    let key = hmac_sha256(full_key, &[peer_digest]);
    hmac_sha256(&key, &[body])[..] == *sig
}

/// Time (zero: nobody reads it) + `version` + random.
fn fresh_block(version: [u8; 4]) -> Block {
    let mut block = [0u8; HANDSHAKE_SIZE];
    rand::thread_rng().fill_bytes(&mut block[8..]);
    block[4..8].copy_from_slice(&version);
    block
}

fn take_block(input: &mut BytesMut) -> Block {
    let mut block = [0u8; HANDSHAKE_SIZE];
    // Callers check the length first; the `min` keeps a short buffer from panicking anyway.
    let mut src = input.split_to(input.len().min(HANDSHAKE_SIZE));
    let n = src.len();
    src.copy_to_slice(&mut block[..n]);
    block
}

fn check_version(input: &BytesMut) -> Result<(), HandshakeError> {
    match input.first() {
        Some(&v) if v != RTMP_VERSION => Err(HandshakeError::BadVersion(v)),
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ServerStage {
    AwaitC0C1,
    AwaitC2,
    Done,
}

/// Server side: reads C0C1, answers S0S1S2 at once, then reads (and ignores the content of) C2.
#[derive(Debug)]
pub struct ServerHandshake {
    stage: ServerStage,
    digest: bool,
}

impl Default for ServerHandshake {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerHandshake {
    pub fn new() -> Self {
        ServerHandshake { stage: ServerStage::AwaitC0C1, digest: false }
    }

    /// Consumes only the handshake's own bytes: whatever follows C2 is chunk data and stays in
    /// `input`. Writes S0S1S2 to `out` once C0C1 is complete.
    pub fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<HandshakeState, HandshakeError> {
        if self.stage == ServerStage::AwaitC0C1 {
            check_version(input)?;
            if input.len() < 1 + HANDSHAKE_SIZE {
                return Ok(HandshakeState::InProgress);
            }
            input.advance(1);
            let c1 = take_block(input);
            self.answer(&c1, out);
            self.stage = ServerStage::AwaitC2;
        }
        if self.stage == ServerStage::AwaitC2 {
            // Many clients send garbage C2 (or echo the wrong block), so only its length matters.
            if input.len() < HANDSHAKE_SIZE {
                return Ok(HandshakeState::InProgress);
            }
            input.advance(HANDSHAKE_SIZE);
            self.stage = ServerStage::Done;
        }
        Ok(HandshakeState::Done)
    }

    /// Whether the client's C1 carried a valid digest (and we answered in kind).
    pub fn used_digest(&self) -> bool {
        self.digest
    }

    fn answer(&mut self, c1: &Block, out: &mut BytesMut) {
        // A zero version field means an old client that expects the plain echo handshake.
        let found = if c1[4..8] == [0; 4] { None } else { find_digest(c1, PLAYER_KEY_OPEN) };
        out.reserve(1 + 2 * HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        match found {
            Some((base, offset)) => {
                self.digest = true;
                let mut s1 = fresh_block(SERVER_VERSION);
                write_digest(&mut s1, base, SERVER_KEY_OPEN);
                out.put_slice(&s1);
                out.put_slice(&signed_answer(&SERVER_KEY, digest_at(c1, offset)));
            }
            None => {
                // S1 keeps a zero version so digest clients (FFmpeg) don't look for our digest.
                out.put_slice(&fresh_block([0; 4]));
                out.put_slice(c1);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientStage {
    New,
    AwaitS0S1S2,
    Done,
}

/// Client side: `start` writes C0C1; `process` reads S0S1S2 and writes C2.
#[derive(Debug)]
pub struct ClientHandshake {
    digest: bool,
    stage: ClientStage,
    c1: Block,
    c1_digest_offset: Option<usize>,
    server_verified: bool,
}

impl ClientHandshake {
    /// `digest`: sign C1 like Flash/FFmpeg (servers such as FMS refuse H.264 without it); `false`
    /// sends the plain handshake.
    pub fn new(digest: bool) -> Self {
        ClientHandshake {
            digest,
            stage: ClientStage::New,
            c1: [0; HANDSHAKE_SIZE],
            c1_digest_offset: None,
            server_verified: false,
        }
    }

    pub fn start(&mut self, out: &mut BytesMut) {
        if self.stage != ClientStage::New {
            return;
        }
        if self.digest {
            self.c1 = fresh_block(CLIENT_VERSION);
            // Scheme 0 (base 8), as FFmpeg uses for unencrypted RTMP.
            self.c1_digest_offset = Some(write_digest(&mut self.c1, 8, PLAYER_KEY_OPEN));
        } else {
            self.c1 = fresh_block([0; 4]);
        }
        out.reserve(1 + HANDSHAKE_SIZE);
        out.put_u8(RTMP_VERSION);
        out.put_slice(&self.c1);
        self.stage = ClientStage::AwaitS0S1S2;
    }

    /// Consumes S0S1S2 (leaving any later bytes in `input`) and writes C2.
    pub fn process(
        &mut self,
        input: &mut BytesMut,
        out: &mut BytesMut,
    ) -> Result<HandshakeState, HandshakeError> {
        match self.stage {
            ClientStage::New => return Err(HandshakeError::NotStarted),
            ClientStage::Done => return Ok(HandshakeState::Done),
            ClientStage::AwaitS0S1S2 => {}
        }
        check_version(input)?;
        if input.len() < 1 + 2 * HANDSHAKE_SIZE {
            return Ok(HandshakeState::InProgress);
        }
        input.advance(1);
        let s1 = take_block(input);
        let s2 = take_block(input);

        let server_digest = match self.c1_digest_offset {
            Some(_) if s1[4..8] != [0; 4] => find_digest(&s1, SERVER_KEY_OPEN),
            _ => None,
        };
        match server_digest {
            Some((_, offset)) => {
                out.put_slice(&signed_answer(&PLAYER_KEY, digest_at(&s1, offset)));
            }
            // A plain server, or one whose digest we cannot check: FFmpeg just echoes S1 then.
            None => out.put_slice(&s1),
        }
        if let Some(offset) = self.c1_digest_offset {
            self.server_verified = server_digest.is_some()
                && signature_ok(&s2, &SERVER_KEY, digest_at(&self.c1, offset));
        }
        self.stage = ClientStage::Done;
        Ok(HandshakeState::Done)
    }

    /// Whether the server proved it knows the FMS key (valid S1 digest and S2 signature). Only
    /// informative: like FFmpeg when publishing, we go on either way.
    pub fn server_verified(&self) -> bool {
        self.server_verified
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Independent of the code above, so a shared mistake in both would not cancel out.
    fn mac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        let mut m = Hmac::<Sha256>::new_from_slice(key).unwrap();
        for p in parts {
            m.update(p);
        }
        m.finalize().into_bytes().into()
    }

    fn fp_key() -> Vec<u8> {
        let mut k = b"Genuine Adobe Flash Player 001".to_vec();
        k.extend_from_slice(&KEY_TAIL);
        k
    }

    fn fms_key() -> Vec<u8> {
        let mut k = b"Genuine Adobe Flash Media Server 001".to_vec();
        k.extend_from_slice(&KEY_TAIL);
        k
    }

    /// Offset the way FFmpeg computes it: sum of 4 bytes at `off`, mod 728, plus `add`.
    fn ff_pos(buf: &[u8], off: usize, add: usize) -> usize {
        buf[off..off + 4].iter().map(|&b| b as usize).sum::<usize>() % 728 + add
    }

    fn ff_digest(buf: &[u8], gap: usize, key: &[u8]) -> [u8; 32] {
        mac(key, &[&buf[..gap], &buf[gap + 32..]])
    }

    /// C1 as FFmpeg builds it: version 9.0.124.2, pseudo-random fill, digest at `(off, add)`.
    fn ffmpeg_c1(off: usize, add: usize, seed: u32) -> (Vec<u8>, usize) {
        let mut c1 = vec![0u8; HANDSHAKE_SIZE];
        c1[4..8].copy_from_slice(&[9, 0, 124, 2]);
        let mut x = seed;
        for b in c1[8..].iter_mut() {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            *b = (x >> 24) as u8;
        }
        let pos = ff_pos(&c1, off, add);
        let d = ff_digest(&c1, pos, &fp_key()[..30]);
        c1[pos..pos + 32].copy_from_slice(&d);
        (c1, pos)
    }

    /// Checks S0S1S2 the way FFmpeg's player does, returning whether it would accept it.
    fn ffmpeg_accepts(resp: &[u8], c1: &[u8], c1_pos: usize) -> bool {
        assert_eq!(resp[0], 3);
        let s1 = &resp[1..1 + HANDSHAKE_SIZE];
        let s2 = &resp[1 + HANDSHAKE_SIZE..];
        assert!(s1[4] >= 3, "FFmpeg would skip validation");
        let key36 = &fms_key()[..36];
        let found = [(772, 776), (8, 12)].iter().any(|&(off, add)| {
            let pos = ff_pos(s1, off, add);
            ff_digest(s1, pos, key36)[..] == s1[pos..pos + 32]
        });
        let k = mac(&fms_key(), &[&c1[c1_pos..c1_pos + 32]]);
        let sig = mac(&k, &[&s2[..HANDSHAKE_SIZE - 32]]);
        found && sig[..] == s2[HANDSHAKE_SIZE - 32..]
    }

    fn c0c1(c1: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u8(3);
        b.put_slice(c1);
        b
    }

    #[test]
    fn ffmpeg_c1_scheme0_validates_and_s2_is_signed() {
        let (c1, pos) = ffmpeg_c1(8, 12, 0xDEADC0DE);
        let mut hs = ServerHandshake::new();
        let mut input = c0c1(&c1);
        let mut out = BytesMut::new();
        assert_eq!(hs.process(&mut input, &mut out).unwrap(), HandshakeState::InProgress);
        assert!(hs.used_digest());
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);
        assert!(ffmpeg_accepts(&out, &c1, pos));
        // Our S1 digest sits at the scheme the client used.
        let s1 = &out[1..1 + HANDSHAKE_SIZE];
        let p = ff_pos(s1, 8, 12);
        assert_eq!(ff_digest(s1, p, &fms_key()[..36])[..], s1[p..p + 32]);
    }

    #[test]
    fn scheme1_c1_validates() {
        for seed in 0..20 {
            let (c1, pos) = ffmpeg_c1(772, 776, seed);
            let mut hs = ServerHandshake::new();
            let mut out = BytesMut::new();
            hs.process(&mut c0c1(&c1), &mut out).unwrap();
            assert!(hs.used_digest(), "seed {seed}");
            assert!(ffmpeg_accepts(&out, &c1, pos));
            let s1 = &out[1..1 + HANDSHAKE_SIZE];
            let p = ff_pos(s1, 772, 776);
            assert_eq!(ff_digest(s1, p, &fms_key()[..36])[..], s1[p..p + 32]);
        }
    }

    #[test]
    fn bad_digest_falls_back_to_echo() {
        let (mut c1, pos) = ffmpeg_c1(8, 12, 7);
        c1[pos] ^= 1;
        let mut hs = ServerHandshake::new();
        let mut out = BytesMut::new();
        hs.process(&mut c0c1(&c1), &mut out).unwrap();
        assert!(!hs.used_digest());
        assert_eq!(out[1 + 4..1 + 8], [0; 4]);
        assert_eq!(&out[1 + HANDSHAKE_SIZE..], &c1[..]);
    }

    fn round_trip(digest: bool) -> (ServerHandshake, ClientHandshake) {
        let mut client = ClientHandshake::new(digest);
        let mut server = ServerHandshake::new();
        let mut c2s = BytesMut::new();
        let mut s2c = BytesMut::new();
        client.start(&mut c2s);
        assert_eq!(server.process(&mut c2s, &mut s2c).unwrap(), HandshakeState::InProgress);
        assert!(c2s.is_empty());
        assert_eq!(client.process(&mut s2c, &mut c2s).unwrap(), HandshakeState::Done);
        assert!(s2c.is_empty());
        assert_eq!(c2s.len(), HANDSHAKE_SIZE);
        assert_eq!(server.process(&mut c2s, &mut s2c).unwrap(), HandshakeState::Done);
        assert!(c2s.is_empty() && s2c.is_empty());
        (server, client)
    }

    #[test]
    fn digest_round_trip() {
        let (server, client) = round_trip(true);
        assert!(server.used_digest());
        assert!(client.server_verified());
    }

    #[test]
    fn simple_round_trip_echoes() {
        let mut client = ClientHandshake::new(false);
        let mut server = ServerHandshake::new();
        let mut c2s = BytesMut::new();
        let mut s2c = BytesMut::new();
        client.start(&mut c2s);
        let c1 = c2s[1..].to_vec();
        assert_eq!(c1[4..8], [0; 4]);
        server.process(&mut c2s, &mut s2c).unwrap();
        assert!(!server.used_digest());
        assert_eq!(&s2c[1 + HANDSHAKE_SIZE..], &c1[..]);
        let s1 = s2c[1..1 + HANDSHAKE_SIZE].to_vec();
        client.process(&mut s2c, &mut c2s).unwrap();
        assert_eq!(&c2s[..], &s1[..]);
        assert!(!client.server_verified());
        let (server, _) = round_trip(false);
        assert!(!server.used_digest());
    }

    #[test]
    fn client_c1_validates_like_ffmpeg_expects() {
        let mut client = ClientHandshake::new(true);
        let mut out = BytesMut::new();
        client.start(&mut out);
        let c1 = &out[1..];
        let pos = ff_pos(c1, 8, 12);
        assert_eq!(ff_digest(c1, pos, &fp_key()[..30])[..], c1[pos..pos + 32]);
    }

    #[test]
    fn client_c2_is_signed_with_player_key() {
        let mut client = ClientHandshake::new(true);
        let mut server = ServerHandshake::new();
        let mut c2s = BytesMut::new();
        let mut s2c = BytesMut::new();
        client.start(&mut c2s);
        server.process(&mut c2s, &mut s2c).unwrap();
        let s1 = s2c[1..1 + HANDSHAKE_SIZE].to_vec();
        client.process(&mut s2c, &mut c2s).unwrap();
        let p = [(772, 776), (8, 12)]
            .iter()
            .map(|&(o, a)| ff_pos(&s1, o, a))
            .find(|&p| ff_digest(&s1, p, &fms_key()[..36])[..] == s1[p..p + 32])
            .unwrap();
        let k = mac(&fp_key(), &[&s1[p..p + 32]]);
        assert_eq!(mac(&k, &[&c2s[..1504]])[..], c2s[1504..]);
    }

    #[test]
    fn byte_at_a_time() {
        let (c1, _) = ffmpeg_c1(8, 12, 99);
        let mut all = c0c1(&c1).to_vec();
        all.extend_from_slice(&[0x55; HANDSHAKE_SIZE]);
        all.extend_from_slice(b"xyz");
        let mut hs = ServerHandshake::new();
        let mut input = BytesMut::new();
        let mut out = BytesMut::new();
        let mut done_at = None;
        for (i, &b) in all.iter().enumerate() {
            input.put_u8(b);
            let st = hs.process(&mut input, &mut out).unwrap();
            if i < 1 + HANDSHAKE_SIZE - 1 {
                assert!(out.is_empty());
            }
            if st == HandshakeState::Done && done_at.is_none() {
                done_at = Some(i);
            }
        }
        assert_eq!(done_at, Some(1 + 2 * HANDSHAKE_SIZE - 1));
        assert_eq!(&input[..], b"xyz");
        assert_eq!(out.len(), 1 + 2 * HANDSHAKE_SIZE);

        // Client side, one byte at a time too.
        let mut client = ClientHandshake::new(true);
        let mut server = ServerHandshake::new();
        let mut c2s = BytesMut::new();
        let mut s2c = BytesMut::new();
        client.start(&mut c2s);
        server.process(&mut c2s, &mut s2c).unwrap();
        let mut piece = BytesMut::new();
        let mut c2 = BytesMut::new();
        for (i, b) in s2c.iter().enumerate() {
            piece.put_u8(*b);
            let st = client.process(&mut piece, &mut c2).unwrap();
            assert_eq!(st == HandshakeState::Done, i == s2c.len() - 1);
        }
        assert!(client.server_verified());
        assert_eq!(c2.len(), HANDSHAKE_SIZE);
    }

    #[test]
    fn wrong_version() {
        for v in [0u8, 6, 8, 9, 0xFF] {
            let mut hs = ServerHandshake::new();
            let mut input = BytesMut::from(&[v][..]);
            let mut out = BytesMut::new();
            assert_eq!(hs.process(&mut input, &mut out), Err(HandshakeError::BadVersion(v)));
            assert!(out.is_empty());
        }
        assert!(HandshakeError::BadVersion(6).to_string().contains("RTMPE"));
        let mut client = ClientHandshake::new(true);
        let mut out = BytesMut::new();
        assert_eq!(
            client.process(&mut BytesMut::from(&[3u8][..]), &mut out),
            Err(HandshakeError::NotStarted)
        );
        client.start(&mut out);
        let mut input = BytesMut::from(&[8u8, 0, 0][..]);
        assert_eq!(client.process(&mut input, &mut out), Err(HandshakeError::BadVersion(8)));
    }

    #[test]
    fn leftover_bytes_preserved() {
        let mut client = ClientHandshake::new(true);
        let mut server = ServerHandshake::new();
        let mut c2s = BytesMut::new();
        let mut s2c = BytesMut::new();
        client.start(&mut c2s);
        server.process(&mut c2s, &mut s2c).unwrap();
        s2c.put_slice(b"server chunk data");
        client.process(&mut s2c, &mut c2s).unwrap();
        assert_eq!(&s2c[..], b"server chunk data");
        c2s.put_slice(b"client chunk data");
        assert_eq!(server.process(&mut c2s, &mut s2c).unwrap(), HandshakeState::Done);
        assert_eq!(&c2s[..], b"client chunk data");
        // Once done, nothing more is consumed.
        assert_eq!(server.process(&mut c2s, &mut s2c).unwrap(), HandshakeState::Done);
        assert_eq!(&c2s[..], b"client chunk data");
    }
}
