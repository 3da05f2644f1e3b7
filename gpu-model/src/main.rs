//! `rsvm-gpu`: serves the rsvm GPU model to QEMU over vfio-user.
//!
//! ```text
//! rsvm-gpu --socket PATH [--vram-mib N]
//! ```
//! It serves one QEMU connection and exits when QEMU disconnects.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use rsvm_gpu::backend::Backend;
use rsvm_gpu::config::Config;
use rsvm_gpu::device::Gpu;
use vfio_user::Server;

fn usage() -> ExitCode {
    eprintln!(
        "usage: rsvm-gpu --socket PATH [--vram-mib N] [--vram-gbps X] [--link-gbps X] \
         [--fault-latency-us X] [--loose-tlb]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();

    let mut socket = None;
    let mut config = Config::default();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        if a == "--loose-tlb" {
            config.strict_tlb = false;
            continue;
        }
        let num = |v: Option<String>| v.and_then(|v| v.parse::<f64>().ok());
        match a.as_str() {
            "--socket" => match args.next() {
                Some(p) => socket = Some(PathBuf::from(p)),
                None => return usage(),
            },
            "--vram-mib" => match args.next().and_then(|n| n.parse::<u64>().ok()) {
                Some(n) => config.vram_size = n << 20,
                None => return usage(),
            },
            "--vram-gbps" => match num(args.next()) {
                Some(x) => config.timing.vram_gbps = x,
                None => return usage(),
            },
            "--link-gbps" => match num(args.next()) {
                Some(x) => config.timing.link_gbps = x,
                None => return usage(),
            },
            "--fault-latency-us" => match num(args.next()) {
                Some(x) => config.timing.fault_ns = x * 1000.0,
                None => return usage(),
            },
            _ => return usage(),
        }
    }
    let Some(socket) = socket else {
        return usage();
    };
    if let Err(e) = config.validate() {
        eprintln!("rsvm-gpu: {e}");
        return ExitCode::from(2);
    }

    let gpu = match Gpu::new(config) {
        Ok(g) => Arc::new(g),
        Err(e) => {
            eprintln!("rsvm-gpu: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut backend = Backend::new(gpu.clone());
    let _ = std::fs::remove_file(&socket);
    let server = match Server::new(&socket, true, Backend::irqs(), backend.regions()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("rsvm-gpu: cannot listen on {}: {e:?}", socket.display());
            return ExitCode::FAILURE;
        }
    };
    log::info!(
        "rsvm-gpu listening on {} ({} MiB VRAM)",
        socket.display(),
        gpu.config().vram_size >> 20
    );
    let engines = gpu.start_engines();
    let r = server.run(&mut backend);
    gpu.stop_engines();
    let _ = engines.join();
    let _ = std::fs::remove_file(&socket);
    match r {
        Ok(()) => {
            log::info!("client disconnected");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log::error!("vfio-user: {e:?}");
            ExitCode::FAILURE
        }
    }
}
