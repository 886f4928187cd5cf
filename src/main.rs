//! `huayi-im`: loads configuration, sets up logging, binds, and hands over to
//! [`huayi_im::serve`].

use std::{path::PathBuf, process::ExitCode};

use clap::Parser;
use huayi_im::config::{Config, LogFormat, Sources};
use tracing_subscriber::EnvFilter;

/// Huayi IM server. Settings: defaults < config.yaml (or --config) <
/// HUAYI_* environment < flags.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// YAML configuration file (default: ./config.yaml if present).
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:9000 (key `listen`).
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Any setting by its dotted key, e.g. --set heartbeat.pong_interval=1s.
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = key_value)]
    set: Vec<(String, String)>,
}

fn key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut overrides = cli.set;
    if let Some(listen) = cli.listen {
        overrides.push(("listen".into(), listen));
    }
    let (config, warnings) = match Config::load(Sources {
        file: cli.config.as_deref(),
        env: std::env::vars().collect(),
        overrides,
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("huayi-im: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    for warning in warnings {
        tracing::warn!("{warning}");
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("huayi-im: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match bind(config.listen) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("cannot listen on {}: {e}", config.listen);
                return ExitCode::FAILURE;
            }
        };
        match huayi_im::serve(listener, config, shutdown_signal()).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("server failed: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Binds with a listen backlog that absorbs a burst of handshakes (the
/// default of 128 drops SYNs and costs clients a one-second retry).
fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

fn init_logging(config: &Config) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log.level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Resolves on SIGINT or SIGTERM (R31).
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
