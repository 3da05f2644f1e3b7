// SPDX-License-Identifier: GPL-2.0

//! rsvm: a DRM driver that gives a GPU shared virtual memory with the process
//! that uses it, through Linux HMM.
//!
//! The GPU's programming model is the documented subset of NVIDIA Volta
//! (GV100) described in `Documentation/gpu/rsvm/hardware.rst`.

mod ce;
mod debugfs;
mod driver;
mod fault;
mod fifo;
mod file;
mod fw;
mod gem;
mod gpu;
mod hmm;
mod hw;
mod irq;
mod mem;
mod mmu;
mod regs;
mod vm;

kernel::module_pci_driver! {
    type: driver::RsvmPciDriver,
    name: "rsvm",
    authors: ["rsvm developers"],
    description: "Rust DRM driver with HMM shared virtual memory",
    license: "GPL v2",
}

kernel::module_firmware!(fw::ModInfo);
