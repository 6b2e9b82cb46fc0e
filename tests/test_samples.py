"""What every sample service promises: seeded bugs of each kind, a model and a workload entry
beside it, its OpenAPI document served, and the README's table of its bugs kept true."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, Completed
from propworkload._target import sample_service
from propworkload.samples import SAMPLES, load_sample

README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_has_bugs_model_and_workload(name: str) -> None:
    """At least three seeded bugs, one of them needing faults or concurrency, names unique
    and named for what they need; a model and a workload entry for it."""
    bugs = load_sample(name).BUGS
    assert len(bugs) >= 3
    assert any(bug.needs for bug in bugs)
    assert len({bug.name for bug in bugs}) == len(bugs)
    for bug in bugs:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", bug.name)
        assert bug.minimal_steps >= 1 and bug.description and bug.invariant
        if "concurrency" in bug.needs:
            assert bug.name.startswith("race-") and bug.invariant == "linearizable"
        if "faults" in bug.needs:
            assert bug.faults and re.search(r"lost|deliver", bug.name)
    assert (ROOT / "models" / f"{name}.py").is_file()
    workload = (ROOT / ".workers" / "workloads" / f"{name}.py").read_text()
    assert f'"models" / "{name}.py"' in workload


@pytest.mark.parametrize("name", SAMPLES)
def test_readme_lists_every_bug(name: str) -> None:
    """The README's table for the sample names each bug with what it breaks and its
    minimal length, as the bug's definition does."""
    rows = {
        m[1]: (m[2], int(m[3]))
        for m in re.finditer(r"^\| `([a-z0-9-]+)` \| `(\w+)` \| (\d+) \|", README, re.MULTILINE)
    }
    for bug in load_sample(name).BUGS:
        assert rows.get(bug.name) == (bug.invariant, bug.minimal_steps), bug.name


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_serves_its_openapi_document(name: str) -> None:
    """``GET /openapi.json``: an OpenAPI 3 document whose paths are routes the service has
    (each answers something other than 404 for a made-up id)."""
    with sample_service(name) as url, httpx.Client(base_url=url, trust_env=False) as client:
        document = client.get("/openapi.json").json()
        assert document["openapi"].startswith("3.")
        assert client.get("/").json() == {"service": name}
        for path, item in document["paths"].items():
            concrete = re.sub(r"\{[^}]+\}", "x1", path)
            for method in item:
                if method in ("get", "post", "put", "delete", "patch"):
                    response = client.request(method.upper(), concrete)
                    documented = set(item[method]["responses"])
                    if response.status_code == 404:
                        assert "404" in documented, f"{method} {path}: route missing?"


def test_demo_lists_every_sample_bug(propworkload: Callable[..., Completed]) -> None:
    """``demo NAME --list-bugs`` prints each bug's name first on its line."""
    for name in SAMPLES:
        result = propworkload("demo", name, "--list-bugs")
        assert result.code == 0, result.err
        listed = [line.split()[0] for line in result.lines if line.strip()]
        assert listed == [bug.name for bug in load_sample(name).BUGS]


def test_every_workload_entry_is_a_sample_model_or_a_real_service_model() -> None:
    """No stray entries: each workload in .workers/workloads/ runs a model in models/
    (a sample's, or kv: Porcupine's key-value model, on etcd) or in models/real/ (Kinto's
    and etcd's)."""
    real = ["etcd", "kinto"]
    entries = sorted(p.stem for p in (ROOT / ".workers" / "workloads").glob("*.py"))
    assert entries == sorted([*SAMPLES, "kv", *real])
    assert sorted(p.stem for p in Path(ROOT / "models").glob("*.py")) == sorted([*SAMPLES, "kv"])
    kv = (ROOT / ".workers" / "workloads" / "kv.py").read_text()
    assert 'MODEL = ROOT / "models" / "kv.py"' in kv
    models = sorted(p.stem for p in Path(ROOT / "models" / "real").glob("*.py"))
    assert models == sorted([*real, "serve"])
    for name in real:
        entry = (ROOT / ".workers" / "workloads" / f"{name}.py").read_text()
        assert f'MODEL = ROOT / "models" / "real" / "{name}.py"' in entry
