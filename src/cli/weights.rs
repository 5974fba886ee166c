//! `googlenet weights`: the pretrained weights known by name, and where they are cached.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::weights::WeightsSource;
use crate::weights::download::cache_dir;
use crate::weights::pretrained::{MIRROR_ENV, PRETRAINED};

/// The `weights` subcommands (their help is on `Command::Weights`).
#[derive(Args, Debug)]
pub struct WeightsArgs {
    #[command(subcommand)]
    pub command: WeightsCommand,
}

#[derive(Subcommand, Debug)]
pub enum WeightsCommand {
    /// Print every name `--weights` knows, its URL, and where it is cached (and whether it is).
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Download a named file or a URL into the cache now (nothing happens if it is there).
    Download {
        /// A name from `weights list`, or an http(s) URL.
        source: WeightsSource,
    },
}

#[derive(Serialize)]
struct Entry {
    name: &'static str,
    aliases: &'static [&'static str],
    variant: String,
    transform_input: bool,
    url: String,
    cached_at: String,
    present: bool,
    about: &'static str,
}

/// Runs `googlenet weights` and its subcommand.
pub fn run(args: WeightsArgs) -> Result<ExitCode> {
    match args.command {
        WeightsCommand::List { json } => list(json),
        WeightsCommand::Download { source } => {
            anyhow::ensure!(
                !matches!(source, WeightsSource::File(_)),
                "{source}: not a name from `googlenet weights list` nor an http(s) URL"
            );
            let path = source.resolve(true)?;
            println!("{}", path.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list(json: bool) -> Result<ExitCode> {
    let dir = cache_dir()?;
    let entries: Vec<Entry> = PRETRAINED
        .iter()
        .map(|p| {
            let path = dir.join(p.file_name());
            Entry {
                name: p.name,
                aliases: p.aliases,
                variant: p.variant.to_string(),
                transform_input: p.transform_input,
                url: p.download_url(),
                present: path.is_file(),
                cached_at: path.display().to_string(),
                about: p.about,
            }
        })
        .collect();
    if json {
        println!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(ExitCode::SUCCESS);
    }
    for e in &entries {
        println!("{} (also {})", e.name, e.aliases.join(", "));
        println!("  {}", e.about);
        println!(
            "  variant {}{}",
            e.variant,
            if e.transform_input {
                ", transform_input"
            } else {
                ""
            }
        );
        println!("  from   {}", e.url);
        let state = if e.present { "present" } else { "absent" };
        println!("  cache  {} ({state})", e.cached_at);
    }
    if std::env::var_os(MIRROR_ENV).is_some() {
        println!("(URLs from the mirror {MIRROR_ENV} names)");
    }
    Ok(ExitCode::SUCCESS)
}
