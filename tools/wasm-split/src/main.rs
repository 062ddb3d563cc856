//! `wasm-split <app.wasm> <pkg dir> <main out.wasm>`: splits the app's wasm
//! (linked with `--emit-relocs`) at its `#[lazy]` functions: writes one
//! module per lazy route and the chunks they share into `<pkg dir>`, with
//! the loader (`__wasm_split.______________________.js`, the name Leptos's
//! `HydrationScripts` expects) and `__wasm_split_manifest.json` (which
//! modules each lazy function needs, for the server's preload hints), and
//! the main module to `<main out.wasm>` for wasm-bindgen.

use std::path::PathBuf;

use anyhow::{bail, Context};

fn main() -> anyhow::Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [input, pkg, main_out] = args.as_slice() else {
        bail!("usage: wasm-split <app.wasm> <pkg dir> <main out.wasm>");
    };
    let wasm = std::fs::read(input).with_context(|| format!("reading {}", input.display()))?;
    let mut options = wasm_split_cli_support::Options::new(&wasm);
    options.output_dir = pkg;
    options.main_out_path = main_out;
    options.main_module = "./app.js";
    options.link_name = "./__wasm_split.______________________.js";
    let split = wasm_split_cli_support::transform(options)
        .map_err(|e| anyhow::anyhow!("{e:?}"))
        .context("splitting the wasm")?;
    let manifest = pkg.join("__wasm_split_manifest.json");
    std::fs::write(
        &manifest,
        serde_json::to_string_pretty(&split.prefetch_map)?,
    )
    .with_context(|| format!("writing {}", manifest.display()))?;
    for module in &split.split_modules {
        eprintln!("split module {}", module.display());
    }
    Ok(())
}
