"""The exact 2-D hypervolume the benchmark scripts share: the area that `points` (both objectives
minimised) dominate below `reference`, as `study::pareto::hypervolume` computes it in Rust."""


def hypervolume(points, reference):
    boxes = sorted(((reference[0] - a, reference[1] - b) for a, b in points if a < reference[0] and b < reference[1]), key=lambda p: (-p[1], -p[0]))
    area, widest = 0.0, 0.0
    for w, h in boxes:
        if w > widest:
            area += (w - widest) * h
            widest = w
    return area
