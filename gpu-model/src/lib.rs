//! Functional model of the rsvm GPU.
//!
//! The device is the documented subset of NVIDIA Volta (GV100) that shared
//! virtual memory needs, specified in `Documentation/gpu/rsvm/hardware.rst`.
//! It is served to a QEMU guest over vfio-user: BAR0 accesses arrive as
//! messages, the VRAM aperture (BAR1) is a memfd QEMU maps into the guest,
//! guest RAM is shared with the model for DMA, and interrupts leave through
//! MSI-X eventfds.
//!
//! The crate is a library so that host-side tests can drive the device
//! without a guest; `main.rs` is the vfio-user server.

pub mod backend;
pub mod boot;
pub mod ce;
pub mod compute;
pub mod config;
pub mod device;
pub mod dma;
pub mod fault;
pub mod fifo;
pub mod irq;
pub mod mem;
pub mod mmu;
pub mod pci;
pub mod regs;
pub mod timing;
pub mod vram;
