"""Chapter 3's own checks: the tracker as a package, with an app factory and checked layering.

Chapter 2's checks run first, unchanged (`inherit` in chapter.toml): splitting the module must
not change what the API does. These checks are about the code's shape, learned from outside
the checker's process as every check is: the files of the learner's folder read as data, the
OpenAPI document over HTTP, and small scripts run beside the app, in its sandbox, whose output
is the learner's side's word (it can make a check fail, and is quoted as data, never run).
Each check must fail on the starter (Chapter 2's single module) and on the mutants that name it.
"""

import json
import re
import tomllib
from pathlib import Path

import pytest

from checks_chapter_2 import *  # noqa: F401,F403 (Chapter 2's checks, run first: see `inherit`)
from grader.harness import (
    CheckFailed, describe_request, expect_status, learner_file, quoted, run_in_app, script_report,
)

SUITE = Path(__file__).parent

# The statement's table: every operation of the API, its tag, and its function's name; the
# operation id is `<tag>-<function name>`.
ROUTES = [
    ("POST", "/users", "users", "create_user"),
    ("GET", "/users/me", "users", "read_me"),
    ("GET", "/users", "users", "list_users"),
    ("GET", "/users/{user_id}", "users", "get_user"),
    ("POST", "/token", "auth", "login"),
    ("POST", "/projects", "projects", "create_project"),
    ("GET", "/projects/{project_id}", "projects", "get_project"),
    ("GET", "/projects/{project_id}/members", "projects", "list_members"),
    ("POST", "/projects/{project_id}/members", "projects", "add_member"),
    ("DELETE", "/projects/{project_id}/members/{user_id}", "projects", "remove_member"),
    ("POST", "/projects/{project_id}/tasks", "tasks", "create_task"),
    ("GET", "/projects/{project_id}/tasks", "tasks", "list_tasks"),
    ("GET", "/tasks/{task_id}", "tasks", "get_task"),
    ("PATCH", "/tasks/{task_id}", "tasks", "update_task"),
]
TAGS = ("users", "auth", "projects", "tasks")

# The files the statement's tree requires (more are the learner's choice).
LAYOUT = [
    "tracker/__init__.py",
    "tracker/main.py",
    "tracker/config.py",
    "tracker/models/__init__.py",
    "tracker/schemas/__init__.py",
    "tracker/shared/__init__.py",
    "tracker/shared/database.py",
    "tracker/shared/security.py",
    "tracker/shared/dependencies.py",
    "tracker/routers/__init__.py",
    *(f"tracker/routers/{tag}.py" for tag in TAGS),
]

ENTRYPOINT = "tracker.main:app"
MARK = "@grader-structure "
LINES_SHOWN = 14  # lines of a learner-side report quoted in a failure

# Run beside the app (see `run_in_app`): imports the learner's tracker.main once and prints, as
# one JSON line after the mark (its last argument), what the checks need to know: the routes of
# `app` and where each route's function is defined, what `app` is, and two apps from
# create_app() compared. A part that raises is reported as that part's error.
OBSERVE = r'''
import importlib, json, sys

sys.path.insert(0, sys.argv[1])


def routes(app):
    # FastAPI 0.16x keeps included routers whole (iter_route_contexts flattens them); earlier
    # versions copy their routes into app.routes.
    from fastapi.routing import APIRoute

    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:
        flat = [(route, route) for route in getattr(app, "routes", [])]
    else:
        flat = [(context, context.original_route) for context in iter_route_contexts(getattr(app, "routes", []))]
    found = []
    for route, original in flat:
        endpoint = getattr(route, "endpoint", None)
        found.append({"path": getattr(route, "path", None), "methods": sorted(getattr(route, "methods", None) or []),
                      "module": getattr(endpoint, "__module__", None), "function": getattr(endpoint, "__name__", None),
                      "api": isinstance(original, APIRoute)})
    return found


def factory_facts(main, app):
    from fastapi import FastAPI

    factory = getattr(main, "create_app", None)
    if not callable(factory):
        return {"factory": repr(factory)[:200]}
    first, second = factory(), factory()
    facts = {"factory": "callable", "fastapi": [isinstance(one, FastAPI) for one in (first, second)],
             "same": first is second, "is_module_app": [one is app for one in (first, second)]}
    if all(facts["fastapi"]):
        def probe():
            pass

        first.dependency_overrides[probe] = lambda: None
        first.state.grader_probe = "set on the first app"
        facts["override_on_second"] = probe in second.dependency_overrides
        facts["override_on_app"] = probe in getattr(app, "dependency_overrides", {})
        facts["state_on_second"] = getattr(second.state, "grader_probe", None) is not None
        facts["routes"] = [[[route["path"], route["methods"]] for route in routes(one)] for one in (first, second, app)]
    return facts


def part(compute):
    try:
        return compute()
    except BaseException as error:
        return {"error": f"{type(error).__name__}: {error}"[:300]}


from fastapi import FastAPI

main = importlib.import_module("tracker.main")
app = getattr(main, "app", None)
facts = {"app": {"kind": type(app).__module__ + "." + type(app).__qualname__, "fastapi": isinstance(app, FastAPI)},
         "routes": part(lambda: routes(app)), "factory": part(lambda: factory_facts(main, app))}
print("\n" + sys.argv[-1] + json.dumps(facts, default=str), flush=True)
'''

