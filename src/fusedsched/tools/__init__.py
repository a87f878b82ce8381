"""Tools built on the library, not part of it: the benchmark harness (:mod:`.bench`), the small
models and synthetic data it and the demo train (:mod:`.models`), and the demo (:mod:`.demo`).

The command line (:mod:`fusedsched.tools.cli`) runs them: ``python -m fusedsched demo|bench``.
"""
