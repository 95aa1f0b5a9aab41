# -*- coding: utf-8 -*-
"""GPU telemetry (module_utils/host/gpu.py parse_smi_telemetry, host/gpu_telemetry.py): every recorded
nvidia-smi answer of fixtures/host_facts/nvidia_smi fed to the parser and written as a node-exporter
textfile with prometheus_client, read back with prometheus_client's own parser."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
from xml.etree import ElementTree

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.runlocalai.mlops.plugins.module_utils.host import gpu as hf_gpu
from ansible_collections.runlocalai.mlops.plugins.module_utils.host import gpu_telemetry
from ansible_collections.runlocalai.mlops.tests.unit.plugins.fixtures.host_facts import fake_nvidia_smi
from ansible_collections.runlocalai.mlops.tests.unit.plugins.fixtures.host_facts.helpers import SMI_DIR, make_fake_smi, smi_answers

SMI = "/usr/bin/nvidia-smi"
MIB = 1024 * 1024
GPU_SERIES = ("mlops_gpu_utilization_ratio", "mlops_gpu_memory_used_bytes", "mlops_gpu_memory_total_bytes",
              "mlops_gpu_temperature_celsius", "mlops_gpu_power_draw_watts", "mlops_gpu_power_limit_watts")

with open(os.path.join(SMI_DIR, "scenarios.json")) as _handle:
    SCENARIOS = sorted(name for name in json.load(_handle) if not name.startswith("_"))


def runner_for(scenario, calls=None):
    answers = smi_answers(scenario)

    def run(argv):
        if calls is not None:
            calls.append(list(argv))
        text, rc = answers.get(fake_nvidia_smi.answer_key(list(argv[1:])), ("", 127))
        return rc, text, ""
    return run


def written(tmp_path, scenario):
    """collect() on the scenario's recordings, written to a textfile; returns (result, {series: {labels: value}}, text)."""
    result = gpu_telemetry.collect(SMI, runner_for(scenario))
    path = tmp_path / "mlops_gpu.prom"
    gpu_telemetry.write(str(path), result)
    return (result,) + read_textfile(path)


def read_textfile(path):
    text = path.read_text()
    series = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family.name
        for sample in family.samples:
            series.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return series, text


def labels(index, uuid, name):
    return (("index", str(index)), ("name", name), ("uuid", uuid))


H100 = "NVIDIA H100 80GB HBM3"
H100_UUIDS = ("GPU-5d3a9c6e-1c4b-4a8e-9f7e-2b1c0d9e8f70", "GPU-8e21f0a4-77c3-4f1d-b2a5-90c6d3e1f482",
              "GPU-2b7f6c19-0e5d-48a3-a1c2-d4e5f6a7b8c9", "GPU-c0ffee00-1234-4abc-8def-0123456789ab")
RTX4090 = ("GPU-0c8c2b1e-5b2a-7d43-9a61-3f2e9d6c1b40", "NVIDIA GeForce RTX 4090")

