"""The API against its own OpenAPI document: schemathesis fuzzes every operation of a real
`bentoml serve` holding a model of each kind the routes serve (conditional and unconditional
DCGANs, InfoGAN codes, StyleGAN mixing, a CycleGAN pair, repair and super-resolution models) with valid and invalid bodies, and checks
each answer's status, media type, headers and JSON against /docs.json, that no request gets a
server error, and that the worker's memory stays bounded after it all. Bounded: a fixed number of
examples per operation, derandomized, no example database."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from service.local_server import local_server

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# (path, method, examples per generation mode): 1,541 requests in all
OPERATIONS = [
    ("/generate", "POST", 260),
    ("/generate_from_latents", "POST", 120),
    ("/interpolate", "POST", 120),
    ("/traverse", "POST", 80),
    ("/mix", "POST", 60),
    ("/translate", "POST", 40),
    ("/restore", "POST", 30),
    ("/upscale", "POST", 30),
    ("/models", "POST", 40),
    ("/models", "GET", 5),
]
LIMITS = {"GAN_MAX_COUNT": "16", "GAN_MAX_LATENTS": "16", "GAN_MAX_STEPS": "8"}
MAX_GROWTH = 96 * 2**20  # worker RSS after the whole run, over its RSS before


@pytest.fixture(scope="module")
def api(family_routes_dir):
    with local_server(family_routes_dir, env={**LIMITS, "GAN_DEFAULT_MODEL": "mnist-cdcgan"}) as server:
        yield server, schemathesis.openapi.from_url(server.url + "/docs.json"), server.worker_rss()


def fuzz(url: str, operation, mode: GenerationMode, examples: int) -> int:
    """Send `examples` generated requests to one operation, checking each answer; returns how many."""
    sent = 0

    @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=operation.as_strategy(mode))
    def check(case):
        nonlocal sent
        sent += 1
        case.call_and_validate(base_url=url, checks=CHECKS)

    check()
    return sent


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
def test_every_answer_matches_the_openapi_document(api, mode):
    server, schema, _ = api
    url = server.url
    sent = {}
    for path, method, examples in OPERATIONS:
        if mode == GenerationMode.NEGATIVE and method == "GET":
            continue  # no parameters, nothing to get wrong
        sent[f"{method} {path}"] = fuzz(url, schema[path][method], mode, examples)
    assert sum(sent.values()) >= 700, sent  # x 2 modes: > 1,400 requests


def test_the_worker_stays_within_its_memory_bound_after_the_fuzz_run(api):
    server, _, rss_before = api
    grown = server.worker_rss() - rss_before
    assert grown < MAX_GROWTH, f"worker RSS grew {grown / 2**20:.0f} MiB over the fuzz run"
