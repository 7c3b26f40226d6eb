"""The deployment files (deploy/compose.yaml, deploy/k8s/*.yaml) parse, carry what a deployment
needs, agree with each other and with the image, and pass `kubectl apply --dry-run=client`.

kubectl maps each kind to its API resource through the server's discovery documents even for a
client-side dry run, so a loopback stand-in serves discovery for the kinds a real cluster has
(and 404 for every object): a wrong apiVersion or kind still fails as against a cluster.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from augment import cli, merge_cmd
from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"

# group/version -> (kind, plural, namespaced) of the resources a cluster serves, as discovery lists them
RESOURCES = {
    "v1": [("Service", "services", True), ("PersistentVolumeClaim", "persistentvolumeclaims", True),
           ("Namespace", "namespaces", False)],
    "apps/v1": [("Deployment", "deployments", True)],
    "batch/v1": [("Job", "jobs", True)],
    "policy/v1": [("PodDisruptionBudget", "poddisruptionbudgets", True)],
    "autoscaling/v2": [("HorizontalPodAutoscaler", "horizontalpodautoscalers", True)],
    # the operators' kinds, served by a cluster with Kubeflow's training operator and KubeRay installed
    "kubeflow.org/v1": [("PyTorchJob", "pytorchjobs", True)],
    "ray.io/v1": [("RayJob", "rayjobs", True)],
}  # fmt: skip


class FakeDiscovery(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        groups = [gv for gv in RESOURCES if "/" in gv]
        if path == "/api":
            doc = {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        elif path == "/apis":
            doc = {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": gv.split("/")[0], "versions": [{"groupVersion": gv, "version": gv.split("/")[1]}],
                 "preferredVersion": {"groupVersion": gv, "version": gv.split("/")[1]}} for gv in groups]}  # fmt: skip
        elif (gv := path.removeprefix("/api/").removeprefix("/apis/")) in RESOURCES:
            doc = {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": [
                {"name": plural, "singularName": kind.lower(), "namespaced": ns, "kind": kind,
                 "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}
                for kind, plural, ns in RESOURCES[gv]]}  # fmt: skip
        else:
            self._send(
                404,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "NotFound",
                    "code": 404,
                },
            )
            return
        self._send(200, doc)

    def _send(self, status: int, doc: dict) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def kube_api(tmp_path_factory):
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeDiscovery)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    home = tmp_path_factory.mktemp("kube")
    yield {"KUBECONFIG": "/dev/null", "HOME": str(home), "PATH": "/usr/bin:/bin",
           "server": f"http://127.0.0.1:{server.server_address[1]}"}  # fmt: skip
    server.shutdown()


def dry_run(kube_api, path: Path) -> list[dict]:
    """`kubectl apply --dry-run=client --validate=false -o yaml -f path`: the objects kubectl would send."""
    env = {k: v for k, v in kube_api.items() if k != "server"}
    cmd = [KUBECTL, "apply", "--dry-run=client", "--validate=false", "-o", "yaml", "-f", str(path),
           "--server", kube_api["server"], "--cache-dir", str(Path(env["HOME"]) / "cache")]  # fmt: skip
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    doc = yaml.safe_load(done.stdout)
    return doc["items"] if doc.get("kind") == "List" else [doc]


@pytest.fixture(scope="module")
def objects(kube_api) -> dict[tuple[str, str], dict]:
    """(kind, name) -> object, for every manifest under deploy/k8s, as kubectl's dry run gives them."""
    found = {}
    for path in sorted(K8S.glob("*.yaml")):
        parsed = [d for d in yaml.safe_load_all(path.read_text()) if d]
        applied = dry_run(kube_api, path)
        assert [(d["kind"], d["metadata"]["name"]) for d in applied] == [
            (d["kind"], d["metadata"]["name"]) for d in parsed
        ]
        found.update({(d["kind"], d["metadata"]["name"]): d for d in applied})
    return found


def test_kubectl_accepts_every_kind(objects):
    assert sorted(objects) == [
        ("Deployment", "gan-generator"),
        ("HorizontalPodAutoscaler", "gan-generator"),
        ("Job", "gan-augment"),
        ("Job", "gan-augment-merge"),
        ("PersistentVolumeClaim", "gan-augment-data"),
        ("PodDisruptionBudget", "gan-generator"),
        ("PyTorchJob", "gan-train-mnist-cdcgan"),
        ("RayJob", "gan-augment"),
        ("Service", "gan-generator"),
    ]


@pytest.mark.parametrize("kind", ["PyTorchJob", "RayJob"])
def test_the_operator_jobs_decode_unchanged(objects, kind):
    """What kubectl would send of the training and Ray jobs is their files' spec (test_recipes.py checks it)."""
    (name,) = [n for k, n in objects if k == kind]
    (path,) = [p for p in K8S.glob("*.yaml") if f"kind: {kind}" in p.read_text()]
    assert objects[(kind, name)]["spec"] == yaml.safe_load(path.read_text())["spec"]


