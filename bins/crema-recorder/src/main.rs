//! `crema-recorder`: the headless recorder. Thin: wiring, configuration and the CLI.
//!
//! Today it has the `decode` command, which reads captured Engine.IO traffic and prints the
//! socket.io events in it; recording arrives with the recorder issue.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

mod decode;

/// Records every shot of a Meticulous espresso machine.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode captured Engine.IO traffic, one packet per line (a WebSocket text frame, or a
    /// long-polling record with binary as `b<base64>`), and print each socket.io event as a JSON
    /// line `{"namespace","event","args"}`. Errors go to stderr with their line number.
    Decode {
        /// The capture; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Decode { file } => {
            let input: Box<dyn BufRead> = match file.as_deref() {
                None => Box::new(std::io::stdin().lock()),
                Some(p) if p.as_os_str() == "-" => Box::new(std::io::stdin().lock()),
                Some(p) => Box::new(BufReader::new(
                    std::fs::File::open(p)
                        .with_context(|| format!("cannot open capture {}", p.display()))?,
                )),
            };
            let stdout = std::io::stdout().lock();
            let mut out = std::io::BufWriter::new(stdout);
            let stats = decode::run(input, &mut out, &mut std::io::stderr().lock())?;
            out.flush()?;
            eprintln!(
                "{} lines: {} events, {} other packets, {} errors",
                stats.lines, stats.events, stats.other, stats.errors
            );
            if stats.errors > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
    }
}
