import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import xarray as xr

from spectrotomo import add_provenance, provenance, spatial_map, volume
from spectrotomo.io import (
    IncompleteGroupError,
    StoreLockedError,
    init_array,
    is_complete,
    list_groups,
    mark_complete,
    missing_regions,
    open_tree,
    read_group,
    read_region,
    remove_group,
    store_lock,
    write,
    write_region,
)


def _dataset(rng):
    states = ["Mn2+", "Mn3+", "Mn4+"]
    shape = (6, 5, 4)
    occ = rng.random(shape, dtype=np.float32)
    occ[0, 0, 0] = np.nan
    ds = xr.Dataset(
        {
            "occupancy": (("z", "y", "x"), occ, {"units": "1"}),
            "particle": (("z", "y", "x"), rng.random(shape) > 0.5),
            "grain": (("z", "y", "x"), rng.integers(-5, 2**31 - 1, shape, dtype=np.int32)),
            "composition_class": (("z", "y", "x"), rng.integers(0, 4, shape, dtype=np.uint8)),
            "state_fraction": (("state", "z", "y", "x"),
                               rng.random((3, *shape)).astype(np.float32)),
            "depth": (("z", "y", "x"), rng.random(shape) * 1e3, {"units": "nm"}),
        },
        coords={
            "z": ("z", np.arange(6) * 12.5, {"units": "nm"}),
            "y": ("y", np.arange(5) * 12.5, {"units": "nm"}),
            "x": ("x", np.arange(4) * 12.5, {"units": "nm"}),
            "state": states,
            "state_valence": ("state", [2.0, 3.0, 4.0]),
            "state_element": ("state", ["Mn", "Mn", "Mn"]),
        },
        attrs={"pixel_size": 12.5, "preset": "small", "seed": 3, "nested": {"a": [1, 2]}},
    )
    return add_provenance(ds, "simulate.particle", seed=3)


def _assert_bit_exact(a, b):
    xr.testing.assert_identical(a, b)
    for name in a.variables:
        va, vb = a.variables[name], b.variables[name]
        assert va.dtype == vb.dtype, name
        if va.dtype.kind == "f":
            assert va.values.tobytes() == vb.values.tobytes(), name  # NaN payloads too


def test_dataset_round_trip_bit_exact(tmp_path, rng):
    ds = _dataset(rng)
    store = tmp_path / "s.zarr"
    write(store, "truth", ds)
    back = read_group(store, "truth")
    assert all(v.chunks is not None for v in back.data_vars.values())  # lazy (dask)
    _assert_bit_exact(ds, back.load())
    assert provenance(back)[0]["step"] == "simulate.particle"
    assert json.loads(back.attrs["provenance"]) == json.loads(ds.attrs["provenance"])
    assert back["state"].dtype == np.dtype("<U4")


def test_tilt_series_with_per_energy_pixel_sizes_round_trips(tmp_path, rng):
    from spectrotomo import energy_pixel_sizes, tilt_series, validate_tilt_series

    ts = tilt_series(rng.integers(0, 2**16, (2, 3, 4, 5), dtype=np.uint16), angles=[0, 1, 2],
                     energies=[640.0, 655.0], pixel_size=20.0, pixel_sizes=[20.0, 20.04])
    write(tmp_path / "s.zarr", "raw", ts)
    back = validate_tilt_series(read_group(tmp_path / "s.zarr", "raw").load())
    _assert_bit_exact(ts, back)
    np.testing.assert_array_equal(energy_pixel_sizes(back), [20.0, 20.04])


