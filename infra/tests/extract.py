"""Reads infra/*.bicep with pycep (a Bicep parser) and prints, as JSON, the facts tests/infra.rs
checks against the code: the function app's settings, the Logs stream's and table's columns,
and the role assignments. Usage: extract.py <infra dir>. Exits non-zero when a fact cannot be
found (the templates changed shape: update this script with them).
"""

import json
import sys
from pathlib import Path

try:
    from pycep import BicepParser
except ImportError:  # the test names the install step
    sys.stderr.write(
        "pycep-parser is missing: run scripts/test.sh, or "
        "python3 -m venv .venv-infra && .venv-infra/bin/pip install -r infra/tests/requirements.txt\n"
    )
    sys.exit(3)


def parse(path):
    return BicepParser().parse(file_path=path)


def fail(message):
    sys.stderr.write(f"extract.py: {message}\n")
    sys.exit(2)


def unquote(key):
    """pycep keeps the quotes of quoted object keys ('Key Vault Secrets User')."""
    if len(key) >= 2 and key[0] == key[-1] == "'":
        return key[1:-1]
    return key


def literal(value, doc=None):
    """The value as a deployment with the parameters' defaults gets it, when the template alone
    decides it: a string, number or bool; a parameter with a default or a variable (pycep gives
    both as a bare name); `string(…)` of those; `${…}` of those. None for anything decided at
    deployment (tenant(), a resource's property, a parameter without default)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if doc is not None:
            params = doc.get("parameters", {})
            variables = doc.get("variables", {})
            if value in params:
                if "default" not in params[value]:
                    return None
                return literal(params[value]["default"], doc)
            if value in variables:
                return literal(variables[value]["value"], doc)
        if "${" in value:
            out, rest = "", value
            while "${" in rest:
                head, tail = rest.split("${", 1)
                name, rest = tail.split("}", 1)
                part = literal(name, doc) if doc is not None and name.isidentifier() else None
                if part is None:
                    return None
                out += head + part
            return out + rest
        return value
    if isinstance(value, dict) and "function" in value:
        f = value["function"]
        if f.get("type") == "string":
            (arg,) = f["parameters"].values()
            return literal(arg, doc)
    return None


def resolve(value, variables):
    """A reference to a variable (pycep gives the bare name) becomes the variable's value."""
    if isinstance(value, str) and value in variables:
        return variables[value]["value"]
    return value


def body(resource):
    """A resource's body; a conditional one (`= if (…) {…}`) nests it one level down."""
    config = resource["config"]
    if "condition" in config and isinstance(config.get("config"), dict):
        return config["config"]
    return config


def columns(value, variables):
    value = resolve(value, variables)
    if not isinstance(value, list):
        fail(f"columns are not a list: {value!r}")
    return [[c["name"], c["type"]] for c in value]


def main():
    infra = Path(sys.argv[1])
    main_bicep = parse(infra / "main.bicep")
    app = parse(infra / "modules" / "functionapp.bicep")
    monitoring = parse(infra / "modules" / "monitoring.bicep")
    access = parse(infra / "modules" / "access.bicep")
    playbook = parse(infra / "modules" / "playbook.bicep")

    # App settings: the handler's (main.bicep → module app, param appSettings) and the host's
    # (functionapp.bicep, var hostSettings), merged by union() into siteConfig.appSettings.
    app_module = main_bicep["modules"]["app"] if "modules" in main_bicep else None
    if app_module is None:
        fail("main.bicep has no module 'app'")
    handler = app_module["config"]["params"]["appSettings"]
    host = app["variables"]["hostSettings"]["value"]
    settings = {}
    for source, doc in ((handler, main_bicep), (host, app)):
        for key, value in source.items():
            settings[unquote(key)] = literal(value, doc)
    site = body(app["resources"]["app"])["properties"]
    runtime = site["functionAppConfig"]["runtime"]

    # Logs: the DCR's stream declaration and the custom table's schema.
    mvars = monitoring["variables"]
    dcr = body(monitoring["resources"]["dcr"])["properties"]
    decl = dcr["streamDeclarations"]
    if len(decl) != 1:
        fail(f"expected one stream declaration, found {list(decl)}")
    (stream_name, stream), = decl.items()
    table = body(monitoring["resources"]["table"])
    flows = dcr["dataFlows"]

    # Role assignments: the role's name is the key into var roles, its id the value.
    def assignments(module, principal_param):
        roles = {unquote(k): v for k, v in module["variables"]["roles"]["value"].items()}
        out = []
        for name, res in module["resources"].items():
            if res["type"] != "Microsoft.Authorization/roleAssignments" or res.get("existing"):
                continue
            props = body(res)["properties"]
            rid = props["roleDefinitionId"]["function"]["parameters"]["resource_name_1"]
            role = unquote(rid["operator"]["operands"]["operand_2"])
            principal = props["principalId"]
            out.append(
                {
                    "resource": name,
                    "role": role,
                    "role_id": roles.get(role),
                    "scope": body(res).get("scope"),
                    "identity": principal if principal in ("principalId", "platformPrincipalId") else "other",
                }
            )
        return out

    facts = {
        "app_settings": settings,
        "runtime": {"name": runtime["name"], "version": literal(runtime["version"], app)},
        "plan_sku": app["resources"]["plan"]["config"]["sku"],
        "identity": app["resources"]["app"]["config"]["identity"]["type"],
        "stream_name": unquote(stream_name),
        "stream_columns": columns(stream["columns"], mvars),
        "table_name": literal(table["name"], monitoring),
        "table_columns": columns(table["properties"]["schema"]["columns"], mvars),
        "data_flow_stream_values": [literal(s, monitoring) for f in flows for s in f["streams"]],
        "role_assignments": assignments(access, "principalId") + assignments(playbook, None),
        "webhook_url": playbook["variables"]["webhookUrl"]["value"],
        "playbook_posts": {
            mode: {
                "uri": post["inputs"]["uri"],
                "method": post["inputs"]["method"],
                "queries": post["inputs"].get("queries", {}),
                "headers": {unquote(k): v for k, v in post["inputs"].get("headers", {}).items()},
                "body": post["inputs"]["body"],
                "authentication": post["inputs"].get("authentication"),
            }
            for mode, var in (("secret", "postSecret"), ("entra", "postToken"))
            for post in [playbook["variables"][var]["value"]["Post_to_SentinelWebhook"]]
        },
        "automation_rules": [
            {
                "resource": name,
                "triggers_when": body(res)["properties"]["triggeringLogic"]["triggersWhen"],
                "conditions": body(res)["properties"]["triggeringLogic"].get("conditions", []),
            }
            for name, res in playbook["resources"].items()
            if res["type"] == "Microsoft.SecurityInsights/automationRules"
        ],
    }
    json.dump(facts, sys.stdout, indent=1, default=str)


if __name__ == "__main__":
    main()
