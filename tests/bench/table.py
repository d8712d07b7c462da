"""The benchmarks' result table: one row per figure, its target, one column per run."""

from __future__ import annotations


def print_table(rows: list[tuple[str, str, list[str]]], headers: list[str]) -> None:
    name_width = max(len(n) for n, _, _ in rows)
    target_width = max(6, *(len(t) for _, t, _ in rows))
    widths = [max(len(h), *(len(c[i]) for _, _, c in rows)) for i, h in enumerate(headers)]
    line = (
        f"{'figure':<{name_width}}  {'target':<{target_width}}  "
        + "  ".join(f"{h:<{w}}" for h, w in zip(headers, widths, strict=True))
    ).rstrip()
    print()
    print(line)
    print("-" * len(line))
    for name, target, cells in rows:
        print(
            (
                f"{name:<{name_width}}  {target:<{target_width}}  "
                + "  ".join(f"{c:<{w}}" for c, w in zip(cells, widths, strict=True))
            ).rstrip()
        )
