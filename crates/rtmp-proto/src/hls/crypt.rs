//! `hls_keys`: AES-128-CBC segment encryption as HLS defines it (PKCS#7 padding, the IV being the
//! segment's media sequence number), streamed so a segment is encrypted while it is written.

use aes::cipher::{generic_array::GenericArray, BlockEncryptMut, KeyIvInit};
use rand::RngCore;

type Aes128Cbc = cbc::Encryptor<aes::Aes128>;

/// A fresh key from the operating system's CSPRNG.
pub fn new_key() -> [u8; 16] {
    let mut k = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut k);
    k
}

/// The IV a player derives when EXT-X-KEY has no IV attribute.
pub fn sequence_iv(media_sequence: u64) -> [u8; 16] {
    u128::from(media_sequence).to_be_bytes()
}

pub struct SegmentCipher {
    enc: Aes128Cbc,
    pending: Vec<u8>,
}

impl SegmentCipher {
    pub fn new(key: &[u8; 16], media_sequence: u64) -> Self {
        let iv = sequence_iv(media_sequence);
        SegmentCipher { enc: Aes128Cbc::new(key.into(), (&iv).into()), pending: Vec::with_capacity(16) }
    }

    /// Encrypts what makes whole blocks with earlier leftovers; keeps the rest for later.
    pub fn update(&mut self, data: &[u8], out: &mut Vec<u8>) {
        let mut data = data;
        if !self.pending.is_empty() {
            let need = 16 - self.pending.len();
            let take = need.min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() < 16 {
                return;
            }
            let block = std::mem::take(&mut self.pending);
            self.push_blocks(&block, out);
        }
        let whole = data.len() / 16 * 16;
        self.push_blocks(&data[..whole], out);
        self.pending.extend_from_slice(&data[whole..]);
    }

    fn push_blocks(&mut self, blocks: &[u8], out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(blocks);
        for b in out[start..].chunks_exact_mut(16) {
            self.enc.encrypt_block_mut(GenericArray::from_mut_slice(b));
        }
    }

    /// PKCS#7-pads and encrypts the last block.
    pub fn finish(mut self, out: &mut Vec<u8>) {
        let pad = 16 - self.pending.len() % 16;
        let mut last = std::mem::take(&mut self.pending);
        last.resize(last.len() + pad, pad as u8);
        self.push_blocks(&last, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_equals_one_shot_and_nist_vector() {
        // NIST SP 800-38A F.2.1 (CBC-AES128), first block.
        let key: [u8; 16] =
            [0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c];
        let iv: [u8; 16] = (0u8..16).collect::<Vec<_>>().try_into().unwrap_or([0; 16]);
        let plain: [u8; 16] =
            [0x6b, 0xc1, 0xbe, 0xe2, 0x2e, 0x40, 0x9f, 0x96, 0xe9, 0x3d, 0x7e, 0x11, 0x73, 0x93, 0x17, 0x2a];
        let mut c = SegmentCipher { enc: Aes128Cbc::new((&key).into(), (&iv).into()), pending: Vec::new() };
        let mut out = Vec::new();
        c.update(&plain, &mut out);
        assert_eq!(
            out,
            [0x76, 0x49, 0xab, 0xac, 0x81, 0x19, 0xb2, 0x46, 0xce, 0xe9, 0x8e, 0x9b, 0x12, 0xe9, 0x19, 0x7d]
        );

        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
        let mut whole = Vec::new();
        let mut a = SegmentCipher::new(&key, 42);
        a.update(&data, &mut whole);
        a.finish(&mut whole);
        let mut pieces = Vec::new();
        let mut b = SegmentCipher::new(&key, 42);
        for ch in data.chunks(37) {
            b.update(ch, &mut pieces);
        }
        b.finish(&mut pieces);
        assert_eq!(whole, pieces);
        assert_eq!(whole.len(), 1008);
    }

    #[test]
    fn iv_is_the_sequence_number() {
        assert_eq!(sequence_iv(1)[15], 1);
        assert_eq!(sequence_iv(0x0102)[14..], [1, 2]);
        assert_ne!(new_key(), new_key());
    }
}
