//! `datastore token create|list|revoke`: the access tokens `serve` accepts,
//! kept in the store itself (hashed), on any store URL.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use datastore::{
    AccessToken, Precondition, ProfileId, Query, RecordId, TokenFilter, TokenId, TokenScope,
};

use crate::{Access, CliError, open_tool, say, store_url};

/// `datastore token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Issue a token acting as a profile; prints it once (only its hash is
    /// kept).
    Create {
        /// The store (else DATASTORE_URL, else `url` in --config).
        url: Option<String>,
        /// The profile the token acts as (its id or its username).
        #[arg(long)]
        profile: String,
        /// What it may do: read, write or admin.
        #[arg(long, default_value = "read")]
        scope: TokenScope,
        /// A note shown by `token list` (`laptop`, `ci`).
        #[arg(long, default_value = "")]
        name: String,
        /// Days until it stops working (default: never).
        #[arg(long)]
        expires_in_days: Option<u32>,
    },
    /// List tokens (never their secrets).
    List {
        /// The store (else DATASTORE_URL, else `url` in --config).
        url: Option<String>,
        /// Only the tokens of this profile (id).
        #[arg(long)]
        profile: Option<String>,
    },
    /// Revoke a token: it stops working at once.
    Revoke {
        /// The token's id (the part after `dst_` up to the next `_`, as
        /// `token list` shows it) or the whole token.
        id: String,
        /// The store (else DATASTORE_URL, else `url` in --config).
        url: Option<String>,
    },
}

/// Runs a `token` subcommand.
pub async fn run(config: Option<&PathBuf>, args: &TokenArgs) -> Result<ExitCode, CliError> {
    match &args.command {
        TokenCommand::Create {
            url,
            profile,
            scope,
            name,
            expires_in_days,
        } => {
            create(
                config,
                url.as_deref(),
                profile,
                *scope,
                name,
                *expires_in_days,
            )
            .await
        }
        TokenCommand::List { url, profile } => {
            list(config, url.as_deref(), profile.as_deref()).await
        }
        TokenCommand::Revoke { id, url } => revoke(config, url.as_deref(), id).await,
    }
}

async fn create(
    config: Option<&PathBuf>,
    url: Option<&str>,
    profile: &str,
    scope: TokenScope,
    name: &str,
    expires_in_days: Option<u32>,
) -> Result<ExitCode, CliError> {
    let url = store_url(url, config.map(PathBuf::as_path), None)?;
    let ds = open_tool(config, &url, Access::Write).await?;
    // An id, else a username.
    let found = match ds.profiles().get(&ProfileId::new(profile)).await {
        Ok(found) => found,
        Err(datastore::Error::NotFound { .. }) => ds
            .profiles()
            .get_by_username(profile)
            .await
            .map_err(|e| match e {
                datastore::Error::NotFound { .. } => {
                    format!("no profile with the id or username {profile:?}")
                }
                e => e.to_string(),
            })?,
        Err(e) => return Err(e.into()),
    };
    let expires =
        expires_in_days.map(|days| chrono::Utc::now() + chrono::Duration::days(i64::from(days)));
    let (token, text) = AccessToken::issue(found.value.id.clone(), scope, name, expires);
    let id = token.id.clone();
    ds.tokens().put(token, Precondition::MustNotExist).await?;
    ds.close().await?;
    eprintln!(
        "token {id} acts as {} ({}) with scope {scope}{}; it is shown once:",
        found.value.id,
        found.value.username,
        expires.map_or(String::new(), |at| format!(", until {}", at.to_rfc3339()))
    );
    say!("{}", text.expose());
    Ok(ExitCode::SUCCESS)
}

async fn list(
    config: Option<&PathBuf>,
    url: Option<&str>,
    profile: Option<&str>,
) -> Result<ExitCode, CliError> {
    let url = store_url(url, config.map(PathBuf::as_path), None)?;
    let ds = open_tool(config, &url, Access::Read).await?;
    let filter = profile.map_or(TokenFilter::All, |p| {
        TokenFilter::Profile(ProfileId::new(p))
    });
    let mut cursor = None;
    say!(
        "{:<18} {:<24} {:<6} {:<26} name",
        "id",
        "profile",
        "scope",
        "expires"
    );
    loop {
        let page = ds
            .tokens()
            .list(Query::new(filter.clone()).limit(500).after(cursor))
            .await?;
        for token in &page.items {
            let t = &token.value;
            let expires = t.expires.map_or("never".to_string(), |at| {
                let shown = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
                if t.expired(chrono::Utc::now()) {
                    format!("{shown} (expired)")
                } else {
                    shown
                }
            });
            say!(
                "{:<18} {:<24} {:<6} {:<26} {}",
                t.id.as_str(),
                t.profile_id.as_str(),
                t.scope.as_str(),
                expires,
                t.name
            );
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    ds.close().await?;
    Ok(ExitCode::SUCCESS)
}

async fn revoke(
    config: Option<&PathBuf>,
    url: Option<&str>,
    id: &str,
) -> Result<ExitCode, CliError> {
    let id = AccessToken::parse(id).map_or_else(|| TokenId::new(id), |(id, _)| id);
    id.check("id")
        .map_err(|e| format!("{:?} is not a token id: {}", id.as_str(), e.reason))?;
    let url = store_url(url, config.map(PathBuf::as_path), None)?;
    let ds = open_tool(config, &url, Access::Write).await?;
    match ds.tokens().delete(&id, Precondition::MustExist).await {
        Ok(_) => {}
        Err(datastore::Error::NotFound { .. }) => {
            return Err(format!("no token {id} (already revoked?)").into());
        }
        Err(e) => return Err(e.into()),
    }
    ds.close().await?;
    say!("revoked {id}");
    Ok(ExitCode::SUCCESS)
}
