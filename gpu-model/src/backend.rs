//! vfio-user glue: PCI regions, DMA windows, interrupts and reset.

use std::fs::File;
use std::io;
use std::mem::size_of;
use std::os::fd::AsRawFd;
use std::sync::Arc;

use vfio_bindings::bindings::vfio::*;
use vfio_user::{DmaMapFlags, DmaUnmapFlags, IrqInfo, ServerBackend, ServerRegion, SparseArea};

use crate::device::Gpu;
use crate::irq::MSIX_VECTORS;
use crate::pci::{self, CONFIG_SIZE, MSIX_PBA, MSIX_TABLE};
use crate::regs::BAR0_SIZE;

/// VFIO region index of the VRAM aperture (BAR1; BAR2 is its upper half).
pub const VRAM_REGION: u32 = VFIO_PCI_BAR1_REGION_INDEX;

/// The vfio-user backend of one device.
pub struct Backend {
    gpu: Arc<Gpu>,
    config: [u8; CONFIG_SIZE],
}

impl Backend {
    pub fn new(gpu: Arc<Gpu>) -> Self {
        Self {
            gpu,
            config: pci::config_space(),
        }
    }

    /// The regions to announce to the client.
    pub fn regions(&self) -> Vec<ServerRegion> {
        (0..VFIO_PCI_NUM_REGIONS)
            .map(|index| {
                let mut info = vfio_region_info {
                    argsz: size_of::<vfio_region_info>() as u32,
                    index,
                    ..Default::default()
                };
                let rw = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
                let mut sparse_areas = Vec::new();
                let mut mmap_fd = None;
                match index {
                    VFIO_PCI_CONFIG_REGION_INDEX => {
                        info.size = CONFIG_SIZE as u64;
                        info.flags = rw;
                    }
                    VFIO_PCI_BAR0_REGION_INDEX => {
                        info.size = BAR0_SIZE;
                        info.flags = rw;
                    }
                    VRAM_REGION => {
                        // BARs are powers of two; VRAM need not be. The
                        // aperture's tail past VRAM traps to the model.
                        info.size = self.gpu.vram.size().next_power_of_two();
                        info.flags = rw | VFIO_REGION_INFO_FLAG_MMAP;
                        // The fd is only sent with sparse areas: one covers VRAM.
                        sparse_areas.push(SparseArea {
                            area: vfio_region_sparse_mmap_area {
                                offset: 0,
                                size: self.gpu.vram.size(),
                            },
                        });
                        mmap_fd = Some(self.gpu.vram.file().as_raw_fd());
                    }
                    _ => {}
                }
                ServerRegion {
                    region_info: info,
                    sparse_areas,
                    mmap_fd,
                }
            })
            .collect()
    }

    /// The interrupts to announce to the client.
    pub fn irqs() -> Vec<IrqInfo> {
        (0..VFIO_PCI_NUM_IRQS)
            .map(|index| {
                let (count, flags) = match index {
                    VFIO_PCI_INTX_IRQ_INDEX => (
                        1,
                        VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED,
                    ),
                    VFIO_PCI_MSIX_IRQ_INDEX => {
                        (MSIX_VECTORS, VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE)
                    }
                    _ => (0, 0),
                };
                IrqInfo {
                    index,
                    count,
                    flags,
                }
            })
            .collect()
    }

    fn in_msix(offset: u64) -> bool {
        let table = u64::from(MSIX_TABLE)..u64::from(MSIX_TABLE) + 16 * u64::from(MSIX_VECTORS);
        let pba = u64::from(MSIX_PBA)..u64::from(MSIX_PBA) + 8;
        table.contains(&offset) || pba.contains(&offset)
    }

