"""The robustness pipeline, one module per job:

* :mod:`~fan_mm.robustness.protocol`: suites, severity policies, seeds, channel orders (and their checks);
* :mod:`~fan_mm.robustness.codec`: decode -> corrupt -> encode, shared by synthesis and the transform;
* :mod:`~fan_mm.robustness.synthesis`: writing corrupted copies of a dataset (``synthesize``, ``verify``);
* :mod:`~fan_mm.robustness.transforms`: ``CorruptImage`` / ``CorruptedImageName`` (mmcv transforms);
* :mod:`~fan_mm.robustness.config`: pointing a test dataloader at a corrupted copy or the transform;
* :mod:`~fan_mm.robustness.evaluation`: clean + corrupted evaluation of a checkpoint (``robustness.json``);
* :mod:`~fan_mm.robustness.report`: tables and plots.

Importing this package imports none of them; protocol, codec and synthesis need no torch or mmcv.
"""
