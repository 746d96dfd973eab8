//! What the operator tells the outside about itself: logs (structured JSON for machines or
//! readable text for people, with a level that can be changed while it runs), metrics, and
//! readiness.

pub mod metrics;
pub mod objects;
pub mod readiness;

use std::sync::Mutex;

use clap::ValueEnum;
use tracing_subscriber::{EnvFilter, Registry, fmt, prelude::*, reload};

pub use metrics::{BackupOutcome, Metrics};
pub use readiness::Readiness;

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines.
    #[default]
    Text,
}

/// Changes the log filter of a running process (`PUT /log-level`).
pub struct LogLevel {
    handle: reload::Handle<EnvFilter, Registry>,
    current: Mutex<String>,
}

impl LogLevel {
    /// The filter in force, in `RUST_LOG` syntax.
    pub fn current(&self) -> String {
        self.current.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Replaces the filter; a filter that does not parse changes nothing.
    pub fn set(&self, filter: &str) -> Result<(), String> {
        let parsed = EnvFilter::try_new(filter).map_err(|e| format!("{filter:?} is not a log filter: {e}"))?;
        self.handle.reload(parsed).map_err(|e| format!("cannot change the log filter: {e}"))?;
        if let Ok(mut current) = self.current.lock() {
            *current = filter.to_string();
        }
        tracing::info!(filter, "log filter changed");
        Ok(())
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides `default_level` when set.
pub fn init(format: LogFormat, default_level: &str) -> LogLevel {
    let (filter, text) = match std::env::var("RUST_LOG").ok().and_then(|v| EnvFilter::try_new(&v).ok().map(|f| (f, v)))
    {
        Some(from_env) => from_env,
        None => (EnvFilter::new(default_level), default_level.to_string()),
    };
    let (filter, handle) = reload::Layer::new(filter);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry.with(fmt::layer().json().with_current_span(true).with_span_list(false)).init(),
        LogFormat::Text => {
            let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
            registry.with(fmt::layer().with_writer(std::io::stderr).with_ansi(ansi)).init()
        }
    }
    LogLevel { handle, current: Mutex::new(text) }
}
