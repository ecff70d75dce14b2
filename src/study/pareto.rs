//! Several objectives at once: which trials dominate which, the fronts they fall into, how
//! crowded a front is around each trial, and the hypervolume a set of trials covers.
//!
//! A trial's values are one number per objective, each with its own [`Goal`]. `a` dominates `b`
//! when `a` is no worse than `b` by every objective and better by at least one. NaN (a diverged or
//! missing value) is worse than every number by [`Goal::order`], the crate's one order of values,
//! so a trial with a NaN never dominates one without and two NaNs tie.
//!
//! What is here is arithmetic over plain slices: the samplers (multi-objective TPE, NSGA-II), the
//! pruner that judges a trial by its Pareto rank at a rung and `sweep best`'s front all build on
//! it. Sizes are a sweep's (thousands of trials, two or three objectives): non-dominated sorting is
//! Deb's O(M N²), and the hypervolume exact by slicing, O(N^(M-1) log N).

use std::cmp::Ordering;

use crate::config::Goal;

/// Whether `a` dominates `b`: no worse by every objective of `goals`, better by one.
///
/// ```
/// use sweep::config::Goal::{Maximize, Minimize};
/// use sweep::study::pareto::dominates;
/// // IoU up, latency down: (0.9, 4 ms) dominates (0.8, 5 ms) but not (0.95, 9 ms).
/// let goals = [Maximize, Minimize];
/// assert!(dominates(&[0.9, 4.0], &[0.8, 5.0], &goals));
/// assert!(!dominates(&[0.9, 4.0], &[0.95, 9.0], &goals));
/// assert!(!dominates(&[0.9, 4.0], &[0.9, 4.0], &goals), "a tie dominates neither way");
/// ```
pub fn dominates(a: &[f64], b: &[f64], goals: &[Goal]) -> bool {
    debug_assert!(a.len() == goals.len() && b.len() == goals.len());
    let mut better = false;
    for ((&x, &y), goal) in a.iter().zip(b).zip(goals) {
        match goal.order(x, y) {
            Ordering::Greater => return false,
            Ordering::Less => better = true,
            Ordering::Equal => {}
        }
    }
    better
}

