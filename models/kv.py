"""A key-value store with put, get and append: Porcupine's key-value model, run against etcd.

Porcupine (https://github.com/anishathalye/porcupine) checks Jepsen histories of a store
whose keys hold strings: ``put`` sets a key, ``append`` adds to its end, ``get`` reads it
("" for a key never written). This model has those semantics, so that ``propworkload
check`` can judge such histories, and its real calls drive etcd's v3 JSON gateway, so that
it is a workload too::

    propworkload check tests/data/porcupine-kv/c10-ok.txt --model models/kv.py
    python3 models/real/serve.py etcd --port 2379 &
    propworkload run models/kv.py --url http://127.0.0.1:2379 --concurrency 3

etcd has no append: the real call reads the value with its modification revision and
writes the longer value in a transaction that compares that revision (compare-and-swap),
again when another write came in between. Keys are independent, so a history is checked
key by key (``partition``).
"""

from __future__ import annotations

import base64
from typing import Any

import attrs
from hypothesis import strategies as st

from propworkload import UNKNOWN, Model, check, command, expect_status, main

KEYS = st.sampled_from(["0", "1"])
VALUES = st.sampled_from(["x", "y", "z"])  # one letter each: an append lost shows
#: Compare-and-swaps an append tries. One fails only when another write of the key came in
#: between, and a program makes fewer writes than this.
APPEND_ATTEMPTS = 30


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@attrs.frozen
class Store:
    """The reference model: each key's value, as sorted (key, value) pairs (hashable: the
    checker remembers the states it has been in)."""

    pairs: tuple[tuple[str, str], ...] = ()

    def value(self, key: str) -> str:
        return dict(self.pairs).get(key, "")

    def set(self, key: str, value: str) -> Store:
        return Store(tuple(sorted({**dict(self.pairs), key: value}.items())))


class KeyValue(Model):
    """put, append and get of keys under a prefix of the example's own."""

    tenant_prefix = "kv_"
    model_state = Store
    partition = staticmethod(lambda op: op.input[1]["key"])  # op.input: (name, arguments)

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = expect_status(self.http.post(path, json=body), 200).json()
        return answer

    def _read(self, key: str) -> tuple[str, int]:
        """The key's value and modification revision (0: it does not exist)."""
        kvs = self._post("/v3/kv/range", {"key": _b64(f"{self.tenant}/{key}")}).get("kvs", [])
        if not kvs:
            return "", 0
        value = base64.b64decode(kvs[0].get("value", "")).decode()
        return value, int(kvs[0]["mod_revision"])

    @command(key=KEYS, value=VALUES)
    def put(self, key: str, value: str) -> None:
        self._post("/v3/kv/put", {"key": _b64(f"{self.tenant}/{key}"), "value": _b64(value)})

    @put.model
    def put(store: Store, out: None, key: str, value: str) -> Store:
        return store.set(key, value)

    @command(key=KEYS, value=VALUES)
    def append(self, key: str, value: str) -> None:
        full = _b64(f"{self.tenant}/{key}")
        for _ in range(APPEND_ATTEMPTS):
            old, revision = self._read(key)
            swap = {
                "compare": [
                    {"key": full, "target": "MOD", "result": "EQUAL", "mod_revision": revision}
                ],
                "success": [{"request_put": {"key": full, "value": _b64(old + value)}}],
            }
            if self._post("/v3/kv/txn", swap).get("succeeded"):  # absent when false
                return
        raise RuntimeError(f"append to {key!r} lost {APPEND_ATTEMPTS} compare-and-swaps in a row")

    @append.model
    def append(store: Store, out: None, key: str, value: str) -> Store:
        return store.set(key, store.value(key) + value)

    @command(key=KEYS, idempotent=True)
    def get(self, key: str) -> str:
        return self._read(key)[0]

    @get.model
    def get(store: Store, out: Any, key: str) -> None:
        if out is not UNKNOWN:
            check("get_reads_last_write", expected=store.value(key), actual=out, key=key)


if __name__ == "__main__":
    main(KeyValue)