def test_dataarray_round_trip_returns_dataarray(tmp_path, rng):
    vol = volume(rng.random((2, 4, 5, 6), dtype=np.float32), energies=[640.0, 655.0],
                 voxel_size=10.0, name="mu")
    add_provenance(vol, "recon.reconstruct", algorithm="fbp")
    store = tmp_path / "s.zarr"
    write(store, "recon", vol)
    back = read_group(store, "recon", chunks=None)
    assert isinstance(back, xr.DataArray)
    _assert_bit_exact(vol.to_dataset(), back.to_dataset())
    assert back.energy.attrs["units"] == "eV" and back.attrs["units"] == "1/nm"
    unnamed = xr.DataArray(np.arange(6, dtype=np.int32).reshape(2, 3), dims=("y", "x"))
    write(store, "seg", unnamed)
    assert read_group(store, "seg").name is None
    labels = spatial_map(rng.integers(0, 4, (4, 5, 6), dtype=np.uint16), voxel_size=10.0,
                         units="1", name="classes")
    write(store, "segmentation", labels)
    back = read_group(store, "segmentation").load()
    _assert_bit_exact(labels.to_dataset(), back.to_dataset())


def test_datatree_round_trip(tmp_path, rng):
    ds = _dataset(rng)
    tree = xr.DataTree.from_dict({
        "/": xr.Dataset(attrs={"sample": "P1"}),
        "/truth": ds,
        "/references": xr.Dataset({"spectra": (("state", "energy"),
                                               rng.random((3, 7)).astype(np.float32))},
                                  coords={"state": ["Mn2+", "Mn3+", "Mn4+"],
                                          "energy": ("energy", np.linspace(635, 665, 7),
                                                     {"units": "eV"})}),
    })
    store = tmp_path / "s.zarr"
    write(store, "sim", tree)
    back = open_tree(store)
    _assert_bit_exact(ds, back["sim/truth"].to_dataset().load())
    xr.testing.assert_identical(tree.to_dataset(), back["sim"].to_dataset())
    _assert_bit_exact(tree["references"].to_dataset(),
                      back["sim/references"].to_dataset().load())
    assert is_complete(store, "sim") and is_complete(store, "sim/truth")
    assert set(list_groups(store)) == {"sim", "sim/truth", "sim/references"}


def test_overwrite_refused_unless_asked(tmp_path, rng):
    store = tmp_path / "s.zarr"
    ds = _dataset(rng)
    write(store, "truth", ds)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write(store, "truth", ds.isel(z=slice(0, 2)))
    assert read_group(store, "truth").sizes["z"] == 6
    write(store, "truth", ds.isel(z=slice(0, 2)), overwrite=True)
    assert read_group(store, "truth").sizes["z"] == 2
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "s.zarr"]
    assert leftovers == []  # temporary and replaced groups cleaned up


def test_failed_write_leaves_no_group(tmp_path, rng, monkeypatch):
    store = tmp_path / "s.zarr"
    write(store, "truth", _dataset(rng))
    import spectrotomo.io._store as mod

    def boom(*a, **k):
        raise KeyboardInterrupt("interrupted while writing")

    monkeypatch.setattr(mod, "_mark_tree", boom)
    with pytest.raises(KeyboardInterrupt):
        write(store, "raw", _dataset(rng))
    with pytest.raises(KeyboardInterrupt):
        write(store, "truth", _dataset(rng).isel(z=[0]), overwrite=True)
    assert set(list_groups(store)) == {"truth"}  # interrupted "raw" never appeared
    assert read_group(store, "truth").sizes["z"] == 6  # old result intact


def test_missing_group_and_bad_names(tmp_path, rng):
    store = tmp_path / "s.zarr"
    write(store, "truth", _dataset(rng))
    with pytest.raises(KeyError, match="groups: \\['truth'\\]"):
        read_group(store, "recon")
    for bad in ("", "/", "../x", ".hidden"):
        with pytest.raises(ValueError, match="group must be"):
            write(store, bad, _dataset(rng))
    with pytest.raises(TypeError, match="Dataset, DataArray or DataTree"):
        write(store, "x", np.zeros(3))


def _init(store, **kw):
    init_array(store, "recon", "volume", shape=(2, 10, 8), dtype="float32", chunks=(1, 4, 8),
               dims=("energy", "z", "x"),
               coords={"energy": ("energy", [640.0, 655.0], {"units": "eV"}),
                       "z": ("z", np.arange(10) * 10.0, {"units": "nm"})},
               attrs={"units": "1/nm"}, **kw)


