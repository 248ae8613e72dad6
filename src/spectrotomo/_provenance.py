"""Provenance: a JSON list in ``attrs["provenance"]`` of a dataset or array, one entry per
processing step (toolkit version, step name, UTC time, inputs, parameters)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

import numpy as np
import xarray as xr

__all__ = ["add_provenance", "provenance"]


def _version() -> str:
    from . import __version__

    return __version__


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist() if value.size <= 64 else f"<array shape={value.shape}>"
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def provenance(obj: xr.Dataset | xr.DataArray) -> list[dict]:
    """Return the provenance entries of ``obj`` (oldest first)."""
    raw = obj.attrs.get("provenance", "[]")
    return json.loads(raw) if isinstance(raw, str) else list(raw)


def add_provenance(obj, step: str, *, inputs: Iterable[str] = (), **params):
    """Append a provenance entry to ``obj.attrs`` in place and return ``obj``.

    Parameters
    ----------
    obj : xarray.Dataset or xarray.DataArray
    step : str
        Name of the processing step, e.g. ``"recon.reconstruct"``.
    inputs : iterable of str
        Input files or stores.
    **params
        Parameters of the step; converted to JSON (large arrays summarised).
    """
    entries = provenance(obj)
    entries.append(
        {
            "step": step,
            "version": _version(),
            "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "inputs": [str(i) for i in inputs],
            "parameters": _jsonable(params),
        }
    )
    obj.attrs["provenance"] = json.dumps(entries)
    return obj
