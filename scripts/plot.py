#!/usr/bin/env python3
"""Horizontal bar chart (SVG, no dependencies) of rsvm-faultbench results.

    plot.py build/bench/faults.json OUT.svg
"""

import json
import sys
from xml.sax.saxutils import escape


def main():
    with open(sys.argv[1]) as f:
        data = json.load(f)["per_fault_us"]
    rows = list(data.items())
    top = max(v for _, v in rows) * 1.15
    label_w, bar_w, row_h, pad = 390, 420, 30, 20
    width = label_w + bar_w + 2 * pad
    height = pad * 3 + 20 + row_h * len(rows) + 30
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="13">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{pad}" y="{pad + 8}" font-size="15" font-weight="bold">'
           'Cost of one page fault, guest wall time (us, lower is better)</text>']
    y0 = pad * 2 + 10
    for i, (name, v) in enumerate(rows):
        y = y0 + i * row_h
        w = bar_w * v / top
        colour = "#3b6fb6" if name.startswith("rsvm") else "#d08a2c"
        out.append(f'<text x="{pad + label_w - 8}" y="{y + 18}" text-anchor="end">'
                   f'{escape(name)}</text>')
        out.append(f'<rect x="{pad + label_w}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" '
                   f'fill="{colour}"/>')
        out.append(f'<text x="{pad + label_w + w + 6:.1f}" y="{y + 18}">{v:.1f}</text>')
    axis_y = y0 + len(rows) * row_h + 4
    out.append(f'<line x1="{pad + label_w}" y1="{y0}" x2="{pad + label_w}" y2="{axis_y}" '
               'stroke="black"/>')
    out.append(f'<text x="{pad}" y="{axis_y + 24}" fill="#555">blue: rsvm GPU faults '
               '(model over vfio-user, QEMU TCG); orange: test_hmm, the same faults '
               'taken by the CPU</text>')
    out.append("</svg>")
    with open(sys.argv[2], "w") as f:
        f.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
