//! A local file as the VOD reader's `Source`: positioned reads (pread), so any number of players
//! share nothing but the page cache.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use rtmp_proto::vod::{Source, SourceError};

pub struct FileSource {
    file: File,
    len: u64,
}

impl FileSource {
    /// The regular file at `path`; `Ok(None)` when there is none (try the next play entry).
    pub fn open(path: &str) -> io::Result<Option<FileSource>> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let meta = file.metadata()?;
        if !meta.is_file() {
            return Ok(None);
        }
        Ok(Some(FileSource {
            file,
            len: meta.len(),
        }))
    }
}

impl Source for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&mut self, offset: u64, len: usize) -> Result<Bytes, SourceError> {
        let avail = usize::try_from(self.len.saturating_sub(offset)).unwrap_or(usize::MAX);
        let mut buf = vec![0u8; len.min(avail)];
        let mut done = 0;
        while done < buf.len() {
            match self.file.read_at(&mut buf[done..], offset + done as u64) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(SourceError::Io(e.to_string())),
            }
        }
        buf.truncate(done);
        Ok(Bytes::from(buf))
    }
}
