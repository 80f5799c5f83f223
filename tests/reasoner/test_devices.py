"""The device limits table: lookups by the names drivers report, overrides, measured figures."""

from __future__ import annotations

import json

import pytest

from pytest_aina import devices
from pytest_aina.devices import DeviceTableError, load_table, lookup

# (name as torch.cuda.get_device_name reports it, key, bandwidth in B/s, dense bf16 FLOP/s)
NAMES = [
    ("NVIDIA A100-SXM4-40GB", "a100-40gb", 1.555e12, 312e12),
    ("NVIDIA A100-PCIE-40GB", "a100-40gb", 1.555e12, 312e12),
    ("NVIDIA A100-SXM4-80GB", "a100-80gb", 2.039e12, 312e12),
    ("NVIDIA A100 80GB PCIe", "a100-80gb-pcie", 1.935e12, 312e12),
    ("NVIDIA H100 80GB HBM3", "h100-sxm", 3.35e12, 989.5e12),
    ("NVIDIA H100 PCIe", "h100-pcie", 2.0e12, 756.5e12),
    ("NVIDIA H100 NVL", "h100-nvl", 3.9e12, 835.5e12),
    ("NVIDIA H200", "h200", 4.8e12, 989.5e12),
    ("NVIDIA H200 NVL", "h200-nvl", 4.8e12, 835.5e12),
    ("NVIDIA L4", "l4", 300e9, 121e12),
    ("NVIDIA L40S", "l40s", 864e9, 362.05e12),
    ("NVIDIA A10G", "a10g", 600e9, 70e12),
    ("NVIDIA A10", "a10", 600e9, 125e12),
    ("AMD Instinct MI300X", "mi300x", 5.3e12, 1307.4e12),
    ("NVIDIA B200", "b200", 8.0e12, 2250e12),
]


@pytest.mark.parametrize("name, key, bw, bf16", NAMES, ids=[n[0] for n in NAMES])
def test_lookup_by_driver_name(name, key, bw, bf16):
    lim = lookup(name)
    assert lim is not None and lim.key == key
    assert lim.hbm_bytes_per_s == bw and lim.flops_for("bfloat16") == bf16
    assert lim.source and lim.arch


@pytest.mark.parametrize("name", ["cpu", "NVIDIA GeForce RTX 4090", "NVIDIA GH200 480GB", "NVIDIA L40", ""])
def test_unknown_devices_have_no_limits(name):
    assert lookup(name) is None


def test_every_shipped_figure_cites_its_source_and_is_dense():
    for d in load_table().devices:
        assert d.source and d.match and d.arch
        # dense: the FP16 tensor figure is never the 'with sparsity' one (tensor > 2x FP32 vector suffices)
        assert d.flops_for("float16") > d.flops_for("float32")


def test_roofline_helpers():
    h100 = lookup("NVIDIA H100 80GB HBM3")
    assert h100.pct_of_bandwidth(1.675e12) == pytest.approx(50)
    assert h100.min_time_s(bytes=3.35e9, flops=None, dtype="bfloat16") == pytest.approx(1e-3)
    assert h100.min_time_s(bytes=1, flops=989.5e12, dtype="bfloat16") == pytest.approx(1.0)
    assert h100.min_time_s(bytes=None, flops=None, dtype="bfloat16") is None
    assert h100.pct_of_flops(494.75e12, "bfloat16") == pytest.approx(50)


def test_measured_figures_replace_the_datasheet():
    h100 = lookup("NVIDIA H100 80GB HBM3")
    m = h100.with_measured(hbm_bytes_per_s=2.9e12, how="measured with a copy kernel on node-7")
    assert m.hbm_bytes_per_s == 2.9e12 and m.source.startswith("measured with a copy kernel on node-7")
    assert h100.hbm_bytes_per_s == 3.35e12  # the table itself is not changed
    with pytest.raises(DeviceTableError, match="positive"):
        h100.with_measured(hbm_bytes_per_s=0)


def test_configuration_overrides_and_adds(tmp_path, monkeypatch):
    path = tmp_path / "devices.json"
    path.write_text(
        json.dumps(
            {
                "aina_devices": 1,
                "devices": [
                    {"key": "h100-sxm", "hbm_bytes_per_s": 3.0e12},
                    {
                        "key": "rtx4090",
                        "name": "NVIDIA GeForce RTX 4090",
                        "arch": "sm_89",
                        "match": ["rtx 4090"],
                        "hbm_bytes_per_s": 1.008e12,
                        "flops": {"float16": 165.2e12},
                        "source": "NVIDIA Ada whitepaper",
                    },
                ],
            }
        )
    )
    table = load_table(path)
    h100 = table.lookup("NVIDIA H100 80GB HBM3")
    assert h100.hbm_bytes_per_s == 3.0e12 and h100.flops_for("bfloat16") == 989.5e12
    assert h100.source.startswith(f"configured in {path}")
    assert table.lookup("NVIDIA GeForce RTX 4090").key == "rtx4090"
    monkeypatch.setenv("AINA_DEVICES", str(path))
    monkeypatch.setattr(devices, "_DEFAULT", None)
    assert lookup("NVIDIA GeForce RTX 4090").hbm_bytes_per_s == 1.008e12


@pytest.mark.parametrize(
    "doc, words",
    [
        ({"devices": []}, 'expected {"aina_devices": 1'),
        (
            {"aina_devices": 1, "devices": [{"key": "new"}]},
            "devices[0]: missing required key 'name' for new device 'new'",
        ),
        (
            {"aina_devices": 1, "devices": [{"key": "l4", "flops": {"int4": 1e12}}]},
            "devices[0].flops.int4: unknown dtype",
        ),
        (
            {"aina_devices": 1, "devices": [{"key": "l4", "match": ["("]}]},
            "devices[0].match[0]: not a regular expression",
        ),
        ({"aina_devices": 1, "devices": [{"key": "l4", "colour": "red"}]}, "devices[0].colour: unknown key"),
    ],
)
def test_bad_override_files_name_the_key(tmp_path, doc, words):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DeviceTableError) as info:
        load_table(path)
    assert str(info.value).startswith(str(path)) and words in str(info.value)
    path.write_text("{not json")
    with pytest.raises(DeviceTableError, match=r"d.json:1: not JSON"):
        load_table(path)
