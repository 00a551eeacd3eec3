//! The `gpu-scale` command line: parse, raise the fd limit, run the scale
//! run of the hive's GPU side, print its report. Exit 0 when every check
//! passed, 1 when one failed or the run could not be made, 2 for a bad
//! command line.

use clap::Parser;
use s9p_load::cli;
use s9p_load::fdlimit;
use s9p_load::gpu_scale::config::{DEFAULT_LEASES, DEFAULT_SETTLE, DEFAULT_TIMEOUT};
use s9p_load::gpu_scale::{ScaleConfig, run};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Scale run of the hive's GPU side on 127.0.0.1: one ninedoor, N
/// `gpu-bridge-host --mock` processes sharing one bridge key; times `cohsh
/// ls /gpu` and `cohsh gpu top --once`, lease latency through /queen/ctl at
/// several fleet sizes and NineDoor's memory per bridge, then kills some
/// bridges with SIGKILL and checks that only their GPUs fail.
#[derive(Debug, Parser)]
#[command(name = "gpu-scale", version)]
struct Cli {
    /// Bridge processes in the full fleet.
    #[arg(long, default_value_t = 100)]
    bridges: usize,
    /// Mock GPUs per bridge (`gpu-bridge-host --gpus`).
    #[arg(long, default_value_t = 4)]
    gpus: usize,
    /// Fleet sizes (bridges) at which leases are measured, comma separated;
    /// the full fleet is always measured.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 10, 100])]
    steps: Vec<usize>,
    /// Leases per kind (any GPU, a named GPU) and fleet size.
    #[arg(long, default_value_t = DEFAULT_LEASES)]
    leases: usize,
    /// Memory of each measured lease, MiB.
    #[arg(long, default_value_t = 1024)]
    mem_mb: u32,
    /// Bridges killed with SIGKILL in the kill test (0: none).
    #[arg(long, default_value_t = 10)]
    kill: usize,
    /// Runs of each cohsh listing timed.
    #[arg(long, default_value_t = 10)]
    repeats: usize,
    /// Seconds a fresh NineDoor is left alone before its memory is read.
    #[arg(long, default_value_t = DEFAULT_SETTLE.as_secs_f64())]
    settle_s: f64,
    /// Seconds to wait for any one answer or process.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT.as_secs_f64())]
    timeout_s: f64,
    /// Where ninedoor, cohsh and gpu-bridge-host are [default: beside this binary].
    #[arg(long, value_name = "DIR")]
    bin_dir: Option<PathBuf>,
    /// Keep the run's directory (bridge key, hive config, every process's output).
    #[arg(long)]
    keep_dir: bool,
    /// Print the report as one line of JSON.
    #[arg(long)]
    json: bool,
}

fn seconds(s: f64) -> Duration {
    Duration::from_secs_f64(s.clamp(0.0, 86_400.0))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let bin_dir = cli.bin_dir.clone().or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(PathBuf::from))
    });
    let Some(bin_dir) = bin_dir else {
        eprintln!("gpu-scale: cannot tell where this binary is; give --bin-dir");
        return ExitCode::from(2);
    };
    let mut config = ScaleConfig::new(bin_dir);
    config.bridges = cli.bridges;
    config.gpus = cli.gpus;
    config.steps = cli.steps.clone();
    config.leases = cli.leases;
    config.mem_mb = cli.mem_mb;
    config.kill = cli.kill;
    config.repeats = cli.repeats;
    config.settle = seconds(cli.settle_s);
    config.timeout = seconds(cli.timeout_s);
    if let Err(e) = config.validate() {
        eprintln!("gpu-scale: {e}");
        return ExitCode::from(2);
    }
    // Every bridge link is a descriptor of NineDoor's, which inherits
    // this limit, as do the bridges.
    if let Err(e) = fdlimit::ensure(config.bridges * 2) {
        eprintln!("gpu-scale: {e}");
        return ExitCode::from(1);
    }
    let mut say = |line: &str| eprintln!("gpu-scale: {line}");
    let report = match cli::block_on("gpu-scale", run(&config, cli.keep_dir, &mut say)) {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            eprintln!("gpu-scale: {e}");
            return ExitCode::from(1);
        }
        Err(code) => return code,
    };
    if cli.json {
        if let Err(code) = cli::print_json("gpu-scale", &report) {
            return code;
        }
    } else {
        print!("{report}");
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
