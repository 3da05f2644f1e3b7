#!/usr/bin/env python3
"""The driver's import graph between rooms: a room is a top-level module
and its own submodules (`fifo.rs` + `fifo/*.rs`), which may use each other;
between rooms, which uses which (`use crate::...` and `crate::x::y`
paths), its cycles, and a drawing.

    scripts/imports.py            print the edges and any cycle
    scripts/imports.py --svg F    also draw it, floor by floor, as SVG to F

Exits 1 if rooms import each other in a circle, other than the
drm::Driver triangle (driver, file, gem) that every DRM driver has.
"""
import os
import re
import sys

import rust_use

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRV = os.path.join(TOP, "drivers/gpu/drm/rsvm")
ROOT = "rsvm_drv.rs"
# Not part of the driver's module tree.
SKIP = {"rsvm_hmm_test.rs"}
ALLOWED = {"driver", "file", "gem"}


def modules():
    """Module path ('vm::layout') -> file, for every file of the driver."""
    mods = {}
    for dirpath, _, files in os.walk(DRV):
        for f in files:
            if not f.endswith(".rs") or f in SKIP or f == ROOT:
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), DRV)[:-3]
            mods[rel.replace(os.sep, "::")] = os.path.join(dirpath, f)
    return mods


def strip_comments(src):
    return re.sub(r"//[^\n]*", "", src)


def use_paths(src):
    """Every `crate::a::b` path, with `use` groups expanded."""
    out = []
    src = strip_comments(src)
    for m in re.finditer(r"\buse\s+((?:crate|super)::[^;]*);", src, re.S):
        out += rust_use.paths(rust_use.parse(m.group(1).replace("\n", " ")))
    for m in re.finditer(r"\b((?:crate|super)(?:::\w+)+)", src):
        out.append(m.group(1))
    return out


def resolve(path, here, mods):
    """The module (a key of `mods`) a path names, or None."""
    segs = path.split("::")
    if segs[0] == "crate":
        segs = segs[1:]
    elif segs[0] == "super":
        base = here.split("::")[:-1]
        while segs and segs[0] == "super":
            segs = segs[1:]
            base = base[:-1] if segs and segs[0] == "super" else base
        segs = base + segs
    best = None
    for n in range(1, len(segs) + 1):
        cand = "::".join(segs[:n])
        if cand in mods:
            best = cand
    return best


def graph():
    """Rooms (top-level module -> its files) and the edges between rooms."""
    mods = modules()
    rooms, edges = {}, set()
    for mod, path in mods.items():
        room = mod.split("::")[0]
        rooms.setdefault(room, []).append(mod)
        with open(path) as f:
            src = f.read()
        for p in use_paths(src):
            dst = resolve(p, mod, mods)
            if dst and dst.split("::")[0] != room:
                edges.add((room, dst.split("::")[0]))
    return rooms, edges


def cycles(nodes, edges):
    """Strongly connected components with more than one node (Tarjan)."""
    succ = {n: [b for a, b in edges if a == n] for n in nodes}
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in succ[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for n in sorted(nodes):
        if n not in index:
            visit(n)
    return out


def floors(nodes, edges):
    """Floor of each node: 0 for what imports nothing, else one above the
    highest floor it imports (the drm::Driver triangle is one floor)."""
    succ = {n: [b for a, b in edges if a == n and not (a in ALLOWED and b in ALLOWED)]
            for n in nodes}
    memo = {}

    def floor(n, seen=()):
        if n in memo:
            return memo[n]
        if n in seen:
            return 0
        f = 1 + max((floor(m, seen + (n,)) for m in succ[n]), default=-1)
        memo[n] = f
        return f

    out = {n: floor(n) for n in nodes}
    top = max(out[n] for n in ALLOWED & set(nodes))
    for n in ALLOWED & set(nodes):
        out[n] = top
    return out


def svg(mods, edges):
    """The graph drawn floor by floor, top floor first."""
    from xml.sax.saxutils import escape

    fl = floors(mods, edges)
    rows = {}
    for n in sorted(mods):
        rows.setdefault(fl[n], []).append(n)
    box_w, box_h, gap_x, gap_y, pad = 170, 40, 18, 50, 20
    width = pad * 2 + max(len(r) for r in rows.values()) * (box_w + gap_x)
    height = pad * 2 + 30 + len(rows) * (box_h + gap_y)
    pos = {}
    for i, level in enumerate(sorted(rows, reverse=True)):
        row = rows[level]
        x0 = (width - len(row) * (box_w + gap_x) + gap_x) / 2
        for j, n in enumerate(row):
            pos[n] = (x0 + j * (box_w + gap_x), pad + 30 + i * (box_h + gap_y))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           'font-family="monospace" font-size="12">',
           f'<rect width="{width:.0f}" height="{height:.0f}" fill="white"/>',
           '<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
           'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#5b6b8c"/></marker></defs>',
           f'<text x="{pad}" y="{pad + 8}" font-family="sans-serif" font-size="14" font-weight="bold">'
           'rsvm: which room (a module and its submodules) uses which; arrows point to what is used</text>']
    for a, b in sorted(edges):
        (xa, ya), (xb, yb) = pos[a], pos[b]
        same = ya == yb
        colour = "#c0392b" if same and not (a in ALLOWED and b in ALLOWED) else "#5b6b8c"
        x1, y1 = xa + box_w / 2, ya + (box_h / 2 if same else box_h)
        x2, y2 = xb + box_w / 2, yb + (box_h / 2 if same else 0)
        if same:
            x1, x2 = (xa + box_w, xb) if xa < xb else (xa, xb + box_w)
        out.append(f'<line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="{colour}" '
                   'stroke-opacity="0.55" marker-end="url(#a)"/>')
    for n, (x, y) in pos.items():
        fill = "#fff7e6" if n in ALLOWED else "#eaf6ee" if fl[n] == 0 else "#f4f6fb"
        out.append(f'<rect x="{x:.0f}" y="{y:.0f}" width="{box_w}" height="{box_h}" rx="5" '
                   f'fill="{fill}" stroke="#5b6b8c"/>')
        subs = sorted(m.split("::", 1)[1] for m in mods[n] if "::" in m)
        out.append(f'<text x="{x + box_w / 2:.0f}" y="{y + (17 if subs else 25):.0f}" '
                   f'text-anchor="middle" font-weight="bold">{escape(n)}</text>')
        if subs:
            out.append(f'<text x="{x + box_w / 2:.0f}" y="{y + 32:.0f}" text-anchor="middle" '
                       f'font-size="10">{escape(" ".join(subs))}</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    mods, edges = graph()
    for a, b in sorted(edges):
        print(f"{a} -> {b}")
    bad = 0
    for c in cycles(mods, edges):
        ok = set(c) <= ALLOWED
        print(("allowed cycle (drm::Driver): " if ok else "CYCLE: ") + " <-> ".join(c))
        bad += not ok
    if "--svg" in sys.argv:
        with open(sys.argv[sys.argv.index("--svg") + 1], "w") as f:
            f.write(svg(mods, edges))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
