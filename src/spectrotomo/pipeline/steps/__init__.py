"""The pipeline's steps, one module each, in run order.

Each step reads its inputs from the sample store, turns its config section into
explicit arguments of public stage functions, and writes one group (completion
marker last): ``acquire`` -> ``raw`` (+ ``raw_xanes``, ``truth``, ``references``
for simulated input), ``preprocess`` -> ``od``, ``reconstruct`` -> ``recon``,
``density`` -> ``density`` (holotomography), ``quantify`` -> ``chemistry``,
``valence`` -> ``valence``, ``valence3d`` -> ``valence3d`` (XANES tomography),
``segment`` -> ``segmentation``, ``profile`` ->
``profiles``; ``report`` writes figures and tables outside the store. A step whose
group is complete is skipped, so a killed run resumes where it stopped.
"""

from __future__ import annotations

from typing import Callable

from .._context import RunContext
from . import (acquire, density, preprocess, profile, quantify, reconstruct, report, segment,
               valence, valence3d)

__all__ = ["STEPS", "CHUNKED_STEPS"]

#: Step name -> (function of the run context, the store groups it completes).
STEPS: dict[str, tuple[Callable[[RunContext], None], tuple[str, ...]]] = {
    "acquire": (acquire.acquire, ("raw",)),
    "preprocess": (preprocess.preprocess, ("od",)),
    "reconstruct": (reconstruct.reconstruct, ("recon",)),
    "density": (density.density, ("density",)),
    "quantify": (quantify.quantify, ("chemistry",)),
    "valence": (valence.valence, ("valence",)),
    "valence3d": (valence3d.valence3d, ("valence3d",)),
    "segment": (segment.segment, ("segmentation",)),
    "profile": (profile.profile, ("profiles",)),
}
#: Steps that run one task per chunk on ``[compute]``'s workers (the others run here).
CHUNKED_STEPS = ("reconstruct", "quantify", "valence3d")
