"""Helpers shared by the scenarios' testinfra files (imported with molecule/shared on sys.path)."""

import json
import os
import shlex
import subprocess
import time

import pytest


def wait_for(probe, what, timeout=120, interval=3):
    """Poll probe() until it returns something truthy; fail naming `what`."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    pytest.fail("gave up waiting for %s (last: %r)" % (what, last))


def run_from_controller(args, timeout=1800, env=None):
    """Run a command (ansible-playbook, a script) from the controller as an operator would, with this
    scenario's Ansible configuration and no colour (and the variables of env added); (rc, output)."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", **(env or {}))  # molecule forces colour
    config = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "ansible.cfg")
    if os.path.exists(config):
        env["ANSIBLE_CONFIG"] = config
    done = subprocess.run(args, env=env, cwd=os.environ["MOLECULE_PROJECT_DIRECTORY"], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
    return done.returncode, done.stdout


def lifecycle_audit_entries(host):
    """Every entry of the lifecycle audit chain on a testinfra host, oldest first."""
    code = ("import json, sqlite3; c = sqlite3.connect('file:/var/lib/runlocalai/audit/lifecycle.db?mode=ro', uri=True); "
            "print(json.dumps([dict(zip([d[0] for d in q.description], r)) for q in [c.execute('select * from audit_log order by seq')] "
            "for r in q.fetchall()]))")
    return json.loads(host.check_output("python3 -c %s" % shlex.quote(code)))
