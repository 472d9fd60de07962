//! Denormals flushed to zero while a step runs: trained weights drift into
//! denormal range, and x86 handles denormal operands ~100x slower. FTZ
//! (results) and DAZ (operands) are MXCSR bits; the guard restores the
//! caller's MXCSR when dropped.

pub struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = 0x8040;

impl FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    pub fn new() -> FlushDenormals {
        let mut saved = 0u32;
        // SAFETY: stmxcsr/ldmxcsr only move the SSE control word; the new
        // value differs from a valid one only in the FTZ/DAZ bits.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut saved as *mut u32, options(nostack));
            let new = saved | FTZ_DAZ;
            std::arch::asm!("ldmxcsr [{}]", in(reg) &new as *const u32, options(nostack, readonly));
        }
        FlushDenormals { saved }
    }

    #[cfg(not(target_arch = "x86_64"))]
    pub fn new() -> FlushDenormals {
        FlushDenormals {}
    }
}

impl Default for FlushDenormals {
    fn default() -> Self {
        FlushDenormals::new()
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: restores the value read in `new`.
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &self.saved as *const u32, options(nostack, readonly));
        }
    }
}
