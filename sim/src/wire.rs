//! OP_MSG framing: the message format current drivers send. The one exception is the first
//! `hello`/`isMaster` of a connection, which the Go driver (and so mongodump and mongorestore)
//! still sends as a legacy OP_QUERY on `admin.$cmd` and expects back as an OP_REPLY; mongod
//! accepts OP_QUERY for that handshake alone since 6.0 (`handleLegacyQuery` answers anything
//! else with "OP_QUERY is no longer supported"). OP_COMPRESSED is not supported: drivers only
//! use it when compressors are configured.

use bson::{Bson, Document};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const OP_MSG: i32 = 2013;
const OP_QUERY: i32 = 2004;
const OP_REPLY: i32 = 1;
const CHECKSUM_PRESENT: u32 = 1;
const MORE_TO_COME: u32 = 1 << 1;
/// Largest message accepted (the server's default maxMessageSizeBytes).
pub const MAX_MESSAGE_SIZE: usize = 48_000_000;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed")]
    Closed,
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("unsupported opcode {0}")]
    OpCode(i32),
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// One command received.
#[derive(Debug)]
pub struct Request {
    pub request_id: i32,
    /// The body, with any document sequences (kind 1 sections) folded in as arrays.
    pub body: Document,
    /// The client does not want a reply.
    pub more_to_come: bool,
    /// A legacy OP_QUERY, to be answered with an OP_REPLY.
    pub legacy: bool,
}

pub async fn read_request<R: AsyncRead + Unpin>(r: &mut R) -> Result<Request, WireError> {
    let mut header = [0u8; 16];
    match r.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(WireError::Closed),
        Err(e) => return Err(e.into()),
    }
    let le = |i: usize| i32::from_le_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let (len, request_id, op_code) = (le(0), le(4), le(12));
    let len = usize::try_from(len).map_err(|_| WireError::Malformed("negative length".into()))?;
    if !(21..=MAX_MESSAGE_SIZE).contains(&len) {
        return Err(WireError::Malformed(format!("length {len}")));
    }
    let mut rest = vec![0u8; len - 16];
    r.read_exact(&mut rest).await?;
    if op_code == OP_QUERY {
        return read_legacy_query(request_id, &rest);
    }
    if op_code != OP_MSG {
        return Err(WireError::OpCode(op_code));
    }
    let flags = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let end = if flags & CHECKSUM_PRESENT != 0 { rest.len().saturating_sub(4) } else { rest.len() };
    let mut pos = 4;
    let mut body: Option<Document> = None;
    let mut sequences: Vec<(String, Vec<Bson>)> = Vec::new();
    while pos < end {
        let kind = rest[pos];
        pos += 1;
        match kind {
            0 => {
                let doc = read_doc(&rest[pos..end])?;
                pos += doc_len(&rest[pos..end])?;
                body = Some(doc);
            }
            1 => {
                let size = doc_len(&rest[pos..end])?;
                let section = &rest[pos + 4..pos + size];
                let nul =
                    section.iter().position(|b| *b == 0).ok_or_else(|| WireError::Malformed("identifier".into()))?;
                let id = String::from_utf8_lossy(&section[..nul]).into_owned();
                let mut docs = Vec::new();
                let mut p = nul + 1;
                while p < section.len() {
                    docs.push(Bson::Document(read_doc(&section[p..])?));
                    p += doc_len(&section[p..])?;
                }
                sequences.push((id, docs));
                pos += size;
            }
            k => return Err(WireError::Malformed(format!("section kind {k}"))),
        }
    }
    let mut body = body.ok_or_else(|| WireError::Malformed("no body section".into()))?;
    for (id, docs) in sequences {
        body.insert(id, Bson::Array(docs));
    }
    Ok(Request { request_id, body, more_to_come: flags & MORE_TO_COME != 0, legacy: false })
}

/// An OP_QUERY: flags, `<db>.$cmd`, skip, limit, then the command (possibly wrapped in
/// `$query`, with `$readPreference` beside it). The command gets `$db` as an OP_MSG would.
fn read_legacy_query(request_id: i32, rest: &[u8]) -> Result<Request, WireError> {
    let after_flags = rest.get(4..).ok_or_else(|| WireError::Malformed("OP_QUERY flags".into()))?;
    let nul = after_flags.iter().position(|b| *b == 0).ok_or_else(|| WireError::Malformed("collection name".into()))?;
    let collection = String::from_utf8_lossy(&after_flags[..nul]).into_owned();
    let query = after_flags.get(nul + 1 + 8..).ok_or_else(|| WireError::Malformed("OP_QUERY query".into()))?;
    let mut body = read_doc(query)?;
    if let Ok(inner) = body.get_document("$query") {
        body = inner.clone();
    }
    let db = collection.strip_suffix(".$cmd").unwrap_or(&collection).to_string();
    body.insert("$db", db);
    Ok(Request { request_id, body, more_to_come: false, legacy: true })
}

