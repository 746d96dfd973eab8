//! The archive's encoding: compression first, then authenticated encryption (the age format,
//! with a passphrase, so that a backup can also be read with the `age` and `zstd` tools when
//! this operator is not at hand). Synchronous streams: they run on a blocking thread, a
//! buffer at a time, so memory stays constant whatever the archive's size.

use std::io::{self, Read, Write};

use age::secrecy::SecretString;

use crate::api::Compression;

/// scrypt's work factor for the passphrase (2^18 iterations, 256 MiB). age would otherwise
/// tune it to take a second on the machine at hand, which on a fast one means 1 GiB or more:
/// more than a backup Job's memory limit, and more than a slower machine restoring it can give.
const SCRYPT_LOG_N: u8 = 18;

/// zstd's default level: about as fast as the network on two cores, a third of mongodump's
/// size on typical documents.
const ZSTD_LEVEL: i32 = 3;

/// A writer that must be told the stream ended (compressors write a trailer, encryption seals
/// the last chunk, a chunk sink sends what it holds).
pub trait FinishWrite: Write + Send {
    /// Ends the stream, all the way down to the innermost writer.
    fn finish(self: Box<Self>) -> io::Result<()>;
}

struct Zstd(zstd::stream::write::Encoder<'static, Box<dyn FinishWrite>>);
struct Gzip(flate2::write::GzEncoder<Box<dyn FinishWrite>>);
struct Encrypt(age::stream::StreamWriter<Box<dyn FinishWrite>>);

macro_rules! forward_write {
    ($($t:ty),*) => {$(
        impl Write for $t {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> { self.0.write(buf) }
            fn flush(&mut self) -> io::Result<()> { self.0.flush() }
        }
    )*};
}
forward_write!(Zstd, Gzip, Encrypt);

impl FinishWrite for Zstd {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.finish()
    }
}

impl FinishWrite for Gzip {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.finish()
    }
}

impl FinishWrite for Encrypt {
    fn finish(self: Box<Self>) -> io::Result<()> {
        self.0.finish()?.finish()
    }
}

/// Wraps `sink` so that what is written to the result is compressed, then encrypted when a
/// passphrase is given, then written to `sink`.
pub fn encoder(
    compression: Compression,
    passphrase: Option<SecretString>,
    sink: Box<dyn FinishWrite>,
) -> io::Result<Box<dyn FinishWrite>> {
    let encrypted: Box<dyn FinishWrite> = match passphrase {
        Some(passphrase) => {
            let mut recipient = age::scrypt::Recipient::new(passphrase);
            recipient.set_work_factor(SCRYPT_LOG_N);
            let encryptor = age::Encryptor::with_recipients(std::iter::once(&recipient as &dyn age::Recipient))
                .map_err(|error| io::Error::other(format!("cannot set up encryption: {error}")))?;
            let writer = encryptor.wrap_output(sink)?;
            Box::new(Encrypt(writer))
        }
        None => sink,
    };
    Ok(match compression {
        Compression::Zstd => Box::new(Zstd(zstd::stream::write::Encoder::new(encrypted, ZSTD_LEVEL)?)),
        Compression::Gzip => Box::new(Gzip(flate2::write::GzEncoder::new(encrypted, flate2::Compression::default()))),
        Compression::None => encrypted,
    })
}

/// Reads back what [`encoder`] wrote: decrypts when a passphrase is given, then decompresses.
/// A wrong passphrase or a damaged stream is an error, never garbage.
pub fn decoder<'a>(
    compression: Compression,
    passphrase: Option<SecretString>,
    source: Box<dyn Read + Send + 'a>,
) -> io::Result<Box<dyn Read + Send + 'a>> {
    let decrypted: Box<dyn Read + Send + 'a> = match passphrase {
        Some(passphrase) => {
            let decryptor = age::Decryptor::new(source).map_err(decrypt_error)?;
            let identity = age::scrypt::Identity::new(passphrase);
            let reader = decryptor.decrypt(std::iter::once(&identity as &dyn age::Identity)).map_err(decrypt_error)?;
            Box::new(reader)
        }
        None => source,
    };
    Ok(match compression {
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(decrypted)?),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(decrypted)),
        Compression::None => decrypted,
    })
}

fn decrypt_error(error: age::DecryptError) -> io::Error {
    let message = match error {
        age::DecryptError::NoMatchingKeys | age::DecryptError::DecryptionFailed => {
            "the encryption key does not open this archive".to_string()
        }
        other => format!("cannot decrypt the archive: {other}"),
    };
    io::Error::new(io::ErrorKind::InvalidData, message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Collects what is written, and records that it was finished.
    #[derive(Clone, Default)]
    struct Collect(Arc<Mutex<(Vec<u8>, bool)>>);

    impl Write for Collect {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().map_err(|_| io::Error::other("poisoned"))?.0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl FinishWrite for Collect {
        fn finish(self: Box<Self>) -> io::Result<()> {
            self.0.lock().map_err(|_| io::Error::other("poisoned"))?.1 = true;
            Ok(())
        }
    }

    fn encode(compression: Compression, passphrase: Option<&str>, data: &[u8]) -> Vec<u8> {
        let collect = Collect::default();
        let mut writer =
            encoder(compression, passphrase.map(|p| SecretString::from(p.to_string())), Box::new(collect.clone()))
                .expect("encoder");
        writer.write_all(data).expect("write");
        writer.finish().expect("finish");
        let inner = collect.0.lock().expect("lock");
        assert!(inner.1, "the innermost writer was finished");
        inner.0.clone()
    }

    fn decode(compression: Compression, passphrase: Option<&str>, data: Vec<u8>) -> io::Result<Vec<u8>> {
        let mut reader = decoder(
            compression,
            passphrase.map(|p| SecretString::from(p.to_string())),
            Box::new(io::Cursor::new(data)),
        )?;
        let mut out = Vec::new();
        reader.read_to_end(&mut out)?;
        Ok(out)
    }

    fn sample() -> Vec<u8> {
        (0..200_000u32).flat_map(|i| format!("{{\"_id\":{i},\"device\":\"d{}\"}}", i % 97).into_bytes()).collect()
    }

    #[test]
    fn every_compression_round_trips_with_and_without_encryption() {
        let data = sample();
        for compression in [Compression::Zstd, Compression::Gzip, Compression::None] {
            for passphrase in [None, Some("correct horse battery staple")] {
                let encoded = encode(compression, passphrase, &data);
                if compression != Compression::None {
                    assert!(encoded.len() < data.len() / 3, "{compression:?} compresses");
                }
                assert_eq!(decode(compression, passphrase, encoded).expect("decodes"), data);
            }
        }
    }

    #[test]
    fn a_wrong_passphrase_is_an_error_not_garbage() {
        let encoded = encode(Compression::Zstd, Some("right"), &sample());
        let error = decode(Compression::Zstd, Some("wrong"), encoded).expect_err("refused");
        assert_eq!(error.to_string(), "the encryption key does not open this archive");
    }

    #[test]
    fn a_flipped_byte_in_an_encrypted_archive_is_detected() {
        let mut encoded = encode(Compression::None, Some("key"), &sample());
        let middle = encoded.len() / 2;
        encoded[middle] ^= 1;
        assert!(decode(Compression::None, Some("key"), encoded).is_err());
    }
}