/// Non-dominated sorting: the indices of `points` by front, the first front (rank 0) the trials
/// that nothing dominates, the next those that only the first dominates, and so on. Every index
/// is in exactly one front; equal points share a front; within a front indices ascend.
pub fn fronts(points: &[Vec<f64>], goals: &[Goal]) -> Vec<Vec<usize>> {
    let n = points.len();
    // For each point, how many dominate it and which it dominates.
    let mut dominated_by = vec![0usize; n];
    let mut dominating: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in i + 1..n {
            if dominates(&points[i], &points[j], goals) {
                dominating[i].push(j);
                dominated_by[j] += 1;
            } else if dominates(&points[j], &points[i], goals) {
                dominating[j].push(i);
                dominated_by[i] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominating[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        fronts.push(std::mem::replace(&mut current, next));
    }
    fronts
}

/// Each point's front (0 for the non-dominated ones), in `points`' order.
pub fn ranks(points: &[Vec<f64>], goals: &[Goal]) -> Vec<usize> {
    let mut ranks = vec![0; points.len()];
    for (rank, front) in fronts(points, goals).iter().enumerate() {
        for &i in front {
            ranks[i] = rank;
        }
    }
    ranks
}

/// NSGA-II's crowding distance of each member of `front` (indices into `points`), in `front`'s
/// order: for each objective, the gap between a member's neighbours along it divided by the
/// front's extent, summed. The extremes of every objective get infinity, so they are kept first;
/// an objective on which the front does not spread (every value equal, or not a finite extent)
/// adds nothing and names no extreme. Equal values are ordered by index.
pub fn crowding(front: &[usize], points: &[Vec<f64>], goals: &[Goal]) -> Vec<f64> {
    let mut distance = vec![0.0; front.len()];
    if front.len() <= 2 {
        distance.fill(f64::INFINITY);
        return distance;
    }
    for (axis, goal) in goals.iter().enumerate() {
        let value = |k: usize| points[front[k]][axis];
        let mut order: Vec<usize> = (0..front.len()).collect();
        // Best first by this objective, NaN last; ties by index, so the result is deterministic.
        order.sort_by(|&a, &b| goal.order(value(a), value(b)).then(front[a].cmp(&front[b])));
        let (first, last) = (value(order[0]), value(order[order.len() - 1]));
        let extent = (last - first).abs();
        if !extent.is_finite() || extent == 0.0 {
            continue;
        }
        distance[order[0]] = f64::INFINITY;
        distance[order[order.len() - 1]] = f64::INFINITY;
        for w in order.windows(3) {
            let gap = (value(w[2]) - value(w[0])).abs() / extent;
            if gap.is_finite() {
                distance[w[1]] += gap;
            }
        }
    }
    distance
}

/// The hypervolume of `points` against `reference`: the measure of the region that some point
/// dominates and that dominates `reference` (each objective in its own direction). Points that
/// do not dominate the reference strictly by every objective (NaN included) add nothing. The
/// larger, the better the set; it only grows as points are added.
///
/// ```
/// use sweep::config::Goal::Minimize;
/// use sweep::study::pareto::hypervolume;
/// // Two boxes against (4, 4): 3x1 and 1x3, overlapping in 1x1.
/// assert_eq!(hypervolume(&[vec![1.0, 3.0], vec![3.0, 1.0]], &[Minimize, Minimize], &[4.0, 4.0]), 5.0);
/// ```
pub fn hypervolume(points: &[Vec<f64>], goals: &[Goal], reference: &[f64]) -> f64 {
    // To minimisation of the distance below the reference: each kept point becomes a box corner
    // in the positive orthant, of side `reference - x` (or `x - reference` when maximising).
    let boxes: Vec<Vec<f64>> = points
        .iter()
        .filter_map(|p| {
            p.iter()
                .zip(goals)
                .zip(reference)
                .map(|((&x, goal), &r)| {
                    let side = match goal {
                        Goal::Minimize => r - x,
                        Goal::Maximize => x - r,
                    };
                    (side > 0.0 && side.is_finite()).then_some(side)
                })
                .collect::<Option<Vec<f64>>>()
        })
        .collect();
    covered(boxes)
}

/// The measure of the union of boxes `[0, b]` (every side positive), by slicing along the last
/// axis: between consecutive box ends, the boxes that reach past the slice cover the union of
/// their lower-dimensional boxes.
fn covered(mut boxes: Vec<Vec<f64>>) -> f64 {
    let Some(dims) = boxes.first().map(Vec::len) else { return 0.0 };
    if dims == 1 {
        return boxes.iter().map(|b| b[0]).fold(0.0, f64::max);
    }
    if dims == 2 {
        // Longest first along y: each box adds its x beyond the widest so far, times its y.
        boxes.sort_by(|a, b| b[1].total_cmp(&a[1]).then(b[0].total_cmp(&a[0])));
        let mut area = 0.0;
        let mut widest: f64 = 0.0;
        for b in &boxes {
            if b[0] > widest {
                area += (b[0] - widest) * b[1];
                widest = b[0];
            }
        }
        return area;
    }
    // Deepest last: a slice from one end to the next is covered by every box at least as deep.
    boxes.sort_by(|a, b| b[dims - 1].total_cmp(&a[dims - 1]));
    let mut volume = 0.0;
    for k in 0..boxes.len() {
        let top = boxes[k][dims - 1];
        let bottom = boxes.get(k + 1).map_or(0.0, |b| b[dims - 1]);
        if top > bottom {
            let slice: Vec<Vec<f64>> = boxes[..=k].iter().map(|b| b[..dims - 1].to_vec()).collect();
            volume += covered(slice) * (top - bottom);
        }
    }
    volume
}

/// How much of `points`' hypervolume each point alone covers: the whole set's hypervolume less
/// the set's without it, in `points`' order. A dominated or duplicated point contributes 0.
pub fn contributions(points: &[Vec<f64>], goals: &[Goal], reference: &[f64]) -> Vec<f64> {
    let whole = hypervolume(points, goals, reference);
    (0..points.len())
        .map(|i| {
            let others: Vec<Vec<f64>> = points.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, p)| p.clone()).collect();
            (whole - hypervolume(&others, goals, reference)).max(0.0)
        })
        .collect()
}

