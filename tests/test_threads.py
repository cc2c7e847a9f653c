"""The CPU thread pool's wait policy: passive for commands that time no latency unless the user chose (archsearch._threads)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from archsearch import _threads


@pytest.fixture
def clean_env(monkeypatch):
    for name in _threads._USER_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delitem(sys.modules, "torch", raising=False)  # restored by monkeypatch after the test
    return monkeypatch


def test_sets_passive_when_nothing_is_chosen(clean_env):
    assert _threads.prefer_passive_wait() is True
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"


@pytest.mark.parametrize("name,value", [("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "300000"), ("KMP_BLOCKTIME", "200")])
def test_the_users_choice_wins(clean_env, name, value):
    clean_env.setenv(name, value)
    assert _threads.prefer_passive_wait() is False
    assert os.environ[name] == value
    assert name == "OMP_WAIT_POLICY" or "OMP_WAIT_POLICY" not in os.environ


def test_too_late_once_torch_is_imported(clean_env):
    clean_env.setitem(sys.modules, "torch", object())
    assert _threads.prefer_passive_wait() is False
    assert "OMP_WAIT_POLICY" not in os.environ


_PROBE = ("import os, sys; from archsearch.cli.main import main; code = main(sys.argv[1:]); "
          "print(code, 'torch' in sys.modules, os.environ.get('OMP_WAIT_POLICY'))")


@pytest.mark.parametrize("argv,policy", [
    (["validate", "no-such-run-dir", "--no-latency"], "PASSIVE"),  # trains, times nothing: set before torch loads
    (["validate", "no-such-run-dir"], None),  # times batch-1 latency: OpenMP's default spinning
    (["spaces"], None),
])
def test_cli_sets_it_when_nothing_is_timed(tmp_path, argv, policy):
    env = {k: v for k, v in os.environ.items() if k not in _threads._USER_VARS}
    out = subprocess.run([sys.executable, "-c", _PROBE, *argv], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    code, _torch, seen = out.stdout.strip().splitlines()[-1].split()
    assert seen == str(policy)
    if argv[0] == "validate":
        assert code == "2"  # the missing run directory: a one-line error, after the policy was set


def test_cli_keeps_the_users_policy(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in _threads._USER_VARS}
    env["OMP_WAIT_POLICY"] = "ACTIVE"
    out = subprocess.run([sys.executable, "-c", _PROBE, "validate", "no-such-run-dir", "--no-latency"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1].split()[-1] == "ACTIVE"
