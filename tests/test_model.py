import numpy as np
import pytest
import xarray as xr

import spectrotomo as st
from spectrotomo import ValidationError


def _series(**kw):
    args = dict(angles=np.linspace(-65, 65, 5), energies=[640.0, 655.0], pixel_size=10.0,
                flats=np.ones((2, 3, 4, 6)), darks=np.zeros((2, 1, 4, 6)))
    args.update(kw)
    proj = args.pop("projections", np.ones((2, 5, 4, 6)))
    return st.tilt_series(proj, **args)


def test_tilt_series_has_units_and_dims():
    ds = _series()
    assert ds["projections"].dims == ("energy", "angle", "y", "x")
    assert ds.angle.attrs["units"] == "deg" and ds.energy.attrs["units"] == "eV"
    assert ds.x.attrs["units"] == "nm" and ds.x.values[1] == 10.0
    assert ds.attrs["pixel_size"] == 10.0


def test_shared_darks_broadcast_over_energies():
    ds = _series(darks=np.zeros((1, 4, 6)))
    assert ds["darks"].shape == (2, 1, 4, 6)


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(angles=[0, 1, 1, 2, 3]), "angle"),
        (dict(angles=[0, 1, np.nan, 2, 3]), "angle"),
        (dict(energies=[655.0, 640.0]), "energy"),
        (dict(energies=[640.0, 640.0]), "energy"),
        (dict(pixel_size=-1.0), "pixel_size"),
        (dict(flats=np.ones((2, 3, 5, 6))), "flats"),
        (dict(darks=np.ones((2, 1, 4, 7))), "darks"),
        (dict(angles=np.arange(4)), "projections"),
        (dict(projections=np.ones((2, 5, 4))), "projections"),
        (dict(projections=np.ones((2, 5, 4, 6), dtype=complex)), "projections"),
    ],
)
def test_tilt_series_rejections_name_the_field(kw, field):
    with pytest.raises(ValidationError, match=field):
        _series(**kw)


def test_missing_units_rejected():
    ds = _series()
    ds.angle.attrs.pop("units")
    with pytest.raises(ValidationError, match="units"):
        st.validate_tilt_series(ds)


def test_volume_and_map():
    v = st.volume(np.zeros((2, 3, 4, 5), np.float32), energies=[640, 655], voxel_size=20.0)
    assert v.dims == ("energy", "z", "y", "x") and v.attrs["units"] == "1/nm"
    m = st.spatial_map(np.zeros((4, 3, 4, 5)), voxel_size=20.0, units="1", name="valence",
                       leading={"element": ["Mn", "Co", "Ni", "O"]})
    assert m.dims == ("element", "z", "y", "x")
    with pytest.raises(ValidationError, match="units"):
        st.validate_volume(v.drop_attrs())
    with pytest.raises(ValidationError, match="dims"):
        st.validate_map(xr.DataArray(np.zeros((3, 4)), dims=("a", "b"), attrs={"pixel_size": 1}))


def test_provenance_roundtrip():
    v = st.volume(np.zeros((1, 2, 2, 2)), energies=[640], voxel_size=20.0)
    st.add_provenance(v, "test.step", inputs=["a.h5"], alpha=1.5, arr=np.arange(3))
    (entry,) = st.provenance(v)
    assert entry["step"] == "test.step" and entry["parameters"]["arr"] == [0, 1, 2]
    assert entry["version"] == st.__version__


def test_per_energy_pixel_sizes_are_a_coordinate_along_energy():
    ds = _series(pixel_sizes=[10.0, 10.02])
    coord = ds["pixel_size_energy"]
    assert coord.dims == ("energy",) and coord.attrs["units"] == "nm"
    np.testing.assert_array_equal(st.energy_pixel_sizes(ds), [10.0, 10.02])
    assert st.energy_pixel_sizes(ds.isel(energy=[1]))[0] == 10.02  # follows selections
    assert st.energy_pixel_sizes(_series()) is None


@pytest.mark.parametrize("sizes, match", [
    ([10.0], r"'pixel_size_energy' must be 2 pixel sizes \(one per energy, nm\); got 1"),
    ([10.0, -1.0], r"coords\['pixel_size_energy'\].*positive finite.*-1\.0"),
    ([10.0, np.nan], r"coords\['pixel_size_energy'\].*positive finite"),
])
def test_per_energy_pixel_size_rejections_name_the_field(sizes, match):
    with pytest.raises(ValidationError, match=match):
        _series(pixel_sizes=sizes)


def test_per_energy_pixel_sizes_need_nm_units():
    ds = _series(pixel_sizes=[10.0, 10.02])
    ds["pixel_size_energy"].attrs["units"] = "um"
    with pytest.raises(ValidationError, match=r"pixel_size_energy'\]\.attrs\['units'\].*'nm'"):
        st.validate_tilt_series(ds)
