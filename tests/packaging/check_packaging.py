#!/usr/bin/env python3
"""Packaging checks that need no cluster, run by `make chart-test`:

- the chart's crds/ copies are byte-identical to the generated config/crd/ CRDs;
- the CRs in config/samples/ validate against the CRD's OpenAPI schema (the CEL rules are
  covered by tests/validation_rules.rs);
- the chart (default values) and kustomize (config/default) grant the operator the same RBAC
  rules, and the same aggregated view/edit rules;
- the chart's default Deployment and config/manager run the same container: args, env names,
  probes, ports, security contexts, resources;
- values.schema.json refuses unknown keys at every level (each object in values.yaml);
- every value in values.yaml carries a comment;
- config/iam/policy.json grants exactly the AWS actions behind the SDK calls in src/ (plus
  AddTagsToResource, which the Copy and Create calls with tags need), DeleteSnapshot and
  DeleteServerlessCacheSnapshot only on snapshots that carry one of the operator's tags, the
  Create calls only with the schedule tag in the request, and the bucket policies are well-formed per
  partition.

Usage: check_packaging.py <helm-default-rendering.yaml> <kustomize-rendering.yaml>
"""
import json
import pathlib
import re
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "elasticache-export-operator"
CRD = ROOT / "config" / "crd" / "elasticache-export.io_snapshotexports.yaml"
SCHEDULE_CRD = ROOT / "config" / "crd" / "elasticache-export.io_snapshotexportschedules.yaml"

failures = []


def check(ok, message):
    if not ok:
        failures.append(message)


def docs(path):
    return [d for d in yaml.safe_load_all(pathlib.Path(path).read_text()) if d]


def crd_copy_is_current():
    for crd in (CRD, SCHEDULE_CRD):
        copy = CHART / "crds" / crd.name
        check(
            copy.exists() and copy.read_bytes() == crd.read_bytes(),
            f"{copy.relative_to(ROOT)} differs from {crd.relative_to(ROOT)}: run `make crd`",
        )


