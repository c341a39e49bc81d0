//! `sympozium`: parses the command line and runs it; errors are one line on stderr.

use clap::Parser;
use sympozium_cli::cli::Cli;

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let code = match sympozium_cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}
