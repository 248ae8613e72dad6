"""Unit names in files -> the data model's eV, nm and degrees.

The tables are case-sensitive, because SI prefixes are: ``meV`` is a
thousandth of an eV and ``MeV`` a million eV, ``mm`` a millimetre. A name
that is not in a table is looked up once more ignoring case, and accepted
only when exactly one table entry matches (``"KEV"`` -> keV, ``"NM"`` -> nm);
``"mev"`` or ``"MEV"`` match both ``meV`` and ``MeV`` and are refused with a
message naming the file, the field and the spellings that are accepted.
"""

from __future__ import annotations

import numpy as np

__all__ = ["UnitError", "unit_factor", "unit_names"]

_EV_PER_J = 1.0 / 1.602176634e-19
_DEG_PER_RAD = 180.0 / np.pi

ENERGY_EV = {
    "eV": 1.0, "meV": 1e-3, "keV": 1e3, "MeV": 1e6,
    "electronvolt": 1.0, "electronvolts": 1.0, "electron_volt": 1.0,
    "kiloelectronvolt": 1e3, "kiloelectron_volt": 1e3,
    "J": _EV_PER_J, "joule": _EV_PER_J, "joules": _EV_PER_J,
}
LENGTH_NM = {
    "pm": 1e-3, "nm": 1.0, "um": 1e3, "µm": 1e3, "μm": 1e3, "mm": 1e6, "cm": 1e7, "m": 1e9,
    "Å": 0.1, "\u212b": 0.1, "A": 0.1, "angstrom": 0.1, "Angstrom": 0.1,
    "nanometer": 1.0, "nanometre": 1.0, "nanometers": 1.0, "nanometres": 1.0,
    "micron": 1e3, "microns": 1e3, "micrometer": 1e3, "micrometre": 1e3,
    "micrometers": 1e3, "micrometres": 1e3,
    "millimeter": 1e6, "millimetre": 1e6, "millimeters": 1e6, "millimetres": 1e6,
    "centimeter": 1e7, "centimetre": 1e7,
    "meter": 1e9, "metre": 1e9, "meters": 1e9, "metres": 1e9,
}
ANGLE_DEG = {
    "deg": 1.0, "degree": 1.0, "degrees": 1.0, "°": 1.0,
    "rad": _DEG_PER_RAD, "radian": _DEG_PER_RAD, "radians": _DEG_PER_RAD,
    "mrad": 1e-3 * _DEG_PER_RAD, "urad": 1e-6 * _DEG_PER_RAD, "µrad": 1e-6 * _DEG_PER_RAD,
}
_TABLES = {"energy": (ENERGY_EV, "eV"), "length": (LENGTH_NM, "nm"),
           "angle": (ANGLE_DEG, "deg")}


class UnitError(LookupError):
    """A unit name no table accepts (or an ambiguous case-insensitive match)."""


def unit_names(kind: str) -> list[str]:
    """Accepted spellings for ``kind`` (``"energy"``, ``"length"``, ``"angle"``)."""
    return sorted(_TABLES[kind][0])


def unit_factor(kind: str, units) -> float:
    """Factor turning a value in ``units`` into eV / nm / deg (``kind``).

    Raises
    ------
    UnitError
        For an unknown or ambiguous name; the message lists the accepted spellings.
    """
    table, target = _TABLES[kind]
    if isinstance(units, bytes):
        units = units.decode("utf-8", "replace")
    key = str(units).strip().replace(" ", "")
    if key in table:
        return table[key]
    folded = {name for name in table if name.lower() == key.lower()}
    values = {table[name] for name in folded}
    if len(values) == 1:
        return values.pop()
    why = (f"ambiguous: case matters ({' vs '.join(sorted(folded))})" if len(values) > 1
           else "unknown")
    article = "an" if kind[0] in "aeiou" else "a"
    raise UnitError(f"{article} {kind} unit convertible to {target} (case-sensitive: "
                    f"{', '.join(unit_names(kind))}); got {units!r}, {why}")
