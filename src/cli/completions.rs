//! `googlenet completions SHELL` and `googlenet man`: shell completions and a manual page, both
//! generated from the command line's own definition, so they list exactly what the program takes.

use std::process::ExitCode;

use anyhow::Result;
use clap::{Args, CommandFactory};

use super::Cli;

/// Prints a completion script. Bash: `googlenet completions bash > ~/.local/share/bash-completion/completions/googlenet`;
/// zsh: into a folder of `$fpath` as `_googlenet`; fish: `~/.config/fish/completions/googlenet.fish`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the manual page (roff): `googlenet man > googlenet.1 && man ./googlenet.1`.
#[derive(Args, Debug)]
pub struct ManArgs {}

/// Prints the shell completion script for the shell asked for.
pub fn completions(args: CompletionsArgs) -> Result<ExitCode> {
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "googlenet",
        &mut std::io::stdout(),
    );
    Ok(ExitCode::SUCCESS)
}

/// Prints the manual page of the CLI (roff).
pub fn man(_: ManArgs) -> Result<ExitCode> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
    Ok(ExitCode::SUCCESS)
}
