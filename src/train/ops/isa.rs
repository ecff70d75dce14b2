//! Which vector instructions our kernels use: the widest this CPU has, capped by the environment
//! variable `SWEEP_CPU_FEATURES` (`avx512`, `avx2` or `portable`), so that the paths a CPU
//! without AVX-512 or AVX2 takes can be run and compared on one that has them. The cap applies
//! to our own kernels (`train::ops`); the `gemm` crate and burn choose their own.

use std::sync::OnceLock;

/// The environment variable that caps [`Isa::current`].
pub const ENV: &str = "SWEEP_CPU_FEATURES";

/// An instruction set our kernels have a path for, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust, which the compiler vectorises as the build's target allows.
    Portable,
    /// x86-64 with AVX2 and FMA: eight-lane registers.
    Avx2,
    /// x86-64 with AVX-512F (and AVX2, FMA): sixteen-lane registers.
    Avx512,
}

impl Isa {
    /// The widest set this CPU supports.
    pub fn detected() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") && has!("fma") {
                return if has!("avx512f") { Isa::Avx512 } else { Isa::Avx2 };
            }
        }
        Isa::Portable
    }

    /// What our kernels use in this process: [`Isa::detected`], capped by [`ENV`] when set (read
    /// once). An unknown value panics with the valid ones; `sweep` checks the variable with
    /// [`Isa::from_env`] before any training, so a user gets that as an error instead.
    pub fn current() -> Isa {
        static CURRENT: OnceLock<Isa> = OnceLock::new();
        *CURRENT.get_or_init(|| Isa::from_env().unwrap_or_else(|message| panic!("{message}")))
    }

    /// [`Isa::detected`] capped by [`ENV`], or what is wrong with its value.
    pub fn from_env() -> Result<Isa, String> {
        let detected = Isa::detected();
        match std::env::var(ENV) {
            Err(std::env::VarError::NotPresent) => Ok(detected),
            Err(std::env::VarError::NotUnicode(value)) => Err(Isa::invalid(&value.to_string_lossy())),
            Ok(value) => Isa::parse(&value).map(|cap| cap.min(detected)).ok_or_else(|| Isa::invalid(&value)),
        }
    }

    /// The set a value of [`ENV`] names (case-insensitive; `""` means no cap).
    pub fn parse(value: &str) -> Option<Isa> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "avx512" | "avx-512" => Some(Isa::Avx512),
            "avx2" => Some(Isa::Avx2),
            "portable" | "none" => Some(Isa::Portable),
            _ => None,
        }
    }

    fn invalid(value: &str) -> String {
        format!(
            "environment variable {ENV}={value:?} is not an instruction set: use avx512, avx2 or portable (or unset it for the widest this CPU has)"
        )
    }
}

/// The lanes below `n` of an eight-lane AVX2 register (all 8 from 8 up), as its masked loads and
/// stores take them: every bit of a lane set. The direct product and the weight gradient's dot
/// products read and write their last pixels with it, Winograd's transforms through
/// [`store_lanes_256`] and [`load_lanes_256`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn lane_mask_256(n: usize) -> std::arch::x86_64::__m256i {
    use std::arch::x86_64::*;
    _mm256_cmpgt_epi32(_mm256_set1_epi32(n.min(8) as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7))
}

/// Stores the lanes of `value` below `n` at `at`: a plain store where that is all 8, else a masked
/// one. AMD's Zen 3 (this project's benchmark machine) runs a masked store as many micro-ops, at
/// a fraction of a plain store's rate; Winograd's transforms store every vector this way.
///
/// # Safety
/// The CPU must have AVX2; `at..at + n.min(8)` must be writable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn store_lanes_256(at: *mut f32, n: usize, value: std::arch::x86_64::__m256) {
    use std::arch::x86_64::*;
    // SAFETY: the caller's promise.
    unsafe { if n >= 8 { _mm256_storeu_ps(at, value) } else { _mm256_maskstore_ps(at, lane_mask_256(n), value) } }
}

/// The lanes below `n` loaded from `at`, zero above: a plain load where that is all 8.
///
/// # Safety
/// The CPU must have AVX2; `at..at + n.min(8)` must be readable.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn load_lanes_256(at: *const f32, n: usize) -> std::arch::x86_64::__m256 {
    use std::arch::x86_64::*;
    // SAFETY: the caller's promise.
    unsafe { if n >= 8 { _mm256_loadu_ps(at) } else { _mm256_maskload_ps(at, lane_mask_256(n)) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_name_a_cap_and_the_cap_orders_the_sets() {
        assert_eq!(Isa::parse("AVX2"), Some(Isa::Avx2));
        assert_eq!(Isa::parse(" portable "), Some(Isa::Portable));
        assert_eq!(Isa::parse("avx512"), Some(Isa::Avx512));
        assert_eq!(Isa::parse(""), Some(Isa::Avx512));
        assert_eq!(Isa::parse("sse4"), None);
        assert!(Isa::Portable < Isa::Avx2 && Isa::Avx2 < Isa::Avx512);
        assert!(Isa::invalid("sse4").contains("SWEEP_CPU_FEATURES=\"sse4\""));
    }
}
