//! The timing model: what the engines' work would take on the modelled
//! board. Functional results never depend on it; it drives the device clock
//! that semaphore timestamps and `USERMODE_TIME` report, so a job's
//! start/end timestamps measure modelled time, as on hardware.
//!
//! * Copy engine: each side moves its bytes over its path (VRAM bandwidth,
//!   or the link to system memory), the two sides overlap, and each side
//!   pays its access latency once per launch.
//! * Compute: instructions retire `lanes` at a time at `cycle_ns` each;
//!   memory traffic is charged by aperture like the copy engine's.
//! * Every reported fault costs `fault_ns`: the device's share of a fault
//!   round trip (report, replay); the driver's share is real guest time.

/// Timing parameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timing {
    /// VRAM bandwidth, GB/s (HBM2 on GV100: 900).
    pub vram_gbps: f64,
    /// VRAM access latency, ns.
    pub vram_latency_ns: f64,
    /// Link bandwidth to system memory, GB/s (PCIe 4.0 x16: 32).
    pub link_gbps: f64,
    /// System memory access latency over the link, ns.
    pub link_latency_ns: f64,
    /// Compute lanes that retire an instruction per cycle.
    pub lanes: u32,
    /// Compute cycle, ns.
    pub cycle_ns: f64,
    /// Device share of a fault round trip, ns.
    pub fault_ns: f64,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            vram_gbps: 900.0,
            vram_latency_ns: 500.0,
            link_gbps: 32.0,
            link_latency_ns: 1_000.0,
            lanes: 5120,
            cycle_ns: 0.7,
            fault_ns: 5_000.0,
        }
    }
}

/// Bytes an engine moved, by path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Traffic {
    pub vram: u64,
    pub sys: u64,
}

impl Traffic {
    pub fn add(&mut self, sysmem: bool, bytes: u64) {
        if sysmem {
            self.sys += bytes;
        } else {
            self.vram += bytes;
        }
    }
}

impl Timing {
    /// Checks that every parameter is positive and finite.
    pub fn validate(&self) -> Result<(), &'static str> {
        let all = [
            self.vram_gbps,
            self.vram_latency_ns,
            self.link_gbps,
            self.link_latency_ns,
            self.cycle_ns,
            self.fault_ns,
        ];
        if all.iter().all(|v| v.is_finite() && *v >= 0.0)
            && self.vram_gbps > 0.0
            && self.link_gbps > 0.0
            && self.lanes > 0
        {
            Ok(())
        } else {
            Err("timing parameters must be finite, bandwidths and lanes positive")
        }
    }

    fn side(&self, t: Traffic) -> f64 {
        let mut ns = 0.0;
        if t.vram > 0 {
            ns += self.vram_latency_ns + t.vram as f64 / self.vram_gbps;
        }
        if t.sys > 0 {
            ns += self.link_latency_ns + t.sys as f64 / self.link_gbps;
        }
        ns
    }

    /// A copy-engine launch: source and destination overlap.
    pub fn copy_ns(&self, read: Traffic, write: Traffic) -> u64 {
        self.side(read).max(self.side(write)).ceil() as u64
    }

    /// A compute run: instruction issue and memory traffic overlap.
    pub fn compute_ns(&self, instructions: u64, mem: Traffic) -> u64 {
        let issue = instructions as f64 / f64::from(self.lanes) * self.cycle_ns;
        issue.max(self.side(mem)).ceil() as u64
    }

    /// Faults reported.
    pub fn faults_ns(&self, faults: u64) -> u64 {
        (faults as f64 * self.fault_ns).ceil() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_time_follows_the_slower_path() {
        let t = Timing::default();
        let mib64 = 64 << 20;
        // 64 MiB sysmem -> VRAM: the 32 GB/s link dominates (~2.1 ms).
        let ns = t.copy_ns(
            Traffic {
                vram: 0,
                sys: mib64,
            },
            Traffic {
                vram: mib64,
                sys: 0,
            },
        );
        assert!((2_090_000..2_110_000).contains(&ns), "{ns}");
        // VRAM -> VRAM: ~75 us at 900 GB/s.
        let ns = t.copy_ns(
            Traffic {
                vram: mib64,
                sys: 0,
            },
            Traffic {
                vram: mib64,
                sys: 0,
            },
        );
        assert!((74_000..76_000).contains(&ns), "{ns}");
    }

    #[test]
    fn validation() {
        assert!(Timing::default().validate().is_ok());
        assert!(Timing {
            link_gbps: 0.0,
            ..Default::default()
        }
        .validate()
        .is_err());
        assert!(Timing {
            cycle_ns: f64::NAN,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