    fn bar0_read(&self, offset: u64, data: &mut [u8]) -> io::Result<()> {
        if Self::in_msix(offset) {
            // QEMU emulates the table; no vector is ever left pending.
            data.fill(0);
            return Ok(());
        }
        match data.len() {
            4 if offset.is_multiple_of(4) => {
                data.copy_from_slice(&self.gpu.bar0_read(offset).to_le_bytes())
            }
            8 if offset.is_multiple_of(4) => {
                data[..4].copy_from_slice(&self.gpu.bar0_read(offset).to_le_bytes());
                data[4..].copy_from_slice(&self.gpu.bar0_read(offset + 4).to_le_bytes());
            }
            1 | 2 => {
                let v = self.gpu.bar0_read(offset & !3).to_le_bytes();
                let at = (offset & 3) as usize;
                data.copy_from_slice(
                    v.get(at..at + data.len())
                        .ok_or(io::ErrorKind::InvalidInput)?,
                );
            }
            n => {
                log::warn!("BAR0: {n}-byte read at {offset:#x} refused");
                data.fill(0xff);
            }
        }
        Ok(())
    }

    fn bar0_write(&self, offset: u64, data: &[u8]) {
        if Self::in_msix(offset) {
            return;
        }
        match data.len() {
            4 if offset.is_multiple_of(4) => self
                .gpu
                .bar0_write(offset, u32::from_le_bytes(data.try_into().unwrap())),
            8 if offset.is_multiple_of(4) => {
                self.gpu
                    .bar0_write(offset, u32::from_le_bytes(data[..4].try_into().unwrap()));
                self.gpu.bar0_write(
                    offset + 4,
                    u32::from_le_bytes(data[4..].try_into().unwrap()),
                );
            }
            n => log::warn!("BAR0: {n}-byte write at {offset:#x} ignored (registers are 32-bit)"),
        }
    }
}

impl ServerBackend for Backend {
    fn region_read(&mut self, region: u32, offset: u64, data: &mut [u8]) -> io::Result<()> {
        match region {
            VFIO_PCI_CONFIG_REGION_INDEX => {
                let o = offset as usize;
                let src = self
                    .config
                    .get(o..o + data.len())
                    .ok_or(io::ErrorKind::InvalidInput)?;
                data.copy_from_slice(src);
                Ok(())
            }
            VFIO_PCI_BAR0_REGION_INDEX => self.bar0_read(offset, data),
            VRAM_REGION if offset >= self.gpu.vram.size() => {
                data.fill(0);
                Ok(())
            }
            VRAM_REGION => self.gpu.vram.read(offset, data),
            _ => Err(io::ErrorKind::InvalidInput.into()),
        }
    }

    fn region_write(&mut self, region: u32, offset: u64, data: &[u8]) -> io::Result<()> {
        match region {
            VFIO_PCI_CONFIG_REGION_INDEX => {
                let o = offset as usize;
                // BARs and the capability are virtualised by QEMU; IDs are
                // read-only. Keep what else the guest writes (command...).
                let ro = o < 4 || (0x08..0x30).contains(&o) || o >= pci::MSIX_CAP;
                if !ro {
                    let dst = self
                        .config
                        .get_mut(o..o + data.len())
                        .ok_or(io::ErrorKind::InvalidInput)?;
                    dst.copy_from_slice(data);
                }
                Ok(())
            }
            VFIO_PCI_BAR0_REGION_INDEX => {
                self.bar0_write(offset, data);
                Ok(())
            }
            VRAM_REGION if offset >= self.gpu.vram.size() => Ok(()),
            VRAM_REGION => self.gpu.vram.write(offset, data),
            _ => Err(io::ErrorKind::InvalidInput.into()),
        }
    }

    fn dma_map(
        &mut self,
        _flags: DmaMapFlags,
        offset: u64,
        address: u64,
        size: u64,
        fd: Option<File>,
    ) -> io::Result<()> {
        match fd {
            Some(f) => {
                log::info!("DMA window {address:#x}+{size:#x}");
                self.gpu.dma.map(address, size, &f, offset)
            }
            None => {
                // ROM, BIOS, or a BAR: not guest RAM, not reachable by DMA.
                log::debug!("DMA window {address:#x}+{size:#x} without memory, ignored");
                Ok(())
            }
        }
    }

