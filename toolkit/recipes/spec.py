"""Recipe validation: the JSON Schema of `schema.py` run by `jsonschema`, and readable errors.

`jsonschema` decides what is valid; this module turns its errors into the toolkit's message
format, `<file>: line N: <field.path>: <what is wrong>. <what is allowed / how to fix>`, one line
per problem, all problems at once. For an `anyOf` it explains the alternative the value was
meant to be (told by its type, or by the key a mapping carries, such as `shape: ellipse` or
`choice:`), with did-you-mean hints for unknown keys and names. It also holds the two rules
JSON Schema cannot say (a range's low ≤ high, a box's x0 < x1) and fills in defaults.
"""
from __future__ import annotations

import copy
import difflib
import math
from typing import Any, Iterable

import jsonschema

from .schema import MAX_COUNT, SCHEMA

Problem = tuple        # (field path: keys and list indices, message)


class RecipeError(ValueError):
    """Message format: '<file>: [line N: ]<field.path>: <what is wrong>. <what is allowed / how to fix>'
    (one line per problem when several are found)."""


def fmt_path(path: Iterable) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (("." if out else "") + str(p))
    return out or "(top level)"


def format_problems(source: str, problems: list[Problem], line_of=None) -> str:
    """One line per problem; `line_of(path) -> int | None` adds the YAML line where known."""
    lines = []
    for path, msg in problems:
        line = line_of(path) if line_of is not None else None
        lines.append(f"{source}: " + (f"line {line}: " if line else "") + f"{fmt_path(path)}: {msg}")
    return "\n".join(lines)


def count_cap_message(n) -> str:
    return (f"{n} is more than the cap of {MAX_COUNT:,} variants in one dataset. Spread one dataset over "
            "several processes or GPUs with `torchrun --nproc-per-node=N -m toolkit batch ...` or "
            "`--shard K/N`, and make several datasets (different `seed`s) for more variants")


def type_name(v) -> str:
    if v is None:
        return "nothing (null)"
    if isinstance(v, bool):
        return f"a boolean ({v})"
    if isinstance(v, int):
        return f"an integer ({v})" if abs(v) < 10 ** 30 else "a very large integer"
    if isinstance(v, float):
        return f"a number ({v})"
    if isinstance(v, str):
        return f"a string ({v[:60]!r}{'…' if len(v) > 60 else ''})"
    if isinstance(v, list):
        return "a list"
    if isinstance(v, dict):
        keys = sorted(map(str, v))
        return f"a mapping with keys {keys[:12]}" + (" …" if len(keys) > 12 else "")
    return type(v).__name__


# -- reading the schema ---------------------------------------------------------------------------
def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _tag(node: dict):
    """What tells an object option apart: (key, constant), a key it must carry, or None."""
    for k, p in node.get("properties", {}).items():
        if "const" in p:
            return (k, p["const"])
    req = node.get("required") or []
    return req[0] if req else None


def matches(node: dict, v) -> bool:
    """Cheap shape test: is `v` meant to be this option of an anyOf?"""
    if "anyOf" in node:
        return any(matches(o, v) for o in node["anyOf"])
    t = node.get("type")
    if t == "string":
        return isinstance(v, str) and ("enum" not in node or v in node["enum"])
    if t == "integer":
        return isinstance(v, int) and not isinstance(v, bool)
    if t == "number":
        return _is_number(v)
    if t == "boolean":
        return isinstance(v, bool)
    if t == "array":
        return isinstance(v, list)
    if t == "object":
        if not isinstance(v, dict):
            return False
        tag = _tag(node)
        if tag is None:
            return True
        return v.get(tag[0]) == tag[1] if isinstance(tag, tuple) else tag in v
    return True


def _same_type(node: dict, v) -> bool:
    if "anyOf" in node:
        return any(_same_type(o, v) for o in node["anyOf"])
    t = node.get("type")
    if t == "string":
        return isinstance(v, str)
    if t in ("number", "integer"):
        return _is_number(v)
    return matches(node, v)


def option_for(node: dict, v) -> dict | None:
    """The anyOf option a value is (first match), or None."""
    hits = [o for o in node["anyOf"] if matches(o, v)]
    return hits[0] if hits else None


