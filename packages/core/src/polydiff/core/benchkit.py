"""Shared plumbing for every package's benchmark: timing, the JSON/markdown report, versions.

Every ``polydiff bench <package>`` writes ``<package>.json`` in one shape::

    {"package", "quick", "seed", "versions": {...}, "better": {"<metric>": <direction>},
     "rows": [{"task", "method", "peer": true|false, "<metric>": number, ...}]}

one row per task x method, so every claim is a side-by-side ratio against the peers run in the same command.
A metric's direction is ``"min"`` (lower is better), ``"max"`` (higher is better), ``"target:<x>"`` or a number
``x`` (closest to x is best, e.g. ``"target:0.5"`` for a detection AUC) or ``None`` / ``"none"`` (reported, not
ranked: a spread, a count). Optional keys: ``"goals"`` (:func:`goal` dicts, rendered as the report's "Goals"
section) and whatever a package adds through ``extra``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

# an argparse parser whose errors raise a ValueError (`polydiff` prints it as one line) for bench options
from .cli import ArgumentParser as OptionParser

__all__ = ["versions", "median_time", "direction", "markdown_table", "goal", "goals_markdown", "render_markdown",
           "write_report", "OptionParser"]


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


def direction(spec) -> tuple[str, float | None]:
    """A ``better`` entry as ``(kind, target)``: ``("min", None)``, ``("max", None)``, ``("target", x)`` or
    ``("none", None)`` (not ranked). Raises ``ValueError`` for anything else."""
    if spec is None:
        return "none", None
    if isinstance(spec, bool):
        raise ValueError(f"better: expected 'min', 'max', 'target:<x>', a number or None, got {spec!r}")
    if isinstance(spec, (int, float)):
        if not math.isfinite(spec):
            raise ValueError(f"better: a target value must be finite, got {spec!r}")
        return "target", float(spec)
    if isinstance(spec, str):
        text = spec.strip().lower()
        if text in ("min", "max", "none"):
            return text, None
        if text.startswith("target:"):
            try:
                value = float(text.split(":", 1)[1])
            except ValueError:
                value = math.nan
            if math.isfinite(value):
                return "target", value
    raise ValueError(f"better: expected 'min', 'max', 'target:<x>', a number or None, got {spec!r}")


def _label(metric: str, spec) -> str:
    kind, target = direction(spec)
    if kind == "min":
        return f"{metric} (↓)"
    if kind == "max":
        return f"{metric} (↑)"
    if kind == "target":
        return f"{metric} (→ {target:g})"
    return metric


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _best_values(rows: Sequence[dict], metrics: Sequence[str], better: Mapping) -> dict[tuple[str, str], float]:
    """(task, metric) -> the best value, for ranked metrics with at least two different values in the task."""
    best: dict[tuple[str, str], float] = {}
    for metric in metrics:
        kind, target = direction(better.get(metric, "min"))
        if kind == "none":
            continue
        groups: dict[str, list[float]] = {}
        for row in rows:
            value = row.get(metric)
            if _number(value):
                groups.setdefault(row["task"], []).append(float(value))
        for task, values in groups.items():
            if len(values) < 2 or min(values) == max(values):
                continue  # a lone value or a tie across the board is no "best"
            if kind == "min":
                best[(task, metric)] = min(values)
            elif kind == "max":
                best[(task, metric)] = max(values)
            else:
                closest = min(abs(v - target) for v in values)
                best[(task, metric)] = next(v for v in values if abs(v - target) == closest)
    return best


def _is_best(value, task: str, metric: str, better: Mapping, best: dict) -> bool:
    if not _number(value) or (task, metric) not in best:
        return False
    kind, target = direction(better.get(metric, "min"))
    if kind == "target":
        return abs(float(value) - target) == abs(best[(task, metric)] - target)
    return float(value) == best[(task, metric)]


def markdown_table(rows: Sequence[dict], metrics: Sequence[str], better: Mapping) -> str:
    """A markdown table, one line per row; peers are marked, and the best value per task and metric is bold.

    The best is the lowest ("min"), highest ("max") or closest to the target ("target:x"); a metric whose
    direction is None is not ranked, and a task where fewer than two rows have a value, or all rows tie, has no
    best."""
    for metric in metrics:
        direction(better.get(metric, "min"))  # validate before writing anything
    best = _best_values(rows, metrics, better)
    header = "| task | method | " + " | ".join(_label(m, better.get(m, "min")) for m in metrics)
    lines = [header + " |", "|" + "---|" * (len(metrics) + 2)]
    for row in rows:
        method = row["method"] + (" *(peer)*" if row.get("peer") else "")
        cells = []
        for metric in metrics:
            value = row.get(metric)
            text = _format(value)
            if _is_best(value, row["task"], metric, better, best):
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| {row['task']} | {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _legend(metrics: Sequence[str], better: Mapping) -> str:
    specs = {m: direction(better.get(m, "min")) for m in metrics}
    kinds = {kind for kind, _ in specs.values()}
    parts = []
    if "min" in kinds:
        parts.append("↓ lower is better")
    if "max" in kinds:
        parts.append("↑ higher is better")
    if "target" in kinds:
        ideal = ", ".join(f"{m} {t:g}" for m, (kind, t) in specs.items() if kind == "target")
        parts.append(f"→ x: x is ideal, closest is best ({ideal})")
    if "none" in kinds:
        parts.append("no arrow: reported, not ranked")
    lead = "; ".join(parts) + ". " if parts else ""
    return lead + "**Bold**: the best value in its task (none when fewer than two rows have a value or all tie)."


def goal(text: str, met: bool | None, detail: str = "", source: str = "") -> dict:
    """One entry of a report's "Goals" section: what is aimed at, whether this run meets it (None: not
    checked), the numbers behind the verdict, and where the goal and its reference numbers come from."""
    if not isinstance(text, str) or not text:
        raise ValueError(f"text: expected a non-empty string, got {text!r}")
    if met is not None and not isinstance(met, bool):
        raise ValueError(f"met: expected True, False or None, got {met!r}")
    return {"goal": text, "met": met, "detail": detail, "source": source}


def goals_markdown(goals: Sequence[dict], heading: str = "## Goals") -> str:
    """The "Goals" section: one bullet per :func:`goal`, its verdict, numbers and source."""
    lines = [heading, ""]
    for item in goals:
        verdict = {True: "**met**", False: "**not met**", None: "**not checked**"}[item.get("met")]
        line = f"- {verdict} — {item['goal']}"
        if item.get("detail"):
            line += f": {item['detail']}"
        if item.get("source"):
            line += f" *(source: {item['source']})*"
        lines.append(line)
    return "\n".join(lines)


def render_markdown(document: Mapping, *, title: str, preamble: str = "", figures: Sequence[str] = (),
                    goals: Sequence[dict] | None = None) -> str:
    """The markdown report of a benchkit JSON document (what :func:`write_report` writes as ``<package>.md``)."""
    rows, better, versions = document["rows"], document["better"], document["versions"]
    metrics = [m for m in better if any(m in row for row in rows)]
    package, quick, seed = document["package"], document["quick"], document["seed"]
    parts = [f"# {title}", "", f"`polydiff bench {package}{' --quick' if quick else ''}` · seed {seed}", ""]
    goals = document.get("goals") if goals is None else goals
    if goals:
        parts += [goals_markdown(goals), ""]
    if preamble:
        parts += [preamble.strip(), ""]
    parts += [markdown_table(rows, metrics, better), "", _legend(metrics, better), ""]
    parts += [f"![{name}]({name})" for name in figures]
    parts += ["", "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()), ""]
    return "\n".join(parts)


def write_report(
    out_dir: str | Path,
    package: str,
    *,
    quick: bool,
    seed: int,
    versions: dict[str, str],
    better: dict,
    rows: list[dict],
    title: str,
    preamble: str = "",
    figures: Sequence[str] = (),
    extra: dict | None = None,
    goals: Sequence[dict] | None = None,
) -> dict:
    """Write ``out_dir/<package>.json`` and ``out_dir/<package>.md``; return the JSON document.

    rows: one dict per task x method with keys ``task``, ``method``, ``peer`` and the metrics named in ``better``.
    better: metric -> direction (module docstring): "min", "max", "target:<x>" or a number, or None.
    figures: file names (inside ``out_dir``) to embed in the markdown.
    goals: :func:`goal` dicts, stored under "goals" and rendered as the "Goals" section before the preamble.
    """
    for row in rows:
        missing = {"task", "method", "peer"} - set(row)
        if missing:
            raise ValueError(f"rows: each row needs task, method and peer; {row!r} lacks {sorted(missing)}")
    for metric, spec in better.items():
        try:
            direction(spec)
        except ValueError as error:
            raise ValueError(f"better[{metric!r}]: {error}") from None
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
    if goals:
        document["goals"] = [dict(item) for item in goals]
    if extra:
        document.update(extra)
    _atomic_write_text(out / f"{package}.json", json.dumps(document, indent=1) + "\n")
    text = render_markdown(document, title=title, preamble=preamble, figures=figures)
    _atomic_write_text(out / f"{package}.md", text)
    return document