def structural(schema):
    """The CRD schema as plain JSON Schema: drop the x-kubernetes-* extensions."""
    if isinstance(schema, dict):
        return {k: structural(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if isinstance(schema, list):
        return [structural(v) for v in schema]
    return schema


def samples_validate():
    kinds = {}
    for path in (CRD, SCHEDULE_CRD):
        crd = yaml.safe_load(path.read_text())
        group = crd["spec"]["group"]
        kinds[crd["spec"]["names"]["kind"]] = {v["name"]: structural(v["schema"]["openAPIV3Schema"]) for v in crd["spec"]["versions"]}
    samples = sorted((ROOT / "config" / "samples").glob("*.yaml"))
    seen = 0
    for path in samples:
        if path.name == "kustomization.yaml":
            continue
        for doc in docs(path):
            seen += 1
            g, _, version = doc.get("apiVersion", "").partition("/")
            where = f"{path.relative_to(ROOT)} ({doc.get('metadata', {}).get('name')})"
            kind = doc.get("kind")
            versions = kinds.get(kind, {})
            if g != group or version not in versions:
                failures.append(f"{where}: not a {' or '.join(kinds)} of a served version")
                continue
            schema = dict(versions[version])
            # metadata is validated by the API server, not by the CRD schema
            body = {k: v for k, v in doc.items() if k not in ("apiVersion", "kind", "metadata")}
            for error in jsonschema.Draft7Validator(schema).iter_errors(body):
                failures.append(f"{where}: {'/'.join(map(str, error.path))}: {error.message}")
            # unknown fields would be pruned silently: refuse them here
            unknown = set(doc.get("spec", {})) - set(schema["properties"]["spec"]["properties"])
            check(not unknown, f"{where}: unknown spec fields {sorted(unknown)}")
    check(seen >= 2, "config/samples/ holds fewer than two SnapshotExports")


def rules_of(documents, aggregated):
    """{role kind: sorted flattened rules} for the operator's roles, or the aggregated ones."""
    out = {}
    for d in documents:
        if d.get("kind") not in ("Role", "ClusterRole"):
            continue
        labels = d.get("metadata", {}).get("labels") or {}
        agg = sorted(k for k in labels if k.startswith("rbac.authorization.k8s.io/aggregate-to-"))
        if bool(agg) != aggregated:
            continue
        key = (d["kind"], ",".join(agg))
        flat = out.setdefault(key, set())
        for rule in d.get("rules", []):
            for g in rule.get("apiGroups", []):
                for r in rule.get("resources", []):
                    for v in rule.get("verbs", []):
                        flat.add((g, r, v, tuple(sorted(rule.get("resourceNames", [])))))
    return {k: sorted(v) for k, v in out.items()}


def rbac_matches(helm, kustomize):
    for aggregated in (False, True):
        h, k = rules_of(helm, aggregated), rules_of(kustomize, aggregated)
        what = "aggregated view/edit" if aggregated else "operator"
        check(h == k, f"{what} RBAC differs between the chart and config/rbac:\n  chart: {h}\n  kustomize: {k}")
    check(rules_of(helm, False), "the chart renders no operator RBAC rules")


def container(documents):
    deployments = [d for d in documents if d.get("kind") == "Deployment"]
    check(len(deployments) == 1, f"expected one Deployment, found {len(deployments)}")
    pod = deployments[0]["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    return pod, c


def deployments_match(helm, kustomize):
    hp, hc = container(helm)
    kp, kc = container(kustomize)
    for field in ("securityContext", "terminationGracePeriodSeconds", "automountServiceAccountToken"):
        check(hp.get(field) == kp.get(field), f"pod {field} differs: chart {hp.get(field)} kustomize {kp.get(field)}")
    for field in ("command", "args", "ports", "livenessProbe", "readinessProbe", "securityContext", "resources", "imagePullPolicy", "volumeMounts"):
        check(hc.get(field) == kc.get(field), f"container {field} differs: chart {hc.get(field)} kustomize {kc.get(field)}")
    h_env = [e["name"] for e in hc.get("env", [])]
    k_env = [e["name"] for e in kc.get("env", [])]
    # the chart sets AWS_REGION only when aws.region is set; kustomize always does
    check([n for n in k_env if n != "AWS_REGION"] == h_env, f"env differs: chart {h_env} kustomize {k_env}")
    h_vol = [(v["name"], sorted(v)) for v in hp.get("volumes", [])]
    k_vol = [(v["name"], sorted(v)) for v in kp.get("volumes", [])]
    check(h_vol == k_vol, f"volumes differ: chart {h_vol} kustomize {k_vol}")
    policies = []
    for documents in (helm, kustomize):
        cms = [d for d in documents if d.get("kind") == "ConfigMap" and "policy.yaml" in (d.get("data") or {})]
        check(len(cms) == 1, "expected one export policy ConfigMap")
        policies.append(yaml.safe_load(cms[0]["data"]["policy.yaml"]) if cms else None)
    check(policies[0] == policies[1], f"the default export policy differs: chart {policies[0]} kustomize {policies[1]}")
    sc = hc.get("securityContext", {})
    check(sc.get("readOnlyRootFilesystem") is True, "the root filesystem must be read-only")
    check(sc.get("allowPrivilegeEscalation") is False, "privilege escalation must be off")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], "all capabilities must be dropped")
    check(hp.get("securityContext", {}).get("runAsNonRoot") is True, "the pod must run as non-root")
    check(hp.get("securityContext", {}).get("seccompProfile", {}).get("type") == "RuntimeDefault", "seccomp RuntimeDefault")


def schema_is_closed():
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    defs = schema.get("definitions", {})

    def resolve(s):
        while "$ref" in s:
            s = defs[s["$ref"].rsplit("/", 1)[1]]
        return s

    # free-form maps (annotations, labels, affinity, the export policy, resources' lists) are open on purpose
    free_form = {"exportPolicy", "affinity", "requests", "limits"}

    def walk(v, s, path):
        s = resolve(s)
        if isinstance(v, dict) and path.split(".")[-1] not in free_form:
            props = s.get("properties")
            if props is not None:
                check(s.get("additionalProperties") is False, f"values.schema.json: {path or '<root>'} accepts unknown keys")
                for key, child in v.items():
                    check(key in props, f"values.schema.json: {path}.{key} is not described")
                    if key in props:
                        walk(child, props[key], f"{path}.{key}".lstrip("."))
    walk(values, schema, "")
    for error in jsonschema.Draft7Validator(schema).iter_errors(values):
        failures.append(f"values.yaml does not pass values.schema.json: {'.'.join(map(str, error.path))}: {error.message}")


def values_are_commented():
    """Every leaf value has a comment line above it; keys inside a free-form value (the
    `resources` example) are covered by the comment on that value."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    stack = []  # (indent, key) of the enclosing keys
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#") or stripped.startswith("- "):
            continue
        indent = len(line) - len(line.lstrip())
        while stack and stack[-1][0] >= indent:
            stack.pop()
        key = stripped.split(":", 1)[0]
        inside_free_form = any(k in ("resources",) for _, k in stack)
        stack.append((indent, key))
        nxt = next((l for l in lines[i + 1:] if l.strip() and not l.strip().startswith("#")), "")
        opens_block = stripped.endswith(":") and (len(nxt) - len(nxt.lstrip())) > indent and not nxt.strip().startswith("- ")
        if inside_free_form or (opens_block and key != "resources"):
            continue
        prev = lines[i - 1].strip() if i else ""
        check(prev.startswith("#"), f"values.yaml:{i + 1}: {key} has no comment")


# SDK client methods (snake_case) whose IAM action is not their CamelCase name.
IAM_ACTION_OF = {
    ("s3", "list_objects_v2"): "s3:ListBucket",
    ("s3", "get_public_access_block"): "s3:GetBucketPublicAccessBlock",
    ("s3", "head_object"): "s3:GetObject",
}
# Actions a call needs besides its own: CopySnapshot with Tags also authorizes AddTagsToResource.
ALSO_NEEDS = {
    "elasticache:CopySnapshot": {"elasticache:AddTagsToResource"},
    "elasticache:CreateSnapshot": {"elasticache:AddTagsToResource"},
    "elasticache:CopyServerlessCacheSnapshot": {"elasticache:AddTagsToResource"},
    "elasticache:CreateServerlessCacheSnapshot": {"elasticache:AddTagsToResource"},
}
OWNER_TAG = "elasticache-export.io/owner-uid"
SCHEDULE_TAG = "elasticache-export.io/schedule-uid"


def iam_policy_matches_sdk_calls():
    needed = set()
    for path in sorted((ROOT / "src").rglob("*.rs")):
        for service, method in re.findall(r"\.(elasticache|s3)\s*\.\s*([a-z0-9_]+)\(\)", path.read_text()):
            action = IAM_ACTION_OF.get((service, method)) or service + ":" + "".join(w.capitalize() for w in method.split("_"))
            needed |= {action} | ALSO_NEEDS.get(action, set())
    check(needed, "found no AWS SDK calls in src/")
    policy = json.loads((ROOT / "config" / "iam" / "policy.json").read_text())
    granted = set()
    for st in policy["Statement"]:
        check(st["Effect"] == "Allow", f"policy.json: statement {st.get('Sid')} is not an Allow")
        actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
        check(not any("*" in a for a in actions), f"policy.json: wildcard action in {st.get('Sid')}")
        granted |= set(actions)
        for delete in ("elasticache:DeleteSnapshot", "elasticache:DeleteServerlessCacheSnapshot"):
            if delete in actions:
                cond = st.get("Condition", {}).get("Null", {})
                tags = [k.removeprefix("aws:ResourceTag/") for k, v in cond.items() if v == "false"]
                allowed = (OWNER_TAG, SCHEDULE_TAG)
                check(
                    actions == [delete] and len(cond) == 1 and tags and tags[0] in allowed,
                    f"policy.json: {delete} must be alone in a statement conditioned on one of the operator's tags",
                )
        for create in ("elasticache:CreateSnapshot", "elasticache:CreateServerlessCacheSnapshot"):
            if create in actions:
                cond = st.get("Condition", {}).get("Null", {})
                check(
                    cond.get(f"aws:RequestTag/{SCHEDULE_TAG}") == "false",
                    f"policy.json: {create} must be conditioned on the request carrying the schedule tag",
                )
    check(granted == needed, f"config/iam/policy.json grants {sorted(granted - needed)} without a call and misses {sorted(needed - granted)}")
    for partition in ("aws", "aws-us-gov", "aws-cn"):
        path = ROOT / "config" / "iam" / f"bucket-policy-{partition}.json"
        text = path.read_text()
        doc = json.loads(text)
        (st,) = doc["Statement"]
        check(st["Principal"] == {"Service": "${REGION}.elasticache-snapshot.amazonaws.com"}, f"{path.name}: principal")
        check(st["Resource"] == [f"arn:{partition}:s3:::${{BUCKET}}", f"arn:{partition}:s3:::${{BUCKET}}/*"], f"{path.name}: resources")
        for action in ("s3:PutObject", "s3:ListBucket", "s3:GetBucketAcl", "s3:GetBucketLocation"):
            check(action in st["Action"], f"{path.name}: missing {action}")
    grants = (ROOT / "config" / "iam" / "bucket-acl-grants.md").read_text()
    for canonical_id in (
        "540804c33a284a299d2547575ce1010f2312ef3da9b3a053c8bc45bf233e4353",
        "40fa568277ad703bd160f66ae4f83fc9dfdfd06c2f1b5060ca22442ac3ef8be6",
        "b14d6a125bdf69854ed8ef2e71d8a20b7c490f252229b806e514966e490b8d83",
    ):
        check(canonical_id in grants, f"bucket-acl-grants.md: canonical ID {canonical_id} missing")


def main():
    helm_path, kustomize_path = sys.argv[1], sys.argv[2]
    helm, kustomize = docs(helm_path), docs(kustomize_path)
    crd_copy_is_current()
    samples_validate()
    rbac_matches(helm, kustomize)
    deployments_match(helm, kustomize)
    schema_is_closed()
    values_are_commented()
    iam_policy_matches_sdk_calls()
    if failures:
        print("packaging checks failed:", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        sys.exit(1)
    print("packaging checks passed: CRD copy, samples, RBAC and Deployment parity, closed values schema, commented values, IAM policy = SDK calls")


if __name__ == "__main__":
    main()
