"""The JSON Schema of scene files (scenes/scene.schema.json), generated from the pydantic models.

Editors use it for completion and checks while typing (Taplo / "Even Better TOML" picks it up
from the ``#:schema ./scene.schema.json`` line at the top of each scene file). It describes the
shape only; load_scene() also checks what a schema cannot (epochs that exist, cameras in the
area, overlay ids in the overlay file). Regenerate after changing the models::

    .venv/bin/python -m twin.scene.schema scenes/scene.schema.json
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from twin.scene.definition import Scene

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def scene_json_schema() -> dict[str, Any]:
    """The scene file schema as a dict."""
    schema = Scene.model_json_schema()
    schema["title"] = "Rostock virtuell scene definition"
    schema["description"] = (
        "scenes/<id>.toml: area, layers, epochs, overlays and tour of one scene "
        "(docs/scenes.md). Generated from twin/scene/definition.py."
    )
    return {"$schema": JSON_SCHEMA_DIALECT, **schema}


def schema_text() -> str:
    """The schema file's exact text."""
    return json.dumps(scene_json_schema(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_schema(path: Path) -> None:
    """Write the schema file atomically (temporary file, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(schema_text())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


if __name__ == "__main__":
    write_schema(Path(sys.argv[1] if len(sys.argv) > 1 else "scenes/scene.schema.json"))
