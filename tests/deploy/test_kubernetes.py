"""The Kubernetes manifests, checked offline: every overlay builds with kubectl kustomize;
every object validates strictly against the Kubernetes API schemas of a current release
(kubernetes-validate) and the Prometheus operator's resources against their CRDs' OpenAPI
v3 schemas (unknown fields refused); the PrometheusRule is prometheus/rules/ (and passes
promtool); the generated files are what deploy/kubernetes/generate.py writes; and the
security settings the docs promise hold."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
CRDS = ROOT.parent / "shared" / "vendor" / "prometheus-operator-crds"
OVERLAYS = ["base", *sorted(p.name for p in (KUBE / "overlays").iterdir() if p.is_dir())]
VERSION = kubernetes_validate.latest_version()


def load_generator():
    spec = importlib.util.spec_from_file_location("kube_generate", KUBE / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def build(overlay: str) -> list[dict]:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl is not installed")
    path = KUBE / overlay if overlay == "base" else KUBE / "overlays" / overlay
    out = subprocess.run(
        ["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def crd_schemas() -> dict[str, dict]:
    if not CRDS.is_dir():
        pytest.skip(f"{CRDS} is missing (the shared vendor folder)")
    out = {}
    for path in CRDS.glob("*.yaml"):
        crd = yaml.safe_load(path.read_text())
        for v in crd["spec"]["versions"]:
            out[f"{crd['spec']['group']}/{v['name']}/{crd['spec']['names']['kind']}"] = v["schema"][
                "openAPIV3Schema"
            ]
    return out


def unknown_fields(doc, schema: dict, at: str = "") -> list[str]:
    """Fields the structural schema does not declare (the API server would drop them)."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    out = []
    if isinstance(doc, dict) and "properties" in schema:
        for k, v in doc.items():
            if k not in schema["properties"]:
                out.append(f"{at}.{k}")
            else:
                out += unknown_fields(v, schema["properties"][k], f"{at}.{k}")
    elif isinstance(doc, list) and "items" in schema:
        for i, v in enumerate(doc):
            out += unknown_fields(v, schema["items"], f"{at}[{i}]")
    return out


def test_the_generated_files_are_current():
    for name, text in load_generator().render().items():
        assert (KUBE / "base" / name).read_text() == text, (
            f"run python deploy/kubernetes/generate.py ({name})"
        )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_strictly(overlay):
    schemas = crd_schemas()
    docs = build(overlay)
    kinds = {d["kind"] for d in docs}
    assert {"DaemonSet", "Deployment", "PrometheusRule", "PodMonitor", "ServiceMonitor"} <= kinds
    for doc in docs:
        key = f"{doc['apiVersion']}/{doc['kind']}"
        if key in schemas:
            jsonschema.Draft7Validator(schemas[key]).validate(doc)
            assert unknown_fields(doc, schemas[key]) == [], key
        else:
            kubernetes_validate.validate(doc, VERSION, strict=True)


def _by_kind(docs: list[dict], kind: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def test_the_prometheus_rule_is_the_rules_file_and_passes_promtool(tmp_path):
    rule = _by_kind(build("base"), "PrometheusRule")
    source = yaml.safe_load((ROOT / "prometheus" / "rules" / "joulecast.rules.yml").read_text())
    assert rule["spec"]["groups"] == source["groups"]
    if shutil.which("promtool") is None:
        pytest.skip("promtool is not installed")
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    check = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_dashboards_config_map_holds_every_dashboard():
    cm = _by_kind(build("base"), "ConfigMap")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    for path in (ROOT / "grafana" / "dashboards").glob("*.json"):
        assert json.loads(cm["data"][path.name]) == json.loads(path.read_text())


def test_the_daemonset_runs_as_the_docs_say():
    docs = build("base")
    ds = _by_kind(docs, "DaemonSet")["spec"]["template"]["spec"]
    assert not ds.get("hostPID") and not ds.get("hostNetwork")  # no per-process split here
    assert ds["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert any(t["key"] == "nvidia.com/gpu" for t in ds["tolerations"])
    assert ds["automountServiceAccountToken"] is False and ds["securityContext"]["runAsNonRoot"]
    (exporter,) = ds["containers"]
    mounts = {m["name"]: m for m in exporter["volumeMounts"]}
    assert mounts["pod-resources"]["mountPath"] == "/var/lib/kubelet/pod-resources"
    assert mounts["pod-resources"]["readOnly"] is True
    volumes = {v["name"]: v for v in ds["volumes"]}
    assert volumes["pod-resources"]["hostPath"]["path"] == "/var/lib/kubelet/pod-resources"
    env = {e["name"]: e for e in exporter["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    for c in [*ds["containers"], *ds["initContainers"]]:
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] and sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"]["drop"] == ["ALL"] and c["resources"]["limits"]
    assert "--source.kubernetes" in exporter["args"]
    est = _by_kind(docs, "Deployment")["spec"]["template"]["spec"]
    assert est["securityContext"]["runAsNonRoot"] and est["automountServiceAccountToken"] is False
    assert not [d for d in docs if d["kind"] in ("Role", "ClusterRole", "RoleBinding")]


def test_the_tls_overlay_takes_its_secrets():
    docs = build("tls")
    ds = _by_kind(docs, "DaemonSet")["spec"]["template"]["spec"]
    args = ds["containers"][0]["args"]
    assert "--web.config.file=/etc/joulecast/web/web-config.yml" in args
    assert "--web.api-token-file=/etc/joulecast/token/token" in args
    secrets = {v["secret"]["secretName"] for v in ds["volumes"] if "secret" in v}
    assert secrets == {"joulecast-web-config", "joulecast-api-token"}
    pm = _by_kind(docs, "PodMonitor")["spec"]["podMetricsEndpoints"][0]
    assert pm["scheme"] == "https"
