//! Listeners: each member accepts connections on its own address, like a Pod's mongod.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bson::{Bson, Document};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::commands::{self, Session, Shared, lock};
use crate::wire;
use crate::world::{Options, World};

/// JSON lines of every command received: time, member, database, command and its reply code.
pub struct CommandLog {
    out: Mutex<std::io::BufWriter<std::fs::File>>,
}

impl CommandLog {
    pub fn create(path: &Path) -> std::io::Result<CommandLog> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(CommandLog { out: Mutex::new(std::io::BufWriter::new(file)) })
    }

    fn record(&self, member: &str, body: &Document, reply: &Document) {
        let mut shown = body.clone();
        for secret in ["pwd", "payload"] {
            if shown.contains_key(secret) {
                shown.insert(secret, "<redacted>");
            }
        }
        let line = serde_json::json!({
            "ts": bson::DateTime::now().try_to_rfc3339_string().unwrap_or_default(),
            "member": member,
            "db": body.get_str("$db").unwrap_or("admin"),
            "command": body.keys().next().cloned().unwrap_or_default(),
            "doc": Bson::Document(shown).into_relaxed_extjson(),
            "ok": reply.get_f64("ok").unwrap_or(0.0) == 1.0,
            "code": reply.get_i32("code").ok(),
        });
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}

/// A running simulator: the world, its members' listeners, and the heartbeat ticker.
pub struct Sim {
    pub world: Shared,
    listeners: Mutex<HashMap<String, JoinHandle<()>>>,
    log: Option<Arc<CommandLog>>,
    ticker: JoinHandle<()>,
    connections: Arc<AtomicI64>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.ticker.abort();
        for (_, h) in self.listeners.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            h.abort();
        }
    }
}

impl Sim {
    /// Starts the simulation clock. Members are added with [`Sim::add_member`].
    pub fn start(opts: Options, log: Option<CommandLog>) -> Arc<Sim> {
        let interval = opts.heartbeat_interval;
        let data = opts.data.clone().map(|address| (address, opts.noop_interval));
        let world: Shared = Arc::new(Mutex::new(World::new(opts)));
        let w = world.clone();
        let ticker = tokio::spawn(async move {
            if let Some((address, _)) = &data
                && let Err(e) = crate::data::prepare(address).await
            {
                tracing::error!(error = %e, "cannot prepare the data store");
            }
            let mut every = tokio::time::interval(interval);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_noop = Instant::now();
            loop {
                every.tick().await;
                let primary_term = {
                    let mut world = lock(&w);
                    world.tick(Instant::now());
                    world.primary().and_then(|p| p.primary_term)
                };
                // The primary's periodic no-op, in the data store's oplog too.
                if let (Some((address, noop)), Some(term)) = (&data, primary_term)
                    && last_noop.elapsed() >= *noop
                {
                    last_noop = Instant::now();
                    if let Err(e) = crate::data::write_noop(address, term).await {
                        tracing::warn!(error = %e, "cannot write a no-op to the data store's oplog");
                    }
                }
                // The members fetch what the primary's data store logged since the last round.
                if let (Some((address, _)), Some(_)) = (&data, primary_term) {
                    let after = lock(&w).data_oplog.last().map(|e| e.ts);
                    match crate::data::oplog_since(address, after).await {
                        Ok(entries) => lock(&w).fetched_data_oplog(entries),
                        Err(e) => tracing::warn!(error = %e, "cannot read the data store's oplog"),
                    }
                }
            }
        });
        Arc::new(Sim {
            world,
            listeners: Mutex::new(HashMap::new()),
            log: log.map(Arc::new),
            ticker,
            connections: Arc::new(AtomicI64::new(0)),
        })
    }

    /// Adds a member named `name`, known in configs as `host`, listening on `listen` (port 0
    /// picks a free port). Returns the address it listens on.
    pub async fn add_member(&self, name: &str, host: &str, listen: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        lock(&self.world).add_member(name, host, addr);
        self.serve(name, listener);
        Ok(addr)
    }

