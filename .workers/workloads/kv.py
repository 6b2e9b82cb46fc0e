"""Workload entry: the key-value model (models/kv.py: Porcupine's put, get and append) as a
command a reliability simulator runs against a real etcd (no embedded service: APP_URL is
required).

    APP_URL=http://etcd:2379 python3 .workers/workloads/kv.py

Exit status: 0 every invariant held, 1 an invariant failed, 2 usage or model error,
3 the target could not be reached. Options are those of `propworkload run`.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODEL = ROOT / "models" / "kv.py"

try:
    from propworkload._cli import cli_main
except ImportError as exc:
    # A checkout that was not installed: use its source tree if the dependencies are there.
    sys.path.insert(0, str(ROOT / "src"))
    try:
        from propworkload._cli import cli_main
    except ImportError as missing:
        name = missing.name or str(missing)
        print(
            f"propworkload: error: missing dependency {name!r} ({exc}); "
            f"install the project: pip install -e '{ROOT}'",
            file=sys.stderr,
        )
        sys.exit(2)

cli_main(["run", str(MODEL), *sys.argv[1:]])
