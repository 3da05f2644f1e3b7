//! `rsvm-fwbuild`: writes the firmware image the driver loads.
//!
//! ```text
//! rsvm-fwbuild OUT [--version MAJOR.MINOR] [--engines copy,compute]
//! ```

use std::process::ExitCode;

use rsvm_firmware::{build, default_image, ENGINE_COMPUTE, ENGINE_COPY};

fn main() -> ExitCode {
    let mut img = default_image();
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--version" => {
                let v = args.next().unwrap_or_default();
                let parsed = v
                    .split_once('.')
                    .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
                match parsed {
                    Some(v) => img.version = v,
                    None => return usage(),
                }
            }
            "--engines" => {
                img.engines = 0;
                for e in args.next().unwrap_or_default().split(',') {
                    img.engines |= match e {
                        "copy" => ENGINE_COPY,
                        "compute" => ENGINE_COMPUTE,
                        _ => return usage(),
                    };
                }
            }
            _ if out.is_none() && !a.starts_with('-') => out = Some(a),
            _ => return usage(),
        }
    }
    let Some(out) = out else {
        return usage();
    };
    match std::fs::write(&out, build(&img)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rsvm-fwbuild: {out}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: rsvm-fwbuild OUT [--version MAJOR.MINOR] [--engines copy,compute]");
    ExitCode::from(2)
}