# scenario -> expected series (None: the scenario's nvidia-smi is down: mlops_gpu_smi_up 0 and nothing else)
EXPECTED = {
    "one_gpu": {
        "mlops_gpu_utilization_ratio": {labels(0, *RTX4090): 0.03},
        "mlops_gpu_memory_used_bytes": {labels(0, *RTX4090): 584 * MIB},
        "mlops_gpu_memory_total_bytes": {labels(0, *RTX4090): 24564 * MIB},
        "mlops_gpu_temperature_celsius": {labels(0, *RTX4090): 41},
        "mlops_gpu_power_draw_watts": {labels(0, *RTX4090): 27.85},
        "mlops_gpu_power_limit_watts": {labels(0, *RTX4090): 450},
    },
    # GPU 0 is in MIG mode: nvidia-smi has no utilization for it, so it has no such series.
    "four_h100_mig": {
        "mlops_gpu_utilization_ratio": dict((labels(i, H100_UUIDS[i], H100), v) for i, v in ((1, 0), (2, 0), (3, 0.97))),
        "mlops_gpu_memory_used_bytes": dict((labels(i, H100_UUIDS[i], H100), v * MIB) for i, v in enumerate((229, 237, 237, 79184))),
        "mlops_gpu_memory_total_bytes": dict((labels(i, H100_UUIDS[i], H100), 81559 * MIB) for i in range(4)),
        "mlops_gpu_temperature_celsius": dict((labels(i, H100_UUIDS[i], H100), v) for i, v in enumerate((33, 31, 30, 64))),
        "mlops_gpu_power_draw_watts": dict((labels(i, H100_UUIDS[i], H100), v) for i, v in enumerate((71.42, 69.87, 68.10, 612.55))),
        "mlops_gpu_power_limit_watts": dict((labels(i, H100_UUIDS[i], H100), 700) for i in range(4)),
    },
    # Its only GPU has no uuid (a label): nothing readable.
    "na_fields": None,
    # A warning line, a GPU whose memory.used is not a number (that series left out), a garbage line.
    "garbage_mixed": {
        "mlops_gpu_utilization_ratio": {labels(0, *RTX4090): 0.03},
        "mlops_gpu_memory_total_bytes": {labels(0, *RTX4090): 24564 * MIB},
        "mlops_gpu_temperature_celsius": {labels(0, *RTX4090): 41},
        "mlops_gpu_power_draw_watts": {labels(0, *RTX4090): 27.85},
        "mlops_gpu_power_limit_watts": {labels(0, *RTX4090): 450},
    },
    "garbage_only": None,
    "driver_not_loaded": None,
    "library_mismatch": None,
    # The T4 of banner_470.txt: 0 %, 0 MiB of 15109 MiB, 29 C, 9 W of 70 W.
    "old_driver": dict((name, {labels(0, "GPU-7a1f3e5d-2c4b-6a8e-0f1d-3b5c7e9a1d2f", "Tesla T4"): value}) for name, value in (
        ("mlops_gpu_utilization_ratio", 0), ("mlops_gpu_memory_used_bytes", 0), ("mlops_gpu_memory_total_bytes", 15109 * MIB),
        ("mlops_gpu_temperature_celsius", 29), ("mlops_gpu_power_draw_watts", 9.21), ("mlops_gpu_power_limit_watts", 70))),
    # WSL reports no power figures: those series are left out.
    "wsl": dict((name, {labels(0, "GPU-9f8e7d6c-5b4a-3928-1706-f5e4d3c2b1a0", "NVIDIA GeForce RTX 3080"): value}) for name, value in (
        ("mlops_gpu_utilization_ratio", 0.12), ("mlops_gpu_memory_used_bytes", 1240 * MIB),
        ("mlops_gpu_memory_total_bytes", 10240 * MIB), ("mlops_gpu_temperature_celsius", 52))),
}
EXPECTED["four_h100_mig_disagree"] = EXPECTED["four_h100_mig"]


def test_every_scenario_has_a_telemetry_recording_and_an_expectation():
    assert sorted(EXPECTED) == SCENARIOS
    for scenario in SCENARIOS:
        assert "telemetry" in smi_answers(scenario), scenario


def test_the_fake_nvidia_smi_tells_the_telemetry_query_apart():
    argv = hf_gpu.telemetry_argv(SMI)
    assert fake_nvidia_smi.answer_key(argv[1:]) == "telemetry"
    # the host_facts queries still get their own answers
    assert fake_nvidia_smi.answer_key(["--query-gpu=" + ",".join(hf_gpu.SMI_FIELDS), "--format=csv,noheader,nounits"]) == "query"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_each_recorded_answer_becomes_the_expected_series(tmp_path, scenario):
    result, series, text = written(tmp_path, scenario)
    expected = EXPECTED[scenario]
    if expected is None:
        assert result["up"] is False and result["gpus"] == []
        assert result["warnings"], "a down nvidia-smi must say why"
        assert series == {"mlops_gpu_smi_up": {(): 0.0}}, text
        return
    assert result["up"] is True
    assert series.pop("mlops_gpu_smi_up") == {(): 1.0}
    assert set(series) == set(expected), text
    for name, values in expected.items():
        assert set(series[name]) == set(values), name
        for key, value in values.items():
            assert series[name][key] == pytest.approx(value), (name, key)
    assert set(series) <= set(GPU_SERIES)


def test_garbled_lines_are_skipped_with_warnings(tmp_path):
    result, _series, _text = written(tmp_path, "garbage_mixed")
    assert [gpu["index"] for gpu in result["gpus"]] == [0]
    assert any("memory.used 'lots' is not a number" in w for w in result["warnings"])
    assert any("line 1 has 1 fields" in w for w in result["warnings"])
    assert any("'a' is not a PCI bus id" in w for w in result["warnings"])


def test_a_failed_nvidia_smi_is_reported_with_its_exit_code_and_message():
    result = gpu_telemetry.collect(SMI, runner_for("driver_not_loaded"))
    assert result["warnings"] == [
        "nvidia-smi failed (exit 9): NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
        "Make sure that the latest NVIDIA driver is installed and running."]