    fn dma_unmap(&mut self, _flags: DmaUnmapFlags, address: u64, size: u64) -> io::Result<()> {
        log::info!("DMA unmap {address:#x}+{size:#x}");
        self.gpu.dma.unmap(address, size);
        Ok(())
    }

    fn reset(&mut self) -> io::Result<()> {
        log::info!("device reset");
        self.gpu.reset();
        Ok(())
    }

    fn set_irqs(
        &mut self,
        index: u32,
        flags: u32,
        start: u32,
        count: u32,
        fds: Vec<File>,
    ) -> io::Result<()> {
        log::info!(
            "set_irqs index={index} flags={flags:#x} start={start} count={count} fds={}",
            fds.len()
        );
        if index != VFIO_PCI_MSIX_IRQ_INDEX {
            // INTx is announced because QEMU expects it; the device never asserts it.
            return Ok(());
        }
        if flags & VFIO_IRQ_SET_DATA_EVENTFD != 0 && flags & VFIO_IRQ_SET_ACTION_TRIGGER != 0 {
            self.gpu.msix.set(start, fds.into_iter().map(Some));
        } else if flags & VFIO_IRQ_SET_DATA_NONE != 0 && count == 0 {
            self.gpu.msix.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn regions_describe_the_bars() {
        let gpu = Arc::new(
            Gpu::new(Config {
                vram_size: 48 << 20,
                ..Default::default()
            })
            .unwrap(),
        );
        let mut b = Backend::new(gpu);
        let r = b.regions();
        assert_eq!(
            r[VFIO_PCI_BAR0_REGION_INDEX as usize].region_info.size,
            BAR0_SIZE
        );
        let vram = &r[VRAM_REGION as usize];
        assert_eq!(
            vram.region_info.size,
            64 << 20,
            "rounded up to a power of two"
        );
        assert!(vram.mmap_fd.is_some() && vram.sparse_areas.len() == 1);
        assert_eq!(vram.sparse_areas[0].area.size, 48 << 20);
        let mut d = [0xffu8; 4];
        b.region_write(VRAM_REGION, 50 << 20, &[1, 2, 3, 4])
            .unwrap();
        b.region_read(VRAM_REGION, 50 << 20, &mut d).unwrap();
        assert_eq!(d, [0; 4], "past VRAM: reads zero, writes dropped");
        assert_eq!(
            r[VFIO_PCI_BAR2_REGION_INDEX as usize].region_info.size, 0,
            "BAR1 upper half"
        );
    }

    #[test]
    fn sub_word_bar0_reads() {
        let gpu = Arc::new(Gpu::new(Config::default()).unwrap());
        let mut b = Backend::new(gpu);
        let mut w = [0u8; 4];
        b.region_read(VFIO_PCI_BAR0_REGION_INDEX, 0, &mut w)
            .unwrap();
        let mut h = [0u8; 2];
        b.region_read(VFIO_PCI_BAR0_REGION_INDEX, 2, &mut h)
            .unwrap();
        assert_eq!(h, [w[2], w[3]]);
    }

    #[test]
    fn config_ids_are_read_only() {
        let gpu = Arc::new(Gpu::new(Config::default()).unwrap());
        let mut b = Backend::new(gpu);
        b.region_write(VFIO_PCI_CONFIG_REGION_INDEX, 0, &[0, 0])
            .unwrap();
        b.region_write(VFIO_PCI_CONFIG_REGION_INDEX, 4, &[6, 0])
            .unwrap();
        let mut v = [0u8; 2];
        b.region_read(VFIO_PCI_CONFIG_REGION_INDEX, 0, &mut v)
            .unwrap();
        assert_eq!(u16::from_le_bytes(v), pci::VENDOR_ID);
        b.region_read(VFIO_PCI_CONFIG_REGION_INDEX, 4, &mut v)
            .unwrap();
        assert_eq!(v, [6, 0], "command register keeps what the guest wrote");
    }
}