def test_region_writes_interrupted_then_resumed(tmp_path, rng):
    store = tmp_path / "s.zarr"
    full = rng.random((2, 10, 8), dtype=np.float32)
    _init(store)
    todo = missing_regions(store, "recon", "volume")
    assert len(todo) == 2 * 3  # 2 energies x 3 z-chunks (4, 4, 2)
    assert todo[3] == (slice(1, 2), slice(0, 4), slice(0, 8))
    for region in todo[:4]:  # the job dies after four chunks
        write_region(store, "recon", "volume", region, full[region])
    assert not is_complete(store, "recon")
    with pytest.raises(IncompleteGroupError, match="allow_incomplete=True"):
        read_group(store, "recon")
    with pytest.raises(IncompleteGroupError):
        open_tree(store)
    partial = read_group(store, "recon", allow_incomplete=True)["volume"].values
    assert np.isnan(partial[1, 4:]).all() and np.array_equal(partial[0], full[0])
    with pytest.raises(RuntimeError, match="unwritten chunks"):
        mark_complete(store, "recon")
    _init(store)  # the resumed job re-initialises: finished chunks are kept
    rest = missing_regions(store, "recon", "volume")
    assert rest == todo[4:]
    for region in rest:
        write_region(store, "recon", "volume", region, full[region])
    mark_complete(store, "recon")
    back = read_group(store, "recon")
    assert back["volume"].values.tobytes() == full.tobytes()
    assert back["volume"].attrs["units"] == "1/nm" and back.z.attrs["units"] == "nm"
    with pytest.raises(FileExistsError, match="complete"):
        _init(store)
    with pytest.raises(FileExistsError, match="complete"):
        write_region(store, "recon", "volume", rest[0], full[1, 8:])


def test_missing_regions_whole_dims_are_task_slabs_of_tiles(tmp_path, rng):
    """Chunks tiled in x, tasks over whole rows: one region per (energy, z slab), listed
    while any of its tiles is unwritten; the slabs never share a chunk."""
    store = tmp_path / "s.zarr"
    full = rng.random((2, 10, 8), dtype=np.float32)
    init_array(store, "recon", "volume", shape=(2, 10, 8), dtype="float32", chunks=(1, 4, 3),
               dims=("energy", "z", "x"))
    assert len(missing_regions(store, "recon", "volume")) == 2 * 3 * 3
    slabs = missing_regions(store, "recon", "volume", whole=("x",))
    assert slabs == [(slice(e, e + 1), slice(z, min(z + 4, 10)), slice(0, 8))
                     for e in range(2) for z in (0, 4, 8)]
    write_region(store, "recon", "volume", (slice(0, 1), slice(0, 4), slice(0, 3)),
                 full[:1, :4, :3])  # one tile of the first slab
    assert missing_regions(store, "recon", "volume", whole=("x",)) == slabs
    for region in slabs[:2]:  # whole slabs: every tile of them
        write_region(store, "recon", "volume", region, full[region])
    assert missing_regions(store, "recon", "volume", whole=("x",)) == slabs[2:]
    # all energies per task (the joint solver's): energy 1 is missing from every slab
    assert missing_regions(store, "recon", "volume", whole=("energy", "x")) == [
        (slice(0, 2), slice(z, min(z + 4, 10)), slice(0, 8)) for z in (0, 4, 8)]
    with pytest.raises(ValueError, match="not in"):
        missing_regions(store, "recon", "volume", whole=("y",))


def test_init_array_killed_before_its_marker_is_rebuilt(tmp_path):
    import shutil

    import zarr

    store = tmp_path / "s.zarr"
    _init(store)
    # the state a kill inside init_array can leave: arrays written, no marker yet,
    # a coordinate array not yet written
    g = zarr.open_group(str(store), path="recon", mode="r+", zarr_format=3)
    del g.attrs["spectrotomo_store"]
    shutil.rmtree(store / "recon" / "z")
    _init(store)  # no overwrite needed: nothing finished can be lost
    ds = read_group(store, "recon", allow_incomplete=True)
    np.testing.assert_array_equal(ds["z"].values, np.arange(10) * 10.0)
    assert len(missing_regions(store, "recon", "volume")) == 6


