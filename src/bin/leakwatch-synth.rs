//! Writes synthetic test data (see `leakwatch::synth`): the demo scenario, or a large
//! combo list and directory for the benchmarks. Never real credentials.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "leakwatch-synth",
    about = "Synthetic directories and dumps for leakwatch's demo, tests and benchmarks."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The demo scenario: accounts.csv and dumps/ of every format, with planted accounts.
    Scenario {
        dir: PathBuf,
        #[arg(long, default_value_t = 2025)]
        seed: u64,
        #[arg(long, default_value_t = 24)]
        accounts: usize,
        /// Noise lines around the planted ones in each list.
        #[arg(long, default_value_t = 200)]
        noise: u64,
    },
    /// Stealer logs of every family (RedLine, META, Raccoon, Vidar, Lumma, StealC,
    /// RisePro, Mystic), each packed differently, with accounts.csv and a combo list.
    Stealer {
        dir: PathBuf,
        #[arg(long, default_value_t = 11)]
        seed: u64,
    },
    /// One dump of every shape leak sites publish (SQL, JSON, tables in any encoding,
    /// spreadsheets, text, combo variants) with planted accounts; `--hostile` adds broken
    /// ones under hostile/.
    Shapes {
        dir: PathBuf,
        #[arg(long, default_value_t = 15)]
        seed: u64,
        /// Accounts planted in each file.
        #[arg(long, default_value_t = 10)]
        per_file: usize,
        #[arg(long)]
        hostile: bool,
    },
    /// The shapes benchmark: a directory of N accounts, and a mysqldump, an NDJSON export
    /// and a Windows-1252 CSV of about SIZE megabytes each, and a workbook of XLSX_MB.
    ShapesBench {
        dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 100_000)]
        accounts: usize,
        #[arg(long, default_value_t = 1024)]
        size_mb: u64,
        #[arg(long, default_value_t = 200)]
        xlsx_mb: u64,
        #[arg(long, default_value_t = 200)]
        plant: usize,
    },
    /// A leak of the whole user base: a directory of N accounts and all.txt, a combo
    /// line for every one of them.
    Heavy {
        dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 100_000)]
        accounts: usize,
    },
    /// A directory of N accounts and a combo list of about SIZE megabytes.
    Bench {
        dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long, default_value_t = 100_000)]
        accounts: usize,
        #[arg(long, default_value_t = 1024)]
        size_mb: u64,
        #[arg(long, default_value_t = 100)]
        plant: usize,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Scenario {
            dir,
            seed,
            accounts,
            noise,
        } => {
            let s = leakwatch::synth::write_scenario(&dir, seed, accounts, noise)?;
            println!(
                "wrote {}: {} accounts; planted {} password, {} identity-only, {} unknown org identities",
                dir.display(),
                s.accounts.len(),
                s.expected.password.len(),
                s.expected.identity.len(),
                s.expected.unknown.len()
            );
        }
        Command::Stealer { dir, seed } => {
            let s = leakwatch::synth::stealer::write_scenario(&dir, seed)?;
            println!(
                "wrote {}: {} accounts; {} infected devices with org accounts or cookies; archive password {:?}",
                dir.display(),
                s.accounts.len(),
                s.devices.len(),
                s.archive_password
            );
        }
        Command::Shapes {
            dir,
            seed,
            per_file,
            hostile,
        } => {
            let s = leakwatch::synth::shapes::write_shapes(&dir, seed, per_file, hostile)?;
            let planted: usize = s.files.iter().map(|f| f.planted.len()).sum();
            println!(
                "wrote {}: {} accounts; {} dumps, {planted} accounts planted",
                dir.display(),
                s.accounts.len(),
                s.files.len()
            );
        }
        Command::ShapesBench {
            dir,
            seed,
            accounts,
            size_mb,
            xlsx_mb,
            plant,
        } => {
            let planted = leakwatch::synth::shapes::write_bench(
                &dir,
                seed,
                accounts,
                size_mb << 20,
                xlsx_mb << 20,
                plant,
            )?;
            println!(
                "wrote {}: {accounts} accounts, {size_mb} MiB of each shape, {xlsx_mb} MiB of sheet XML, {} planted",
                dir.display(),
                planted.len()
            );
        }
        Command::Heavy {
            dir,
            seed,
            accounts,
        } => {
            leakwatch::synth::write_heavy(&dir, seed, accounts)?;
            println!(
                "wrote {}: {accounts} accounts, all in all.txt",
                dir.display()
            );
        }
        Command::Bench {
            dir,
            seed,
            accounts,
            size_mb,
            plant,
        } => {
            let planted =
                leakwatch::synth::write_bench(&dir, seed, accounts, size_mb << 20, plant)?;
            println!(
                "wrote {}: {accounts} accounts, {size_mb} MiB combo list, {} planted",
                dir.display(),
                planted.len()
            );
        }
    }
    Ok(())
}
