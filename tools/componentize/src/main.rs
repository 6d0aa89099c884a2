//! `sockhost-componentize`: core wasm module → component of one world.
//!
//! A guest built with the SDK carries wit-bindgen's `component-type`
//! sections for every world the SDK knows, so the module alone does not say
//! which world it is. This tool drops those sections, embeds the metadata of
//! the one world named on the command line, resolved from the repository's
//! own `wit/` folder, and encodes and validates the component. The output
//! depends only on the input bytes, the WIT and this tool's version, which
//! is what lets CI rebuild `plugins/dist/` byte for byte.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Parser;
use wit_component::{ComponentEncoder, StringEncoding};
use wit_parser::Resolve;

#[derive(Parser, Debug)]
#[command(about = "Turn a core wasm module into a sockhost plugin component")]
struct Args {
    /// Folder of the WIT package (e.g. wit/0.1.0).
    #[arg(long)]
    wit: PathBuf,
    /// The world the component implements (extension, congestion-policy, …).
    #[arg(long)]
    world: String,
    /// The core module built for wasm32-unknown-unknown.
    input: PathBuf,
    /// Where to write the component.
    #[arg(short, long)]
    output: PathBuf,
}

fn main() {
    if let Err(e) = run(Args::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<()> {
    let module = std::fs::read(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    if wasmparser::Parser::is_component(&module) {
        bail!("{} is already a component", args.input.display());
    }
    if !wasmparser::Parser::is_core_wasm(&module) {
        bail!("{} is not a wasm module", args.input.display());
    }
    let mut resolve = Resolve::default();
    let (pkg, _) = resolve
        .push_dir(&args.wit)
        .with_context(|| format!("cannot read WIT from {}", args.wit.display()))?;
    let world = resolve
        .select_world(&[pkg], Some(&args.world))
        .with_context(|| format!("no world {:?} in {}", args.world, args.wit.display()))?;

    let mut module = strip_component_types(&module)?;
    wit_component::embed_component_metadata(
        &mut module,
        &resolve,
        world,
        StringEncoding::UTF8,
        false,
    )?;
    let mut encoder = ComponentEncoder::default();
    encoder.validate(true).module(&module)?;
    let component = encoder
        .encode()
        .with_context(|| format!("cannot make {} a component", args.input.display()))?;
    std::fs::write(&args.output, &component)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    Ok(())
}

/// The module without custom sections named `component-type*`.
fn strip_component_types(module: &[u8]) -> Result<Vec<u8>> {
    let mut out = wasm_encoder::Module::new();
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        let payload = payload.context("invalid wasm module")?;
        if let wasmparser::Payload::CustomSection(c) = &payload {
            if c.name().starts_with("component-type") {
                continue;
            }
        }
        if let Some((id, range)) = payload.as_section() {
            out.section(&wasm_encoder::RawSection {
                id,
                data: &module[range.start as usize..range.end as usize],
            });
        }
    }
    Ok(out.finish())
}
