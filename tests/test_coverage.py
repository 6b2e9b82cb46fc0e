"""Coverage's endpoint templates: ids become ``{id}``, static names stay as they are."""

from __future__ import annotations

import pytest

from propworkload._coverage import Coverage, path_template
from propworkload._record import ExampleRecord, Exchange, Step


@pytest.mark.parametrize(
    ("paths", "template"),
    [
        (
            ["/customers/cus_7f3a9b2c/charges", "/customers/cus_00ab12ff/charges"],
            "/customers/{id}/charges",
        ),
        (
            ["/charges/ch_e8872d25c9a9/refunds?x=1", "/charges/ch_abcdefabcdef/refunds"],
            "/charges/{id}/refunds",
        ),
        (["/orders/42", "/orders/7"], "/orders/{id}"),
        (["/jobs/3f2a1b4c-9d8e-4f7a-8b6c-5d4e3f2a1b0c"], "/jobs/{id}"),
        # ids with an extension
        (["/data/pw_1a2b3c4d.json", "/data/pw_9f8e7d6c.json"], "/data/{id}.json"),
        (["/exports/1234.csv.gz"], "/exports/{id}.csv.gz"),
        # short random ids (nanoid, base64url) and a long nanoid
        (["/items/-4e8N_x", "/items/Zq7_kP2", "/items/x7Kp2qRm"], "/items/{id}"),
        (["/items/V1StGXR8_Z5jdHi6B-myT"], "/items/{id}"),
        # Kinto: the tenant's bucket; record ids the model chose are names
        (
            ["/v1/buckets/kt_1a2b3c4d/collections/items/records/a"],
            "/v1/buckets/{id}/collections/items/records/a",
        ),
    ],
)
def test_ids_become_one_template(paths: list[str], template: str) -> None:
    """Every path of one endpoint gives the same template."""
    assert {path_template(path) for path in paths} == {template}


def test_the_run_tenant_is_an_id_wherever_it_appears() -> None:
    """The example's tenant inside a segment (a prefix, a file name) is an id too."""
    assert path_template("/files/report-ab12cd.csv", "ab12cd") == "/files/report-{id}.csv"
    assert path_template("/buckets/acme_team7/objects", "acme_team7") == "/buckets/{id}/objects"


def _exchange(target: str) -> Exchange:
    return Exchange(
        method="GET",
        target=target,
        request_headers={},
        request_body="",
        status=200,
        response_headers={},
        response_body="",
        duration_ms=1.0,
        phase="rule",
    )


def test_coverage_groups_each_example_under_its_tenant() -> None:
    """Two examples' requests to their own tenant's file are one endpoint."""
    coverage = Coverage()
    for tenant in ("acme_team7", "initech_b"):
        step = Step(index=1, rule="read", arguments={})
        step.exchanges.append(_exchange(f"/files/{tenant}.json"))
        coverage.add_example(ExampleRecord(number=1, tenant=tenant, steps=[step]))
    assert list(coverage.statuses) == ["GET /files/{id}.json"]


@pytest.mark.parametrize(
    "path",
    [
        "/items/batch",
        "/v1/batch",
        "/v1/__flush__",
        "/v1/buckets",
        "/v3/kv/range",
        "/v3/kv/put",
        "/v3/kv/deleterange",
        "/v3/kv/txn",
        "/v3/kv/compaction",
        "/v3/maintenance/status",
        "/apis/batch/v1beta1/cronjobs",
        "/oauth2/token",
        "/api/batch_jobs",
        "/api/user_profile",
        "/api/user-profile-v2",
        "/hash/sha256",
        "/devices/iPhone",
        "/api/getItems",
        "/static/index.html",
        "/api/1.0/users",
    ],
)
def test_static_names_stay(path: str) -> None:
    """Names that are part of the API are not mistaken for ids."""
    assert path_template(path) == path
