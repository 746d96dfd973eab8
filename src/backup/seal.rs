//! Authenticating a manifest with the backup's key, so that a copy found by its location (no
//! MongoBackup in the API to vouch for it) can be told from one that somebody with write access
//! to the bucket put there.
//!
//! The archive of an encrypted backup authenticates itself (age's STREAM construction: no chunk
//! decrypts unless it was written with the key). The manifest says how to read it (whether to
//! replay the oplog, the compression, the checksum), so it carries an HMAC-SHA256, keyed with
//! the backup's passphrase, over its own JSON without the MAC. Somebody without the key can
//! neither write a manifest that verifies nor change one that does.

use hmac::digest::InvalidLength;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::plan::Manifest;

/// A manifest that carries its own MAC.
pub trait Sealed: serde::Serialize + Clone {
    /// Written before the manifest's bytes, so that the MAC of one kind of manifest cannot be
    /// taken for one of another kind, or of anything else made with the same key.
    const DOMAIN: &'static [u8];
    fn mac(&self) -> Option<&str>;
    /// The manifest without its MAC: what the MAC is over.
    fn unsealed(&self) -> Self;
}

impl Sealed for Manifest {
    const DOMAIN: &'static [u8] = b"mongo-operator manifest v1\n";

    fn mac(&self) -> Option<&str> {
        self.mac.as_deref()
    }

    fn unsealed(&self) -> Self {
        Manifest { mac: None, ..self.clone() }
    }
}

/// The manifest's MAC under `passphrase`, as "hmac-sha256:<hex>".
pub fn mac<M: Sealed>(manifest: &M, passphrase: &str) -> Result<String, InvalidLength> {
    Ok(format!("hmac-sha256:{}", hex::encode(keyed(manifest, passphrase)?.finalize().into_bytes())))
}

/// Whether the manifest's MAC is the one `passphrase` gives. The comparison takes the same
/// time wherever the first difference is.
pub fn verifies<M: Sealed>(manifest: &M, passphrase: &str) -> bool {
    let Some(hex_tag) = manifest.mac().and_then(|m| m.strip_prefix("hmac-sha256:")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_tag) else {
        return false;
    };
    keyed(manifest, passphrase).is_ok_and(|mac| mac.verify_slice(&expected).is_ok())
}

/// The HMAC over the domain and the manifest's JSON without its MAC, not yet finalised.
fn keyed<M: Sealed>(manifest: &M, passphrase: &str) -> Result<Hmac<Sha256>, InvalidLength> {
    let unsealed = manifest.unsealed();
    // Serialising a struct of plain fields cannot fail; an empty body would only make the MAC
    // fail to verify, never pass.
    let body = serde_json::to_vec(&unsealed).unwrap_or_default();
    // HMAC takes a key of any length; the error exists for the trait's other implementors.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(passphrase.as_bytes())?;
    mac.update(M::DOMAIN);
    mac.update(&body);
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Compression;

    fn manifest() -> Manifest {
        Manifest {
            format: 1,
            cluster: "orders".into(),
            backup: "nightly".into(),
            started_at: chrono::DateTime::from_timestamp(1_790_000_000, 123_456_789).unwrap_or_default(),
            completed_at: chrono::DateTime::from_timestamp(1_790_000_100, 0).unwrap_or_default(),
            mongodb_version: Some("8.0.4".into()),
            oplog: true,
            archive: "archive.mongodump.zst.age".into(),
            size_bytes: 1234,
            checksum: format!("sha256:{}", "ab".repeat(32)),
            dump_bytes: 4321,
            compression: Compression::Zstd,
            encryption: Some("age-scrypt".into()),
            contents: Some(crate::backup::archive::Contents { oplog_entries: 3, ..Default::default() }),
            mac: None,
        }
    }

    #[test]
    fn a_sealed_manifest_verifies_after_a_round_trip_through_json() {
        let mut sealed = manifest();
        sealed.mac = Some(mac(&sealed, "the key").expect("any key length"));
        let read: Manifest = serde_json::from_slice(&serde_json::to_vec(&sealed).expect("json")).expect("json");
        assert!(verifies(&read, "the key"));
    }

    #[test]
    fn another_key_a_changed_field_or_no_mac_does_not_verify() {
        let mut sealed = manifest();
        sealed.mac = Some(mac(&sealed, "the key").expect("any key length"));
        assert!(!verifies(&sealed, "another key"));
        assert!(!verifies(&Manifest { oplog: false, ..sealed.clone() }, "the key"));
        assert!(!verifies(&Manifest { checksum: format!("sha256:{}", "cd".repeat(32)), ..sealed.clone() }, "the key"));
        // The recorded contents are sealed too: a verification compares against them.
        assert!(!verifies(&Manifest { contents: None, ..sealed.clone() }, "the key"));
        assert!(!verifies(&Manifest { mac: None, ..sealed.clone() }, "the key"));
        assert!(!verifies(&Manifest { mac: Some("hmac-sha256:zz".into()), ..sealed }, "the key"));
    }
}