# Run beside the app: import-linter on the learner's package with the course's contracts (the
# second argument), written to a file of this process's own folder. import-linter reads the
# package's files without importing them, and is imported before the learner's folder joins
# the path, so nothing of the learner's can stand in for it.
LINT = r'''
import importlib.util, sys
from importlinter.cli import lint_imports_command

home, contracts = sys.argv[1], sys.argv[2]
sys.path.append(home)
found = importlib.util.find_spec("tracker")
places = list(getattr(found, "submodule_search_locations", None) or [])
if not places or not all(place.startswith(home) for place in places):
    print("\n" + sys.argv[-1] + "no-package", flush=True)
    sys.exit(3)
with open("course-contracts.toml", "w") as file:
    file.write(contracts)
sys.argv = ["lint-imports", "--no-cache", "--no-logo", "course-contracts.toml"]
lint_imports_command()
'''


# --- Helpers ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def observed():
    """What OBSERVE reports, run once for the checks that need it; or the CheckFailed that
    says why there is nothing to report (raised by each of them)."""
    try:
        return script_report(run_in_app(OBSERVE, MARK), MARK, "Importing tracker.main")
    except CheckFailed as failure:
        return failure


def part(observed, name: str) -> dict:
    """One part of OBSERVE's report, or a CheckFailed for a part that raised."""
    if isinstance(observed, CheckFailed):
        raise observed
    facts = observed.get(name)
    if isinstance(facts, dict) and isinstance(facts.get("error"), str):
        raise CheckFailed(f"Looking at tracker.main beside your app, this raised: {facts['error']}")
    return facts if isinstance(facts, (dict, list)) else {}


def route_list(value) -> list[dict]:
    """Routes as OBSERVE reports them, keeping only well-formed entries (the report is data)."""
    routes = []
    for item in value if isinstance(value, list) else []:
        if isinstance(item, dict) and all(isinstance(item.get(key), str) for key in ("module", "function")):
            methods = item.get("methods") if isinstance(item.get("methods"), list) else []
            routes.append({"path": str(item.get("path")), "methods": [str(method) for method in methods],
                           "module": item["module"], "function": item["function"], "api": item.get("api") is True})
    return routes


def shape(path: str) -> str:
    """A path with its parameters' names left out: the names are the learner's choice."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def course_contracts() -> tuple[str, dict[str, str]]:
    """The contracts file the checks use, and each contract's id and name."""
    text = (SUITE / "contracts.toml").read_text()
    contracts = tomllib.loads(text)["tool"]["importlinter"]["contracts"]
    return text, {contract["name"]: contract["id"] for contract in contracts}


def broken_sections(output: str, names: list[str]) -> dict[str, list[str]]:
    """import-linter's report of each broken contract: the lines under its name's heading."""
    sections: dict[str, list[str]] = {}
    lines = output.splitlines()
    for index, line in enumerate(lines):
        if line.strip() in names and index + 1 < len(lines) and set(lines[index + 1].strip()) == {"-"}:
            body = []
            for following in lines[index + 2:]:
                if following.strip() in names or set(following.strip()) == {"-"}:
                    break
                body.append(following)
            sections[line.strip()] = body
    return sections


# --- The checks -----------------------------------------------------------------------------------