def describe(node: dict) -> str:
    if "x-expected" in node:
        return node["x-expected"]
    if "anyOf" in node:
        return " | ".join(describe(o) for o in node["anyOf"])
    t = node.get("type")
    if t in ("number", "integer"):
        lo = node.get("minimum", node.get("exclusiveMinimum"))
        lo_open = "exclusiveMinimum" in node
        hi = node.get("maximum")
        if lo is not None and hi is not None:
            b = f" in {'(' if lo_open else '['}{lo}, {hi}]"
        elif lo is not None:
            b = f" {'>' if lo_open else '≥'} {lo}"
        elif hi is not None:
            b = f" ≤ {hi}"
        else:
            b = ""
        return ("an integer" if t == "integer" else "a number") + b
    if t == "string":
        if "const" in node:
            return repr(node["const"])
        e = node.get("enum")
        if e:
            return " or ".join(map(repr, e)) if len(e) <= 3 else "one of " + ", ".join(map(repr, e))
        return "a string"
    if t == "boolean":
        return "true or false"
    if t == "array":
        lo, hi = node.get("minItems", 0), node.get("maxItems")
        n = f"{lo}" if lo == hi else f"{lo}+" if hi is None else f"{lo}..{hi}"
        return f"a list of {n} × ({describe(node['items'])})"
    if t == "object":
        req = set(node.get("required") or [])
        return "a mapping with keys " + ", ".join(k + ("" if k in req else "?") for k in node["properties"])
    return "a value"


# -- validation -------------------------------------------------------------------------------------
def _strict_integer(checker, v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)    # 1.0 is not an integer in a recipe


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer))
VALIDATOR = _Validator(SCHEMA)


def schema_problems(data) -> list[Problem]:
    """Every structural problem of a recipe document, as (field path, message)."""
    out: list[Problem] = []
    for e in VALIDATOR.iter_errors(data):
        _explain(e, out)
    out.extend(_non_finite(data, ()))
    if not out:
        out.extend(_cross_field(data, ()))
    seen, unique = set(), []
    for p in out:
        if p not in seen:
            seen.add(p)
            unique.append(p)
    # A problem with a value hides the problems found inside it (a list of the wrong length, say).
    return [p for p in unique if not any(q[0] != p[0] and p[0][:len(q[0])] == q[0] and q[1].startswith(("has ", "expected"))
                                         for q in unique)]


