//! Moving the encoded archive into every destination at once: a chunk sink on the blocking
//! side, multipart uploads on the async side, and a bounded channel between them so the
//! slowest destination sets the pace and memory stays constant.

use std::io::{self, Write};

use bytes::{Bytes, BytesMut};
use futures::future::{join_all, try_join_all};
use object_store::path::Path;
use object_store::{ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::codec::FinishWrite;
use super::store::OpenStore;

/// Size of each uploaded part and of each chunk handed over. S3 needs at least 5 MiB per part
/// and allows 10,000 parts, so 8 MiB parts carry archives up to 78 GiB; larger parts are
/// chosen for larger archives by [`part_size`].
pub const MIN_PART_SIZE: usize = 8 * 1024 * 1024;
/// Chunks waiting between the encoder and the uploads.
pub const CHANNEL_CHUNKS: usize = 2;
/// Parts in flight per destination.
pub const PARTS_IN_FLIGHT: usize = 2;

/// The part size for an archive expected to be about `expected_bytes` long: 8 MiB, or more so
/// that the archive fits in 9,000 parts (leaving room for growth during the dump).
pub fn part_size(expected_bytes: u64) -> usize {
    let needed = expected_bytes.div_ceil(9_000);
    let size = (needed as usize).max(MIN_PART_SIZE);
    size.next_multiple_of(1024 * 1024)
}

/// The innermost writer of the encoder chain: cuts the stream into chunks and sends them to
/// the uploads, blocking while they are behind.
pub struct ChunkSink {
    buffer: BytesMut,
    chunk: usize,
    sender: mpsc::Sender<Bytes>,
}

impl ChunkSink {
    /// A sink sending `chunk`-sized pieces through `sender`.
    pub fn new(sender: mpsc::Sender<Bytes>, chunk: usize) -> Self {
        Self { buffer: BytesMut::with_capacity(chunk), chunk, sender }
    }

    fn send(&mut self) -> io::Result<()> {
        let piece = self.buffer.split().freeze();
        self.buffer.reserve(self.chunk);
        self.sender.blocking_send(piece).map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the uploads stopped"))
    }
}

impl Write for ChunkSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.chunk - self.buffer.len();
        let taken = buf.len().min(room);
        self.buffer.extend_from_slice(&buf[..taken]);
        if self.buffer.len() == self.chunk {
            self.send()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FinishWrite for ChunkSink {
    fn finish(mut self: Box<Self>) -> io::Result<()> {
        if !self.buffer.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

/// A destination's upload that failed.
#[derive(Debug, thiserror::Error)]
#[error("destination {destination}: {}", super::store::summary(source))]
pub struct UploadError {
    /// The destination's name.
    pub destination: String,
    /// The store's error.
    pub source: object_store::Error,
}

/// One multipart upload per destination of the same object.
pub struct FanOut {
    uploads: Vec<(OpenStore, Path, WriteMultipart)>,
}

/// What went through a [`FanOut`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uploaded {
    /// Bytes stored.
    pub size: u64,
    /// SHA-256 of the bytes stored, as "sha256:<hex>".
    pub checksum: String,
}

impl FanOut {
    /// Starts a multipart upload of `relative` under every store. If one cannot start, the
    /// others are aborted.
    pub async fn start(stores: &[OpenStore], relative: &str, part_size: usize) -> Result<Self, UploadError> {
        let started = join_all(stores.iter().map(|store| async move {
            let key = store.key(relative);
            let upload = store
                .store
                .put_multipart(&key)
                .await
                .map_err(|source| UploadError { destination: store.name.clone(), source })?;
            Ok((store.clone(), key, WriteMultipart::new_with_chunk_size(upload, part_size)))
        }))
        .await;
        let mut uploads = Vec::new();
        let mut failure = None;
        for result in started {
            match result {
                Ok(upload) => uploads.push(upload),
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        let fan_out = Self { uploads };
        match failure {
            None => Ok(fan_out),
            Some(error) => {
                fan_out.abort().await;
                Err(error)
            }
        }
    }

    /// Sends every chunk from `chunks` to every destination until the channel closes, keeping
    /// at most [`PARTS_IN_FLIGHT`] parts in flight per destination. Returning (on error)
    /// drops the receiver, which stops the encoder.
    pub async fn pump(&mut self, mut chunks: mpsc::Receiver<Bytes>) -> Result<Uploaded, UploadError> {
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = chunks.recv().await {
            hasher.update(&chunk);
            size += chunk.len() as u64;
            try_join_all(self.uploads.iter_mut().map(|(store, _, upload)| {
                // The same bytes are shared by every destination, not copied.
                let chunk = chunk.clone();
                async move {
                    upload.put(chunk);
                    upload
                        .wait_for_capacity(PARTS_IN_FLIGHT)
                        .await
                        .map_err(|source| UploadError { destination: store.name.clone(), source })
                }
            }))
            .await?;
        }
        Ok(Uploaded { size, checksum: format!("sha256:{}", hex::encode(hasher.finalize())) })
    }

    /// Completes every upload. If one fails, the objects already completed elsewhere are
    /// deleted, so no destination is left with an archive that the others lack.
    pub async fn finish(self) -> Result<Vec<(OpenStore, Path)>, UploadError> {
        let results = join_all(self.uploads.into_iter().map(|(store, key, upload)| async move {
            let result = upload.finish().await;
            (store, key, result)
        }))
        .await;
        let mut done = Vec::new();
        let mut failure = None;
        for (store, key, result) in results {
            match result {
                Ok(_) => done.push((store, key)),
                Err(source) => failure = failure.or(Some(UploadError { destination: store.name.clone(), source })),
            }
        }
        match failure {
            None => Ok(done),
            Some(error) => {
                delete_all(&done).await;
                Err(error)
            }
        }
    }

    /// Aborts every upload; the stores drop the parts already sent.
    pub async fn abort(self) {
        join_all(self.uploads.into_iter().map(|(store, key, upload)| async move {
            if let Err(error) = upload.abort().await {
                tracing::warn!(destination = %store.name, %key, %error, "cannot abort a multipart upload; the store's lifecycle rules must remove it");
            }
        }))
        .await;
    }
}

/// Deletes objects, logging (not failing on) what cannot be deleted: it runs while another
/// error is being reported.
pub async fn delete_all(objects: &[(OpenStore, Path)]) {
    join_all(objects.iter().map(|(store, key)| async move {
        if let Err(error) = store.store.delete(key).await {
            tracing::warn!(destination = %store.name, %key, %error, "cannot delete an object of an incomplete backup");
        }
    }))
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_only_for_archives_that_would_need_too_many() {
        assert_eq!(part_size(0), MIN_PART_SIZE);
        assert_eq!(part_size(50 << 30), MIN_PART_SIZE);
        let big = 1u64 << 40;
        let size = part_size(big);
        assert!(big.div_ceil(size as u64) <= 9_000);
        assert_eq!(size % (1024 * 1024), 0);
    }

    #[test]
    fn the_sink_sends_whole_chunks_and_the_rest_at_the_end() {
        let (sender, mut receiver) = mpsc::channel(16);
        let mut sink: Box<dyn FinishWrite> = Box::new(ChunkSink::new(sender, 4));
        sink.write_all(b"abcdefghij").expect("write");
        sink.finish().expect("finish");
        let mut pieces = Vec::new();
        while let Ok(piece) = receiver.try_recv() {
            pieces.push(piece);
        }
        assert_eq!(pieces, vec![Bytes::from("abcd"), Bytes::from("efgh"), Bytes::from("ij")]);
    }

    #[test]
    fn the_sink_fails_once_the_uploads_are_gone() {
        let (sender, receiver) = mpsc::channel(1);
        drop(receiver);
        let mut sink = ChunkSink::new(sender, 2);
        assert!(sink.write_all(b"abcd").is_err());
    }
}
