//! The server side of SCRAM-SHA-256 (RFC 5802 / RFC 7677) as MongoDB runs it over
//! `saslStart` / `saslContinue`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};

type HmacSha256 = hmac::Hmac<Sha256>;

/// MongoDB's default `scramSHA256IterationCount`.
pub const ITERATIONS: u32 = 15_000;

/// What the server stores for a user: never the password itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub salt: Vec<u8>,
    pub iterations: u32,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <HmacSha256 as KeyInit>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

impl Credentials {
    /// Derives credentials from a password (SASLprep'd as the driver does).
    pub fn new(password: &str) -> Credentials {
        let mut salt = vec![0u8; 28];
        rand::thread_rng().fill_bytes(&mut salt);
        Self::with_salt(password, salt, ITERATIONS)
    }

    pub fn with_salt(password: &str, salt: Vec<u8>, iterations: u32) -> Credentials {
        let prepped = stringprep::saslprep(password).map(|p| p.into_owned()).unwrap_or_else(|_| password.to_string());
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(prepped.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key = Sha256::digest(&client_key).to_vec();
        let server_key = hmac(&salted, b"Server Key");
        Credentials { salt, iterations, stored_key, server_key }
    }
}

/// A conversation between `saslStart` and the last `saslContinue`.
#[derive(Debug, Clone)]
pub struct Conversation {
    pub user: String,
    client_first_bare: String,
    server_first: String,
    nonce: String,
    credentials: Option<Credentials>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScramError {
    #[error("malformed SCRAM message")]
    Malformed,
    #[error("Authentication failed.")]
    Failed,
}

fn attr(msg: &str, key: char) -> Option<&str> {
    msg.split(',').find_map(|part| part.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// Reads the client-first message; `lookup` finds the user's credentials. An unknown user
/// still gets a server-first message (with a made-up salt) so that the failure shows only at
/// the end, as on the real server.
pub fn start(
    client_first: &[u8],
    lookup: impl FnOnce(&str) -> Option<Credentials>,
) -> Result<(Conversation, Vec<u8>), ScramError> {
    let msg = std::str::from_utf8(client_first).map_err(|_| ScramError::Malformed)?;
    let bare = msg.strip_prefix("n,,").ok_or(ScramError::Malformed)?;
    let user = attr(bare, 'n').ok_or(ScramError::Malformed)?.replace("=2C", ",").replace("=3D", "=");
    let client_nonce = attr(bare, 'r').ok_or(ScramError::Malformed)?;
    let credentials = lookup(&user);
    let mut server_nonce = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut server_nonce);
    let nonce = format!("{client_nonce}{}", B64.encode(server_nonce));
    let (salt, iterations) = match &credentials {
        Some(c) => (c.salt.clone(), c.iterations),
        None => (vec![0u8; 28], ITERATIONS),
    };
    let server_first = format!("r={nonce},s={},i={iterations}", B64.encode(salt));
    let reply = server_first.clone().into_bytes();
    Ok((Conversation { user, client_first_bare: bare.to_string(), server_first, nonce, credentials }, reply))
}

/// Checks the client's proof; on success returns the server-final message (`v=...`).
pub fn finish(conv: &Conversation, client_final: &[u8]) -> Result<Vec<u8>, ScramError> {
    let msg = std::str::from_utf8(client_final).map_err(|_| ScramError::Malformed)?;
    let (without_proof, proof) = msg.rsplit_once(",p=").ok_or(ScramError::Malformed)?;
    if attr(without_proof, 'r') != Some(conv.nonce.as_str()) {
        return Err(ScramError::Failed);
    }
    let creds = conv.credentials.as_ref().ok_or(ScramError::Failed)?;
    let proof = B64.decode(proof).map_err(|_| ScramError::Malformed)?;
    let auth_message = format!("{},{},{}", conv.client_first_bare, conv.server_first, without_proof);
    let client_signature = hmac(&creds.stored_key, auth_message.as_bytes());
    if proof.len() != client_signature.len() {
        return Err(ScramError::Failed);
    }
    let client_key: Vec<u8> = proof.iter().zip(&client_signature).map(|(a, b)| a ^ b).collect();
    if Sha256::digest(&client_key).as_slice() != creds.stored_key.as_slice() {
        return Err(ScramError::Failed);
    }
    let server_signature = hmac(&creds.server_key, auth_message.as_bytes());
    Ok(format!("v={}", B64.encode(server_signature)).into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client side, written from the RFC, to check the server side end to end.
    fn client_final(password: &str, client_first_bare: &str, server_first: &str) -> String {
        let salt = B64.decode(attr(server_first, 's').unwrap()).unwrap();
        let i: u32 = attr(server_first, 'i').unwrap().parse().unwrap();
        let nonce = attr(server_first, 'r').unwrap();
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, i, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored = Sha256::digest(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{client_first_bare},{server_first},{without_proof}");
        let sig = hmac(&stored, auth.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
        format!("{without_proof},p={}", B64.encode(proof))
    }

    #[test]
    fn right_password_passes_and_wrong_one_fails() {
        let creds = Credentials::with_salt("s3cret", b"0123456789abcdef".to_vec(), 4096);
        for (password, ok) in [("s3cret", true), ("wrong", false)] {
            let (conv, first) = start(b"n,,n=app,r=abc", |u| (u == "app").then(|| creds.clone())).unwrap();
            let reply = client_final(password, "n=app,r=abc", std::str::from_utf8(&first).unwrap());
            assert_eq!(finish(&conv, reply.as_bytes()).is_ok(), ok, "password {password}");
        }
    }

    #[test]
    fn unknown_user_fails_only_at_the_end() {
        let (conv, first) = start(b"n,,n=ghost,r=abc", |_| None).unwrap();
        let reply = client_final("x", "n=ghost,r=abc", std::str::from_utf8(&first).unwrap());
        assert_eq!(finish(&conv, reply.as_bytes()), Err(ScramError::Failed));
    }
}
