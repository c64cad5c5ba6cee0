"""``python -m tickstock.analysis [pattern|indicator]``: every name a definition row can use.

One line per component: kind, the name events and rows carry, where it comes from (the hand-written
component or the TA-Lib function), its parameters with their defaults and, for indicators, the keys
of ``values``. Any spelling ``registry.lookup`` accepts (README, "Analytics you can enable") selects
the same line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from tickstock.analysis import registry


def lines(kinds: set[str]) -> list[str]:
    out = []
    for cls in (registry.lookup(n) for n in registry.known_names()):
        if cls.kind in kinds:
            params = ", ".join(f"{k}={v!r}" for k, v in cls().params().items()) or "-"
            out.append(f"{cls.kind:9s} {cls.name:32s} {'(hand-written)':20s} {params}")
    specs = sorted(registry.talib_catalog().specs.values(), key=lambda s: (s.kind, s.group, s.name))
    for s in specs:
        if s.kind not in kinds:
            continue
        params = ", ".join(f"{k}={v!r}" for k, v in s.parameters.items()) or "-"
        values = "" if s.kind == "pattern" else f"  values: {', '.join(s.value_keys)}"
        note = f"  (not servable: {s.unservable})" if s.unservable else ""
        out.append(f"{s.kind:9s} {s.name:32s} {s.function:20s} {params}{values}{note}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    unknown = [a for a in args if a not in ("pattern", "indicator")]
    if unknown:
        print(f"usage: python -m tickstock.analysis [pattern|indicator] (not {' '.join(unknown)})", file=sys.stderr)
        return 2
    print("\n".join(lines(set(args) or {"pattern", "indicator"})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
