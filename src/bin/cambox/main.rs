//! The `cambox` command. It parses flags ([`args`]), hands them to the library as its own
//! option types, runs the subcommand ([`commands`]), and maps the outcome to an exit
//! status; nothing else lives here.
//!
//! Exit status: 0 every image ok; 3 the run completed but some images failed, or it found
//! no image at all; 1 a fatal error (bad configuration, model refused, output not
//! writable, output folder in use); 2 bad usage (clap's own, and every
//! [`cambox::ErrorKind::Usage`] the library raises); 130 interrupted by SIGINT or SIGTERM
//! (the next run in the same folder resumes).

#![forbid(unsafe_code)]

mod args;
mod commands;

use std::process::ExitCode;

use clap::Parser;

use args::{Cli, Command};

/// Exit statuses.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FATAL: u8 = 1;
pub const EXIT_USAGE: u8 = 2;
pub const EXIT_SOME_FAILED: u8 = 3;
pub const EXIT_INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    if let Err(e) = check_cpu() {
        eprintln!("cambox: error: {e}");
        return ExitCode::from(EXIT_FATAL);
    }
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(a) => commands::run(&a),
        Command::Merge(a) => commands::merge(&a),
        Command::Inspect(a) => commands::inspect(&a),
        Command::Eval(a) => commands::eval(a),
        Command::Faithfulness(a) => commands::faithfulness(&a),
        Command::Sanity(a) => commands::sanity(&a),
    };
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("cambox: error: {e:#}");
            let usage = e.downcast_ref::<cambox::Error>().is_some_and(|e| e.kind() == cambox::ErrorKind::Usage);
            ExitCode::from(if usage { EXIT_USAGE } else { EXIT_FATAL })
        }
    }
}

/// Refuses to go on, with a message, on a CPU without the instructions this binary was
/// compiled for (`.cargo/config.toml` builds for x86-64-v3), rather than die later of an
/// illegal instruction. Called first thing in `main`; it only reads CPUID.
#[inline(never)]
fn check_cpu() -> Result<(), String> {
    #[cfg(target_arch = "x86_64")]
    {
        let mut missing = Vec::new();
        if cfg!(target_feature = "avx2") && !std::arch::is_x86_feature_detected!("avx2") {
            missing.push("AVX2");
        }
        if cfg!(target_feature = "fma") && !std::arch::is_x86_feature_detected!("fma") {
            missing.push("FMA");
        }
        if cfg!(target_feature = "bmi2") && !std::arch::is_x86_feature_detected!("bmi2") {
            missing.push("BMI2");
        }
        if !missing.is_empty() {
            return Err(format!(
                "this cambox was built for x86-64-v3 but this CPU lacks {}; rebuild it with \
                 RUSTFLAGS=\"-C target-cpu=x86-64\" cargo build --release",
                missing.join(", ")
            ));
        }
    }
    Ok(())
}
