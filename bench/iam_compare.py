#!/usr/bin/env python3
"""Helpers for bench/iam_vs_cloudsplaining.sh.

  iam_compare.py decode IN.json OUT.json
      The same authorization details with every URL-encoded policy document decoded to
      a JSON object, as `aws iam get-account-authorization-details` prints it
      (cloudsplaining reads only that form).

  iam_compare.py compare --authz IN.json --posture POSTURE.json \
      --cloudsplaining iam-results-NAME.json [--truth TRUTH.json] [--methods config/iam-escalation.yaml] \
      [--details OUT.json]
      Which principals each tool flags for privilege escalation, the differences, and
      for each difference the reason, found from the documents:
        - cloudsplaining flags it, posture does not: which Deny (in which policy and
          statement) or which permissions boundary takes the method's action away,
          as posture judges a principal (all its policies together);
        - posture flags it, cloudsplaining does not: cloudsplaining's own engine is
          asked again with the principal's policies merged into one document, with
          resource-scoped and conditional statements counted, with only the Deny
          statements posture honours; the first change that makes it flag is the
          reason (or the method is not in cloudsplaining's list at all).
      Run it with the Python of the cloudsplaining venv (it imports cloudsplaining).
      Exit 1 when a principal flagged by cloudsplaining alone has no explanation.

posture's flagged set: subjects of aws-iam-privilege-escalation and aws-iam-admin (an
administrator can do everything; posture reports it once, as admin).
cloudsplaining's flagged set: principals with a policy (inline, AWS or customer managed)
whose PrivilegeEscalation findings are not empty; users also through their groups' policies
(cloudsplaining shows a user's groups with their findings), both counts are printed.
"""
import argparse
import collections
import fnmatch
import json
import sys
import urllib.parse


def decode_document(value):
    if isinstance(value, str):
        text = value if value.lstrip().startswith("{") else urllib.parse.unquote(value)
        return json.loads(text)
    return value


def decode_all(authz):
    # The CLI pages through the results itself and prints no paging keys.
    authz.pop("IsTruncated", None)
    authz.pop("Marker", None)
    for u in authz.get("UserDetailList", []):
        for p in u.get("UserPolicyList", []):
            p["PolicyDocument"] = decode_document(p["PolicyDocument"])
    for g in authz.get("GroupDetailList", []):
        for p in g.get("GroupPolicyList", []):
            p["PolicyDocument"] = decode_document(p["PolicyDocument"])
    for r in authz.get("RoleDetailList", []):
        r["AssumeRolePolicyDocument"] = decode_document(r.get("AssumeRolePolicyDocument"))
        for p in r.get("RolePolicyList", []):
            p["PolicyDocument"] = decode_document(p["PolicyDocument"])
    for p in authz.get("Policies", []):
        for v in p.get("PolicyVersionList", []):
            v["Document"] = decode_document(v["Document"])
    return authz


def cmd_decode(a):
    with open(a.input) as f:
        authz = json.load(f)
    with open(a.output, "w") as f:
        json.dump(decode_all(authz), f, indent=1)


# --- a small model of posture's semantics, for the method actions only -------------------
def listify(v):
    if v is None:
        return []
    return v if isinstance(v, list) else [v]


def statements(document):
    s = (document or {}).get("Statement", [])
    return [x for x in listify(s) if isinstance(x, dict)]


def stmt_matches(s, action):
    patterns = listify(s.get("Action")) if "Action" in s else listify(s.get("NotAction"))
    hit = any(fnmatch.fnmatchcase(action.lower(), p.lower()) for p in patterns if isinstance(p, str))
    return hit != ("Action" not in s and "NotAction" in s)


def all_resources(s):
    return "Resource" in s and "*" in listify(s["Resource"])


def conditional(s):
    return bool(s.get("Condition"))


def effect(s):
    return str(s.get("Effect", "")).lower()


