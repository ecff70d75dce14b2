//! Matrix products on this thread, by the `gemm` crate: the one place our kernels call it
//! (im2col's product, the transposed convolution's, Winograd's sixteen).
//!
//! Each operand is given as (values, row stride, column stride), so a transposed or strided view
//! costs no copy; every product runs on the calling thread (`Parallelism::None`): the callers
//! split the work into units themselves, so each element is summed in one order whatever the
//! thread count.

/// `dst = lhs * rhs` (`m x k` times `k x n`; `dst` row-major with row stride `dst_rs`).
pub(super) fn product(m: usize, n: usize, k: usize, dst: &mut [f32], dst_rs: usize, lhs: (&[f32], usize, usize), rhs: (&[f32], usize, usize)) {
    check(m, n, k, dst.len(), dst_rs, lhs, rhs);
    // SAFETY: every element the strides address lies inside its slice (checked above).
    unsafe { call(m, n, k, dst.as_mut_ptr(), dst_rs, false, lhs, rhs) }
}

/// `dst += lhs * rhs`, as [`product`].
pub(super) fn product_add(m: usize, n: usize, k: usize, dst: &mut [f32], dst_rs: usize, lhs: (&[f32], usize, usize), rhs: (&[f32], usize, usize)) {
    check(m, n, k, dst.len(), dst_rs, lhs, rhs);
    // SAFETY: as in `product`; dst's values are initialised (a slice).
    unsafe { call(m, n, k, dst.as_mut_ptr(), dst_rs, true, lhs, rhs) }
}

/// `dst += lhs * rhs` into a destination shared with other threads (each writing other rows or
/// columns of it), as [`product_add`].
///
/// # Safety
/// `dst` must address `m` initialised rows of `n` values, `dst_rs` apart, that no other thread
/// reads or writes meanwhile.
pub(super) unsafe fn product_add_into(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
) {
    check(m, n, k, reach((m, n), (dst_rs, 1)), dst_rs, lhs, rhs);
    // SAFETY: the caller's promise for dst; the operands are checked above.
    unsafe { call(m, n, k, dst, dst_rs, true, lhs, rhs) }
}

/// How far into its buffer a `rows x cols` matrix with strides `(rs, cs)` reaches.
fn reach((rows, cols): (usize, usize), (rs, cs): (usize, usize)) -> usize {
    if rows == 0 || cols == 0 { 0 } else { (rows - 1) * rs + (cols - 1) * cs + 1 }
}

fn check(m: usize, n: usize, k: usize, dst_len: usize, dst_rs: usize, lhs: (&[f32], usize, usize), rhs: (&[f32], usize, usize)) {
    assert!(dst_len >= reach((m, n), (dst_rs, 1)), "matrix product: destination {m} x {n} (row stride {dst_rs}) in {dst_len} values");
    assert!(lhs.0.len() >= reach((m, k), (lhs.1, lhs.2)), "matrix product: left operand {m} x {k} in {} values", lhs.0.len());
    assert!(rhs.0.len() >= reach((k, n), (rhs.1, rhs.2)), "matrix product: right operand {k} x {n} in {} values", rhs.0.len());
}

/// # Safety
/// `dst` addresses the `m x n` matrix of row stride `dst_rs` (initialised where `accumulate`);
/// the operands hold the matrices their strides describe.
#[allow(clippy::too_many_arguments)]
unsafe fn call(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: usize,
    accumulate: bool,
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
) {
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the caller's promise. `gemm` computes dst = alpha * dst + beta * lhs * rhs, reading
    // dst only when asked to; each stride pair is (column stride, row stride).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_rs as isize,
            accumulate,
            lhs.0.as_ptr(),
            lhs.2 as isize,
            lhs.1 as isize,
            rhs.0.as_ptr(),
            rhs.2 as isize,
            rhs.1 as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Transposed and strided views against the product written out.
    #[test]
    fn products_read_every_view_and_accumulate_when_asked() {
        // lhs 2x3 stored transposed (3x2 row-major): lhs[i][p] = t[p * 2 + i].
        let t = [1.0, 4.0, 2.0, 5.0, 3.0, 6.0];
        // rhs 3x2 row-major with row stride 3 (a column of padding).
        let r = [7.0, 8.0, 0.0, 9.0, 10.0, 0.0, 11.0, 12.0];
        let mut dst = [1.0; 4];
        product(2, 2, 3, &mut dst, 2, (&t, 1, 2), (&r, 3, 1));
        assert_eq!(dst, [58.0, 64.0, 139.0, 154.0]);
        product_add(2, 2, 3, &mut dst, 2, (&t, 1, 2), (&r, 3, 1));
        assert_eq!(dst, [116.0, 128.0, 278.0, 308.0]);
    }

    #[test]
    #[should_panic(expected = "right operand")]
    fn an_operand_too_short_is_refused() {
        let mut dst = [0.0; 4];
        product(2, 2, 3, &mut dst, 2, (&[0.0; 6], 3, 1), (&[0.0; 5], 2, 1));
    }
}