def _explain(e: jsonschema.ValidationError, out: list[Problem]) -> None:
    path, node, v, kind = tuple(e.absolute_path), e.schema, e.instance, e.validator
    if kind == "additionalProperties":
        allowed = list(node.get("properties", {}))
        for k in v:
            if k not in node.get("properties", {}):
                close = difflib.get_close_matches(str(k), allowed, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                out.append((path + (k,), f"unknown key. Allowed here: {', '.join(allowed)}.{hint}"))
    elif kind == "required":
        for k in node["required"]:
            if k not in v:
                out.append((path + (k,), f"missing (required): add {describe(node['properties'][k])}"))
    elif kind == "type":
        out.append((path, f"expected {describe(node)}, got {type_name(v)}"))
    elif kind in ("enum", "const"):
        allowed = node.get("enum") or [node.get("const")]
        close = difflib.get_close_matches(v, allowed, n=1) if isinstance(v, str) else []
        hint = f" Did you mean {close[0]!r}?" if close else ""
        out.append((path, f"{v!r} is not allowed: use {describe(node)}.{hint}"))
    elif kind == "maximum" and path == ("count",):
        out.append((path, count_cap_message(v)))
    elif kind in ("minimum", "maximum", "exclusiveMinimum"):
        out.append((path, f"{v} is out of range: expected {describe(node)}"))
    elif kind in ("minItems", "maxItems"):
        out.append((path, f"has {len(v)} item(s): expected {describe(node)}"))
    elif kind == "pattern":
        out.append((path, f"{v!r} is not allowed: use letters, digits, '_', '.', '-' (starting with a letter or digit)"))
    elif kind == "anyOf":
        _explain_any_of(e, out)
    else:
        out.append((path, e.message))


def _explain_any_of(e: jsonschema.ValidationError, out: list[Problem]) -> None:
    path, node, v = tuple(e.absolute_path), e.schema, e.instance
    options = node["anyOf"]
    hits = [k for k, o in enumerate(options) if matches(o, v)]
    if isinstance(v, dict):
        tags = [t for t in map(_tag, options) if isinstance(t, str)]
        present = [t for t in tags if t in v]
        if len(present) > 1:
            out.append((path, f"has both {present[0]!r} and {present[1]!r}: give exactly one of {', '.join(tags)}"))
            return
        keyed = [t for t in map(_tag, options) if isinstance(t, tuple)]
        if not hits and keyed and keyed[0][0] in v:
            key = keyed[0][0]
            _explain_value_in(v[key], [t[1] for t in keyed if t[0] == key], path + (key,), out)
            return
    if not hits:
        same = [k for k, o in enumerate(options) if _same_type(o, v)]
        if len(same) == 1:       # one alternative of this type: its own message is the helpful one
            _explain_option(e, same[0], out)
            return
        hint = ""
        if isinstance(v, dict):  # e.g. {center, size} without `shape: ellipse`
            fits = [t for o in options if isinstance(t := _tag(o), tuple) and set(v) <= set(o["properties"])]
            if fits:
                hint = " Missing " + " or ".join(f"`{k}: {t}`" for k, t in fits) + "?"
        out.append((path, f"expected {describe(node)}; got {type_name(v)}.{hint}"))
        return
    _explain_option(e, hits[0], out)


def _explain_value_in(v, allowed: list, path: tuple, out: list[Problem]) -> None:
    what = describe({"type": "string", "enum": list(allowed)})
    if not isinstance(v, str):
        out.append((path, f"expected {what}, got {type_name(v)}"))
        return
    close = difflib.get_close_matches(v, allowed, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    out.append((path, f"{v!r} is not allowed: use {what}.{hint}"))


def _explain_option(e: jsonschema.ValidationError, k: int, out: list[Problem]) -> None:
    sub = [c for c in e.context or () if c.relative_schema_path and c.relative_schema_path[0] == k]
    if not sub:      # valid under this option but another rule of the node failed
        out.append((tuple(e.absolute_path), e.message))
    for c in sub:
        _explain(c, out)


def _non_finite(v, path: tuple) -> list[Problem]:
    if isinstance(v, float) and not math.isfinite(v):
        return [(path, f"expected a finite number, got {v}")]
    if isinstance(v, dict):
        return [p for k, x in v.items() for p in _non_finite(x, path + (k,))]
    if isinstance(v, list):
        return [p for i, x in enumerate(v) for p in _non_finite(x, path + (i,))]
    return []


def _cross_field(v, path: tuple) -> list[Problem]:
    """Rules JSON Schema cannot say: `{range: [low, high]}` with low ≤ high; boxes not empty."""
    out: list[Problem] = []
    if isinstance(v, dict):
        r = v.get("range")
        if isinstance(r, list) and len(r) == 2 and all(map(_is_number, r)) and r[0] > r[1]:
            out.append((path + ("range",), f"[{r[0]}, {r[1]}] has low > high: write [low, high]"))
        b = v.get("box")
        if v.get("shape") == "rectangle" and isinstance(b, list) and len(b) == 4 and \
                not (b[0] < b[2] and b[1] < b[3]):
            out.append((path + ("box",), f"{b} is empty: write [x0, y0, x1, y1] with x0 < x1 and y0 < y1"))
        for k, x in v.items():
            out.extend(_cross_field(x, path + (k,)))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            out.extend(_cross_field(x, path + (i,)))
    return out


def validate_schema(data, source: str = "<recipe>", line_of=None) -> None:
    """Structural checks only (keys, types, ranges): what can be said without the model or the
    mask files. RecipeError listing every problem."""
    problems = schema_problems(data)
    if problems:
        raise RecipeError(format_problems(source, problems, line_of))


def fill_defaults(data: Any, node: dict = SCHEMA) -> Any:
    """A copy of a valid document with every missing optional key that has a default filled in."""
    if "anyOf" in node:
        hit = option_for(node, data)
        return fill_defaults(data, hit) if hit is not None else copy.deepcopy(data)
    if node.get("type") == "object" and isinstance(data, dict):
        props = node.get("properties", {})
        out = {}
        for k, p in props.items():
            if k in data:
                out[k] = fill_defaults(data[k], p)
            elif "default" in p:
                out[k] = fill_defaults(copy.deepcopy(p["default"]), p)
        out.update({k: copy.deepcopy(x) for k, x in data.items() if k not in props})
        return out
    if node.get("type") == "array" and isinstance(data, list):
        return [fill_defaults(x, node["items"]) for x in data]
    return copy.deepcopy(data)


def recipe_json_schema() -> dict:
    """The JSON Schema (draft 2020-12) the validator uses, for editors and other validators."""
    return copy.deepcopy(SCHEMA)