    fn serve(&self, name: &str, listener: TcpListener) {
        let world = self.world.clone();
        let log = self.log.clone();
        let member = name.to_string();
        let counter = self.connections.clone();
        let handle = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let generation = match lock(&world).member(&member) {
                    Some(m) if m.up => m.generation,
                    _ => continue,
                };
                let id = counter.fetch_add(1, Ordering::Relaxed) + 1;
                tokio::spawn(connection(world.clone(), log.clone(), member.clone(), generation, id, stream));
            }
        });
        let mut listeners = self.listeners.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = listeners.insert(name.to_string(), handle) {
            old.abort();
        }
    }

    /// Stops a member like a killed mongod: its port closes and open connections drop.
    pub fn stop_member(&self, name: &str) -> bool {
        if let Some(h) = self.listeners.lock().unwrap_or_else(|e| e.into_inner()).remove(name) {
            h.abort();
        }
        lock(&self.world).stop(name)
    }

    /// Starts a stopped member again on its address, with its config and data.
    pub async fn start_member(&self, name: &str) -> std::io::Result<bool> {
        let Some(addr) = lock(&self.world).member(name).map(|m| m.listen) else { return Ok(false) };
        let listener = rebind(addr).await?;
        lock(&self.world).start(name);
        self.serve(name, listener);
        Ok(true)
    }

    /// Starts a member again at a new address, with its config and data: its Pod was replaced
    /// and came back with another IP but the same volume.
    pub async fn start_member_at(&self, name: &str, listen: SocketAddr) -> std::io::Result<bool> {
        if lock(&self.world).member(name).is_none() {
            return Ok(false);
        }
        self.stop_member(name);
        let listener = rebind(listen).await?;
        let addr = listener.local_addr()?;
        {
            let mut world = lock(&self.world);
            if let Some(m) = world.members.get_mut(name) {
                m.listen = addr;
            }
            world.start(name);
        }
        self.serve(name, listener);
        Ok(true)
    }

    /// Forgets a member entirely (its Pod and volume are gone).
    pub fn remove_member(&self, name: &str) -> bool {
        self.stop_member(name);
        lock(&self.world).members.remove(name).is_some()
    }

    /// Cuts (or restores) a member's links to every other member; clients still reach it.
    pub fn set_partitioned(&self, name: &str, partitioned: bool) -> bool {
        lock(&self.world).members.get_mut(name).map(|m| m.partitioned = partitioned).is_some()
    }

    /// Makes a member replicate `lag` behind the primary.
    pub fn set_lag(&self, name: &str, lag: Duration) -> bool {
        lock(&self.world).members.get_mut(name).map(|m| m.lag = lag).is_some()
    }

    /// Delays every reply of a member by `slow`.
    pub fn set_slow(&self, name: &str, slow: Duration) -> bool {
        lock(&self.world).members.get_mut(name).map(|m| m.slow = slow).is_some()
    }

    /// Sets the TLS a member starts with (as its mongod.conf and certificate files say); it
    /// applies to connections accepted from now on.
    pub fn set_tls(&self, name: &str, tls: crate::tls::MemberTls) -> bool {
        lock(&self.world).members.get_mut(name).map(|m| m.tls = tls).is_some()
    }

    /// Replaces what a member's certificate file holds, as the kubelet does when the mounted
    /// Secret changes; the member goes on presenting the one it loaded.
    pub fn set_tls_file(&self, name: &str, pem: &str) -> bool {
        lock(&self.world).members.get_mut(name).map(|m| m.tls.file_pem = pem.to_string()).is_some()
    }

    /// Sets the server version a member reports (as after a binary upgrade and restart).
    pub fn set_version(&self, name: &str, version: &str) -> bool {
        lock(&self.world).members.get_mut(name).map(|m| m.version = version.to_string()).is_some()
    }

    /// A summary of every member, for tests and the control interface.
    pub fn snapshot(&self) -> serde_json::Value {
        let w = lock(&self.world);
        let now = Instant::now();
        let members: Vec<serde_json::Value> = w
            .members
            .values()
            .map(|m| {
                serde_json::json!({
                    "name": m.name, "host": m.host, "listen": m.listen.to_string(), "up": m.up,
                    "partitioned": m.partitioned, "state": w.state(m, now).as_str(),
                    "configVersion": m.config.as_ref().map(|c| c.version), "applied": m.applied,
                    "lagMs": m.lag.as_millis() as u64, "version": m.version, "tls": m.tls.mode.as_str(),
                })
            })
            .collect();
        serde_json::json!({ "term": w.term, "fcv": w.fcv, "users": w.users.len(), "members": members })
    }
}

/// Binds `addr` again: the listener of a member stopped a moment ago closes only when its
/// aborted task is dropped, so the port may still be taken for a few milliseconds.
async fn rebind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let mut tries = 0;
    loop {
        match TcpListener::bind(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 50 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            result => return result,
        }
    }
}

