use std::process::ExitCode;

use clap::Parser as _;
use lodge::{
    Settings,
    cli::{Cli, Command},
};

/// mimalloc instead of glibc's allocator: under a login flood glibc's `malloc` and `free` took
/// 15 % of the request threads' CPU, and a token login cost 10-15 % more CPU (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Serve);
    let settings = match command {
        Command::Schema => Settings::default(),
        _ => match Settings::load(cli.config.as_deref()) {
            Ok(settings) => settings,
            Err(e) => {
                eprintln!("lodge: {e}");
                return ExitCode::from(2);
            }
        },
    };
    lodge::logging::init(&settings.log);
    match lodge::cli::run(command, settings).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lodge: {e:#}");
            let refused = e.downcast_ref::<lodge::cli::NoDatabase>().is_some()
                || e.downcast_ref::<lodge::cli::Refused>().is_some();
            match refused {
                true => ExitCode::from(2),
                false => ExitCode::FAILURE,
            }
        }
    }
}
