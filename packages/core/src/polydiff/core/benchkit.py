"""Shared plumbing for every package's benchmark: timing, the JSON/markdown report, versions.

Every ``polydiff bench <package>`` writes ``<package>.json`` in one shape::

    {"package", "quick", "seed", "versions": {...}, "better": {"<metric>": "min"|"max"},
     "rows": [{"task", "method", "peer": true|false, "<metric>": number, ...}]}

one row per task x method, so every claim is a side-by-side ratio against the peers run in the same command.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def versions(names: Iterable[str]) -> dict[str, str]:
    """Installed version of each distribution (``"absent"`` when not installed), plus Python and machine."""
    found = {"python": platform.python_version(), "machine": platform.machine(), "cpus": str(os.cpu_count())}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "absent"
    return found


def median_time(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` runs after ``warmup`` untimed runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf; a missing number is reported as null
    return value


def _format(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if value == 0 or 1e-3 <= abs(value) < 1e5:
            return f"{value:.4g}"
        return f"{value:.3e}"
    return str(value)


def markdown_table(rows: Sequence[dict], metrics: Sequence[str], better: dict[str, str]) -> str:
    """A markdown table, one line per row; peers are marked, and the best value per task and metric is bold."""
    best: dict[tuple[str, str], float] = {}
    for metric in metrics:
        for row in rows:
            value = row.get(metric)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                continue
            key = (row["task"], metric)
            pick = min if better.get(metric, "min") == "min" else max
            best[key] = value if key not in best else pick(best[key], value)
    header = "| task | method | " + " | ".join(f"{m} ({'↓' if better.get(m) == 'min' else '↑'})" for m in metrics)
    lines = [header + " |", "|" + "---|" * (len(metrics) + 2)]
    for row in rows:
        method = row["method"] + (" *(peer)*" if row.get("peer") else "")
        cells = []
        for metric in metrics:
            value = row.get(metric)
            text = _format(value)
            if value is not None and best.get((row["task"], metric)) == value:
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| {row['task']} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_report(
    out_dir: str | Path,
    package: str,
    *,
    quick: bool,
    seed: int,
    versions: dict[str, str],
    better: dict[str, str],
    rows: list[dict],
    title: str,
    preamble: str = "",
    figures: Sequence[str] = (),
    extra: dict | None = None,
) -> dict:
    """Write ``out_dir/<package>.json`` and ``out_dir/<package>.md``; return the JSON document.

    rows: one dict per task x method with keys ``task``, ``method``, ``peer`` and the metrics named in ``better``.
    figures: file names (inside ``out_dir``) to embed in the markdown.
    """
    for row in rows:
        missing = {"task", "method", "peer"} - set(row)
        if missing:
            raise ValueError(f"rows: each row needs task, method and peer; {row!r} lacks {sorted(missing)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    document = {
        "package": package,
        "quick": bool(quick),
        "seed": int(seed),
        "versions": versions,
        "better": better,
        "rows": [{k: _clean(v) for k, v in row.items()} for row in rows],
    }
    if extra:
        document.update(extra)
    _atomic_write_text(out / f"{package}.json", json.dumps(document, indent=1) + "\n")
    metrics = [m for m in better if any(m in row for row in rows)]
    parts = [f"# {title}", "", f"`polydiff bench {package}{' --quick' if quick else ''}` · seed {seed}", ""]
    if preamble:
        parts += [preamble.strip(), ""]
    parts += [markdown_table(document["rows"], metrics, better), ""]
    parts += [f"![{name}]({name})" for name in figures]
    parts += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    _atomic_write_text(out / f"{package}.md", "\n".join(parts))
    return document
