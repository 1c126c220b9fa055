//! coze-chat: placeholder until its issue lands; answers --help and --version.

use std::process::ExitCode;

use coze_core::cli::{self, Parsed};
use coze_core::Error;

const HELP: &str = "coze-chat: (not implemented yet)

USAGE:
    coze-chat [--help] [--version]
";

fn parse() -> coze_core::Result<Parsed<()>> {
    use lexopt::prelude::*;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next().map_err(cli::usage)? {
        match arg {
            Short('h') | Long("help") => return Ok(Parsed::Help),
            Short('V') | Long("version") => return Ok(Parsed::Version),
            _ => return Err(cli::usage(arg.unexpected())),
        }
    }
    Ok(Parsed::Run(()))
}

fn main() -> ExitCode {
    cli::run("coze-chat", || match parse()? {
        Parsed::Help => {
            print!("{HELP}");
            Ok(())
        }
        Parsed::Version => {
            println!(
                "{}",
                cli::version_text("coze-chat", option_env!("COZE_GIT_COMMIT"))
            );
            Ok(())
        }
        Parsed::Run(()) => Err(Error::usage("not implemented yet")),
    })
}