/// Answers an OP_QUERY with an OP_REPLY holding one document: no flags, no cursor, starting
/// at 0, one document returned, as mongod's `LegacyReplyBuilder::done`
/// (src/mongo/rpc/legacy_reply_builder.cpp) sets them.
pub async fn write_legacy_reply<W: AsyncWrite + Unpin>(
    w: &mut W,
    response_to: i32,
    request_id: i32,
    body: &Document,
) -> Result<(), WireError> {
    let mut fields = Vec::with_capacity(20);
    fields.extend_from_slice(&0i32.to_le_bytes());
    fields.extend_from_slice(&0i64.to_le_bytes());
    fields.extend_from_slice(&0i32.to_le_bytes());
    fields.extend_from_slice(&1i32.to_le_bytes());
    write_message(w, request_id, response_to, OP_REPLY, &fields, body).await
}

/// One message: the standard header, the op's own fields, then `body`.
async fn write_message<W: AsyncWrite + Unpin>(
    w: &mut W,
    request_id: i32,
    response_to: i32,
    op_code: i32,
    fields: &[u8],
    body: &Document,
) -> Result<(), WireError> {
    let mut doc = Vec::new();
    body.to_writer(&mut doc).map_err(|e| WireError::Malformed(e.to_string()))?;
    let len = 16 + fields.len() + doc.len();
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&(len as i32).to_le_bytes());
    out.extend_from_slice(&request_id.to_le_bytes());
    out.extend_from_slice(&response_to.to_le_bytes());
    out.extend_from_slice(&op_code.to_le_bytes());
    out.extend_from_slice(fields);
    out.extend_from_slice(&doc);
    w.write_all(&out).await?;
    w.flush().await?;
    Ok(())
}

fn doc_len(bytes: &[u8]) -> Result<usize, WireError> {
    if bytes.len() < 4 {
        return Err(WireError::Malformed("truncated document".into()));
    }
    let n = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    usize::try_from(n)
        .ok()
        .filter(|n| *n >= 5 && *n <= bytes.len())
        .ok_or_else(|| WireError::Malformed("document length".into()))
}

fn read_doc(bytes: &[u8]) -> Result<Document, WireError> {
    let n = doc_len(bytes)?;
    Document::from_reader(&bytes[..n]).map_err(|e| WireError::Malformed(e.to_string()))
}

pub async fn write_reply<W: AsyncWrite + Unpin>(
    w: &mut W,
    response_to: i32,
    request_id: i32,
    body: &Document,
) -> Result<(), WireError> {
    // No flags, then the body as one kind-0 section, as mongod's `OpMsgBuilder::beginBody`
    // and `finish` (src/mongo/rpc/op_msg.cpp) write a reply without document sequences.
    let mut fields = 0u32.to_le_bytes().to_vec();
    fields.push(0);
    write_message(w, request_id, response_to, OP_MSG, &fields, body).await
}

/// Answers `request` in its own kind: an OP_REPLY to a legacy OP_QUERY, an OP_MSG otherwise.
pub async fn write_answer<W: AsyncWrite + Unpin>(
    w: &mut W,
    request: &Request,
    reply_id: i32,
    body: &Document,
) -> Result<(), WireError> {
    if request.legacy {
        write_legacy_reply(w, request.request_id, reply_id, body).await
    } else {
        write_reply(w, request.request_id, reply_id, body).await
    }
}

/// Writes one command as a client would (for tests and tools that talk to the simulator
/// without a driver).
pub async fn write_request<W: AsyncWrite + Unpin>(
    w: &mut W,
    request_id: i32,
    body: &Document,
) -> Result<(), WireError> {
    write_reply(w, 0, request_id, body).await
}

/// Reads one reply as a client would: the body of an OP_MSG.
pub async fn read_reply<R: AsyncRead + Unpin>(r: &mut R) -> Result<Document, WireError> {
    read_request(r).await.map(|m| m.body)
}
