"""Latency calibration: time a space's building blocks on this device and fit the predictor.

Covers the CNN (``deepmad-*``), ViT (``vit`` family: ``nvit``, ``revit*``), STViT (``stvit*``), MCi
(``mci``) and TinyViT (``tinyvit*``) spaces. Each unit (CNN: stem, block, head; ViT: patch embedding,
transformer block, head; STViT: the same plus the cross-attention layer) is built alone with the
modules of :mod:`archsearch.models` (MCi and TinyViT units are the submodules of built random models,
on the inputs a forward pass gives them), timed in
eval mode without gradients with ``torch.utils.benchmark.Timer`` (a statistic, by default the
median, of ``runs`` >= 30 single calls after warm-up, spread over interleaved rounds:
:mod:`archsearch.train.timing`, the method of :func:`archsearch.train.trainer.measure_latency`), and a
few whole random models of the space (within its budgets) are timed the same way, in the same rounds.
By default every type's coefficients are then fitted at once to both
(:func:`archsearch.cost.latency.fit_joint`), so the in-context cost that a unit timed alone misses
(caches, memory traffic between blocks) enters the coefficients; ``fit="blocks"`` fits each type to its units alone
(:func:`archsearch.cost.latency.fit_coefficients`) and keeps the median ratio of measured to predicted
whole-model latency as the model's ``scale``.

The package, one concept a file: :mod:`.random_designs` (random designs of a space within its
budgets), :mod:`.units` (the units timed, each with its input and features), :mod:`.measure` (the
timing, :class:`CalibrationData`), :mod:`.fit` (the latency model of the timings) and
:mod:`.calibrate` (all three, saved: ``archsearch calibrate``).
"""

from archsearch.train.latency.calibrate import calibrate_space
from archsearch.train.latency.fit import CHANNEL_BLOCKS, FITS, KERNEL_EXPONENTS, fit_calibration
from archsearch.train.latency.measure import CalibrationData, device_description, measure_calibration
from archsearch.train.latency.random_designs import _random_model_spec  # noqa: F401
from archsearch.train.latency.random_designs import (random_cnn_design, random_mci_spec, random_stvit_spec,
                                                     random_tinyvit_spec, random_vit_spec)
from archsearch.train.latency.units import _cnn_unit_features, _tinyvit_modules, _unit_samples  # noqa: F401

__all__ = ["CHANNEL_BLOCKS", "CalibrationData", "FITS", "KERNEL_EXPONENTS", "calibrate_space", "device_description",
           "fit_calibration", "measure_calibration", "random_cnn_design", "random_mci_spec", "random_stvit_spec",
           "random_tinyvit_spec", "random_vit_spec"]
# the private names above (_random_model_spec, _cnn_unit_features, _unit_samples, _tinyvit_modules) are for the tests
