"""cosmic-ray's mutants of one file, each named by a key that survives edits elsewhere in the file."""
from __future__ import annotations

import difflib
import hashlib
import warnings
from dataclasses import dataclass
from pathlib import Path

import parso.python.tree
from cosmic_ray.ast import ast_nodes, get_ast
from cosmic_ray.mutating import mutate_code
from cosmic_ray.plugins import get_operator, operator_names

# Operators that need arguments (variable insertion and replacement) are left out, like cosmic-ray's init
# does without a config for them.
OPERATORS = tuple(name for name in operator_names() if not get_operator(name).arguments())


@dataclass(frozen=True)
class Mutant:
    key: str            # path::definition::operator::original line[#n]: stable while that line stays
    path: str
    operator: str
    occurrence: int     # cosmic-ray's index of this operator's positions in the file
    line: int
    definition: str     # `Class.method`, `function`, or `<module>`
    site: tuple[int, int]

    def mutated(self, source: str) -> str:
        code = mutate_code(source, get_operator(self.operator)(), self.occurrence)
        if code is None:
            raise ValueError(f"{self.key}: cosmic-ray made no mutation at occurrence {self.occurrence}")
        return code

    def diff(self, source: str) -> str:
        lines = difflib.unified_diff(source.splitlines(), self.mutated(source).splitlines(),
                                     f"a/{self.path}", f"b/{self.path}", n=1, lineterm="")
        return "\n".join(list(lines)[2:])  # the hunks only: the file is named by the key


def _definition(node) -> str:
    names = []
    while node is not None:
        if isinstance(node, (parso.python.tree.Function, parso.python.tree.Class)) \
                and not isinstance(node, parso.python.tree.Lambda):
            names.append(node.name.value)
        node = node.parent
    return ".".join(reversed(names)) or "<module>"


def _in_annotation(node) -> bool:
    # Every target has `from __future__ import annotations`: its annotations are never evaluated.
    while node.parent is not None:
        parent = node.parent
        if isinstance(parent, parso.python.tree.Function) and parent.annotation is node:
            return True
        if parent.type in ("tfpdef", "annassign") and len(parent.children) > 2 and \
                parent.children[1 if parent.type == "annassign" else 2] is node:
            return True
        node = parent
    return False


def _in_signature(node) -> bool:
    # cosmic-ray takes the bare `*` of a signature (and `*args`) for a multiplication: its `/` compiles and
    # changes nothing a caller by keyword could see.
    return node.type == "operator" and node.parent is not None and (
        node.parent.type in ("parameters", "lambdef") or isinstance(node.parent, parso.python.tree.Param))


def _left_out(text: str) -> bool:
    # A log line's wording and level are no guarantee of the cache, and a dataclass's options (frozen,
    # slots) guard against misuse rather than change what the code computes: mutating them is noise.
    return text.startswith(("log.", "logger.", "@dataclass")) or "# no mutate" in text


def enumerate_mutants(root: Path, path: str) -> list[Mutant]:
    source = (root / path).read_text()
    lines = source.splitlines()
    tree = get_ast(source)
    found: list[Mutant] = []
    seen: dict[str, int] = {}
    for name in OPERATORS:
        operator = get_operator(name)()
        positions = ((node, start) for node in ast_nodes(tree)
                     for start, _ in operator.mutation_positions(node))
        for occurrence, (node, start) in enumerate(positions):
            text = lines[start[0] - 1].strip()
            if _left_out(text) or _in_annotation(node) or _in_signature(node):
                continue
            definition = _definition(node)
            base = f"{path}::{definition}::{name.removeprefix('core/')}::{text}"
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.append(Mutant(base if n == 0 else f"{base}#{n}", path, name, occurrence, start[0],
                                definition, start))
    return found


def _rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def sample(mutants: list[Mutant], count: int, seed: int, source: str) -> list[Mutant]:
    """A deterministic sample: the mutation sites in the order of the lowest hash of seed and key among their
    variants, the first `count` of them, each with its lowest-hash variant that still compiles (`x *= 2` made
    `x @= 2` may not); the same seed draws the same mutants while their lines stay as they are."""
    sites: dict[tuple[int, int], list[Mutant]] = {}
    for mutant in mutants:
        sites.setdefault(mutant.site, []).append(mutant)
    ranked = sorted((sorted(variants, key=lambda m: _rank(seed, m.key)) for variants in sites.values()),
                    key=lambda variants: _rank(seed, variants[0].key))
    chosen = []
    for variants in ranked:
        if len(chosen) == count:
            break
        valid = next((m for m in variants if compiles(m, source)), None)
        if valid is not None:
            chosen.append(valid)
    return sorted(chosen, key=lambda m: (m.line, m.key))


def compiles(mutant: Mutant, source: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # `x is 300` compiles, with a warning: the tests judge it
            compile(mutant.mutated(source), mutant.path, "exec")
    except SyntaxError:
        return False
    return True
