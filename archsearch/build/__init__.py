"""Deprecated alias of :mod:`archsearch.models`, the package's former name, kept for one release.

``import archsearch.build``, ``import archsearch.build.cnn`` and ``from archsearch.build.vit import
load_timm_weights`` keep working and give the very objects of :mod:`archsearch.models`: every
submodule of that package is entered in ``sys.modules`` under this name too (so pickles and
``torch.load`` of whole modules saved under the old name load as well). The first import warns
with a ``DeprecationWarning`` that points at the importing line.

The package was renamed because ``build/`` is what packaging tools, project templates and many
global gitignores treat as build output.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import warnings

import archsearch.models as _models
from archsearch.models import *  # noqa: F401,F403  (the alias re-exports everything)
from archsearch.models import __all__  # noqa: F401

warnings.warn(
    "archsearch.build is deprecated and will be removed in the next release; import archsearch.models instead "
    "(same names, same objects)",
    DeprecationWarning,
    stacklevel=2,  # the importing line (the import system's own frames are skipped)
)

for _info in pkgutil.iter_modules(_models.__path__):
    _module = importlib.import_module(f"{_models.__name__}.{_info.name}")
    sys.modules[f"{__name__}.{_info.name}"] = _module
    globals()[_info.name] = _module
del _info, _module