def test_package_layout(observed):
    missing = [path for path in LAYOUT if learner_file(path) is None]
    if missing:
        raise CheckFailed("Expected the package's layout from the statement; these files are missing (or are not "
                          "plain files): " + ", ".join(missing) + ".\nA folder becomes a package with its own "
                          "__init__.py (it may be empty).")
    routes = route_list(part(observed, "routes"))
    problems = []
    for route in routes:
        module, where = route["module"], f"{' '.join(route['methods'])} {route['path']}: {route['function']}()"
        if module == "tracker.main":
            problems.append(f"{where} is defined in tracker/main.py")
        elif route["api"] and not module.startswith("tracker.routers."):
            problems.append(f"{where} is defined in {module}, not in a module of tracker/routers/")
    by_route = {(method, shape(route["path"])): route for route in routes for method in route["methods"]}
    for method, path, tag, function in ROUTES:
        route = by_route.get((method, shape(path)))
        if route is not None and route["module"] != f"tracker.routers.{tag}" and route["module"] != "tracker.main":
            problems.append(f"{method} {path} ({tag}) is defined in {route['module']}; its tag's router module is "
                            f"tracker/routers/{tag}.py")
    if problems:
        raise CheckFailed("Expected every route's function in the router module of its tag, and no route in "
                          "tracker/main.py. Importing tracker.main beside your app and listing app.routes found:\n"
                          + "\n".join(f"  - {problem}" for problem in problems[:LINES_SHOWN]))


def test_create_app_builds_independent_apps(observed):
    facts = part(observed, "factory")
    if facts.get("factory") != "callable":
        raise CheckFailed(f"Expected tracker/main.py to define create_app(), a function that returns a new app; "
                          f"found create_app = {str(facts.get('factory'))[:200]}.")
    if facts.get("fastapi") != [True, True]:
        raise CheckFailed("Expected create_app() to return a FastAPI application each time it is called; called "
                          f"twice, it returned FastAPI apps: {facts.get('fastapi')}.")
    if facts.get("same") is not False or facts.get("is_module_app") != [False, False]:
        what = ("the same object both times" if facts.get("same") is not False
                else "tracker.main's module-level `app` itself")
        raise CheckFailed(f"Called twice, create_app() returned {what}. Each call must build a new app: a test that "
                          "changes its app (an override, state) must not change anybody else's.")
    leaks = []
    if facts.get("override_on_second") is not False:
        leaks.append("a dependency override set on the first app also shows on the second")
    if facts.get("override_on_app") is not False:
        leaks.append("a dependency override set on the first app also shows on tracker.main's `app`")
    if facts.get("state_on_second") is not False:
        leaks.append("an attribute set on the first app's state also shows on the second's")
    if leaks:
        raise CheckFailed("Expected two apps from create_app() to share nothing they change; but "
                          + "; and ".join(leaks) + ".")
    tables = facts.get("routes") if isinstance(facts.get("routes"), list) else []
    listed = [sorted(f"{' '.join(map(str, methods))} {path}" for path, methods in table
                     if isinstance(methods, list)) if isinstance(table, list) else None for table in tables]
    if len(listed) != 3 or any(table is None for table in listed):
        raise CheckFailed("The routes of the apps from create_app() could not be read.")
    first, second, module_app = listed
    doubled = sorted({line for line in second if second.count(line) > 1})
    if doubled:
        raise CheckFailed("Expected the second app from create_app() to have each route once; these are there "
                          f"more than once ({len(doubled)} in all): " + ", ".join(doubled) + ". Is a router at module level included "
                          "into another router inside create_app()? Build or include routers so that a second "
                          "call adds nothing to the first app's.")
    if first != second or first != module_app:
        different = sorted(set(first) ^ set(second) ^ set(module_app))
        raise CheckFailed("Expected the first and second apps from create_app(), and tracker.main's `app`, to have "
                          "the same routes; these are not in all three: " + ", ".join(different[:8]) + ".")


