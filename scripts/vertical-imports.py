#!/usr/bin/env python3
"""Puts `use` items in the kernel's vertical layout
(Documentation/rust/coding-guidelines.rst, "Imports"): one item per line,
braces as soon as a list has more than one item, a trailing `//` after the
last item of every list so that rustfmt keeps the layout.

    scripts/vertical-imports.py FILE...          rewrite the files
    scripts/vertical-imports.py --check FILE...  exit 1 if one would change

Run rustfmt (with the kernel's .rustfmt.toml) afterwards.
"""
import re
import sys

from rust_use import parse

USE = re.compile(r"^(?P<indent>[ \t]*)(?P<vis>(?:pub(?:\([^)]*\))?\s+)?)use\s+", re.M)


def key(node):
    """rustfmt's order (style edition 2024): `self`, then snake_case, then
    CamelCase, then UPPER_CASE names, each alphabetically."""
    path = node[0]
    first = path.split("::")[0]
    if path == "self":
        kind = 0
    elif first[:1].islower() or first[:1] == "_":
        kind = 1
    elif any(c.islower() for c in first):
        kind = 2
    else:
        kind = 3
    return (kind, path)


def emit(node, indent):
    path, kids = node
    if kids is None:
        return path
    kids = sorted(kids, key=key)
    pad = indent + "    "
    lines = []
    for n, k in enumerate(kids):
        last = n == len(kids) - 1
        lines.append(pad + emit(k, pad) + ("," + " //" if last else ","))
    head = f"{path}::{{" if path else "{"
    return head + "\n" + "\n".join(lines) + "\n" + indent + "}"


def rewrite(src):
    out, pos = [], 0
    for m in USE.finditer(src):
        if m.start() < pos:
            continue
        end = src.find(";", m.end())
        body = src[m.end() : end]
        if "{" not in body or "/*" in body:
            continue
        clean = re.sub(r"//[^\n]*", "", body)
        node = parse(clean)
        if node[1] is None:
            continue
        indent = m.group("indent")
        text = f"{indent}{m.group('vis')}use {emit(node, indent)};"
        out.append(src[pos : m.start()])
        out.append(text)
        pos = end + 1
    out.append(src[pos:])
    return "".join(out)


def main():
    check = "--check" in sys.argv
    files = [a for a in sys.argv[1:] if a != "--check"]
    changed = []
    for f in files:
        with open(f) as fh:
            src = fh.read()
        new = rewrite(src)
        if new != src:
            changed.append(f)
            if not check:
                with open(f, "w") as fh:
                    fh.write(new)
    if check and changed:
        print("not in the vertical import layout: " + " ".join(changed))
        sys.exit(1)


if __name__ == "__main__":
    main()
