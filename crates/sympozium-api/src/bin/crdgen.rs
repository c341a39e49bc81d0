//! Writes the CRD YAML of every Sympozium kind into a directory (default `deploy/crds`),
//! or with `--check` reports files that differ from what the code generates.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;

/// Generate Sympozium CRD manifests.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Directory the YAML files are written to.
    #[arg(long, default_value = "deploy/crds", env = "SYMPOZIUM_CRD_DIR")]
    out: PathBuf,
    /// Only compare; exit non-zero when a file is missing or stale.
    #[arg(long)]
    check: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let files = sympozium_api::crds::rendered().context("rendering CRDs")?;
    if args.check {
        let stale: Vec<_> = files
            .iter()
            .filter(|(name, yaml)| {
                std::fs::read_to_string(args.out.join(name)).ok().as_deref() != Some(yaml.as_str())
            })
            .map(|(name, _)| name.clone())
            .collect();
        if !stale.is_empty() {
            bail!("CRDs out of date in {}: {} (run `make crds`)", args.out.display(), stale.join(", "));
        }
        println!("{} CRDs up to date in {}", files.len(), args.out.display());
        return Ok(());
    }
    std::fs::create_dir_all(&args.out).with_context(|| format!("creating {}", args.out.display()))?;
    for (name, yaml) in &files {
        let path = args.out.join(name);
        std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}
