//! `mongo-operator install`: what the init container of a mongod (or backup) Pod does, as the
//! Pod's uid 999, without a shell:
//! - copies this binary into a shared emptyDir (mode 0755), so mongod's container can run
//!   `mongo-operator probe` without the operator's image;
//! - writes the keyFile from the Secret mount into an emptyDir with mode 0400, owned by 999.
//!   mongod refuses a keyFile with any group or other bit, and a Secret mount can never be
//!   owner-only for a non-root uid (`mongod-pod-facts.md` §2.2), hence the copy.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// The binary's name inside the shared directory.
pub const BINARY_NAME: &str = "mongo-operator";

#[derive(Debug, Error)]
pub enum InstallError {
    #[error("cannot find this binary: {0}")]
    CurrentExe(#[source] std::io::Error),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the keyFile in {path} is not usable by mongod: {reason}")]
    BadKey { path: PathBuf, reason: String },
}

/// mongod's rules for keyFile contents: base64 characters only (whitespace ignored), 6 to 1024
/// of them (`security_file.cpp`).
pub fn check_key(contents: &str) -> Result<(), String> {
    let key: String = contents.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(bad) = key.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='))) {
        return Err(format!(
            "it contains {bad:?}; only base64 characters are allowed (store base64 text, not raw bytes)"
        ));
    }
    if !(6..=1024).contains(&key.len()) {
        return Err(format!("it has {} characters; mongod needs 6 to 1024", key.len()));
    }
    Ok(())
}

/// Writes `contents` to `path` through a temporary file and a rename, with `mode`.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), InstallError> {
    let err = |source| InstallError::Write { path: path.to_path_buf(), source };
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(err)?;
    file.write_all(contents).map_err(err)?;
    file.sync_all().map_err(err)?;
    // The umask may have narrowed the mode; state it exactly.
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(err)?;
    fs::rename(&tmp, path).map_err(err)
}

/// Copies the running binary to `dir/mongo-operator`, executable by everyone.
pub fn install_binary(dir: &Path) -> Result<PathBuf, InstallError> {
    let exe = std::env::current_exe().map_err(InstallError::CurrentExe)?;
    let bytes = fs::read(&exe).map_err(|source| InstallError::Read { path: exe.clone(), source })?;
    fs::create_dir_all(dir).map_err(|source| InstallError::Write { path: dir.to_path_buf(), source })?;
    let dst = dir.join(BINARY_NAME);
    write_atomically(&dst, &bytes, 0o755)?;
    Ok(dst)
}

/// Copies the keyFile from `src` (a Secret mount) to `dst`, owner-only (0400).
pub fn install_key_file(src: &Path, dst: &Path) -> Result<(), InstallError> {
    let contents = fs::read_to_string(src).map_err(|source| InstallError::Read { path: src.to_path_buf(), source })?;
    check_key(&contents).map_err(|reason| InstallError::BadKey { path: src.to_path_buf(), reason })?;
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent).map_err(|source| InstallError::Write { path: parent.to_path_buf(), source })?;
    }
    write_atomically(dst, contents.as_bytes(), 0o400)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("mongo-operator-install-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn key_file_is_copied_owner_only_and_replaced_on_restart() {
        let dir = temp("key");
        let src = dir.join("src");
        fs::write(&src, "c2VjcmV0LWtleQ==\n").unwrap();
        fs::set_permissions(&src, fs::Permissions::from_mode(0o440)).unwrap();
        let dst = dir.join("auth/keyfile");
        install_key_file(&src, &dst).unwrap();
        assert_eq!(fs::metadata(&dst).unwrap().permissions().mode() & 0o777, 0o400);
        assert_eq!(fs::read_to_string(&dst).unwrap(), "c2VjcmV0LWtleQ==\n");
        // An init container that runs again (Pod restart) replaces the read-only file.
        fs::write(&src, "bmV3LWtleS12YWx1ZQ==").unwrap();
        install_key_file(&src, &dst).unwrap();
        assert_eq!(fs::read_to_string(&dst).unwrap(), "bmV3LWtleS12YWx1ZQ==");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn keys_mongod_would_refuse_are_refused_with_the_reason() {
        assert!(check_key("abc").unwrap_err().contains("6 to 1024"));
        assert!(check_key(&"a".repeat(1025)).is_err());
        assert!(check_key("not base64!").unwrap_err().contains("base64"));
        assert!(check_key("  c2VjcmV0\n LWtleQ== ").is_ok(), "whitespace is ignored");
        let dir = temp("bad");
        fs::write(dir.join("src"), [0xff, 0x00, 0x13]).unwrap();
        assert!(install_key_file(&dir.join("src"), &dir.join("dst")).is_err());
        assert!(!dir.join("dst").exists(), "nothing is written for a bad key");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn binary_is_copied_executable() {
        let dir = temp("bin");
        let dst = install_binary(&dir.join("bin")).unwrap();
        let meta = fs::metadata(&dst).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o755);
        assert_eq!(meta.len(), fs::metadata(std::env::current_exe().unwrap()).unwrap().len());
        fs::remove_dir_all(dir).unwrap();
    }
}
