//! `cairn completions SHELL` and `cairn man`: shell completions and a man page, generated from
//! the same command definitions as `--help`.

use std::process::ExitCode;

use anyhow::Result;
use clap::CommandFactory;

use super::Cli;

/// Arguments of `cairn completions`.
#[derive(clap::Args, Debug)]
pub struct CompletionArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: clap_complete::Shell,
}

impl CompletionArgs {
    /// Prints the completion script, for example
    /// `cairn completions bash > /etc/bash_completion.d/cairn`.
    pub fn execute(&self) -> Result<ExitCode> {
        let mut command = Cli::command();
        clap_complete::generate(self.shell, &mut command, "cairn", &mut std::io::stdout());
        Ok(ExitCode::SUCCESS)
    }
}

/// Arguments of `cairn man`.
#[derive(clap::Args, Debug)]
pub struct ManArgs {}

impl ManArgs {
    /// Prints the man page (roff), for example `cairn man > /usr/share/man/man1/cairn.1`.
    pub fn execute(&self) -> Result<ExitCode> {
        clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
        Ok(ExitCode::SUCCESS)
    }
}