def test_remove_group_deletes_arrays_and_markers_and_keeps_the_rest(tmp_path, rng):
    store = tmp_path / "s.zarr"
    write(store, "raw", _dataset(rng))
    _init(store)
    write_region(store, "recon", "volume", (slice(0, 1), slice(0, 4)), np.ones((1, 4, 8), np.float32))
    remove_group(store, "recon")
    assert "recon" not in list_groups(store) and is_complete(store, "raw")
    assert not any(p.name.startswith(".recon") for p in store.iterdir())  # nothing left over
    remove_group(store, "recon")  # absent: nothing to do
    _init(store)  # a fresh group: every chunk missing again
    assert len(missing_regions(store, "recon", "volume")) == 6


def test_group_of_several_region_arrays_resumes_and_completes(tmp_path, rng):
    """Every array of a group is registered (xarray rewrites the group attrs on
    each init_array), resumes its written chunks and gates completion; string
    coords and group attrs survive."""
    store = tmp_path / "s.zarr"
    coords = {"element": ["O", "Mn"], "z": np.arange(4.0)}

    def init():
        init_array(store, "chem", "amount", shape=(2, 4), dtype="float32", chunks=(2, 2),
                   dims=("element", "z"), coords=coords)
        init_array(store, "chem", "ratio", shape=(4,), dtype="float32", chunks=(2,),
                   dims=("z",), coords={"z": coords["z"]})

    init()
    write_region(store, "chem", "amount", (slice(None), slice(0, 2)), np.ones((2, 2)))
    write_region(store, "chem", "ratio", (slice(0, 2),), np.ones(2))
    init()  # a resumed job: written chunks kept
    assert [len(missing_regions(store, "chem", n)) for n in ("amount", "ratio")] == [1, 1]
    write_region(store, "chem", "amount", (slice(None), slice(2, 4)), 2 * np.ones((2, 2)))
    with pytest.raises(RuntimeError, match="ratio"):
        mark_complete(store, "chem")
    write_region(store, "chem", "ratio", (slice(2, 4),), 2 * np.ones(2))
    with pytest.raises(IncompleteGroupError):
        read_region(store, "chem", "ratio", (slice(1, 3),))
    np.testing.assert_array_equal(
        read_region(store, "chem", "amount", {"z": slice(1, 3)}, allow_incomplete=True),
        [[1, 2], [1, 2]])  # not chunk-aligned: reads may be
    mark_complete(store, "chem", attrs={"n_masked": 3})
    np.testing.assert_array_equal(read_region(store, "chem", "ratio", (slice(1, 3),)), [1, 2])
    ds = read_group(store, "chem").load()
    assert ds.attrs["n_masked"] == 3 and list(ds["element"].values) == ["O", "Mn"]
    np.testing.assert_array_equal(ds["ratio"].values, [1, 1, 2, 2])


def test_region_multi_chunk_and_misaligned(tmp_path, rng):
    store = tmp_path / "s.zarr"
    _init(store)
    block = rng.random((2, 8, 8), dtype=np.float32)
    write_region(store, "recon", "volume", {"z": slice(0, 8)}, block)  # 4 chunks at once
    assert len(missing_regions(store, "recon", "volume")) == 2
    with pytest.raises(ValueError, match="not aligned to the chunk size 4"):
        write_region(store, "recon", "volume", {"z": slice(2, 6)}, block[:, :4])
    with pytest.raises(ValueError, match="not aligned"):
        write_region(store, "recon", "volume", {"z": (8, 9)}, block[:, :1])
    with pytest.raises(ValueError, match="data shape"):
        write_region(store, "recon", "volume", {"z": slice(8, 10)}, block[:, :3])
    with pytest.raises(ValueError, match="cannot be cast"):
        write_region(store, "recon", "volume", {"z": slice(8, 10)},
                     np.zeros((2, 2, 8), dtype=complex))
    with pytest.raises(ValueError, match="not in"):
        write_region(store, "recon", "volume", {"y": slice(0, 4)}, block)
    with pytest.raises(ValueError, match="4 slices for 3 dims"):
        write_region(store, "recon", "volume", (slice(None),) * 4, block)
    write_region(store, "recon", "volume", (slice(0, 2), slice(8, 10)), block[:, :2])
    assert missing_regions(store, "recon", "volume") == []
    with pytest.raises(FileExistsError, match="another shape"):
        init_array(store, "recon", "volume", shape=(2, 10, 8), dtype="float64",
                   chunks=(1, 4, 8), dims=("energy", "z", "x"))
    mark_complete(store, "recon")
    _init(store, overwrite=True)  # redo a complete result: starts empty
    assert len(missing_regions(store, "recon", "volume")) == 6
    assert np.isnan(read_group(store, "recon", allow_incomplete=True)["volume"].values).all()


