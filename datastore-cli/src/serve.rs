//! `serve`: the HTTP API (datastore-http) over a store, until Ctrl-C or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use datastore_http::{Limits, Rate, Server, ServerConfig, Token};

use crate::{CliError, config_for, say, store_url};

/// `datastore serve [URL]`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The store to serve (else DATASTORE_URL, else `url` in --config);
    /// created if missing.
    url: Option<String>,
    /// Where to listen. Anything but a loopback address needs a token.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A file holding the bearer token every request must carry.
    #[arg(long, conflicts_with = "token_env")]
    token_file: Option<PathBuf>,
    /// An environment variable holding the token (default DATASTORE_TOKEN, if set).
    #[arg(long)]
    token_env: Option<String>,
    /// The largest request body, in bytes.
    #[arg(long, default_value_t = Limits::default().max_body_bytes)]
    max_body_bytes: usize,
    /// The largest page a list returns.
    #[arg(long, default_value_t = Limits::default().max_page_limit)]
    max_page: u32,
    /// The most event streams (`/v1/changes`) open at once; more get 503.
    #[arg(long, default_value_t = Limits::default().max_streams)]
    max_streams: usize,
    /// Requests per second each bearer token may make on average (more get
    /// 429 with Retry-After); unlimited when not given.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    rate_limit: Option<u32>,
    /// Requests a token may make at once after being idle (default: twice
    /// --rate-limit).
    #[arg(long, requires = "rate_limit", value_parser = clap::value_parser!(u32).range(1..))]
    rate_burst: Option<u32>,
}

fn token(args: &ServeArgs) -> Result<Option<Token>, CliError> {
    let (source, text) = if let Some(path) = &args.token_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
        (path.display().to_string(), text)
    } else {
        let name = args.token_env.as_deref().unwrap_or("DATASTORE_TOKEN");
        match std::env::var(name) {
            Ok(text) => (format!("${name}"), text),
            Err(_) if args.token_env.is_some() => return Err(format!("${name} is not set").into()),
            Err(_) => return Ok(None),
        }
    };
    Token::new(&text)
        .map(Some)
        .map_err(|why| format!("the token from {source}: {why}").into())
}

/// Ctrl-C or SIGTERM.
async fn stop_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

pub async fn run(config: Option<&PathBuf>, args: &ServeArgs) -> Result<ExitCode, CliError> {
    let server_config = ServerConfig {
        listen: args.listen,
        token: token(args)?,
        limits: Limits {
            max_body_bytes: args.max_body_bytes,
            max_page_limit: args.max_page.clamp(1, datastore::MAX_PAGE_LIMIT),
            max_streams: args.max_streams,
            rate: args.rate_limit.map(|per_second| Rate {
                per_second,
                burst: args.rate_burst.unwrap_or(per_second.saturating_mul(2)),
            }),
        },
        ..ServerConfig::default()
    };
    let url = store_url(args.url.as_deref(), config.map(PathBuf::as_path), None)?;
    let mut config = config_for(config, &url)?;
    // Every operation is counted for /metrics.
    config.instrument = true;
    let ds = datastore::open(&config).await?;
    let server = Server::bind(ds.clone(), server_config)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    say!(
        "serving {} on http://{} (Ctrl-C to stop)",
        datastore::redact_url(&url),
        server.local_addr()
    );
    server.run(stop_signal()).await?;
    ds.close().await?;
    say!("stopped");
    Ok(ExitCode::SUCCESS)
}
