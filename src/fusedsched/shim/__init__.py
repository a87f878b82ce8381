"""The scheduler wing: ``LRShim`` and what it stands on.

``binding`` (the groups and their views of the rate buffer), ``hyperparameters`` (the rows beside
``lr``), ``skipping`` (a step's skip signal), ``engines`` (host and device mode), ``checkpoint``
(state dicts, checked), ``scheduler`` (``LRShim``), ``graphs`` (``CapturedTrainingStep``).
"""
