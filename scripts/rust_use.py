"""Parses Rust `use` trees, for scripts/imports.py and
scripts/vertical-imports.py."""


def split_top(s):
    """Splits a comma list at brace depth 0."""
    parts, depth, cur = [], 0, ""
    for c in s:
        if c == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += c == "{"
        depth -= c == "}"
        cur += c
    parts.append(cur)
    return [p.strip() for p in parts if p.strip()]


def parse(tree):
    """A use tree (without `use` and `;`, comments removed) as
    (path, children or None); `a::{b}` is read as `a::b`."""
    tree = tree.strip()
    i = tree.find("{")
    if i < 0:
        return (tree, None)
    prefix = tree[:i].rstrip(":").strip()
    kids = [parse(p) for p in split_top(tree[i + 1 : tree.rfind("}")])]
    if len(kids) == 1 and prefix:
        path, sub = kids[0]
        return (f"{prefix}::{path}" if path != "self" else prefix, sub)
    return (prefix, kids)


def paths(node):
    """Every full path a parsed tree imports (`as` renames dropped)."""
    path, kids = node
    if kids is None:
        return [path.split(" as ")[0].strip()]
    out = []
    for k in kids:
        for p in paths(k):
            out.append(path if p == "self" else f"{path}::{p}" if path else p)
    return out
