//! coze-auth: placeholder until its issue lands; answers --help and --version.

use std::process::ExitCode;

use coze_core::cli::{self, Parsed};
use coze_core::Error;

const HELP: &str = "coze-auth: (not implemented yet)

USAGE:
    coze-auth [--help] [--version]
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
    cli::run("coze-auth", || match parse()? {
        Parsed::Help => {
            print!("{HELP}");
            Ok(())
        }
        Parsed::Version => {
            println!(
                "{}",
                cli::version_text("coze-auth", option_env!("COZE_GIT_COMMIT"))
            );
            Ok(())
        }
        Parsed::Run(()) => Err(Error::usage("not implemented yet")),
    })
}