def test_lock_refuses_second_writer(tmp_path, rng):
    store = tmp_path / "s.zarr"
    script = textwrap.dedent(f"""
        import sys, numpy as np, xarray as xr
        from spectrotomo.io import write, store_lock, StoreLockedError
        try:
            with store_lock({str(store)!r}):
                pass
        except StoreLockedError as e:
            print("LOCKED:", e)
        try:
            write({str(store)!r}, "other", xr.Dataset({{"a": ("x", np.zeros(2))}}))
        except StoreLockedError as e:
            print("WRITE LOCKED")
    """)
    with store_lock(store) as lock_file:
        assert lock_file.exists()
        write(store, "truth", _dataset(rng))  # the holder itself may write
        with store_lock(store):  # re-entrant in one process
            pass
        assert lock_file.exists()
        out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=60, env=_env())
        assert "LOCKED: store is locked by another writer (pid" in out.stdout, out.stderr
        assert "WRITE LOCKED" in out.stdout
    assert not lock_file.exists()
    with store_lock(store):  # released: the next writer gets it
        write(store, "other", _dataset(rng))
    assert is_complete(store, "other")


def test_lock_held_by_live_foreign_process_refuses_write(tmp_path, rng):
    import os
    import socket

    store = tmp_path / "s.zarr"
    (tmp_path / "s.zarr.lock").write_text(json.dumps(
        {"pid": os.getppid(), "host": socket.gethostname(), "time": "now"}))
    with pytest.raises(StoreLockedError, match="Wait for it to finish"):
        write(store, "truth", _dataset(rng))
    with pytest.raises(StoreLockedError):
        _init(store)
    assert not store.exists()


def _dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True)
    return int(proc.stdout)


def _write_lock(path, pid, host=None):
    import socket

    path.write_text(json.dumps({"pid": pid, "host": host or socket.gethostname(),
                                "time": "earlier"}))


def test_stale_lock_of_dead_pid_is_taken_over_and_said(tmp_path, rng, caplog):
    store = tmp_path / "s.zarr"
    dead = _dead_pid()
    _write_lock(tmp_path / "s.zarr.lock", dead)
    with pytest.raises(StoreLockedError, match="stale"):  # a plain write still refuses
        write(store, "truth", _dataset(rng))
    lines = []
    with store_lock(store, log=lines.append) as lock_file:
        owner = json.loads(lock_file.read_text())
        assert owner["pid"] == os.getpid()
        write(store, "truth", _dataset(rng))
    assert lines == [f"removed stale lock {lock_file} (taken over) of dead pid {dead} on host "
                     f"{owner['host']} (since earlier)"]
    assert not lock_file.exists()
    _write_lock(tmp_path / "s.zarr.lock", dead)
    with caplog.at_level("WARNING", logger="spectrotomo.io._lock"), store_lock(store):
        pass  # without a log callback: a logging warning, never silence
    assert f"dead pid {dead}" in caplog.text


def test_stale_lock_of_another_host_is_refused(tmp_path):
    _write_lock(tmp_path / "s.zarr.lock", _dead_pid(), host="some-other-host")
    with pytest.raises(StoreLockedError, match="some-other-host.*Wait for it"):
        with store_lock(tmp_path / "s.zarr"):
            pass