class Principal:
    def __init__(self, kind, entry, policies):
        """policies: [(name, document)] in effect for this principal (for users, their
        groups' too); boundary: (name, document) or None."""
        self.kind = kind
        self.name = entry.get(f"{kind.capitalize()}Name")
        self.arn = entry["Arn"]
        self.policies = policies
        self.boundary = None

    def denied_by(self, action):
        """The unconditional Deny on Resource * that removes `action`, as posture applies it."""
        for pname, d in self.policies:
            for i, s in enumerate(statements(d)):
                if effect(s) == "deny" and all_resources(s) and not conditional(s) and stmt_matches(s, action):
                    return pname, i, s
        return None

    def outside_boundary(self, action):
        if not self.boundary:
            return None
        bname, bdoc = self.boundary
        allowed = any(effect(s) == "allow" and stmt_matches(s, action) for s in statements(bdoc))
        denied = any(effect(s) == "deny" and all_resources(s) and not conditional(s) and stmt_matches(s, action)
                     for s in statements(bdoc))
        return bname if (not allowed or denied) else None

    def grants(self, action):
        out = []
        for pname, d in self.policies:
            for i, s in enumerate(statements(d)):
                if effect(s) == "allow" and stmt_matches(s, action):
                    out.append((pname, i, s))
        return out

    def only_self(self, s):
        if "Resource" not in s:
            return False
        res = listify(s["Resource"])
        return bool(res) and all(r.replace("${aws:username}", self.name) == self.arn for r in res)

    def allows(self, action):
        return bool(self.grants(action)) and not self.denied_by(action) and not self.outside_boundary(action)

    def methods(self, catalog):
        """posture's escalation methods, per the model."""
        held = []
        for m in catalog:
            if not all(self.allows(a) for a in m["actions"]):
                continue
            if m.get("target") == "other" and any(
                    all(self.only_self(s) for _, _, s in self.grants(a)) for a in m["actions"]):
                continue
            held.append(m["id"])
        return held