async fn connection(
    world: Shared,
    log: Option<Arc<CommandLog>>,
    member: String,
    generation: u64,
    id: i64,
    mut stream: TcpStream,
) {
    let _ = stream.set_nodelay(true);
    let mut header = [0u8; 16];
    if stream.read_exact(&mut header).await.is_err() {
        return;
    }
    let tls = match lock(&world).member(&member) {
        Some(m) => m.tls.clone(),
        None => return,
    };
    let stream = Prefixed { prefix: header.to_vec(), inner: stream };
    match crate::tls::ingress(tls.mode, &header) {
        crate::tls::Ingress::Refuse(why) => {
            tracing::debug!(%member, why, "closing connection");
        }
        crate::tls::Ingress::Plain => serve_connection(world, log, member, generation, id, None, stream).await,
        crate::tls::Ingress::Tls => {
            let Some(config) = tls.config else { return };
            match tokio_rustls::TlsAcceptor::from(config).accept(stream).await {
                Ok(tls_stream) => {
                    let sni = tls_stream.get_ref().1.server_name().map(str::to_string);
                    serve_connection(world, log, member, generation, id, sni, tls_stream).await
                }
                Err(e) => tracing::debug!(%member, error = %e, "TLS handshake failed"),
            }
        }
    }
}

/// A stream whose first bytes were already read (to tell TLS from plain text): they are read
/// again first.
struct Prefixed<S> {
    prefix: Vec<u8>,
    inner: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let rest = self.prefix.split_off(n);
            buf.put_slice(&self.prefix);
            self.prefix = rest;
            return std::task::Poll::Ready(Ok(()));
        }
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn serve_connection<S: AsyncRead + AsyncWrite + Unpin>(
    world: Shared,
    log: Option<Arc<CommandLog>>,
    member: String,
    generation: u64,
    id: i64,
    sni: Option<String>,
    mut stream: S,
) {
    let _counted = Counted::open(&world, &member, generation);
    let mut session = Session::new(id);
    session.sni = sni;
    let mut reply_id = 0i32;
    loop {
        let mut request = match wire::read_request(&mut stream).await {
            Ok(r) => r,
            Err(e) => {
                if !matches!(e, wire::WireError::Closed) {
                    tracing::debug!(%member, error = %e, "closing connection");
                }
                return;
            }
        };
        let began = std::time::Instant::now();
        let slow = match lock(&world).member(&member) {
            Some(m) if m.up && m.generation == generation => m.slow,
            _ => return,
        };
        if slow > Duration::ZERO {
            tokio::time::sleep(slow).await;
        }
        let body = request.body.clone();
        let legacy_handshake =
            body.keys().next().is_some_and(|k| matches!(k.as_str(), "hello" | "isMaster" | "ismaster"));
        let reply = if request.legacy && !legacy_handshake {
            // mongod 6.0+: OP_QUERY only for the connection handshake (`handleLegacyQuery`).
            commands::error(5739101, "OP_QUERY is no longer supported. The client driver may require an upgrade.")
        } else {
            commands::handle(&world, &member, &mut session, std::mem::take(&mut request.body)).await
        };
        if let Some(log) = &log {
            log.record(&member, &body, &reply);
        }
        if let Some(name) = body.keys().next()
            && let Some(m) = lock(&world).members.get_mut(&member)
            && m.generation == generation
        {
            m.ops.record(name, &body, &reply, began.elapsed());
        }
        if request.more_to_come {
            continue;
        }
        // A member stopped while the command ran never answers it.
        if !lock(&world).member(&member).is_some_and(|m| m.up && m.generation == generation) {
            return;
        }
        reply_id = reply_id.wrapping_add(1);
        if wire::write_answer(&mut stream, &request, reply_id, &reply).await.is_err() {
            return;
        }
    }
}

/// A connection counted in its member's `serverStatus.connections` while it is open, as
/// mongod's session manager counts sessions (`SessionManagerCommon::startSession` and
/// `endSessionByClient`): `current` up and down, `totalCreated` up only. A connection from
/// before a restart is no longer counted (the restart started the counts again).
struct Counted {
    world: Shared,
    member: String,
    generation: u64,
}

impl Counted {
    fn open(world: &Shared, member: &str, generation: u64) -> Counted {
        if let Some(m) = lock(world).members.get_mut(member).filter(|m| m.generation == generation) {
            m.connections.current += 1;
            m.connections.total_created += 1;
        }
        Counted { world: world.clone(), member: member.to_string(), generation }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if let Some(m) = lock(&self.world).members.get_mut(&self.member).filter(|m| m.generation == self.generation) {
            m.connections.current = (m.connections.current - 1).max(0);
        }
    }
}
