"""Recipe YAML in and out: safe, bounded reading with line numbers; canonical dumping.

Reading refuses what would hurt before any recipe rule runs: files over `MAX_RECIPE_BYTES`,
nesting deeper than `MAX_DEPTH` (PyYAML's composer recurses, so a 5000-deep document would
end in a RecursionError), aliases (`*name` can multiply a document's size), duplicate keys
(YAML would silently keep the last). The composed node tree is kept so that messages can
name the line of a field path.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from ..io import TooLargeError, read_bounded
from .schema import SCHEMA
from .spec import RecipeError, option_for, type_name

MAX_RECIPE_BYTES = 1 << 20
MAX_DEPTH = 32


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys."""


def _construct_mapping(loader, node, deep=False):
    seen = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class LineMap:
    """Field path → 1-based line of that field in the YAML text (None when unknown)."""

    def __init__(self, root: yaml.Node | None):
        self.root = root

    def __call__(self, path) -> int | None:
        node = self.root
        if node is None:
            return None
        line = node.start_mark.line
        for p in path:
            nxt = None
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if isinstance(k, yaml.ScalarNode) and k.value == str(p):
                        nxt, line = v, k.start_mark.line
                        break
            elif isinstance(node, yaml.SequenceNode) and isinstance(p, int) and 0 <= p < len(node.value):
                nxt = node.value[p]
                line = nxt.start_mark.line
            if nxt is None:
                break     # a missing key: the line of its parent mapping
            node = nxt
        return line + 1


def _check_events(text: str, src: str) -> None:
    """Depth and alias limits, checked on the event stream (iterative, unlike the composer)."""
    depth = 0
    for ev in yaml.parse(text, Loader=_Loader):
        if isinstance(ev, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > MAX_DEPTH:
                raise RecipeError(f"{src}: line {ev.start_mark.line + 1}: the YAML is nested more than {MAX_DEPTH} "
                                  "levels deep; a recipe needs about 8. Check the indentation and brackets")
        elif isinstance(ev, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
        elif isinstance(ev, yaml.AliasEvent):
            raise RecipeError(f"{src}: line {ev.start_mark.line + 1}: YAML aliases (*{ev.anchor}) are not allowed "
                              "in recipes; write the value out")


def parse_yaml(text: str, src: str) -> tuple[object, LineMap]:
    """YAML text → (data, line map). RecipeError with the line for malformed or hostile YAML."""
    try:
        _check_events(text, src)
        loader = _Loader(text)
        try:
            root = loader.get_single_node()
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        raise RecipeError(f"{src}: {where}malformed YAML: {problem}. Fix the YAML syntax "
                          "(indentation, ':' after keys, matching brackets)") from None
    except RecursionError:
        raise RecipeError(f"{src}: the YAML is nested too deeply to read; a recipe needs about 8 levels") from None
    return data, LineMap(root)


def read_recipe_file(path: Path) -> tuple[str, dict, LineMap]:
    """A recipe file → (text, mapping, line map); RecipeError for anything that is not one."""
    src = str(path)
    if not path.exists():
        raise RecipeError(f"{src}: no such recipe file. Check the path (recipes live in recipes/*.yaml)")
    if path.is_dir():
        raise RecipeError(f"{src}: is a directory, not a recipe file. Pass a .yaml file")
    try:
        raw = read_bounded(path, MAX_RECIPE_BYTES)
    except TooLargeError:
        raise RecipeError(f"{src}: the file is larger than {MAX_RECIPE_BYTES // 1024} KiB; a recipe is a few "
                          "lines of YAML (masks belong in PNG files next to it)") from None
    except OSError as e:
        raise RecipeError(f"{src}: cannot read the recipe file: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecipeError(f"{src}: not UTF-8 text ({e.reason} at byte {e.start}); save the recipe as UTF-8") from None
    data, lines = parse_yaml(text, src)
    if data is None:
        raise RecipeError(f"{src}: the file is empty. A recipe needs at least `model:` and `edits:`")
    if not isinstance(data, dict):
        raise RecipeError(f"{src}: (top level): expected a mapping (key: value lines), got {type_name(data)}")
    return text, data, lines


# -- writing -------------------------------------------------------------------------------------------
class _Dumper(yaml.SafeDumper):
    pass


def _flat(v) -> bool:
    return not isinstance(v, (dict, list)) or \
        (isinstance(v, list) and all(not isinstance(x, dict) and (not isinstance(x, list) or all(map(_flat, x)))
                                     for x in v))


def _repr_list(dumper, data):
    flow = all(not isinstance(x, (dict, list)) for x in data) or \
        all(isinstance(x, list) and all(not isinstance(y, (dict, list)) for y in x) for x in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _repr_dict(dumper, data):
    # short mappings of scalars/flat lists read best inline ({choice: [a, b]}, {range: [0, 1]})
    flow = len(data) <= 3 and all(_flat(v) for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_Dumper.add_representer(list, _repr_list)
_Dumper.add_representer(dict, _repr_dict)


def _ordered(v, node: dict | None):
    """Keys in the schema's order (so dumped recipes read top-down like the docs)."""
    if node is not None and "anyOf" in node:
        node = option_for(node, v)
    if isinstance(v, dict):
        props = (node or {}).get("properties", {})
        keys = [k for k in props if k in v] + [k for k in v if k not in props]
        return {k: _ordered(v[k], props.get(k)) for k in keys}
    if isinstance(v, list):
        return [_ordered(x, (node or {}).get("items")) for x in v]
    return v


def dump_recipe(data: dict) -> str:
    """Canonical YAML text for a recipe dict (schema key order, short lists inline)."""
    return yaml.dump(_ordered(data, SCHEMA), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
