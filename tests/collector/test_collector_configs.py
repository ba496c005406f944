"""Checks of the collector configs in ``collector-config/``: static ones (every pipeline
references defined components, only current component names are used, queues point at
defined storage extensions, exporters reach the receiver's ports, the redaction /
sampling policies cover the keys spanlake reads), then ``otelcol-spanlake validate`` of
each file with the real Collector built from ``collector-config/build/``.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from collector import otelcol

from spanlake.semconv import gen_ai as g
from spanlake.semconv import spanlake_attrs as s

CONFIG_DIR = Path(__file__).resolve().parents[2] / "collector-config"
CONFIGS = sorted(CONFIG_DIR.glob("*.yaml"))
KINDS = ("receivers", "processors", "exporters", "extensions", "connectors")

#: Current component type names, per kind (lower_snake_case, collector >= v0.144 and
#: contrib >= v0.153).
CURRENT: dict[str, set[str]] = {
    "receivers": {"otlp"},
    "processors": {
        "memory_limiter",
        "tail_sampling",
        "transform",
        "redaction",
        "attributes",
        "resource",
        "filter",
    },
    "exporters": {"otlp_grpc", "otlp_http", "load_balancing", "debug"},
    "extensions": {"file_storage", "health_check", "bearertokenauth"},
    "connectors": set(),
}
#: Deprecated alias -> current name; none may appear as a component type.
DEPRECATED = {
    ("exporters", "otlp"): "otlp_grpc",
    ("exporters", "otlphttp"): "otlp_http",
    ("exporters", "loadbalancing"): "load_balancing",
    ("exporters", "logging"): "debug",
    ("processors", "batch"): "exporter-side sending_queue.batch",
}
RECEIVER_PORTS = {"otlp_grpc": 4317, "otlp_http": 4318, "load_balancing": 4317}
_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), path.name
    return data


def expand(value: str) -> str:
    """``${env:X:-default}`` -> ``default`` (what the collector uses when X is unset)."""
    return _ENV.sub(lambda m: m.group(2) or "", value)


def component_type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def endpoints(exporter_type: str, config: dict[str, Any]) -> list[str]:
    if exporter_type == "load_balancing":
        resolver = config["resolver"]
        if "static" in resolver:
            return [expand(h) for h in resolver["static"]["hostnames"]]
        dns = resolver["dns"]
        return [f"{expand(dns['hostname'])}:{dns.get('port', 4317)}"]
    return [expand(config["endpoint"])]


def port_of(endpoint: str) -> int | None:
    parsed = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    return parsed.port


def test_there_are_agent_and_gateway_configs() -> None:
    names = {p.name for p in CONFIGS}
    assert {"agent.yaml", "agent-http.yaml", "gateway-loadbalancer.yaml"} <= names
    assert "gateway-sampling.yaml" in names
    assert (CONFIG_DIR / "README.md").is_file()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_pipelines_reference_defined_components(path: Path) -> None:
    check_references(load(path), path)


def check_references(config: dict[str, Any], path: Path) -> None:
    assert set(config) <= {*KINDS, "service"}
    service = config["service"]
    for extension in service.get("extensions", []):
        assert extension in (config.get("extensions") or {}), f"{path.name}: {extension}"
    pipelines = service["pipelines"]
    assert pipelines
    for name, pipeline in pipelines.items():
        assert component_type(name) in {"traces", "metrics", "logs"}
        assert pipeline.get("receivers") and pipeline.get("exporters"), name
        for kind in ("receivers", "processors", "exporters"):
            for component_id in pipeline.get(kind, []):
                assert component_id in (config.get(kind) or {}), f"{path.name}: {component_id}"
        processors = pipeline.get("processors", [])
        if processors:
            assert processors[0] == "memory_limiter", "memory_limiter goes first"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_only_current_component_names(path: Path) -> None:
    check_names(load(path), path)


def check_names(config: dict[str, Any], path: Path) -> None:
    for kind in KINDS:
        for component_id in config.get(kind) or {}:
            ctype = component_type(component_id)
            assert (kind, ctype) not in DEPRECATED, (
                f"{path.name}: {kind} {ctype!r} is deprecated; use {DEPRECATED[(kind, ctype)]}"
            )
            assert ctype in CURRENT[kind], f"{path.name}: unknown {kind} type {ctype!r}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_exporters_point_at_the_receiver_ports(path: Path) -> None:
    check_ports(load(path), path)


def check_ports(config: dict[str, Any], path: Path) -> None:
    checked = 0
    for component_id, settings in (config.get("exporters") or {}).items():
        ctype = component_type(component_id)
        if ctype not in RECEIVER_PORTS:
            continue
        for endpoint in endpoints(ctype, settings):
            assert port_of(endpoint) == RECEIVER_PORTS[ctype], f"{path.name}: {endpoint}"
            if ctype == "otlp_http":
                assert endpoint.startswith(("http://", "https://"))
                assert not endpoint.rstrip("/").endswith("/v1/traces"), "exporter appends it"
            checked += 1
    assert checked >= 1


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_queues_retry_and_storage(path: Path) -> None:
    check_queues(load(path))


def check_queues(config: dict[str, Any]) -> None:
    extensions = config.get("extensions") or {}
    enabled = set(config["service"].get("extensions", []))
    for component_id, settings in (config.get("exporters") or {}).items():
        queue = settings.get("sending_queue") or {}
        retry = settings.get("retry_on_failure") or {}
        assert queue.get("enabled") is True, component_id
        assert retry.get("enabled") is True, component_id
        storage = queue.get("storage")
        if storage is not None:
            assert component_type(storage) == "file_storage"
            assert storage in extensions and storage in enabled, storage
        batch = queue.get("batch")
        if batch and batch.get("sizer") == "bytes":
            # the receiver answers 413 (permanent: dropped) above 16 MiB per request
            assert batch["max_size"] <= 16 * 1024 * 1024


def _broken(mutate: Any) -> dict[str, Any]:
    config = load(CONFIG_DIR / "agent.yaml")
    mutate(config)
    return config


def _rename_exporter(config: dict[str, Any], new: str) -> None:
    config["exporters"] = {new: config["exporters"].pop("otlp_grpc/spanlake")}
    config["service"]["pipelines"]["traces"]["exporters"] = [new]


BROKEN = {
    "deprecated-otlp-alias": (lambda c: _rename_exporter(c, "otlp/spanlake"), check_names),
    "deprecated-batch-processor": (
        lambda c: c["processors"].update({"batch": {}}),
        check_names,
    ),
    "undefined-exporter": (
        lambda c: c["service"]["pipelines"]["traces"]["exporters"].append("otlp_http/x"),
        check_references,
    ),
    "undefined-service-extension": (
        lambda c: c["service"]["extensions"].append("pprof"),
        check_references,
    ),
    "wrong-port": (
        lambda c: c["exporters"]["otlp_grpc/spanlake"].update(endpoint="spanlake:4318"),
        check_ports,
    ),
    "queue-storage-not-enabled": (
        lambda c: c["service"]["extensions"].remove("file_storage/queue"),
        lambda c, _p: check_queues(c),
    ),
    "batch-over-request-limit": (
        lambda c: c["exporters"]["otlp_grpc/spanlake"]["sending_queue"]["batch"].update(
            max_size=64 * 1024 * 1024
        ),
        lambda c, _p: check_queues(c),
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_checks_catch_broken_configs(case: str) -> None:
    mutate, check = BROKEN[case]
    with pytest.raises(AssertionError):
        check(_broken(mutate), CONFIG_DIR / "agent.yaml")


@pytest.mark.parametrize("path", [CONFIG_DIR / "agent.yaml", CONFIG_DIR / "agent-http.yaml"])
def test_agents_queue_on_disk(path: Path) -> None:
    config = load(path)
    (exporter,) = config["exporters"].values()
    assert exporter["sending_queue"]["storage"].startswith("file_storage")
    assert exporter["retry_on_failure"]["max_elapsed_time"] == 0
    assert "x-spanlake-experiment" in exporter["headers"]
    receiver = config["receivers"]["otlp"]["protocols"]
    assert {"grpc", "http"} <= set(receiver)


def test_two_tier_layout_routes_by_trace_id_to_the_samplers() -> None:
    front = load(CONFIG_DIR / "gateway-loadbalancer.yaml")
    samplers = load(CONFIG_DIR / "gateway-sampling.yaml")
    (lb,) = front["exporters"].values()
    assert lb["routing_key"] == "traceID"
    # nothing stateful in front: the tier only balances
    assert "tail_sampling" not in (front.get("processors") or {})
    pipeline = samplers["service"]["pipelines"]["traces"]
    assert "tail_sampling" in pipeline["processors"]
    sampler_port = samplers["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].rsplit(":", 1)
    assert int(sampler_port[1]) == int(lb["resolver"]["dns"]["port"])
    (to_spanlake,) = samplers["exporters"].values()
    assert to_spanlake["routing_key"] == "traceID"
    assert len(to_spanlake["resolver"]["static"]["hostnames"]) >= 2


def test_tail_sampling_keeps_genai_errors_and_slow_traces() -> None:
    config = load(CONFIG_DIR / "gateway-sampling.yaml")
    policies = {p["type"]: p for p in config["processors"]["tail_sampling"]["policies"]}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert policies["latency"]["latency"]["threshold_ms"] > 0
    conditions = " ".join(policies["ottl_condition"]["ottl_condition"]["span"])
    for key in (
        g.OPERATION_NAME,
        g.PROVIDER_NAME,
        s.SPAN_TYPE,
        "openinference.span.kind",
        "llm.request.type",
        "mlflow.spanType",
    ):
        assert f'attributes["{key}"]' in conditions, key


def test_redaction_removes_prompt_content_in_every_dialect() -> None:
    config = load(CONFIG_DIR / "gateway-sampling.yaml")
    transform = config["processors"]["transform/redact_genai_content"]
    statements = " ".join(
        st for block in transform["trace_statements"] for st in block["statements"]
    )
    for key in (
        g.INPUT_MESSAGES,
        g.OUTPUT_MESSAGES,
        g.SYSTEM_INSTRUCTIONS,
        s.SPAN_INPUTS,
        s.SPAN_OUTPUTS,
        "input.value",
        "output.value",
        "mlflow.spanInputs",
        "traceloop.entity.input",
    ):
        assert f'delete_key(attributes, "{key}")' in statements, key
    patterns = re.findall(r'delete_matching_keys\(attributes, "([^"]+)"\)', statements)
    flattened = ["llm.input_messages.0.message.content", "gen_ai.prompt.3.content"]
    for key in flattened:
        assert any(re.search(p.replace("\\\\", "\\"), key) for p in patterns), key
    assert not any(re.search(p.replace("\\\\", "\\"), g.USAGE_INPUT_TOKENS) for p in patterns)
    pipeline = config["service"]["pipelines"]["traces"]["processors"]
    assert pipeline.index("transform/redact_genai_content") > pipeline.index("tail_sampling")


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_env_references_use_collector_syntax(path: Path) -> None:
    text = "\n".join(line.split("#", 1)[0] for line in path.read_text().splitlines())
    assert not re.search(r"\$(?!\{env:)[{A-Za-z]", text), "use ${env:NAME} or ${env:NAME:-default}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_otelcol_validate(path: Path) -> None:
    """The real Collector (``otelcol-spanlake``, built from collector-config/build/) loads
    every shipped config: component names, fields and types as that release reads them."""
    result = subprocess.run(
        [otelcol.binary(), "validate", f"--config=file:{path}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_otelcol_validate_rejects_a_broken_config(tmp_path: Path) -> None:
    """validate really reads the fields: the DNS resolver's port as a number fails."""
    config = load(CONFIG_DIR / "gateway-loadbalancer.yaml")
    config["exporters"]["load_balancing/sampling_tier"]["resolver"]["dns"]["port"] = 4317
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [otelcol.binary(), "validate", f"--config=file:{broken}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "port" in result.stdout + result.stderr
