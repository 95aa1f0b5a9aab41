"""The GPU telemetry timer of the nvidia_cuda role, with the stand-in nvidia-smi of converge.yml's play 5
(the unit tests' recorded answers, scenario four_h100_mig): the textfile node-exporter reads, a broken
driver, the sandbox."""

import re
import time

from prometheus_client.parser import text_string_to_metric_families

UNIT = "runlocalai-gpu-telemetry"
TEXTFILE = "/var/lib/prometheus/node-exporter/mlops_gpu.prom"
SCENARIO = "/opt/molecule-nvidia-smi/scenario"
MIB = 1024 * 1024
H100 = "NVIDIA H100 80GB HBM3"
UUIDS = ("GPU-5d3a9c6e-1c4b-4a8e-9f7e-2b1c0d9e8f70", "GPU-8e21f0a4-77c3-4f1d-b2a5-90c6d3e1f482",
         "GPU-2b7f6c19-0e5d-48a3-a1c2-d4e5f6a7b8c9", "GPU-c0ffee00-1234-4abc-8def-0123456789ab")


def series(host):
    """{name: {(index, uuid, name) or (): value}} of the textfile."""
    out = {}
    for family in text_string_to_metric_families(host.file(TEXTFILE).content_string):
        for sample in family.samples:
            key = tuple(sample.labels.get(k) for k in ("index", "uuid", "name")) if sample.labels else ()
            out.setdefault(sample.name, {})[key] = sample.value
    return out


def run_once(host):
    """One run of the service now (a oneshot: start returns when it has finished)."""
    host.run_expect([0], "systemctl start %s.service" % UNIT)


def wait_for_textfile(host):
    for _ in range(60):
        if host.file(TEXTFILE).exists:
            return
        time.sleep(1)
    raise AssertionError("%s did not appear within 60 s of the timer's start" % TEXTFILE)


def test_timer_is_enabled_and_active(host):
    timer = host.service(UNIT + ".timer")
    assert timer.is_enabled
    assert host.check_output("systemctl is-active %s.timer" % UNIT) == "active"


def test_textfile_holds_the_recorded_gpus(host):
    wait_for_textfile(host)
    run_once(host)
    found = series(host)
    assert found.pop("mlops_gpu_smi_up") == {(): 1.0}
    assert found["mlops_gpu_memory_used_bytes"] == dict(
        ((str(i), UUIDS[i], H100), v * MIB) for i, v in enumerate((229, 237, 237, 79184)))
    assert found["mlops_gpu_memory_total_bytes"] == dict(((str(i), UUIDS[i], H100), 81559.0 * MIB) for i in range(4))
    assert found["mlops_gpu_temperature_celsius"][("3", UUIDS[3], H100)] == 64.0
    assert found["mlops_gpu_power_draw_watts"][("3", UUIDS[3], H100)] == 612.55
    assert found["mlops_gpu_power_limit_watts"][("0", UUIDS[0], H100)] == 700.0
    # GPU 0 is in MIG mode: no utilization from nvidia-smi, so no series for it.
    assert sorted(found["mlops_gpu_utilization_ratio"]) == [(str(i), UUIDS[i], H100) for i in (1, 2, 3)]


def test_textfile_is_written_by_the_timers_user_and_readable_by_node_exporter(host):
    wait_for_textfile(host)
    f = host.file(TEXTFILE)
    assert (f.user, f.group, f.mode) == ("runlocalai-gpu", "runlocalai-gpu", 0o644)
    # write_to_textfile renames a temporary file into place: none is left behind.
    assert host.check_output("ls -A /var/lib/prometheus/node-exporter") == "mlops_gpu.prom"


def test_a_broken_driver_gives_up_0_and_nothing_else(host):
    try:
        host.run_expect([0], "echo driver_not_loaded > %s" % SCENARIO)
        run_once(host)
        assert series(host) == {"mlops_gpu_smi_up": {(): 0.0}}
        # Not a failed unit: the series carry it, and the journal says why.
        show = host.check_output("systemctl show -p Result -p ExecMainStatus %s.service" % UNIT)
        assert "Result=success" in show and "ExecMainStatus=0" in show, show
        journal = host.check_output("journalctl -u %s.service --no-pager -n 20" % UNIT)
        assert "nvidia-smi failed (exit 9): NVIDIA-SMI has failed because it couldn't communicate" in journal
    finally:
        host.run_expect([0], "echo four_h100_mig > %s" % SCENARIO)
    run_once(host)
    assert series(host)["mlops_gpu_smi_up"] == {(): 1.0}


def test_service_is_sandboxed(host):
    out = host.check_output("systemd-analyze security --no-pager %s.service" % UNIT)
    score = float(re.search(r"Overall exposure level for \S+: ([0-9.]+)", out).group(1))
    print("systemd-analyze security %s.service: %.1f" % (UNIT, score))
    assert score <= 3.5, out
    show = host.check_output("systemctl show -p User -p DevicePolicy -p PrivateNetwork -p ProtectSystem %s.service" % UNIT)
    for line in ("User=runlocalai-gpu", "DevicePolicy=closed", "PrivateNetwork=yes", "ProtectSystem=strict"):
        assert line in show.splitlines(), show