def load_principals(authz):
    policies = {}
    for p in authz["Policies"]:
        default = next((v for v in p["PolicyVersionList"]
                        if v.get("IsDefaultVersion") or v.get("VersionId") == p.get("DefaultVersionId")), None)
        policies[p["Arn"]] = (p["PolicyName"], p.get("Path", "/"), decode_document(default["Document"]) if default else {})

    def managed(entry):
        return [(policies[a["PolicyArn"]][0], policies[a["PolicyArn"]][2])
                for a in entry.get("AttachedManagedPolicies", []) if a["PolicyArn"] in policies]

    def inline(entry, key):
        return [(f"inline {p['PolicyName']}", decode_document(p["PolicyDocument"])) for p in entry.get(key, [])]

    out = {}
    group_policies = {}
    for g in authz["GroupDetailList"]:
        pols = managed(g) + inline(g, "GroupPolicyList")
        group_policies[g["GroupName"]] = [(f"group {g['GroupName']}: {n}", d) for n, d in pols]
        out[g["Arn"]] = Principal("group", g, pols)
    for u in authz["UserDetailList"]:
        pols = managed(u) + inline(u, "UserPolicyList")
        for gname in u.get("GroupList", []):
            pols += group_policies.get(gname, [])
        p = Principal("user", u, pols)
        out[u["Arn"]] = p
        b = (u.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        if b in policies:
            p.boundary = (policies[b][0], policies[b][2])
    for r in authz["RoleDetailList"]:
        p = Principal("role", r, managed(r) + inline(r, "RolePolicyList"))
        out[r["Arn"]] = p
        b = (r.get("PermissionsBoundary") or {}).get("PermissionsBoundaryArn")
        if b in policies:
            p.boundary = (policies[b][0], policies[b][2])
    return out, policies


# --- cloudsplaining's results ---------------------------------------------------------------
def cloudsplaining_flags(results):
    """{arn: {policy name: [method, ...]}} directly, and with users' groups."""
    pols = {}
    for section in ("aws_managed_policies", "customer_managed_policies", "inline_policies"):
        for pid, p in results.get(section, {}).items():
            found = p.get("PrivilegeEscalation", {}).get("findings", [])
            if found:
                pols[pid] = (p.get("PolicyName", pid), [f["type"] for f in found])

    def of(entry):
        hits = {}
        for key in ("inline_policies", "customer_managed_policies", "aws_managed_policies"):
            for pid in (entry.get(key) or {}):
                if pid in pols:
                    name, methods = pols[pid]
                    hits[("inline " if key == "inline_policies" else "") + name] = methods
        return hits

    direct, inherited = {}, {}
    groups_by_name = {}
    for kind in ("groups", "roles", "users"):
        for _, entry in results.get(kind, {}).items():
            hits = of(entry)
            if kind == "groups":
                groups_by_name[entry["name"]] = hits
            if hits:
                direct[entry["arn"]] = hits
            via = dict(hits)
            if kind == "users":
                for gname in (entry.get("groups") or {}):
                    for pname, methods in groups_by_name.get(gname, {}).items():
                        via[f"group {gname}: {pname}"] = methods
            if via:
                inherited[entry["arn"]] = via
    return direct, inherited


# --- reasons ----------------------------------------------------------------------------------
def short(s):
    text = json.dumps(s, separators=(",", ":"))
    return text if len(text) <= 220 else text[:217] + "..."


def why_not_posture(p, cs_hits, posture_methods):
    """Why posture does not flag a principal cloudsplaining flags; None if unexplained."""
    reasons = []
    for pname, methods in cs_hits.items():
        for method in methods:
            from cloudsplaining.shared.constants import PRIVILEGE_ESCALATION_METHODS as CS
            missing = []
            for action in CS[method]:
                d = p.denied_by(action)
                if d:
                    if d[0] == pname:
                        # The Deny is in the very policy cloudsplaining flags: it subtracts
                        # Deny from Allow by comparing action names case-sensitively.
                        kind = "deny-same-policy-case-sensitive"
                    elif pname.startswith("group ") and not d[0].startswith("group "):
                        kind = "deny-on-user-overrides-group"
                    else:
                        kind = "deny-in-another-policy"
                    if "NotAction" in d[2]:
                        kind += "-notaction"
                    missing.append((kind, action, f"{action} denied by {d[0]} statement #{d[1]} {short(d[2])}"))
                    continue
                b = p.outside_boundary(action)
                if b:
                    missing.append(("permissions-boundary", action, f"{action} outside the permissions boundary {b}"))
            if not missing:
                return None, f"{method} from {pname}: every action stands (posture bug?)"
            reasons.append((missing[0][0], f"{method} ({pname}): {missing[0][2]}"))
    kinds = sorted({k for k, _ in reasons})
    return "+".join(kinds), reasons[0][1]


def cs_flag(doc, **flags):
    from cloudsplaining.scan.policy_document import PolicyDocument
    from cloudsplaining.shared.exclusions import Exclusions
    ex = Exclusions({"policies": [""]})
    return [e["type"] for e in PolicyDocument(doc, exclusions=ex, **flags).allows_privilege_escalation]


def why_not_cloudsplaining(p, posture_methods, excluded_policies):
    from cloudsplaining.shared.constants import PRIVILEGE_ESCALATION_METHODS as CS
    in_cs = [m for m in posture_methods if m in CS]
    if posture_methods and not in_cs:
        return "method-not-in-cloudsplaining", f"methods {', '.join(posture_methods[:4])} are not in cloudsplaining's list"
    excluded = [n for n, _ in p.policies if n in excluded_policies]
    if excluded:
        path = excluded_policies[excluded[0]]
        why = ("cloudsplaining always skips policies under /aws-service-role/" if path.startswith("/aws-service-role")
               else "its name or path is in cloudsplaining's exclusions")
        return "policy-excluded-by-cloudsplaining", f"{excluded[0]} (path {path}): {why}"
    merged = {"Version": "2012-10-17", "Statement": [s for _, d in p.policies for s in statements(d)]}
    per_policy = any(cs_flag(d) for _, d in p.policies)
    if per_policy:
        return None, "cloudsplaining's engine flags one of its policies alone, yet the results do not"
    if cs_flag(merged):
        return "split-across-policies", "the method's actions come from different policies: " + ", ".join(
            f"{a} in {p.grants(a)[0][0]}" for m in in_cs[:1] for a in CS[m] if p.grants(a))
    if cs_flag(merged, flag_conditional_statements=True):
        g = next((g for m in in_cs for a in CS[m] for g in p.grants(a) if conditional(g[2])), None)
        return "conditional-grant", (f"granted under a condition: {g[0]} statement #{g[1]} {short(g[2])}"
                                     if g else "granted under a condition")
    if cs_flag(merged, flag_resource_arn_statements=True):
        g = next((g for m in in_cs for a in CS[m] for g in p.grants(a) if not all_resources(g[2]) and not conditional(g[2])), None)
        return "resource-scoped-grant", (f"granted on named resources only: {g[0]} statement #{g[1]} {short(g[2])}"
                                         if g else "granted on named resources only")
    if cs_flag(merged, flag_resource_arn_statements=True, flag_conditional_statements=True):
        return "conditional-and-resource-scoped", "granted under a condition and on named resources"
    honoured = {"Version": "2012-10-17", "Statement": [
        s for s in merged["Statement"] if effect(s) != "deny" or (all_resources(s) and not conditional(s))]}
    if cs_flag(honoured, flag_resource_arn_statements=True, flag_conditional_statements=True):
        d = next(((n, i, s) for n, doc in p.policies for i, s in enumerate(statements(doc))
                  if effect(s) == "deny" and (conditional(s) or not all_resources(s))), None)
        return "cloudsplaining-ignores-deny-condition", (
            f"cloudsplaining subtracts a Deny whatever its condition or resources: {d[0]} statement #{d[1]} {short(d[2])}"
            if d else "deny")
    if posture_methods:
        return "method-not-in-cloudsplaining", f"methods {', '.join(posture_methods[:4])}: the ones cloudsplaining knows are not held whole"
    return None, "posture flags it but the model finds no method"


def cmd_compare(a):
    import yaml
    with open(a.authz) as f:
        authz = decode_all(json.load(f))
    with open(a.posture) as f:
        posture = json.load(f)
    with open(a.cloudsplaining) as f:
        results = json.load(f)
    truth = {}
    if a.truth:
        with open(a.truth) as f:
            truth = json.load(f)
    with open(a.methods) as f:
        catalog = yaml.safe_load(f)

    principals, policies = load_principals(authz)
    # Managed policies cloudsplaining left out (always: path /aws-service-role/; with its
    # default exclusions also AdministratorAccess, /service-role/ ...): not in its results.
    seen = {p["Arn"] for section in ("aws_managed_policies", "customer_managed_policies")
            for p in results.get(section, {}).values() if not p.get("is_excluded")}
    excluded_policies = {name: path for parn, (name, path, _) in policies.items() if parn not in seen}
    escalating = {f["subject"]["id"]: f for f in posture["findings"] if f["rule"] == "aws-iam-privilege-escalation"}
    admins = {f["subject"]["id"]: f for f in posture["findings"] if f["rule"] == "aws-iam-admin"}
    posture_set = set(escalating) | set(admins)
    cs_direct, cs_inherited = cloudsplaining_flags(results)
    cs_set = set(cs_inherited)

    kinds = collections.Counter(p.kind for p in principals.values())
    print(f"principals: {len(principals)} ({kinds['user']} users, {kinds['group']} groups, {kinds['role']} roles)")
    print(f"posture flags {len(posture_set)}: {len(escalating)} aws-iam-privilege-escalation + {len(admins)} aws-iam-admin")
    print(f"cloudsplaining flags {len(cs_direct)} through their own policies, {len(cs_set)} with users' groups")
    both = posture_set & cs_set
    cs_only = sorted(cs_set - posture_set)
    posture_only = sorted(posture_set - cs_set)
    print(f"both: {len(both)}   cloudsplaining only: {len(cs_only)}   posture only: {len(posture_only)}")

    # Cross-check posture against the model (parsing gaps would show here).
    model_mismatch = []
    for arn, p in principals.items():
        held = bool(p.methods(catalog))
        if held != (arn in escalating) and arn not in admins:
            model_mismatch.append((arn, held))
    print(f"posture vs the model of its semantics: {len(model_mismatch)} principals differ")
    for arn, held in model_mismatch[:20]:
        print(f"  {arn}: model {'holds' if held else 'holds no'} method, posture {'flags' if arn in escalating else 'does not flag'}")

    details = {"cloudsplaining_only": [], "posture_only": []}
    unexplained = 0
    print("\n== cloudsplaining flags, posture does not ==")
    by_reason = collections.defaultdict(list)
    for arn in cs_only:
        p = principals[arn]
        reason, text = why_not_posture(p, cs_inherited[arn], p.methods(catalog))
        if reason is None:
            unexplained += 1
            reason = "UNEXPLAINED"
        by_reason[reason].append(arn)
        direct = "directly" if arn in cs_direct else "through a group"
        details["cloudsplaining_only"].append({"arn": arn, "archetype": truth.get(arn), "reason": reason,
                                               "detail": text, "cloudsplaining": cs_inherited[arn]})
        print(f"  {arn} [{truth.get(arn, '?')}] cloudsplaining ({direct}): "
              f"{'; '.join(f'{k}: {v[0]}' for k, v in list(cs_inherited[arn].items())[:2])}\n    -> {reason}: {text}")
    print("  by reason: " + ", ".join(f"{k} {len(v)}" for k, v in sorted(by_reason.items())))

    print("\n== posture flags, cloudsplaining does not ==")
    by_reason = collections.defaultdict(list)
    for arn in posture_only:
        p = principals[arn]
        methods = p.methods(catalog)
        if arn in admins:
            excluded = [n for n, _ in p.policies if n in excluded_policies]
            reason, text = "admin", "administrator (aws-iam-admin)" + (
                f"; cloudsplaining's exclusions skip {excluded[0]}" if excluded else "")
        else:
            reason, text = why_not_cloudsplaining(p, methods, excluded_policies)
            if reason is None:
                reason = "UNEXPLAINED"
        by_reason[reason].append(arn)
        details["posture_only"].append({"arn": arn, "archetype": truth.get(arn), "reason": reason,
                                        "detail": text, "posture_methods": methods,
                                        "posture": (escalating.get(arn) or admins.get(arn))["message"]})
    for reason, arns in sorted(by_reason.items(), key=lambda kv: -len(kv[1])):
        archetypes = collections.Counter(truth.get(x, "?") for x in arns)
        print(f"  {reason}: {len(arns)} (archetypes: {', '.join(f'{k} {v}' for k, v in archetypes.most_common())})")
        for x in arns[:3]:
            d = next(e for e in details["posture_only"] if e["arn"] == x)
            print(f"    e.g. {x}: {d['detail']}")

    if truth:
        print("\n== by generated archetype: both / posture only / cloudsplaining only / neither ==")
        table = collections.defaultdict(collections.Counter)
        for arn, arche in truth.items():
            col = ("both" if arn in both else "posture only" if arn in posture_set
                   else "cloudsplaining only" if arn in cs_set else "neither")
            kind = arn.split(":")[5].split("/")[0]
            table[f"{kind} {arche}"][col] += 1
        print(f"  {'archetype':38} {'both':>6} {'posture':>8} {'cs':>6} {'neither':>8}")
        for k in sorted(table):
            c = table[k]
            print(f"  {k:38} {c['both']:6} {c['posture only']:8} {c['cloudsplaining only']:6} {c['neither']:8}")

    if a.details:
        with open(a.details, "w") as f:
            json.dump(details, f, indent=1)
    if unexplained:
        print(f"\n{unexplained} principals flagged by cloudsplaining alone have no explanation")
        return 1
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("decode")
    d.add_argument("input")
    d.add_argument("output")
    c = sub.add_parser("compare")
    c.add_argument("--authz", required=True)
    c.add_argument("--posture", required=True)
    c.add_argument("--cloudsplaining", required=True)
    c.add_argument("--truth")
    c.add_argument("--methods", default="config/iam-escalation.yaml")
    c.add_argument("--details")
    a = ap.parse_args()
    if a.cmd == "decode":
        cmd_decode(a)
        return 0
    return cmd_compare(a)


if __name__ == "__main__":
    sys.exit(main())