/// A reference point for `points`: by each objective, its worst finite value pushed 10% of the
/// spread (or of its magnitude, or 1, when the values do not spread) past it, so every point
/// with finite values dominates it and the extremes still count. None when some objective has
/// no finite value.
pub fn nadir_reference(points: &[Vec<f64>], goals: &[Goal]) -> Option<Vec<f64>> {
    goals
        .iter()
        .enumerate()
        .map(|(axis, goal)| {
            let finite = points.iter().map(|p| p[axis]).filter(|v| v.is_finite());
            let (lo, hi) = finite.fold(None, |acc: Option<(f64, f64)>, v| Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v)))))?;
            let margin = if hi > lo {
                0.1 * (hi - lo)
            } else if hi != 0.0 {
                0.1 * hi.abs()
            } else {
                1.0
            };
            Some(match goal {
                Goal::Minimize => hi + margin,
                Goal::Maximize => lo - margin,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Goal::{Maximize as Max, Minimize as Min};

    fn pts(rows: &[&[f64]]) -> Vec<Vec<f64>> {
        rows.iter().map(|r| r.to_vec()).collect()
    }

    #[test]
    fn dominance_follows_each_objectives_direction_and_puts_nan_last() {
        assert!(dominates(&[1.0, 1.0], &[2.0, 1.0], &[Min, Min]));
        assert!(!dominates(&[1.0, 1.0], &[2.0, 1.0], &[Max, Min]));
        assert!(dominates(&[2.0, 1.0], &[1.0, 1.0], &[Max, Min]));
        assert!(!dominates(&[1.0, 2.0], &[2.0, 1.0], &[Min, Min]), "a trade-off");
        assert!(dominates(&[1.0, 1.0], &[1.0, f64::NAN], &[Min, Max]), "a NaN loses to any number");
        assert!(!dominates(&[1.0, f64::NAN], &[1.0, f64::NAN], &[Min, Min]), "two NaNs tie");
        assert!(!dominates(&[f64::NAN, 0.0], &[5.0, 9.0], &[Min, Min]));
    }

    #[test]
    fn fronts_of_a_hand_drawn_set_with_ties_duplicates_and_nan() {
        // Minimise both. By hand:
        //   0 (1,5), 1 (2,3), 2 (4,1) trade off: front 0; 3 (2,3) duplicates 1: front 0 too.
        //   4 (3,4) is dominated by 1 and 3 only: front 1; 5 (5,2) by 2: front 1.
        //   6 (4,5) by 1, 3 and 4: front 2.
        //   7 (NaN, 0): its NaN x loses to every x, its 0 beats every y: a trade-off with every
        //   numbered point, front 0.
        //   8 (NaN, NaN) is dominated by every numbered point (a number beats NaN on both) and
        //   by 7 (the NaNs tie, 0 beats NaN): the front after the deepest numbered one.
        let p = pts(&[
            &[1.0, 5.0],
            &[2.0, 3.0],
            &[4.0, 1.0],
            &[2.0, 3.0],
            &[3.0, 4.0],
            &[5.0, 2.0],
            &[4.0, 5.0],
            &[f64::NAN, 0.0],
            &[f64::NAN, f64::NAN],
        ]);
        let f = fronts(&p, &[Min, Min]);
        assert_eq!(f.len(), 4, "{f:?}");
        assert_eq!(f[0], [0, 1, 2, 3, 7]);
        assert_eq!(f[1], [4, 5]);
        assert_eq!(f[2], [6]);
        assert_eq!(f[3], [8]);
        assert_eq!(ranks(&p, &[Min, Min]), [0, 0, 0, 0, 1, 1, 2, 0, 3]);
    }

    #[test]
    fn fronts_under_mixed_directions_and_three_objectives() {
        // IoU up, latency down, size down.
        let p = pts(&[&[0.90, 5.0, 10.0], &[0.80, 5.0, 10.0], &[0.95, 9.0, 30.0], &[0.90, 5.0, 12.0], &[0.70, 2.0, 40.0]]);
        let f = fronts(&p, &[Max, Min, Min]);
        // 0 dominates 1 (better IoU) and 3 (smaller); 2 and 4 trade off with 0.
        assert_eq!(f, [vec![0, 2, 4], vec![1, 3]]);
        assert!(fronts(&[], &[Min]).is_empty());
        assert_eq!(fronts(&pts(&[&[3.0]]), &[Min]), [vec![0]]);
    }

    #[test]
    fn crowding_gives_the_extremes_infinity_and_the_inner_points_their_normalised_gaps() {
        // A front of four, minimise both: x 0, 1, 3, 4 and y 4, 3, 1, 0 (extents 4 and 4).
        let p = pts(&[&[0.0, 4.0], &[1.0, 3.0], &[3.0, 1.0], &[4.0, 0.0]]);
        let d = crowding(&[0, 1, 2, 3], &p, &[Min, Min]);
        assert_eq!(d[0], f64::INFINITY);
        assert_eq!(d[3], f64::INFINITY);
        // Point 1: neighbours 0 and 2 on each axis: 3/4 + 3/4. Point 2: neighbours 1 and 3: the same.
        assert!((d[1] - 1.5).abs() < 1e-12, "{d:?}");
        assert!((d[2] - 1.5).abs() < 1e-12, "{d:?}");
        // The same front maximising both has the same distances.
        assert_eq!(crowding(&[0, 1, 2, 3], &p, &[Max, Max]), d);
        // Two points, or an objective with no spread.
        assert_eq!(crowding(&[1, 2], &p, &[Min, Min]), [f64::INFINITY; 2]);
        let flat = pts(&[&[0.0, 1.0], &[1.0, 1.0], &[2.0, 1.0], &[3.0, 1.0]]);
        let d = crowding(&[0, 1, 2, 3], &flat, &[Min, Min]);
        // x: extent 3, gaps 2/3 for both inner points; y, with no spread, adds nothing.
        let inner = 2.0 / 3.0;
        assert_eq!(d, [f64::INFINITY, inner, inner, f64::INFINITY]);
        assert_eq!(crowding(&[0, 1, 2, 3], &flat, &[Min, Max]), d);
    }

    #[test]
    fn duplicates_are_neighbours_in_index_order() {
        let p = pts(&[&[0.0, 2.0], &[1.0, 1.0], &[1.0, 1.0], &[2.0, 0.0]]);
        let d = crowding(&[0, 1, 2, 3], &p, &[Min, Min]);
        assert!(d[0].is_infinite() && d[3].is_infinite());
        // Sorted by x (ties by index): 0, 1, 2, 3. Point 1's neighbours 0 and 2: 1/2; point 2's
        // 1 and 3: 1/2. By y: 3, 1, 2, 0 (ties by index): the same neighbours. Each 1.
        assert_eq!(&d[1..3], [1.0, 1.0]);
    }

    #[test]
    fn hypervolume_of_hand_computed_sets() {
        let r = [4.0, 4.0];
        // One box 3x3; then a staircase (1,3), (2,2), (3,1): by columns 1x3 + 1x2 + 1x1 = 6.
        assert_eq!(hypervolume(&pts(&[&[1.0, 1.0]]), &[Min, Min], &r), 9.0);
        assert_eq!(hypervolume(&pts(&[&[1.0, 3.0], &[2.0, 2.0], &[3.0, 1.0]]), &[Min, Min], &r), 6.0);
        // A dominated point, a duplicate, a point beyond the reference and a NaN add nothing.
        let noisy = pts(&[&[1.0, 3.0], &[2.0, 2.0], &[3.0, 1.0], &[3.0, 3.0], &[2.0, 2.0], &[5.0, 0.0], &[f64::NAN, 0.0]]);
        assert_eq!(hypervolume(&noisy, &[Min, Min], &r), 6.0);
        // On the reference's edge: no volume.
        assert_eq!(hypervolume(&pts(&[&[4.0, 0.0]]), &[Min, Min], &r), 0.0);
        // Maximise IoU against reference 0.5, minimise latency against 10 ms.
        let p = pts(&[&[0.9, 4.0], &[0.7, 2.0]]);
        // (0.4 x 6) + (0.2 x 8) - overlap (0.2 x 6) = 2.4 + 1.6 - 1.2 = 2.8.
        assert!((hypervolume(&p, &[Max, Min], &[0.5, 10.0]) - 2.8).abs() < 1e-12);
        assert_eq!(hypervolume(&[], &[Min, Min], &r), 0.0);
    }

    #[test]
    fn hypervolume_in_three_dimensions_is_the_union_of_the_boxes() {
        let r = [2.0, 2.0, 2.0];
        // Two unit-offset boxes of 2x2x1 and 1x1x2 (corners (0,0,1) and (1,1,0)): 4 + 2 - 1 = 5.
        let p = pts(&[&[0.0, 0.0, 1.0], &[1.0, 1.0, 0.0]]);
        assert_eq!(hypervolume(&p, &[Min, Min, Min], &r), 5.0);
        // Corners (0,1,1), (1,0,1), (1,1,0): boxes 2x1x1, 1x2x1, 1x1x2; by inclusion-exclusion
        // each 2, each pair overlaps in 1x1x1, the three in the same cube.
        let p = pts(&[&[0.0, 1.0, 1.0], &[1.0, 0.0, 1.0], &[1.0, 1.0, 0.0]]);
        assert_eq!(hypervolume(&p, &[Min, Min, Min], &r), 3.0 * 2.0 - 3.0 + 1.0);
        // Against a brute-force grid count on random integer points.
        let mut seed = 7u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) % 6) as f64
        };
        for _ in 0..30 {
            let p: Vec<Vec<f64>> = (0..6).map(|_| vec![next(), next(), next()]).collect();
            let mut cells = 0;
            for x in 0..6 {
                for y in 0..6 {
                    for z in 0..6 {
                        let c = [x as f64, y as f64, z as f64];
                        if p.iter().any(|q| q.iter().zip(&c).all(|(a, b)| a <= b)) {
                            cells += 1;
                        }
                    }
                }
            }
            assert_eq!(hypervolume(&p, &[Min, Min, Min], &[6.0, 6.0, 6.0]), cells as f64, "{p:?}");
        }
    }

    #[test]
    fn contributions_are_what_each_point_alone_covers() {
        let p = pts(&[&[1.0, 3.0], &[2.0, 2.0], &[3.0, 1.0], &[3.0, 3.0]]);
        // Against (4, 4): the staircase's corners each alone cover 1x1; the dominated point 0.
        assert_eq!(contributions(&p, &[Min, Min], &[4.0, 4.0]), [1.0, 1.0, 1.0, 0.0]);
        let twice = pts(&[&[1.0, 1.0], &[1.0, 1.0]]);
        assert_eq!(contributions(&twice, &[Min, Min], &[2.0, 2.0]), [0.0, 0.0], "a duplicate covers nothing alone");
    }

    #[test]
    fn the_nadir_reference_is_dominated_by_every_finite_point() {
        let p = pts(&[&[0.9, 4.0], &[0.7, 2.0], &[f64::NAN, 9.0]]);
        let r = nadir_reference(&p, &[Max, Min]).unwrap();
        assert!((r[0] - 0.68).abs() < 1e-12 && (r[1] - 9.7).abs() < 1e-12, "{r:?}");
        assert!(hypervolume(&p[..2], &[Max, Min], &r) > 0.0);
        assert_eq!(nadir_reference(&pts(&[&[2.0, 0.0]]), &[Min, Min]).unwrap(), [2.2, 1.0]);
        assert_eq!(nadir_reference(&pts(&[&[f64::NAN, 1.0]]), &[Min, Min]), None);
    }

    /// Small integer points (ties and duplicates likely), a NaN now and then, in 2 or 3
    /// objectives of random directions.
    fn sets() -> impl proptest::strategy::Strategy<Value = (Vec<Goal>, Vec<Vec<f64>>)> {
        use proptest::prelude::*;
        (2usize..=3).prop_flat_map(|dims| {
            let value = prop_oneof![9 => (0u8..6).prop_map(f64::from), 1 => Just(f64::NAN)];
            (
                prop::collection::vec(any::<bool>().prop_map(|max| if max { Max } else { Min }), dims),
                prop::collection::vec(prop::collection::vec(value, dims), 0..14),
            )
        })
    }

    proptest::proptest! {
        /// Deb's sorting agrees with the definition: a trial's front is 0 when nothing
        /// dominates it, else one past the deepest front of those that dominate it.
        #[test]
        fn fronts_agree_with_the_definition((goals, points) in sets()) {
            let ranks = ranks(&points, &goals);
            for i in 0..points.len() {
                let deepest = (0..points.len()).filter(|&j| dominates(&points[j], &points[i], &goals)).map(|j| ranks[j] + 1).max().unwrap_or(0);
                proptest::prop_assert_eq!(ranks[i], deepest, "point {} of {:?}", i, points);
            }
        }

        /// The hypervolume is the count of unit cells some point dominates (against 6 by each
        /// objective minimised, -1 by each maximised), equals its first front's, and a point
        /// added never lowers it.
        #[test]
        fn hypervolume_is_the_dominated_cells((goals, points) in sets()) {
            let reference: Vec<f64> = goals.iter().map(|g| if *g == Min { 6.0 } else { -1.0 }).collect();
            let dims = goals.len();
            let mut cells = 0usize;
            for cell in 0..6usize.pow(dims as u32) {
                // Cell k of an axis: [k, k + 1) when minimised (a point x covers it when x <= k),
                // [k - 1, k) when maximised (when x >= k). NaN covers nothing.
                let k: Vec<f64> = (0..dims).map(|d| ((cell / 6usize.pow(d as u32)) % 6) as f64).collect();
                let covered = points.iter().any(|p| {
                    p.iter().zip(&k).zip(&goals).all(|((&x, &k), g)| match g {
                        Min => x <= k,
                        Max => x >= k,
                    })
                });
                cells += usize::from(covered);
            }
            let whole = hypervolume(&points, &goals, &reference);
            proptest::prop_assert_eq!(whole, cells as f64, "{:?} {:?}", goals, points);
            let first: Vec<Vec<f64>> = fronts(&points, &goals).first().map(|f| f.iter().map(|&i| points[i].clone()).collect()).unwrap_or_default();
            proptest::prop_assert_eq!(hypervolume(&first, &goals, &reference), whole);
            for k in 0..points.len() {
                proptest::prop_assert!(hypervolume(&points[..k], &goals, &reference) <= hypervolume(&points[..=k], &goals, &reference));
            }
        }
    }
}
