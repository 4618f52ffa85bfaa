//! `kefu`: parse the command line, set up logging, run the command.

use kefu_server::cli::{Cli, Command, IntentCommand};

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let cli = match Cli::load(&args) {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("error: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEFU_LOG").unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("warn,kefu_server=info,tower_http=off")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    // The server runs one inference thread per request and gets its concurrency across requests;
    // batch commands (import) may use every core.
    // Intent and training commands run one embedding batch per core themselves, except encoder
    // fine-tuning: one training step at a time, whose matrix products use every core.
    let fine_tuning = matches!(
        cli.command,
        Command::Intent(IntentCommand::Train {
            fine_tune: true,
            ..
        })
    );
    if std::env::var_os("RAYON_NUM_THREADS").is_none()
        && !fine_tuning
        && matches!(
            cli.command,
            Command::Serve(_) | Command::Intent(_) | Command::Train(_)
        )
    {
        // candle reads this variable itself for its matrix products (there is no API for it), so
        // a rayon pool built here would not reach it; it is set before any thread starts.
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => kefu_server::commands::serve::run(&cli.config, args).await,
            Command::Kb(cmd) => kefu_server::commands::kb::run(&cli.config, cmd).await,
            Command::Agent(cmd) => kefu_server::commands::agent::run(&cli.config, cmd).await,
            Command::Site(cmd) => kefu_server::commands::site::run(&cli.config, cmd).await,
            Command::Webhook(cmd) => kefu_server::commands::webhook::run(&cli.config, cmd).await,
            Command::Visitor(cmd) => kefu_server::commands::privacy::erase(&cli.config, cmd).await,
            Command::Audit { limit, json } => {
                kefu_server::commands::privacy::audit(&cli.config, limit, json).await
            }
            Command::AdminKey { name } => {
                kefu_server::commands::admin_key(&cli.config, &name).await
            }
            Command::Intent(cmd) => kefu_server::commands::intent::run(&cli.config, cmd).await,
            Command::Train(cmd) => kefu_server::commands::train::run(&cli.config, cmd).await,
            Command::Loadtest(args) => kefu_server::commands::loadtest::run(args).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
