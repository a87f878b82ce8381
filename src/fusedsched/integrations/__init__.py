"""fusedsched inside the trainers people run, one module per framework, each imported on its own
(``import fusedsched.integrations.huggingface``): importing this package imports no framework, and
nothing in the library imports it.

- :mod:`fusedsched.integrations.huggingface`: ``DeviceScheduleTrainer`` (and its mixin), Hugging
  Face's ``Trainer`` with ``lr_scheduler_type`` evaluated on the device;
- :mod:`fusedsched.integrations.lightning`: ``RecentLearningRateMonitor``, Lightning's
  ``LearningRateMonitor`` reading device-mode rates without a host sync.

accelerate needs no module: ``accelerator.prepare(model, optimizer, fusedsched.from_torch(scheduler))``.
"""