def test_kubectl_refuses_a_kind_a_cluster_lacks(kube_api, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: autoscaling/v3\nkind: HorizontalPodAutoscaler\nmetadata: {name: x}\n")
    cmd = [KUBECTL, "apply", "--dry-run=client", "--validate=false", "-o", "yaml", "-f", str(bad),
           "--server", kube_api["server"]]  # fmt: skip
    done = subprocess.run(
        cmd, env={k: v for k, v in kube_api.items() if k != "server"}, capture_output=True, text=True
    )
    assert done.returncode != 0 and 'no matches for kind "HorizontalPodAutoscaler"' in done.stderr


def test_deployment_probes_resources_drain_and_security(objects):
    dep = objects[("Deployment", "gan-generator")]
    pod = dep["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["startupProbe"]["httpGet"]["path"] == c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert c["ports"][0]["containerPort"] == 3000
    assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and {"cpu", "memory"} <= set(
        c["resources"]["limits"]
    )
    assert not any(e["name"] == "GAN_ORT_THREADS" for e in c.get("env", []))  # the CPU limit sets it
    # the grace period covers a request's whole life (body + queue and generation deadlines) + preStop
    s = Settings()
    assert pod["terminationGracePeriodSeconds"] > s.body_timeout_s + s.request_timeout_s + 5
    assert dep["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1034
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]


def test_pdb_service_and_hpa_point_at_the_deployment(objects):
    labels = objects[("Deployment", "gan-generator")]["spec"]["template"]["metadata"]["labels"]
    pdb = objects[("PodDisruptionBudget", "gan-generator")]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["minAvailable"] < objects[("HorizontalPodAutoscaler", "gan-generator")]["spec"]["minReplicas"]
    svc = objects[("Service", "gan-generator")]["spec"]
    assert svc["selector"].items() <= labels.items() and svc["ports"][0]["targetPort"] == "http"
    hpa = objects[("HorizontalPodAutoscaler", "gan-generator")]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "gan-generator"}
    assert hpa["metrics"][0]["resource"]["name"] == "cpu"


def job_args(job: dict) -> tuple[str, argparse.Namespace]:
    """(subcommand, parsed flags) of a Job's `sh -c "exec python -m augment ..."`, by augment's own parser."""
    (c,) = job["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["sh", "-c"]
    words = shlex.split(c["args"][0].replace("$JOB_COMPLETION_INDEX", "3"))
    assert words[:4] == ["exec", "python", "-m", "augment"]
    p = argparse.ArgumentParser()
    (cli if words[4] == "augment" else merge_cmd).add_arguments(p)
    return words[4], p.parse_args(words[5:])


def test_indexed_job_shards_and_the_merge_joins_them(objects):
    job = objects[("Job", "gan-augment")]
    cmd, args = job_args(job)
    assert cmd == "augment" and job["spec"]["completionMode"] == "Indexed"
    assert args.num_shards == job["spec"]["completions"] and args.shard == 3
    assert args.out == "/data/shards/3" and args.model == "service/models/mnist-cdcgan.onnx"
    cmd, merge = job_args(objects[("Job", "gan-augment-merge")])
    assert cmd == "merge" and merge.dirs == ["/data/shards/*"] and merge.out == "/data/synth"
    claim = objects[("PersistentVolumeClaim", "gan-augment-data")]
    for j in (job, objects[("Job", "gan-augment-merge")]):
        vols = {v["name"]: v for v in j["spec"]["template"]["spec"]["volumes"]}
        assert vols["data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


def test_compose_runs_the_service_and_a_one_shot_job_through_it():
    doc = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    gan, job = doc["services"]["gan"], doc["services"]["augment"]
    assert (
        gan["read_only"] is True
        and "/tmp" in gan["tmpfs"]
        and "/readyz" in " ".join(gan["healthcheck"]["test"])
    )
    assert gan["ports"] == ["127.0.0.1:3000:3000"]
    assert job["depends_on"] == {"gan": {"condition": "service_healthy"}} and job["restart"] == "no"
    assert job["command"][:4] == ["python", "-m", "augment", "augment"]
    p = argparse.ArgumentParser()
    cli.add_arguments(p)
    args = p.parse_args(job["command"][4:])
    assert args.model == "http://gan:3000#mnist-cdcgan" and args.out.startswith("/out/")
    assert any(v.endswith(":/out") for v in job["volumes"])


def test_compose_healthcheck_is_the_images():
    image = (REPO / "deploy" / "Containerfile").read_text()
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text())
    check = json.dumps(compose["services"]["gan"]["healthcheck"]["test"][1:])
    assert f"CMD {check}" in image