def test_telemetry_recordings_agree_with_the_host_facts_recordings_of_the_same_scenario():
    """The same cards in all answers: uuid, name and total memory per bus id; memory used as the XML says."""
    checked = 0
    for scenario in SCENARIOS:
        answers = smi_answers(scenario)
        query = answers.get("query") if answers.get("query", ("", 1))[1] == 0 else answers.get("query_base")
        if not query or query[1] != 0 or "telemetry" not in answers:
            continue
        fields = hf_gpu.SMI_FIELDS if "query" in answers and answers["query"][1] == 0 else hf_gpu.SMI_BASE_FIELDS
        facts = dict((gpu["pci_address"], gpu) for gpu in hf_gpu.parse_smi_csv(query[0], fields)[0])
        for gpu in hf_gpu.parse_smi_telemetry(answers["telemetry"][0])[0]:
            other = facts[gpu["pci_address"]]
            assert (gpu["uuid"], gpu["name"], gpu["memory_total_mib"]) == (other["uuid"], other["name"], other["memory_total_mib"])
            # used + free + reserved = total (drivers since about 510 report the reserved part apart)
            if other["memory_free_mib"] is not None and gpu["memory_used_mib"] is not None:
                assert gpu["memory_used_mib"] <= other["memory_total_mib"] - other["memory_free_mib"], (scenario, gpu)
            if "xml" in answers and not scenario.endswith("_disagree"):  # that XML disagrees on purpose
                xml = ElementTree.fromstring(answers["xml"][0])
                used = xml.find("gpu[uuid='%s']/fb_memory_usage/used" % gpu["uuid"]).text
                assert used == "%d MiB" % gpu["memory_used_mib"], (scenario, gpu)
            checked += 1
    assert checked >= 7


@pytest.mark.parametrize("name", sorted(n for n in os.listdir(SMI_DIR) if n != "scenarios.json"))
def test_every_recorded_output_goes_through_the_parser_without_raising(name):
    with open(os.path.join(SMI_DIR, name)) as handle:
        text = handle.read()
    gpus, warnings = hf_gpu.parse_smi_telemetry(text)
    if name.startswith("telemetry_"):
        assert gpus or warnings
    else:  # host_facts' answers, XML, banners, errors: never a telemetry row
        assert gpus == []
    for gpu in gpus:
        assert isinstance(gpu["index"], int) and gpu["uuid"]


def test_a_failure_replaces_the_gpu_series_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "mlops_gpu.prom"
    gpu_telemetry.write(str(path), gpu_telemetry.collect(SMI, runner_for("four_h100_mig")))
    assert len(read_textfile(path)[0]["mlops_gpu_memory_used_bytes"]) == 4
    gpu_telemetry.write(str(path), gpu_telemetry.collect(SMI, runner_for("library_mismatch")))
    assert read_textfile(path)[0] == {"mlops_gpu_smi_up": {(): 0.0}}
    assert os.listdir(str(tmp_path)) == ["mlops_gpu.prom"]


def test_the_runner_turns_timeouts_and_missing_programs_into_failures(tmp_path):
    rc, _out, err = gpu_telemetry.run_command([str(tmp_path / "no-such-nvidia-smi")])
    assert rc == 127 and err
    slow = tmp_path / "slow"
    slow.write_text("#!/bin/sh\nsleep 5\n")
    slow.chmod(0o755)
    assert gpu_telemetry.run_command([str(slow)], timeout=1)[0] == 124
    assert gpu_telemetry.collect(str(slow), lambda argv: gpu_telemetry.run_command(argv, timeout=1))["up"] is False


def test_cli_with_a_stand_in_nvidia_smi(tmp_path, capsys):
    smi = make_fake_smi(tmp_path, "one_gpu")
    path = tmp_path / "out" / "mlops_gpu.prom"
    path.parent.mkdir()
    assert gpu_telemetry.main(["--nvidia-smi", smi, "--textfile", str(path)]) == 0
    series = read_textfile(path)[0]
    assert series["mlops_gpu_smi_up"] == {(): 1.0}
    assert series["mlops_gpu_temperature_celsius"] == {labels(0, *RTX4090): 41.0}
    assert "1 GPU(s), nvidia-smi up" in capsys.readouterr().out


def test_cli_with_a_broken_driver_exits_0_and_writes_up_0(tmp_path, capsys):
    smi = make_fake_smi(tmp_path, "driver_not_loaded")
    path = tmp_path / "mlops_gpu.prom"
    assert gpu_telemetry.main(["--nvidia-smi", smi, "--textfile", str(path)]) == 0
    assert read_textfile(path)[0] == {"mlops_gpu_smi_up": {(): 0.0}}
    assert "nvidia-smi failed (exit 9)" in capsys.readouterr().err


def test_cli_fails_when_it_cannot_write(tmp_path, capsys):
    smi = make_fake_smi(tmp_path, "one_gpu")
    assert gpu_telemetry.main(["--nvidia-smi", smi, "--textfile", str(tmp_path / "missing" / "mlops_gpu.prom")]) == 1
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--textfile", "/tmp/x.txt"], "must end in .prom"),
    (["--textfile", "/tmp/x.prom", "--timeout", "0"], "--timeout"),
])
def test_cli_refuses_bad_arguments_naming_them(args, message, capsys):
    with pytest.raises(SystemExit) as info:
        gpu_telemetry.main(["--nvidia-smi", SMI] + args)
    assert info.value.code == 2
    assert message in capsys.readouterr().err