def test_openapi_tags_and_operation_ids(client):
    response = client.get("/openapi.json")
    document = expect_status(response, 200, "the OpenAPI document")
    paths = document.get("paths") if isinstance(document, dict) else None
    if not isinstance(paths, dict):
        raise CheckFailed(f"Expected /openapi.json to have its `paths`.\n  sent: {describe_request('GET', '/openapi.json')}")
    operations = {}
    for path, items in paths.items():
        for method, operation in (items.items() if isinstance(items, dict) else ()):
            if method in ("get", "post", "put", "patch", "delete", "head", "options", "trace"):
                operations[(method.upper(), shape(str(path)))] = (str(path), operation if isinstance(operation, dict) else {})
    expected = {(method, shape(path)): (path, tag, function) for method, path, tag, function in ROUTES}
    problems = [f"{key[0]} {path} is missing" for key, (path, _, _) in expected.items() if key not in operations]
    problems += [f"{key[0]} {path} is not in the statement's table" for key, (path, _) in operations.items()
                 if key not in expected]
    for key, (path, tag, function) in expected.items():
        if key not in operations:
            continue
        operation = operations[key][1]
        tags, operation_id = operation.get("tags"), operation.get("operationId")
        if tags != [tag]:
            problems.append(f"{key[0]} {path}: tags {json.dumps(tags)}, expected {json.dumps([tag])}")
        if operation_id != f"{tag}-{function}":
            problems.append(f"{key[0]} {path}: operationId {json.dumps(operation_id)}, expected "
                            f"{json.dumps(f'{tag}-{function}')}")
    if problems:
        raise CheckFailed("Expected /openapi.json to list exactly the statement's operations, each with its "
                          "router's one tag and the operation id `<tag>-<function name>`. Found:\n"
                          + "\n".join(f"  - {problem}" for problem in problems[:LINES_SHOWN])
                          + (f"\n  ... and {len(problems) - LINES_SHOWN} more" if len(problems) > LINES_SHOWN else "")
                          + f"\n  sent: {describe_request('GET', '/openapi.json')}")


def test_layering_contracts_hold():
    text, contracts = course_contracts()
    ran = run_in_app(LINT, text, MARK)
    if ran.status is None:
        raise CheckFailed(f"import-linter did not finish in time on your package.\n{quoted(ran.output)}")
    if ran.status == 0:
        return
    if f"{MARK}no-package" in ran.output:
        raise CheckFailed("import-linter could not find the tracker package in your folder.")
    verdicts = {name: ("BROKEN" if re.search(rf"^{re.escape(name)} BROKEN$", ran.output, re.M) else
                       "KEPT" if re.search(rf"^{re.escape(name)} KEPT$", ran.output, re.M) else None)
                for name in contracts}
    broken = [name for name, verdict in verdicts.items() if verdict == "BROKEN"]
    if not broken:
        raise CheckFailed("import-linter could not check the course's contracts on your package (exit status "
                          f"{ran.status}):\n{quoted(ran.output)}")
    sections = broken_sections(ran.output, broken)
    parts = []
    for name in broken:
        lines = [line for line in sections.get(name, []) if line.strip()]
        shown = "\n".join("      " + line[:200] for line in lines[:8])
        more = f"\n      ... ({len(lines) - 8} more lines)" if len(lines) > 8 else ""
        parts.append(f"  ✘ {name}\n{shown}{more}")
    raise CheckFailed("Expected the course's layering contracts to hold (import-linter, with the contracts of the "
                      "statement). Broken:\n" + "\n".join(parts)
                      + "\nRun `lint-imports` in your folder, with the same contracts in pyproject.toml, for the "
                      "whole report.")


def test_fastapi_entrypoint_in_pyproject(observed):
    raw = learner_file("pyproject.toml")
    if raw is None:
        raise CheckFailed("Expected a pyproject.toml beside the tracker package, with\n    [tool.fastapi]\n"
                          f"    entrypoint = \"{ENTRYPOINT}\"\nand found no such file.")
    try:
        data = tomllib.loads(raw.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as problem:
        raise CheckFailed(f"Expected pyproject.toml to be valid TOML; reading it failed: {str(problem)[:200]}.") from None
    tool = data.get("tool") if isinstance(data.get("tool"), dict) else {}
    section = tool.get("fastapi")
    if not isinstance(section, dict):
        raise CheckFailed(f"Expected pyproject.toml to have a [tool.fastapi] table with entrypoint = "
                          f"\"{ENTRYPOINT}\"; it has none.")
    entrypoint = section.get("entrypoint")
    if entrypoint != ENTRYPOINT:
        raise CheckFailed(f"Expected [tool.fastapi] in pyproject.toml to say entrypoint = \"{ENTRYPOINT}\" (the app "
                          f"`fastapi dev` and `fastapi run` serve); found entrypoint = "
                          f"{json.dumps(entrypoint)[:200] if entrypoint is not None else '(none)'}.")
    facts = part(observed, "app")
    if facts.get("fastapi") is not True:
        raise CheckFailed(f"Expected {ENTRYPOINT}, the entrypoint in pyproject.toml, to be a FastAPI application; "
                          f"importing it beside your app found a {str(facts.get('kind'))[:200]}.")
