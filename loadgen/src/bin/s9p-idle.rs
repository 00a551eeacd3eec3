//! The `s9p-idle` command line: what idle 9P sessions cost a server on
//! this machine, and whether it gives the memory back once they close
//! (`loadgen/README.md`, "s9p-idle"). Plain TCP only: the figure is the
//! server's cost of a connection, without a TLS session's.

use clap::Parser;
use s9p_load::cli::{self, Target, seconds};
use s9p_load::config::LoadConfig;
use s9p_load::fdlimit;
use s9p_load::idle::{IdleConfig, run};
use std::process::ExitCode;

/// Opens N idle 9P2000.L sessions (Tversion + Tattach) to a server, holds
/// them, reads the server's VmRSS, closes them and reads it again; a number
/// of rounds.
#[derive(Debug, Parser)]
#[command(name = "s9p-idle", version)]
struct Cli {
    #[command(flatten)]
    target: Target,
    /// The server's process id (its /proc/PID/status is read).
    #[arg(long)]
    server_pid: u32,
    /// Sessions per round.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Rounds.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds the sessions stay idle before the server's RSS is read.
    #[arg(long, default_value_t = 3.0)]
    hold: f64,
    /// Seconds after closing before the server's RSS is read.
    #[arg(long, default_value_t = 3.0)]
    settle: f64,
    /// Print the report as one line of JSON.
    #[arg(long)]
    json: bool,
}

fn config(cli: &Cli) -> Result<IdleConfig, String> {
    if cli.connections == 0 || cli.rounds == 0 {
        return Err(String::from(
            "--connections and --rounds must be at least 1",
        ));
    }
    Ok(IdleConfig {
        load: LoadConfig {
            uname: cli.target.uname.clone(),
            ..LoadConfig::new(cli.target.addr, cli.target.aname.clone())
        },
        connections: cli.connections,
        rounds: cli.rounds,
        hold: seconds("--hold", cli.hold)?,
        settle: seconds("--settle", cli.settle)?,
        server_pid: cli.server_pid,
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let cfg = match config(&cli) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("s9p-idle: {e}");
            return ExitCode::from(2);
        }
    };
    if let Err(e) = fdlimit::ensure(cfg.connections) {
        eprintln!("s9p-idle: {e}");
        return ExitCode::from(1);
    }
    let report = match cli::block_on("s9p-idle", run(&cfg)) {
        Ok(Ok(report)) => report,
        Ok(Err(e)) => {
            eprintln!("s9p-idle: {e}");
            return ExitCode::from(1);
        }
        Err(code) => return code,
    };
    if cli.json {
        if let Err(code) = cli::print_json("s9p-idle", &report) {
            return code;
        }
    } else {
        print!("{report}");
    }
    ExitCode::SUCCESS
}
