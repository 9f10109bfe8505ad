"""Optional dependencies: import one, or fail in one line that names what to install.

Every package keeps its heavy or peer-only dependencies in an extra (``polydiff-core[bench]``,
``polydiff-tabular[bench]``). Code that needs one calls :func:`require` at the point of use::

    diffusers = require("diffusers", extra="polydiff-core[bench]", purpose="the diffusers rows of polydiff bench core")

which returns the module, or raises :class:`MissingDependency` (an ``ImportError``) whose message is a single line
such as::

    diffusers is not installed (needed for the diffusers rows of polydiff bench core); install it with:
    pip install "polydiff-core[bench]"

The ``polydiff`` command line prints that message as ``polydiff: error: ...`` and exits 2.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["MissingDependency", "require", "available"]


class MissingDependency(ImportError):
    """An optional dependency is missing (or fails to import); the message names the extra that brings it.

    Attributes: ``module`` (the import name), ``extra`` (the pip requirement that installs it) and ``purpose``.
    """

    def __init__(self, message: str, *, module: str, extra: str | None = None, purpose: str | None = None):
        super().__init__(message, name=module)
        self.module, self.extra, self.purpose = module, extra, purpose


def available(module: str) -> bool:
    """Whether ``module`` imports (without raising)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def require(module: str, extra: str | None = None, purpose: str | None = None, *,
            install: str | None = None) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependency` with a one-line message.

    module: the import name ("diffusers", "sdv.single_table").
    extra: the pip requirement that brings it, e.g. ``"polydiff-core[bench]"``; ``None``: the module's own
        distribution (``install`` or the top-level module name).
    purpose: what needs it, e.g. ``"the figures of polydiff bench core"``.
    install: an alternative plain pip requirement to name as well, e.g. ``"pyarrow"``.
    """
    if not isinstance(module, str) or not module:
        raise ValueError(f"module: expected a module name, got {module!r}")
    try:
        return importlib.import_module(module)
    except ImportError as error:
        top = module.split(".")[0]
        needed = f" (needed for {purpose})" if purpose else ""
        targets = [f'pip install "{extra}"'] if extra else []
        plain = install or (top if not extra else None)
        if plain:
            targets.append(f"pip install {plain}")
        how = " or ".join(targets)
        missing = getattr(error, "name", None)
        if missing is None or missing == module or missing.split(".")[0] == top:
            message = f"{top} is not installed{needed}; install it with: {how}"
        else:  # the module is there but one of its own imports fails: a broken or partial installation
            detail = str(error).splitlines()[0] if str(error) else type(error).__name__
            message = f"{module} could not be imported{needed}: {detail}; reinstall it with: {how}"
        raise MissingDependency(message, module=module, extra=extra, purpose=purpose) from error