def test_racing_takeovers_of_a_stale_lock_admit_one_writer(tmp_path):
    """Several processes rerun at once after a kill: exactly one takes the stale
    lock; the others are refused because its new owner is alive."""
    store, go, release = tmp_path / "s.zarr", tmp_path / "go", tmp_path / "release"
    _write_lock(tmp_path / "s.zarr.lock", _dead_pid())
    script = textwrap.dedent(f"""
        import os, time
        from spectrotomo.io import store_lock, StoreLockedError
        print("READY", flush=True)
        while not os.path.exists({str(go)!r}):
            pass
        try:
            with store_lock({str(store)!r}, log=lambda m: None):
                print("OWNER", flush=True)
                while not os.path.exists({str(release)!r}):
                    time.sleep(0.01)
        except StoreLockedError as e:
            print("REFUSED", "Wait for it" in str(e), flush=True)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                              text=True, env=_env()) for _ in range(4)]
    try:
        assert [p.stdout.readline().strip() for p in procs] == ["READY"] * 4
        go.touch()  # all four try at once
        outs = [p.stdout.readline().split() for p in procs]
        release.touch()
    finally:
        release.touch()
        for p in procs:
            p.communicate(timeout=60)
    assert sorted(o[0] for o in outs) == ["OWNER", "REFUSED", "REFUSED", "REFUSED"], outs
    assert all(o[1] == "True" for o in outs if o[0] == "REFUSED"), outs
    assert not (tmp_path / "s.zarr.lock").exists()


def _env():
    import os
    from pathlib import Path

    import spectrotomo

    src = str(Path(spectrotomo.__file__).parents[1])
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_lazy_group_rewritten_in_place(tmp_path, rng):
    """A lazily read group can be transformed and written back over itself:
    the new version is complete before the old one is removed."""
    store = tmp_path / "s.zarr"
    ds = _dataset(rng)
    write(store, "truth", ds, encoding={"occupancy": {"chunks": (2, 5, 4)}})
    lazy = read_group(store, "truth")
    assert lazy["occupancy"].data.chunks[0] == (2, 2, 2)
    doubled = lazy.assign(occupancy=lazy["occupancy"] * 2)
    doubled["occupancy"].attrs["units"] = "1"
    write(store, "truth", doubled, overwrite=True)
    back = read_group(store, "truth").load()
    np.testing.assert_array_equal(back["occupancy"].values, ds["occupancy"].values * 2)
    _assert_bit_exact(ds.drop_vars("occupancy"), back.drop_vars("occupancy"))


def test_concurrent_region_writers(tmp_path, rng):
    from concurrent.futures import ThreadPoolExecutor

    store = tmp_path / "s.zarr"
    full = rng.integers(0, 2**16, (2, 10, 8), dtype=np.uint16)
    init_array(store, "seg", "labels", shape=full.shape, dtype=np.uint16, chunks=(1, 2, 4),
               dims=("energy", "z", "x"))
    todo = missing_regions(store, "seg", "labels")

    def job(region):
        write_region(store, "seg", "labels", region, full[region])

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(job, todo))
    assert missing_regions(store, "seg", "labels") == []
    mark_complete(store, "seg")
    assert np.array_equal(read_group(store, "seg")["labels"].values, full)


def test_write_groups_refuses_before_writing_anything(tmp_path, rng):
    from spectrotomo.io import write_groups

    store = tmp_path / "s.zarr"
    ds = _dataset(rng)
    write(store, "raw", ds)
    with pytest.raises(FileExistsError, match="nothing was written"):
        write_groups(store, {"truth": ds, "raw": ds})
    assert set(list_groups(store)) == {"raw"}
    write_groups(store, {"truth": ds, "raw": ds.isel(z=[0])}, overwrite=True)
    assert read_group(store, "raw").sizes["z"] == 1 and is_complete(store, "truth")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not a zarr v3 store"):
        write(tmp_path / "notes", "raw", ds)
