"""Solver functions. Every module here is imported by ``polydiff.core.sampling.solvers()``, which registers its
``@register_solver`` functions; nothing needs to be listed by hand."""
