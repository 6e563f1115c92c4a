"""Reading a training notebook without running it: the literal values of its ``parameters`` cell, and finding a
notebook named by a parameter file."""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path
from typing import Any

from .. import paths


def notebook_parameters(path: str | os.PathLike) -> dict[str, Any]:
    """The names and default values of the cell tagged ``parameters`` of a notebook (without running it).

    Only plain assignments of literals are read (``name = 1.0``), as papermill's parameter cells hold.
    """
    path = Path(path)
    try:
        notebook = json.loads(path.read_text(encoding="utf8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the notebook ({exc}); expected a .ipynb file") from exc
    for cell in notebook.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.get("cell_type") != "code" or "parameters" not in tags:
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        values: dict[str, Any] = {}
        for node in ast.parse(source).body:
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else (
                node.target if isinstance(node, ast.AnnAssign) else None)
            if isinstance(target, ast.Name) and node.value is not None:
                try:
                    values[target.id] = ast.literal_eval(node.value)
                except ValueError as exc:
                    raise ValueError(f"{path}: parameter {target.id!r} is not a literal; expected a plain "
                                     f"value such as 1.0, 'mse' or None") from exc
        return values
    raise ValueError(f"{path}: no code cell tagged 'parameters'; papermill needs one to inject the grid values")


def resolve_notebook(name: str, params_file: Path) -> Path | None:
    """A notebook path from a parameter file: absolute, else relative to the project root, else to the file."""
    candidate = Path(name).expanduser()
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for base in (paths.project_root(params_file.parent), params_file.parent):
        if (base / candidate).is_file():
            return (base / candidate).resolve()
    return None
