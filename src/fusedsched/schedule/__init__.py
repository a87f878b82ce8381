"""The schedule wing: what a schedule is, its float64 formulas and its compiled program.

``fields`` (the field types), ``kinds/`` (every kind: model, formula, compile rule), ``program``
(segments and the float64 table the kernels read), ``plateau_state`` (a plateau's state and
update), ``reference`` (``compute_lr``, the oracle), ``errors`` (a config's errors explained).
Nothing here imports another wing.
"""
